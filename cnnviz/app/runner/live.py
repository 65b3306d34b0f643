"""The worker's session as the trainer sees it: probes that also serve the GUI's queued jobs and the
weights the filter view needs; trained weights carried across rebuilds; the optimizer warm-up."""
from __future__ import annotations

import difflib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz.app.runner.messages import Snapshot, Target

if TYPE_CHECKING:
    from cnnviz.app.runner.worker import RunWorker

log = logging.getLogger("cnnviz.runner")

SMALL_WEIGHTS = 65_536
"""Weights of at most this many values travel with every probe (all of LeNet-5's); larger ones only for
the selected layer."""


class LiveSession:
    """The session as the trainer sees it, with ``probe`` answering for the window.

    Everything but :meth:`probe` is the core session's. A probe here follows
    the worker's current :class:`Target` (a data set sample or the person's
    own image), runs the jobs waiting for a step boundary, and returns a
    :class:`Snapshot` with the weights the filter view may need. A layer that
    fails while probing (BatchNorm in train mode on one sample) becomes a
    message in the snapshot, not the end of training.
    """

    def __init__(self, session, worker: RunWorker, generation: int = 0) -> None:
        self.session = session
        self.worker = worker
        self.generation = generation
        self._image_key: tuple | None = None
        self._image = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def probe(self, index: int = 0, split: str = "test", mode: str = "eval", with_identities: bool = True) -> Snapshot:
        from cnnviz.core.run.faults import EngineError, OutOfMemory

        target, selected, jobs = self.worker._probe_state()
        for fn, future in jobs:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(self.session))
                except BaseException as exc:  # noqa: BLE001 - the caller's thread decides
                    future.set_exception(exc)
        try:
            if target.image:
                probe = self._probe_image(target)
            else:
                probe = self.session.probe(target.index, target.split, target.mode, True)
        except OutOfMemory:
            raise
        except (EngineError, ValueError) as exc:  # LayerFailed, no such sample, data.DataError for an image
            return Snapshot(self.generation, target, error=str(exc))
        return Snapshot(self.generation, target, probe, self._weights(selected))

    def _weights(self, selected: int) -> dict[int, np.ndarray]:
        out = {}
        for i, module in enumerate(self.session.model):
            w = getattr(module, "weight", None)
            if w is None or not hasattr(w, "dim") or w.dim() not in (2, 4):
                continue
            if i == selected or w.numel() <= SMALL_WEIGHTS:
                out[i] = w.detach().float().cpu().numpy().copy()
        return out

    def _probe_image(self, target: Target):
        """Probe the person's own image; its class is unknown, so the loss is taken for the predicted class."""
        from cnnviz.core import data

        session = self.session
        key = (target.image, id(session))
        if self._image_key != key:
            self._image = data.load_image(target.image, session.stack.input.shape)
            self._image_key = key
        return session.probe_image(self._image, mode=target.mode)


_optimizer_imports_warmed = threading.Event()


def _warm_optimizer_imports() -> None:
    """Make a throwaway optimizer once, after the first maps are shown: the first one imports torch._dynamo
    (about a second), which would otherwise delay the first forward pass or stall the first training steps."""
    import torch

    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    except Exception:  # noqa: BLE001 - only a warm-up: the real optimizer reports its own failures
        log.debug("optimizer warm-up failed", exc_info=True)


def _layer_key(layer) -> str:
    return layer.type + json.dumps(dict(layer.params), sort_keys=True)


def carry_weights(old, new) -> str:
    """Copy the trained parameters of layers unchanged between two sessions' stacks into ``new``.

    Layers are matched in order by type and keywords (so an inserted or removed
    layer does not shift the match), and copied only when every parameter and
    buffer has the same shape. The step count carries over with them, so the
    curves go on. Returns a sentence saying what was kept ("" if nothing).
    """
    import torch

    a = [_layer_key(layer) for layer in old.stack.layers]
    b = [_layer_key(layer) for layer in new.stack.layers]
    with_params = [j for j, m in enumerate(new.model) if any(True for _ in m.parameters())]
    kept = 0
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            source, target = old.model[i].state_dict(), new.model[j].state_dict()
            if not source or source.keys() != target.keys() or any(
                    source[n].shape != target[n].shape for n in source):
                continue
            with torch.no_grad():
                new.model[j].load_state_dict({n: v.to(new.device) for n, v in source.items()})
            kept += j in with_params
    if not kept:
        return ""
    new.step_count = old.step_count
    return f"kept the trained weights of {kept} of {len(with_params)} layers with parameters"
