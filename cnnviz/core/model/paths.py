"""Where a layer sits in a stack: a :class:`LayerPath`.

A path is a tuple of parts read from the top: ``(3,)`` is the fourth layer of
the stack. Blocks will hold lists of layers of their own, and a path then goes
on with the name of a block's list and an index in it (``(3, "body", 1)``,
written ``3.body.1``). Every edit and every change event names a layer this
way, so the edits, the undo history and the Qt tree model need no redesign
when blocks land. No Qt, no torch.
"""
from __future__ import annotations

from collections.abc import Iterable

Part = int | str


class LayerPath(tuple):
    """An immutable tuple of parts (int indices, str list names); ``LayerPath(3)`` is ``(3,)``."""

    __slots__ = ()

    def __new__(cls, *parts: Part) -> LayerPath:
        if len(parts) == 1 and isinstance(parts[0], (tuple, list)):
            parts = tuple(parts[0])
        for k, part in enumerate(parts):
            want = int if k % 2 == 0 else str
            if type(part) is not want:  # bool is not an index
                raise TypeError(f"part {k} of a layer path must be {want.__name__}, got {part!r}")
        if not parts:
            raise ValueError("a layer path names at least one index")
        if len(parts) % 2 == 0:
            raise ValueError(f"a layer path ends with an index, not a list name: {parts!r}")
        return super().__new__(cls, parts)

    @classmethod
    def of(cls, where: int | str | Iterable[Part] | LayerPath) -> LayerPath:
        """A path from an index (today's top-level layers), a tuple, or its text ("3" or "3.body.1")."""
        if isinstance(where, LayerPath):
            return where
        if isinstance(where, int) and not isinstance(where, bool):
            return cls(where)
        if isinstance(where, str):
            return cls(*(int(p) if k % 2 == 0 else p for k, p in enumerate(where.split("."))))
        return cls(tuple(where))

    @property
    def index(self) -> int:
        """The position in the list that holds the layer."""
        return self[-1]

    @property
    def container(self) -> tuple[Part, ...]:
        """The path of the list that holds the layer: ``()`` for the stack's own layers."""
        return tuple(self[:-1])

    @property
    def top_level(self) -> bool:
        return len(self) == 1

    def sibling(self, index: int) -> LayerPath:
        """The path of position ``index`` in the same list."""
        return LayerPath(*self[:-1], index)

    def __str__(self) -> str:
        return ".".join(str(p) for p in self)

    def __repr__(self) -> str:
        return f"LayerPath({', '.join(repr(p) for p in self)})"


PathLike = int | str | LayerPath | tuple
