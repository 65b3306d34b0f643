"""What a live explorer runs around a training session, without Qt (the window's worker thread uses it; a GPU
machine without a display tests it):

- :class:`LiveProbe`: the probe the :class:`~.training.Trainer` takes for a window, as a :class:`Snapshot`;
- :class:`Latest`: the one-slot mailbox that makes the newest snapshot win between two threads;
- :func:`warm_up_optimizer_once`: the first optimizer's imports, made early on a thread of their own;
- :func:`collector_set_aside`: a large import without the garbage collector's passes over it.

Importing this module imports no torch; the functions that need it import it.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.run.training import ProbeRequest, take_probe

log = logging.getLogger("cnnviz.runner")

SMALL_WEIGHTS = 65_536
"""Weights of at most this many values travel with every probe (all of LeNet-5's); larger ones only for
the selected layer."""


@dataclass(frozen=True)
class Snapshot:
    """A probe for the views and the weights the filter view may need; ``error`` when it failed.

    ``target`` is the :class:`~.training.ProbeRequest` it answers; ``generation`` the build it was taken on.
    """

    generation: int
    target: ProbeRequest
    probe: Any = None
    weights: dict[int | str, np.ndarray] = field(default_factory=dict)
    """By layer: a top-level layer's index, or the path string of a layer inside a block ("3.body.0")."""
    error: str = ""
    biases: dict[int | str, np.ndarray] = field(default_factory=dict)
    """The biases of the layers in ``weights`` that have one (the labs add them to the sum)."""
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """(mean, std) per channel: layer 0 receives (probe.image − mean) / std."""
    health: Any = None
    """The :class:`~cnnviz.core.run.health.Health` of the step the probe follows, when the request asked
    for it (set by the trainer; None for a probe taken while paused)."""


class LiveProbe:
    """Probes ``session`` for a window: ``live(request)`` is the :class:`Snapshot` of what ``request`` asks for.

    Given to the :class:`~.training.Trainer` as its ``probe``, so the request
    comes from the loop's :class:`~.training.Control` and nowhere else. The
    person's own image is read once, not at every probe. The snapshot carries
    every small layer's weights (inside blocks too, keyed by path string) and those of the
    layer ``selected()`` names (an index, or an inner layer's path string), however large. A layer that fails while probing (BatchNorm in train mode on
    one sample), a sample that is not there, or an image that cannot be read
    becomes the snapshot's ``error``, not the end of training; running out of
    memory is raised, as a training step's would be.
    """

    def __init__(self, session, generation: int = 0, selected: Callable[[], int | str | None] = lambda: None) -> None:
        self.session = session
        self.generation = generation
        self.selected = selected
        self._image_path: str | None = None
        self._image = None

    def __call__(self, request: ProbeRequest) -> Snapshot:
        from cnnviz.core.run.faults import EngineError, OutOfMemory

        try:
            probe = take_probe(self.session, request, self._load_image(request))
        except OutOfMemory:
            raise
        except (EngineError, ValueError) as exc:  # LayerFailed, no such sample, data.DataError for an image
            return Snapshot(self.generation, request, error=str(exc))
        weights = self.weights(self.selected())
        return Snapshot(self.generation, request, probe, weights, biases=self.biases(weights),
                        normalization=self.normalization())

    def biases(self, layers) -> dict[int | str, np.ndarray]:
        """CPU copies of the 1-D biases of ``layers`` (the ones whose weights travel: indices, path strings)."""
        out = {}
        modules = dict(self._leaves())
        for key in layers:
            b = getattr(modules.get(key), "bias", None)
            if b is not None and hasattr(b, "dim") and b.dim() == 1:
                out[key] = b.detach().float().cpu().numpy().copy()
        return out

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The (mean, std) the session normalises its inputs with, as the engine reads them."""
        channels = self.session.stack.input.channels
        data = getattr(self.session, "data", None)
        mean = getattr(data, "mean", None) or (0.0,) * channels
        std = getattr(data, "std", None) or (1.0,) * channels
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def weights(self, selected: int | str | None = None) -> dict[int | str, np.ndarray]:
        """CPU copies of the 2-D and 4-D weights, by layer (index, or path string inside a block): the small
        ones and ``selected``'s."""
        out = {}
        for key, module in self._leaves():
            w = getattr(module, "weight", None)
            if w is None or not hasattr(w, "dim") or w.dim() not in (2, 4):
                continue
            if key == selected or w.numel() <= SMALL_WEIGHTS:
                out[key] = w.detach().float().cpu().numpy().copy()
        return out

    def _leaves(self):
        """(key, module) of every layer: a top-level one by index, one inside a block by its path string."""
        from cnnviz.core.run.build import Concat, Residual

        for i, module in enumerate(self.session.model):
            yield i, module
            if isinstance(module, (Residual, Concat)):
                for name, inner in module.named_modules(prefix=str(i)):
                    if next(inner.children(), None) is None:   # a layer, not a block nor one of its lists
                        yield name, inner

    def _load_image(self, request: ProbeRequest):
        if not request.image:
            return None
        if self._image_path != request.image:
            from cnnviz.core import data

            self._image = data.load_image(request.image, self.session.stack.input.shape)
            self._image_path = request.image
        return self._image


class Latest:
    """A one-slot mailbox between threads: ``put`` replaces, ``take`` empties; latest wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Any = None
        self._full = False

    def put(self, value: Any) -> bool:
        """Store ``value``; True if the box was empty (the reader must be told)."""
        with self._lock:
            was_empty = not self._full
            self._value, self._full = value, True
            return was_empty

    def take(self) -> Any:
        """The value put last (None when empty), leaving the box empty."""
        with self._lock:
            value, self._value, self._full = self._value, None, False
            return value


_optimizer_warmed = threading.Event()


def warm_up_optimizer() -> None:
    """Make a throwaway optimizer: the first one imports torch._dynamo (about a second), which would otherwise
    delay the first forward pass or stall the first training steps. A failure is only logged."""
    import torch

    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    except Exception:
        log.debug("optimizer warm-up failed", exc_info=True)


_quiet_lock = threading.Lock()
_quiet_depth = 0


@contextlib.contextmanager
def collector_set_aside():
    """Hold the garbage collector's passes while a large library is imported, then set what was made aside.

    Importing torch, and later its compiler (:func:`warm_up_optimizer`),
    makes a few hundred thousand objects that live as long as the window.
    Python's collector walked all of them again in each full pass along the
    way: 22-166 ms a pass measured here, five passes in the first four
    seconds, each holding the interpreter lock, so that the window stood
    still. Inside this block the collector makes no pass; at its end
    :func:`gc.freeze` moves every object then alive out of the collector's
    way (a splice of two lists, not a walk), and what is made after is
    collected as before. A session is freed when it is dropped, frozen or
    not: it holds no reference cycles, and
    :meth:`~cnnviz.core.run.engine.Session.close` lets go of its model and
    data itself. Nested and concurrent blocks are counted: the collector
    passes again when the last one ends."""
    global _quiet_depth
    with _quiet_lock:
        _quiet_depth += 1
        gc.disable()
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                gc.freeze()
                gc.enable()


def import_set_aside(name: str):
    """The module ``name``, a large library, imported inside :func:`collector_set_aside` the first time (the
    window's worker imports torch so); when already imported, the module, the collector untouched: a later
    freeze would also set aside the garbage of whatever was closed meanwhile, never to be collected."""
    if name in sys.modules:
        return sys.modules[name]
    with collector_set_aside():
        return importlib.import_module(name)


def _warm_up_set_aside() -> None:
    with collector_set_aside():
        warm_up_optimizer()


def warm_up_optimizer_once() -> threading.Thread | None:
    """Start :func:`warm_up_optimizer` on a daemon thread the first time (the worker calls it after the first
    probe is delivered, so the first maps come first), inside :func:`collector_set_aside`; returns that
    thread, and None every later time."""
    if _optimizer_warmed.is_set():
        return None
    _optimizer_warmed.set()
    thread = threading.Thread(target=_warm_up_set_aside, name="cnnviz warm-up", daemon=True)
    thread.start()
    return thread
