"""What shape inference reports, per layer, per loss and per stack. No torch, no Qt."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(frozen=True)
class ReceptiveField:
    """Where one output pixel looks in the input image, per axis (height, width).

    ``size``: pixels seen; ``jump``: input pixels between neighbouring outputs;
    ``start``: centre of the first output's field, in input pixels.
    """

    size: tuple[int, int] = (1, 1)
    jump: tuple[float, float] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)


class Fix(str):
    """A proposed change: reads (and compares) as its text, and carries the change itself.

    ``params``: the failing layer's keywords to set, as (key, value) pairs; ``input``: a new
    (height, width) for the input. Each is what the rule checked to work.
    """

    params: tuple[tuple[str, Any], ...]
    input: tuple[int, int] | None
    shortcut: tuple | None
    """A Residual's new shortcut (its layers), for a body and shortcut that disagree."""

    def __new__(cls, text: str, params: Any = (), input: tuple[int, int] | None = None,
                shortcut: tuple | None = None) -> Self:
        self = super().__new__(cls, text)
        self.params = tuple(dict(params).items())
        self.input = input
        self.shortcut = tuple(shortcut) if shortcut is not None else None
        return self

    def __reduce__(self):
        return (Fix, (str(self), self.params, self.input, self.shortcut))

    @property
    def label(self) -> str:
        """What applying it does, e.g. ``padding 1`` or ``input 36×36``."""
        parts = [f"{k}={_value_text(v)}" for k, v in self.params]
        if self.input is not None:
            parts.append(f"input {self.input[0]}×{self.input[1]}")
        if self.shortcut is not None:
            parts.append("shortcut " + (" + ".join(layer.type for layer in self.shortcut) or "identity"))
        return ", ".join(parts)


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def applicable(fixes: Any) -> tuple[Fix, ...]:
    """The fixes among ``fixes`` (texts or warnings) that carry a change to apply."""
    return tuple(f for f in fixes if isinstance(f, Fix) and (f.params or f.input is not None
                                                             or f.shortcut is not None))


@dataclass
class LayerFail(Exception):
    code: str
    message: str
    param: str | None = None
    axis: int | None = None  # 0 height, 1 width: where a spatial failure happened
    fixes: tuple[str, ...] = ()  # changes that make the layer work, each checked; joined into the message
    offers: tuple[Fix, ...] = ()  # changes the message already names in its own words (not joined again)

    @property
    def text(self) -> str:
        return _with_fixes(self.message, self.fixes)


def _or_list(items: list[str]) -> str:
    """``a``, ``a or b``, ``a, b, or c``."""
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def _with_fixes(message: str, fixes: tuple[str, ...]) -> str:
    return f"{message}: use {_or_list(list(fixes))}" if fixes else message


@dataclass(frozen=True)
class LayerReport:
    index: int
    type: str
    label: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None = None
    params: int = 0
    trainable: int = 0
    macs: int = 0
    receptive_field: ReceptiveField | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    formula: tuple[str, ...] = ()
    error: str | None = None
    error_code: str | None = None
    error_param: str | None = None
    error_axis: int | None = None  # 0 height, 1 width, for a failure along one spatial axis
    error_fixes: tuple[str, ...] = ()  # the changes the error proposes, each checked to work
    error_offers: tuple[Fix, ...] = ()  # further changes the error's sentence names (e.g. set in_features to 32)
    warnings: tuple[str, ...] = ()
    reachable: bool = True
    path: Any = None
    """Where the layer sits (a :class:`~cnnviz.core.model.paths.LayerPath`); ``index`` is its place in its
    own list."""
    inner: tuple = ()
    """A block's lists: ``((key, reports), ...)``, the key ``("body",)``, ``("shortcut",)`` or
    ``("branches", k)`` as in :meth:`~cnnviz.core.model.stack.Layer.lists`; ``()`` for a layer."""

    def __post_init__(self) -> None:
        if self.path is None:
            from cnnviz.core.model.paths import LayerPath

            object.__setattr__(self, "path", LayerPath(self.index))

    @property
    def ok(self) -> bool:
        return self.output_shape is not None

    @property
    def is_block(self) -> bool:
        return bool(self.inner) or self.type in ("Residual", "Concat")

    def walk(self):
        """This report and every report inside it, depth first, in file order."""
        yield self
        for _key, reports in self.inner:
            for r in reports:
                yield from r.walk()

    @property
    def inner_error(self) -> "LayerReport | None":
        """The first layer inside this block that cannot work (the deepest), or None."""
        for _key, reports in self.inner:
            for r in reports:
                if r.error:
                    return r.inner_error or r
        return None

    @property
    def fixes(self) -> tuple[Fix, ...]:
        """Every change offered for this layer, from its error and its warnings, that can be applied."""
        return applicable(self.error_fixes) + applicable(self.error_offers) + applicable(self.warnings)

    @property
    def activation_elements(self) -> int:
        return math.prod(self.output_shape) if self.output_shape is not None else 0


@dataclass(frozen=True)
class LossReport:
    type: str
    resolved: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackReport:
    input_shape: tuple[int, int, int]
    layers: tuple[LayerReport, ...]
    loss: LossReport

    @property
    def first_error(self) -> LayerReport | None:
        return next((r for r in self.layers if r.error), None)

    @property
    def ok(self) -> bool:
        return self.first_error is None and self.loss.error is None

    @property
    def problem(self) -> str | None:
        """Why the stack cannot run, naming the layer or the loss; None when it can."""
        bad = self.first_error
        if bad is not None:
            inner = bad.inner_error
            if inner is not None:
                return f"{inner.path.words()} ({inner.label}): {inner.error}"
            return f"layer {bad.index} ({bad.label}): {bad.error}"
        if self.loss.error:
            return f"loss ({self.loss.type}): {self.loss.error}"
        return None

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        if self.first_error is not None:
            return None
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def num_classes(self) -> int | None:
        out = self.output_shape
        return out[0] if out is not None and len(out) == 1 else None

    def walk(self):
        """Every layer's report at every depth (a block before its inside), in file order."""
        for r in self.layers:
            yield from r.walk()

    def at(self, path) -> LayerReport:
        """The report of the layer at ``path``; IndexError if there is none."""
        from cnnviz.core.model.paths import LayerPath

        path = LayerPath.of(path)
        reports = self.layers
        for index, key in path.segments:
            if not 0 <= index < len(reports):
                raise IndexError(f"no layer at {path}")
            found = dict(reports[index].inner)
            if key not in found:
                raise IndexError(f"no layer at {path}")
            reports = found[key]
        if not 0 <= path.index < len(reports):
            raise IndexError(f"no layer at {path}")
        return reports[path.index]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable for r in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "—"
    return "×".join(str(s) for s in shape) if shape else "scalar"
