"""The layer stack as plain, immutable data, and the edits that change it.

A :class:`Stack` is a value: every edit produces a new one, so a snapshot for a
worker thread is just a reference, and a cache can key on :meth:`Stack.key`.
Edits are small objects whose ``apply`` returns the new stack and the edit that
undoes it (the Qt side wraps them in ``QUndoCommand`` adapters).
:class:`StackDocument` holds the current stack and tells subscribers about
every change. No Qt, no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from cnnviz.core.model.layers import CATALOGUE, DEFAULT_LOSS, LOSSES


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: a catalogue type, the keywords given for it, an optional label."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))

    def __hash__(self) -> int:
        return hash((self.type, _canonical(self.params), self.name))

    def __eq__(self, other: object) -> bool:
        # By content as written (true is not 1), matching the hash and the cache key.
        if not isinstance(other, Layer):
            return NotImplemented
        return (self.type, self.name, _canonical(self.params)) == (other.type, other.name, _canonical(other.params))

    def with_param(self, key: str, value: Any) -> "Layer":
        """A copy with ``key`` set; ``value=None`` for an inferable keyword removes it."""
        params = dict(self.params)
        params[key] = value
        return replace(self, params=params)

    def without_param(self, key: str) -> "Layer":
        params = {k: v for k, v in self.params.items() if k != key}
        return replace(self, params=params)

    @property
    def label(self) -> str:
        return self.name or self.type


@dataclass(frozen=True, eq=False)
class Loss:
    type: str = DEFAULT_LOSS
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))

    def __hash__(self) -> int:
        return hash((self.type, _canonical(self.params)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Loss):
            return NotImplemented
        return (self.type, _canonical(self.params)) == (other.type, _canonical(other.params))


@dataclass(frozen=True)
class InputSpec:
    channels: int = 1
    height: int = 28
    width: int = 28

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


OPTIMIZERS = ("adam", "sgd")
DATASETS = ("digits", "fashion-mnist", "shapes")


@dataclass(frozen=True)
class TrainingConfig:
    """How the stack is trained; the optional ``training`` object of a file."""

    data: str = "fashion-mnist"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    steps: int = 500

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Stack:
    name: str = "Untitled"
    input: InputSpec = InputSpec()
    layers: tuple[Layer, ...] = ()
    loss: Loss = Loss()
    description: str = ""
    training: TrainingConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))

    def to_dict(self) -> dict[str, Any]:
        """The file form of SPEC §1 (without format/version)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["input"] = {"channels": self.input.channels, "height": self.input.height, "width": self.input.width}
        layers = []
        for layer in self.layers:
            entry: dict[str, Any] = {"type": layer.type}
            if layer.params:
                entry["params"] = dict(layer.params)
            if layer.name:
                entry["name"] = layer.name
            layers.append(entry)
        out["layers"] = layers
        loss: dict[str, Any] = {"type": self.loss.type}
        if self.loss.params:
            loss["params"] = dict(self.loss.params)
        out["loss"] = loss
        if self.training is not None:
            out["training"] = self.training.as_dict()
        return out

    def key(self) -> str:
        """Canonical text of everything that defines the network; a cache key."""
        return _canonical(self.to_dict())

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stack):
            return NotImplemented
        return self.key() == other.key()


# --------------------------------------------------------------------- edits
class Edit:
    """A change to a stack. ``apply`` returns (new stack, the edit that undoes it)."""

    text = "Edit"

    def apply(self, stack: Stack) -> tuple[Stack, "Edit"]:
        raise NotImplementedError

    def merge(self, later: "Edit") -> "Edit | None":
        """One edit equivalent to self followed by ``later``, or None if they don't merge."""
        return None


def _check_index(stack: Stack, index: int, allow_end: bool = False) -> None:
    top = len(stack.layers) + (1 if allow_end else 0)
    if not 0 <= index < top:
        raise IndexError(f"layer index {index} is outside 0..{top - 1}")


@dataclass(frozen=True)
class InsertLayer(Edit):
    index: int
    layer: Layer

    @property
    def text(self) -> str:
        return f"Add {self.layer.type}"

    def apply(self, stack):
        _check_index(stack, self.index, allow_end=True)
        if self.layer.type not in CATALOGUE:
            raise KeyError(f"{self.layer.type} is not in the layer catalogue")
        layers = list(stack.layers)
        layers.insert(self.index, self.layer)
        return replace(stack, layers=tuple(layers)), RemoveLayer(self.index)


@dataclass(frozen=True)
class RemoveLayer(Edit):
    index: int

    text = "Delete layer"

    def apply(self, stack):
        _check_index(stack, self.index)
        layers = list(stack.layers)
        removed = layers.pop(self.index)
        return replace(stack, layers=tuple(layers)), InsertLayer(self.index, removed)


@dataclass(frozen=True)
class MoveLayer(Edit):
    """Take the layer at ``source`` out and put it so that it ends at ``dest``."""

    source: int
    dest: int

    text = "Move layer"

    def apply(self, stack):
        _check_index(stack, self.source)
        _check_index(stack, self.dest)
        layers = list(stack.layers)
        layers.insert(self.dest, layers.pop(self.source))
        return replace(stack, layers=tuple(layers)), MoveLayer(self.dest, self.source)


@dataclass(frozen=True)
class ReplaceLayer(Edit):
    """Put ``layer`` at ``index``. ``key`` lets consecutive edits of one field merge."""

    index: int
    layer: Layer
    key: str | None = None

    @property
    def text(self) -> str:
        return f"Change {self.key}" if self.key else f"Change {self.layer.type}"

    def apply(self, stack):
        _check_index(stack, self.index)
        if self.layer.type not in CATALOGUE:
            raise KeyError(f"{self.layer.type} is not in the layer catalogue")
        layers = list(stack.layers)
        old = layers[self.index]
        layers[self.index] = self.layer
        return replace(stack, layers=tuple(layers)), ReplaceLayer(self.index, old, self.key)

    def merge(self, later):
        if isinstance(later, ReplaceLayer) and self.key and later.index == self.index and later.key == self.key:
            return later
        return None


def set_param(stack: Stack, index: int, key: str, value: Any) -> ReplaceLayer:
    """The edit that sets one keyword of one layer (None removes it: torch's default or inferred)."""
    layer = stack.layers[index]
    new = layer.without_param(key) if value is None and key in _removable(layer, key) else layer.with_param(key, value)
    return ReplaceLayer(index, new, key=f"{index}.{key}")


def _removable(layer: Layer, key: str) -> set[str]:
    spec = CATALOGUE[layer.type]
    p = spec.param_index.get(key)
    return {key} if p is not None and (p.inferred or p.default is None) else set()


@dataclass(frozen=True)
class SetInput(Edit):
    input: InputSpec

    text = "Change input"

    def apply(self, stack):
        return replace(stack, input=self.input), SetInput(stack.input)

    def merge(self, later):
        return later if isinstance(later, SetInput) else None


@dataclass(frozen=True)
class SetLoss(Edit):
    loss: Loss

    text = "Change loss"

    def apply(self, stack):
        if self.loss.type not in LOSSES:
            raise KeyError(f"{self.loss.type} is not a supported loss")
        return replace(stack, loss=self.loss), SetLoss(stack.loss)


@dataclass(frozen=True)
class SetStack(Edit):
    """Replace the whole stack (name, training settings, or a pasted stack)."""

    stack: Stack
    label: str = "Change stack"

    @property
    def text(self) -> str:
        return self.label

    def apply(self, stack):
        return self.stack, SetStack(stack, self.label)


@dataclass(frozen=True)
class Batch(Edit):
    """Several edits applied as one (undone in reverse order)."""

    edits: tuple[Edit, ...]
    label: str = "Edit"

    @property
    def text(self) -> str:
        return self.label

    def apply(self, stack):
        inverses = []
        for edit in self.edits:
            stack, inverse = edit.apply(stack)
            inverses.append(inverse)
        return stack, Batch(tuple(reversed(inverses)), self.label)


# ------------------------------------------------------------------ document
Listener = Callable[[Stack, Stack], None]


def config_with(config: TrainingConfig | None, **overrides: Any) -> TrainingConfig:
    """``config`` (or the defaults) with every override that is not None applied."""
    base = config or TrainingConfig()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


class StackDocument:
    """The stack being edited, with subscribers told of every change.

    Undo history lives with the caller (``QUndoStack`` in the app, a list in
    tests): :meth:`apply` returns the inverse edit to keep.
    """

    def __init__(self, stack: Stack | None = None) -> None:
        self._stack = stack if stack is not None else Stack()
        self._listeners: list[Listener] = []

    @property
    def stack(self) -> Stack:
        return self._stack

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(old, new)`` after every change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def apply(self, edit: Edit) -> Edit:
        new, inverse = edit.apply(self._stack)
        self._set(new)
        return inverse

    def reset(self, stack: Stack) -> None:
        """Replace the stack outside the undo history (open, new)."""
        self._set(stack)

    def _set(self, new: Stack) -> None:
        old, self._stack = self._stack, new
        if old is new:
            return
        for listener in list(self._listeners):
            listener(old, new)
