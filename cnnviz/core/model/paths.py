"""Where a layer sits in a stack: a :class:`LayerPath`.

A path is a tuple of parts read from the top: ``(3,)`` is the fourth layer of
the stack. A block holds lists of layers of its own, and a path then goes on
with the name of the block's list and an index in it: ``(3, "body", 1)``,
written ``3.body.1`` (a Residual's ``body`` or ``shortcut``); a Concat's lists
are its branches, so the name is followed by the branch's number:
``(4, "branches", 2, 0)``, written ``4.branches.2.0`` (SPEC §3.1). Every edit and
every change event names a layer this way. No Qt, no torch.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

Part = int | str


class LayerPath(tuple):
    """An immutable tuple of parts (int indices, str list names); ``LayerPath(3)`` is ``(3,)``."""

    __slots__ = ()

    def __new__(cls, *parts: Part) -> LayerPath:
        if len(parts) == 1 and isinstance(parts[0], (tuple, list)):
            parts = tuple(parts[0])
        if not parts:
            raise ValueError("a layer path names at least one index")
        for k, want in enumerate(_expected(parts)):
            if type(parts[k]) is not want:  # bool is not an index
                raise TypeError(f"part {k} of a layer path must be {want.__name__}, got {parts[k]!r}")
        if type(parts[-1]) is not int or (len(parts) > 1 and parts[-2] == BRANCHES):
            raise ValueError(f"a layer path ends with a layer's index, not a list's name: {parts!r}")
        return super().__new__(cls, parts)

    @classmethod
    def of(cls, where: int | str | Iterable[Part] | LayerPath) -> LayerPath:
        """A path from an index (today's top-level layers), a tuple, or its text ("3" or "3.body.1")."""
        if isinstance(where, LayerPath):
            return where
        if isinstance(where, int) and not isinstance(where, bool):
            return cls(where)
        if isinstance(where, str):
            parts: list[Part] = []
            for text in where.split("."):
                want = _expected((*parts, text))[len(parts)]
                if want is int:
                    if not text.isdigit() or not text.isascii():
                        raise ValueError(f"not a layer path: {where[:60]!r} ({text[:20]!r} is not an index)")
                    parts.append(int(text))
                else:
                    parts.append(text)
            return cls(*parts)
        return cls(tuple(where))

    @property
    def segments(self) -> tuple[tuple[int, tuple[Part, ...]], ...]:
        """The blocks on the way to the layer: (the block's index in its list, the list's key in the block),
        the key being ``("body",)``, ``("shortcut",)`` or ``("branches", k)``."""
        out, k = [], 0
        parts = self.container
        while k < len(parts):
            step = 3 if parts[k + 1] == BRANCHES else 2
            out.append((parts[k], tuple(parts[k + 1:k + step])))
            k += step
        return tuple(out)

    @property
    def depth(self) -> int:
        """How many blocks hold the layer (0 for one of the stack's own layers)."""
        return len(self.segments)

    def child(self, key: tuple[Part, ...], index: int) -> LayerPath:
        """The path of layer ``index`` in the list ``key`` of the block at this path."""
        return LayerPath(*self, *key, index)

    def words(self) -> str:
        """The path for a sentence: ``layer 3 → body → 1``."""
        return "layer " + " → ".join(str(p) for p in self)

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


BRANCHES = "branches"
LIST_NAMES = ("body", "shortcut", BRANCHES)


def _expected(parts) -> list[type]:
    """The type each part of ``parts`` must have: an index, then (a list's name [, a branch's number],
    an index) again and again."""
    out: list[type] = []
    k = 0
    while k < len(parts):
        out.append(int)  # a layer's index
        k += 1
        if k < len(parts):
            out.append(str)  # the name of one of its lists
            if parts[k] == BRANCHES:
                out.append(int)  # which branch
                k += 1
            k += 1
    return out[:len(parts)]


@lru_cache(maxsize=1024)
def top(index: int) -> LayerPath:
    """``LayerPath(index)``, made once: shape inference names every layer of the stack on every keystroke."""
    return LayerPath(index)


@lru_cache(maxsize=8192)
def inside(container: tuple, index: int) -> LayerPath:
    """``LayerPath(*container, index)``, made (and checked) once: the layers inside blocks are named on every
    keystroke too."""
    return LayerPath(*container, index)


PathLike = int | str | LayerPath | tuple
