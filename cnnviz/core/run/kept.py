"""Trained weights that outlive the session they were trained in, found again by layer identity and shape.

A live explorer rebuilds its session at every edit that changes the network. Without a memory, an edit
that makes the stack invalid for a moment (a kernel too large, fixed a second later) or an undo loses
every trained weight. :class:`KeptWeights` remembers, for each layer identity
(:attr:`~cnnviz.core.model.stack.Layer.uid`) and each shape of its parameters, the last weights trained
for it, on the CPU, within a byte budget (least recently used first out). When a session is built,
every layer whose identity and parameter shapes match an entry gets those weights back (a layer inside a
block too: each layer is kept on its own, found by its path in the model), so:

* a layer unchanged by an edit keeps its weights (as before, but also after an invalid stack in between);
* a layer whose shape an edit changed starts from its seed's weights, and undoing the edit brings the
  trained ones back (its old shape is still remembered);
* two identical Conv2d are two layers: each finds its own weights, also after a Move.

Weights only count for the same data set and seed (another data set's weights describe other classes;
another seed is a request for a fresh start). Imports torch only inside the methods that need it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cnnviz.core.model.paths import LayerPath

DEFAULT_BUDGET = 256 * 1024 * 1024
"""Bytes of remembered weights kept at most (least recently used dropped first)."""


@dataclass(frozen=True)
class Restored:
    """What :meth:`KeptWeights.restore` did to a new session."""

    kept: tuple[str, ...] = ()
    """Paths (``"3"``, ``"4.body.0"``) of the layers with parameters that got trained weights back."""
    fresh: tuple[tuple[str, str], ...] = ()
    """Layers with parameters that start from the seed's weights although they were trained: (path, why)."""
    with_params: int = 0
    step: int = 0
    """The step count the session takes on (that of the restored weights; 0 when nothing was restored)."""

    def sentence(self, stack=None) -> str:
        """What was kept, in words ("" when nothing was); ``stack`` names the layers that start again."""
        if not self.kept:
            return ""
        text = f"kept the trained weights of {len(self.kept)} of {self.with_params} layers with parameters"
        if self.fresh:
            names = ", ".join(f"{stack.layer_at(p).label if stack is not None else 'layer'} "
                              f"({LayerPath.of(p).words()})" for p, _ in self.fresh[:3])
            more = f" and {len(self.fresh) - 3} more" if len(self.fresh) > 3 else ""
            one = len(self.fresh) == 1
            text += f"; {names}{more} start{'s' if one else ''} again from the seed's weights " \
                    f"({'its' if one else 'their'} {self.fresh[0][1]}): undo brings the trained ones back"
        return text


@dataclass
class _Entry:
    state: dict[str, Any]
    nbytes: int
    step: int


@dataclass
class KeptWeights:
    """The last trained weights per (layer identity, parameter shapes), for one data set and seed."""

    budget: int = DEFAULT_BUDGET
    _entries: "OrderedDict[tuple, _Entry]" = field(default_factory=OrderedDict)
    _context: tuple | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _signature(module) -> tuple:
        return tuple((name, tuple(t.shape), str(t.dtype)) for name, t in module.state_dict().items())

    @staticmethod
    def context_of(session) -> tuple:
        return (session.data_name, session.config.seed)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    @property
    def step(self) -> int:
        """The highest step of any weights remembered (0: nothing trained is remembered)."""
        with self._lock:
            return max((e.step for e in self._entries.values()), default=0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def forget(self) -> None:
        """Drop everything (Reset, another stack opened)."""
        with self._lock:
            self._entries.clear()
            self._context = None

    def remember(self, session) -> int:
        """Copy the trained weights of ``session`` (if it has trained) to the CPU; returns the layers kept."""
        if session is None or session.step_count <= 0:
            return 0
        import torch

        from cnnviz.core.run.build import leaves

        context = self.context_of(session)
        kept = 0
        with self._lock:
            if context != self._context:
                self._entries.clear()
                self._context = context
            for _path, layer, module in leaves(session.stack, session.model):
                state = module.state_dict()
                if not any(True for _ in module.parameters()):
                    continue
                key = (layer.uid, self._signature(module))
                with torch.no_grad():
                    copy = {n: t.detach().to("cpu", copy=True) for n, t in state.items()}
                nbytes = sum(t.numel() * t.element_size() for t in copy.values())
                if nbytes > self.budget:
                    self._entries.pop(key, None)
                    continue
                self._entries[key] = _Entry(copy, nbytes, int(session.step_count))
                self._entries.move_to_end(key)
                kept += 1
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.budget and self._entries:
                _key, dropped = self._entries.popitem(last=False)
                total -= dropped.nbytes
        return kept

    def restore(self, session) -> Restored:
        """Load the remembered weights that fit into the layers of ``session``; sets its step count."""
        import torch

        from cnnviz.core.run.build import leaves

        kept, fresh, steps = [], [], []
        with_params = 0
        with self._lock:
            same = self._context == self.context_of(session)
            known = {uid for uid, _sig in self._entries} if same else set()
            for path, layer, module in leaves(session.stack, session.model):
                i = str(path)
                if not any(True for _ in module.parameters()):
                    continue
                with_params += 1
                entry = self._entries.get((layer.uid, self._signature(module))) if same else None
                if entry is None:
                    if layer.uid in known:
                        fresh.append((i, "parameters changed shape"))
                    continue
                with torch.no_grad():
                    module.load_state_dict({n: t.to(session.device) for n, t in entry.state.items()})
                self._entries.move_to_end((layer.uid, self._signature(module)))
                kept.append(i)
                steps.append(entry.step)
        step = max(steps, default=0)
        if kept:
            session.step_count = step
        return Restored(tuple(kept), tuple(fresh), with_params, step)
