"""The layer stack as plain, immutable data, and the edits that change it.

A :class:`Stack` is a value: every edit produces a new one, so a snapshot for a
worker thread is just a reference, and a cache can key on :meth:`Stack.key`.
Edits are small objects whose ``apply`` returns the new stack and the edit that
undoes it (the Qt side wraps them in ``QUndoCommand`` adapters); they name a
layer by its :class:`~cnnviz.core.model.paths.LayerPath`, and ``describe`` gives
their undo text. :class:`StackDocument` holds the current stack and tells
subscribers about every change with a :class:`StackChange` (the edit and the
report included). No Qt, no torch.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from cnnviz.core.model.layers import BLOCKS, CATALOGUE, DEFAULT_LOSS, LOSSES
from cnnviz.core.model.paths import BRANCHES, LayerPath, PathLike


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


_uids = itertools.count(1)


def new_uid() -> int:
    """A layer identity never handed out before in this process."""
    return next(_uids)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: a catalogue type, the keywords given for it, an optional label; or a block (SPEC §3.1).

    A block is a ``Layer`` whose ``type`` is in :data:`~cnnviz.core.model.layers.BLOCKS`: a
    ``Residual`` (``body`` + ``shortcut``, added; an empty shortcut is the identity) or a ``Concat``
    (``branches``, concatenated on dimension 1; an empty branch is the identity). A block has no
    keywords of its own; its lists hold layers and blocks.

    ``uid`` is the layer's runtime identity, never written to a file and not part
    of equality: two identical Conv2d are two layers, and a layer keeps its
    identity through keyword edits (:meth:`with_param`), Replace, Move and
    undo, which is how trained weights find their layer again. Every new
    ``Layer`` gets a fresh one; :meth:`copy` makes a duplicate with its own (and new ones inside).
    """

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    uid: int = field(default_factory=new_uid, repr=False)
    body: tuple["Layer", ...] = ()
    shortcut: tuple["Layer", ...] = ()
    branches: tuple[tuple["Layer", ...], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "body", tuple(self.body))
        object.__setattr__(self, "shortcut", tuple(self.shortcut))
        object.__setattr__(self, "branches", tuple(tuple(b) for b in self.branches))

    @property
    def is_block(self) -> bool:
        return self.type in BLOCKS

    def lists(self) -> tuple[tuple[tuple[str, ...] | tuple[str, int], tuple["Layer", ...]], ...]:
        """The block's lists of layers, each with its key in a path: ``("body",)``, ``("shortcut",)``,
        ``("branches", k)``; ``()`` for a layer."""
        if self.type == "Residual":
            return (("body",), self.body), (("shortcut",), self.shortcut)
        if self.type == "Concat":
            return tuple(((BRANCHES, k), branch) for k, branch in enumerate(self.branches))
        return ()

    def list_at(self, key: tuple) -> tuple["Layer", ...]:
        """The list ``key`` names (see :meth:`lists`); IndexError if this block has none such."""
        for k, layers in self.lists():
            if k == tuple(key):
                return layers
        raise IndexError(f"{self.label} has no list {'.'.join(str(p) for p in key) or '(none)'}")

    def with_list(self, key: tuple, layers) -> "Layer":
        """A copy with the list ``key`` replaced by ``layers`` (same identity)."""
        key = tuple(key)
        self.list_at(key)
        if key[0] == BRANCHES:
            branches = list(self.branches)
            branches[key[1]] = tuple(layers)
            return replace(self, branches=tuple(branches))
        return replace(self, **{key[0]: tuple(layers)})

    def entry(self) -> dict[str, Any]:
        """The layer as a file entry (SPEC §1, §3.1)."""
        out: dict[str, Any] = {"type": self.type}
        if self.params:
            out["params"] = dict(self.params)
        if self.name:
            out["name"] = self.name
        if self.type == "Residual":
            out["body"] = [layer.entry() for layer in self.body]
            if self.shortcut:
                out["shortcut"] = [layer.entry() for layer in self.shortcut]
        elif self.type == "Concat":
            out["branches"] = [[layer.entry() for layer in branch] for branch in self.branches]
        return out

    def walk(self, path: LayerPath | None = None):
        """(path, layer) of this layer and of every layer inside it, depth first, in file order."""
        path = path if path is not None else LayerPath(0)
        yield path, self
        for key, layers in self.lists():
            for i, layer in enumerate(layers):
                yield from layer.walk(path.child(key, i))

    def _content(self) -> str:
        key = self.__dict__.get("_content_key")
        if key is None:
            key = _canonical(self.entry())
            object.__setattr__(self, "_content_key", key)
        return key

    def __hash__(self) -> int:
        return hash(self._content())

    def __eq__(self, other: object) -> bool:
        # By content as written (true is not 1), matching the hash and the cache key.
        if not isinstance(other, Layer):
            return NotImplemented
        return self is other or self._content() == other._content()

    def with_param(self, key: str, value: Any) -> "Layer":
        """A copy with ``key`` set; ``value=None`` for an inferable keyword removes it."""
        params = dict(self.params)
        params[key] = value
        return replace(self, params=params)

    def without_param(self, key: str) -> "Layer":
        params = {k: v for k, v in self.params.items() if k != key}
        return replace(self, params=params)

    def copy(self) -> "Layer":
        """The same layer as a new one (a duplicate or a paste): same content, its own identity, and so
        every layer inside it."""
        return replace(self, uid=new_uid(), body=tuple(x.copy() for x in self.body),
                       shortcut=tuple(x.copy() for x in self.shortcut),
                       branches=tuple(tuple(x.copy() for x in b) for b in self.branches))

    @property
    def label(self) -> str:
        return self.name or self.type


def residual(body=(), shortcut=(), name: str | None = None) -> Layer:
    """A Residual block: ``body(x) + shortcut(x)`` (an empty shortcut is the identity)."""
    return Layer("Residual", name=name, body=tuple(body), shortcut=tuple(shortcut))


def concat(*branches, name: str | None = None) -> Layer:
    """A Concat block: ``torch.cat([branch(x) for branch in branches], dim=1)``."""
    return Layer("Concat", name=name, branches=tuple(tuple(b) for b in branches))


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
SCHEDULES = ("constant", "cosine")
"""How the learning rate moves over a run: ``constant``, or ``cosine`` annealing from ``lr`` to 0 over the
run's steps (see :func:`scheduled_lr`)."""
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
    schedule: str = "constant"

    def as_dict(self) -> dict[str, Any]:
        """The file's ``training`` object; ``schedule`` only when it is not the default ``constant`` (so a file
        written before schedules existed is written back as it was)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        if out["schedule"] == "constant":
            del out["schedule"]
        return out


def scheduled_lr(lr: float, schedule: str, step: int, horizon: int) -> float:
    """The learning rate of the optimizer step taken when ``step`` steps are done, with base rate ``lr``.

    ``constant``: ``lr``. ``cosine``: ``lr * (1 + cos(pi * min(step, horizon) / horizon)) / 2``, from ``lr``
    at step 0 to 0 at ``horizon`` (the run's steps) and 0 after it: the closed form of PyTorch's
    ``CosineAnnealingLR(T_max=horizon, eta_min=0)`` up to the horizon. A horizon below 1 counts as 1.
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        horizon = max(1, int(horizon))
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(max(0, int(step)), horizon) / horizon))
    raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")


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
        out["layers"] = [layer.entry() for layer in self.layers]
        loss: dict[str, Any] = {"type": self.loss.type}
        if self.loss.params:
            loss["params"] = dict(self.loss.params)
        out["loss"] = loss
        if self.training is not None:
            out["training"] = self.training.as_dict()
        return out

    def key(self) -> str:
        """Canonical text of everything that defines the network; a cache key.

        Written once per stack: a stack is immutable, so the text (and the hash made
        from it) is kept on the instance, and an edit's new stack starts without one.
        """
        key = self.__dict__.get("_key")
        if key is None:
            key = _canonical(self.to_dict())
            object.__setattr__(self, "_key", key)
        return key

    def __hash__(self) -> int:
        value = self.__dict__.get("_hash")
        if value is None:
            value = hash(self.key())
            object.__setattr__(self, "_hash", value)
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stack):
            return NotImplemented
        return self is other or self.key() == other.key()

    def walk(self):
        """(path, layer) of every layer at every depth, blocks before their insides, in file order."""
        for i, layer in enumerate(self.layers):
            yield from layer.walk(LayerPath(i))

    @property
    def has_blocks(self) -> bool:
        return any(layer.is_block for layer in self.layers)

    def layer_at(self, path: PathLike) -> Layer:
        """The layer at ``path`` (an index, or a :class:`LayerPath`); IndexError if there is none."""
        path = LayerPath.of(path)
        layers = _container(self, path)
        if not 0 <= path.index < len(layers):
            raise IndexError(f"no layer at {path}")
        return layers[path.index]


# --------------------------------------------------------------------- edits
def _container(stack: Stack, path: LayerPath) -> tuple[Layer, ...]:
    """The list of layers that holds the layer at ``path``: the stack's own, or a block's."""
    layers = stack.layers
    for index, key in path.segments:
        if not 0 <= index < len(layers) or not layers[index].is_block:
            raise IndexError(f"no layer at {path}: {LayerPath(index)} is not a block here")
        layers = layers[index].list_at(key)
    return layers


def _replaced(layers: tuple[Layer, ...], segments, new: list[Layer]) -> tuple[Layer, ...]:
    if not segments:
        return tuple(new)
    (index, key), rest = segments[0], segments[1:]
    block = layers[index]
    out = list(layers)
    out[index] = block.with_list(key, _replaced(block.list_at(key), rest, new))
    return tuple(out)


def _with_container(stack: Stack, path: LayerPath, layers: list[Layer]) -> Stack:
    """``stack`` with the list that holds ``path`` replaced by ``layers`` (the blocks on the way rebuilt,
    each keeping its identity)."""
    _container(stack, path)
    return replace(stack, layers=_replaced(stack.layers, path.segments, layers))


def _check_index(stack: Stack, path: LayerPath, allow_end: bool = False) -> None:
    top = len(_container(stack, path)) + (1 if allow_end else 0)
    if not 0 <= path.index < top:
        raise IndexError(f"layer index {path} is outside 0..{top - 1}")


def _check_type(layer: Layer) -> None:
    for _path, inner in layer.walk():
        if inner.type not in CATALOGUE and inner.type not in BLOCKS:
            raise KeyError(f"{inner.type} is not in the layer catalogue")


def _label(stack: Stack, path: LayerPath) -> str:
    try:
        return stack.layer_at(path).label
    except IndexError:
        return "layer"


def _as_path(edit: Edit, *names: str) -> None:
    for name in names:  # frozen dataclasses: an int given for convenience becomes a LayerPath
        object.__setattr__(edit, name, LayerPath.of(getattr(edit, name)))


class Edit:
    """A change to a stack. ``apply`` returns (new stack, the edit that undoes it)."""

    def apply(self, stack: Stack) -> tuple[Stack, Edit]:
        raise NotImplementedError

    def describe(self, before: Stack) -> str:
        """The undo text of this edit applied to ``before`` ("Change kernel_size of Conv2d")."""
        return "Edit"

    def merge(self, later: Edit) -> Edit | None:
        """One edit equivalent to self followed by ``later``, or None if they don't merge."""
        return None


@dataclass(frozen=True)
class InsertLayer(Edit):
    """Put ``layer`` at ``path`` (an index will do): the layers from there on move one down."""

    path: LayerPath
    layer: Layer

    def __post_init__(self) -> None:
        _as_path(self, "path")

    def describe(self, before: Stack) -> str:
        return f"Add {self.layer.label}"

    def apply(self, stack):
        _check_index(stack, self.path, allow_end=True)
        _check_type(self.layer)
        layers = list(_container(stack, self.path))
        layers.insert(self.path.index, self.layer)
        return _with_container(stack, self.path, layers), RemoveLayer(self.path)


@dataclass(frozen=True)
class RemoveLayer(Edit):
    """Take out the layer at ``path``."""

    path: LayerPath

    def __post_init__(self) -> None:
        _as_path(self, "path")

    def describe(self, before: Stack) -> str:
        return f"Delete {_label(before, self.path)}"

    def apply(self, stack):
        _check_index(stack, self.path)
        layers = list(_container(stack, self.path))
        removed = layers.pop(self.path.index)
        return _with_container(stack, self.path, layers), InsertLayer(self.path, removed)


@dataclass(frozen=True)
class MoveLayer(Edit):
    """Take the layer at ``source`` out and put it so that it ends at ``dest`` (a path in the result)."""

    source: LayerPath
    dest: LayerPath

    def __post_init__(self) -> None:
        _as_path(self, "source", "dest")

    def describe(self, before: Stack) -> str:
        return f"Move {_label(before, self.source)}"

    def apply(self, stack):
        _check_index(stack, self.source)
        layers = list(_container(stack, self.source))
        moved = layers.pop(self.source.index)
        without = _with_container(stack, self.source, layers)
        _check_index(without, self.dest, allow_end=True)
        layers = list(_container(without, self.dest))
        layers.insert(self.dest.index, moved)
        return _with_container(without, self.dest, layers), MoveLayer(self.dest, self.source)


@dataclass(frozen=True)
class ReplaceLayer(Edit):
    """Put ``layer`` at ``path``. ``key`` names the keyword changed (or "name") so that edits of one field merge."""

    path: LayerPath
    layer: Layer
    key: str | None = None

    def __post_init__(self) -> None:
        _as_path(self, "path")

    def describe(self, before: Stack) -> str:
        label = _label(before, self.path)
        if self.key == "name":
            return f"Rename {label}"
        return f"Change {self.key} of {label}" if self.key else f"Change {label}"

    def apply(self, stack):
        _check_index(stack, self.path)
        _check_type(self.layer)
        layers = list(_container(stack, self.path))
        old = layers[self.path.index]
        # The replacement takes over the identity of the layer it replaces (its weights follow by shape).
        layers[self.path.index] = self.layer if self.layer.uid == old.uid else replace(self.layer, uid=old.uid)
        return _with_container(stack, self.path, layers), ReplaceLayer(self.path, old, self.key)

    def merge(self, later):
        if isinstance(later, ReplaceLayer) and self.key and later.path == self.path and later.key == self.key:
            return later
        return None


def set_param(stack: Stack, path: PathLike, key: str, value: Any) -> ReplaceLayer:
    """The edit that sets one keyword of one layer.

    A value that means torch's default (:data:`~cnnviz.core.model.layers.DEFAULT`, the
    default itself, None for an inferred count: :meth:`Param.is_default`) leaves the
    keyword out of the layer, and so out of the file.
    """
    path = LayerPath.of(path)
    layer = stack.layer_at(path)
    spec = CATALOGUE.get(layer.type)
    p = spec.param_index.get(key) if spec is not None else None
    new = layer.without_param(key) if p is not None and p.is_default(value) else layer.with_param(key, value)
    return ReplaceLayer(path, new, key=key)


@dataclass(frozen=True)
class SetInput(Edit):
    input: InputSpec

    def describe(self, before: Stack) -> str:
        return "Change input"

    def apply(self, stack):
        return replace(stack, input=self.input), SetInput(stack.input)

    def merge(self, later):
        return later if isinstance(later, SetInput) else None


@dataclass(frozen=True)
class SetLoss(Edit):
    loss: Loss

    def describe(self, before: Stack) -> str:
        return "Change loss" if self.loss.type == before.loss.type else f"Use {self.loss.type}"

    def apply(self, stack):
        if self.loss.type not in LOSSES:
            raise KeyError(f"{self.loss.type} is not a supported loss")
        return replace(stack, loss=self.loss), SetLoss(stack.loss)


def set_loss_param(loss: Loss, key: str, value: Any) -> SetLoss:
    """The edit that sets one keyword of the loss; torch's default leaves it out (as :func:`set_param`)."""
    p = LOSSES[loss.type].param(key)
    params = dict(loss.params)
    if p.is_default(value):
        params.pop(key, None)
    else:
        params[key] = value
    return SetLoss(Loss(loss.type, params))


@dataclass(frozen=True)
class SetStack(Edit):
    """Replace the whole stack (name, training settings, or a pasted stack)."""

    stack: Stack
    label: str = "Change stack"

    def describe(self, before: Stack) -> str:
        return self.label

    def apply(self, stack):
        return self.stack, SetStack(stack, self.label)


@dataclass(frozen=True)
class Batch(Edit):
    """Several edits applied as one (undone in reverse order)."""

    edits: tuple[Edit, ...]
    label: str = "Edit"

    def describe(self, before: Stack) -> str:
        return self.label

    def apply(self, stack):
        inverses = []
        for edit in self.edits:
            stack, inverse = edit.apply(stack)
            inverses.append(inverse)
        return stack, Batch(tuple(reversed(inverses)), self.label)


# ------------------------------------------------------------------ document
@dataclass(frozen=True, eq=False)
class StackChange:
    """What a subscriber hears after a change: the stacks before and after, the edit between, the report.

    ``edit`` made ``new`` from ``old`` (for an undo, the inverse that was applied);
    None when the stack was replaced outside the history (open, new). ``report``
    is the document's analysis of ``new``, computed once for all subscribers
    (None for a document made without ``analyse``).
    """

    old: Stack
    new: Stack
    edit: Edit | None
    report: Any = None


Listener = Callable[[StackChange], None]


def config_with(config: TrainingConfig | None, **overrides: Any) -> TrainingConfig:
    """``config`` (or the defaults) with every override that is not None applied."""
    base = config or TrainingConfig()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


class StackDocument:
    """The stack being edited, with subscribers told of every change.

    Undo history lives with the caller (``QUndoStack`` in the app, a list in
    tests): :meth:`apply` returns the inverse edit to keep. ``analyse`` (the app
    passes :func:`cnnviz.core.shapes.infer`, which this package may not import)
    is run once per change, and its result goes to every subscriber and
    :attr:`report`.
    """

    def __init__(self, stack: Stack | None = None, analyse: Callable[[Stack], Any] | None = None) -> None:
        self._stack = stack if stack is not None else Stack()
        self._listeners: list[Listener] = []
        self._analyse = analyse
        self._analysed: tuple[Stack, Any] | None = None

    @property
    def stack(self) -> Stack:
        return self._stack

    @property
    def report(self) -> Any:
        """``analyse`` of the current stack, computed once per stack; None without ``analyse``."""
        if self._analyse is None:
            return None
        if self._analysed is None or self._analysed[0] is not self._stack:
            self._analysed = (self._stack, self._analyse(self._stack))
        return self._analysed[1]

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` (a :class:`StackChange`) after every change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def apply(self, edit: Edit) -> Edit | None:
        """Apply ``edit`` and tell the subscribers; the edit that undoes it, or None if it changed nothing
        (then nobody is told)."""
        new, inverse = edit.apply(self._stack)
        if new == self._stack:
            return None
        self._set(new, edit)
        return inverse

    def reset(self, stack: Stack) -> None:
        """Replace the stack outside the undo history (open, new)."""
        self._set(stack, None)

    def _set(self, new: Stack, edit: Edit | None) -> None:
        old = self._stack
        if old is new:
            return
        self._stack = new
        change = StackChange(old, new, edit, self.report)
        for listener in list(self._listeners):
            listener(change)
