"""Running a stack with torch, and nothing of Qt: a GPU machine without a display imports all of it.

- :mod:`.build`: stack → ``nn.Sequential``; :mod:`.devices`: ``--device`` strings, memory.
- :mod:`.engine`: the :class:`~.engine.Session` (the training step, evaluation, probes, faults).
- :mod:`.training`: the loop (:class:`~.training.Trainer`), its :class:`~.training.Control` and the
  :class:`~.training.ProbeRequest` (which sample to probe).
- :mod:`.live`: what a live window runs around the loop: :class:`~.live.LiveProbe` (a probe as a
  :class:`~.live.Snapshot`), :class:`~.live.Latest`, the optimizer warm-up; :mod:`.kept`: the trained
  weights that outlive a rebuild (:class:`~.kept.KeptWeights`, by layer identity and shape).
- :mod:`.probes`, :mod:`.identities`: what the views draw, and dL/dz = softmax(z) − onehot(y).
- :mod:`.weights`: safetensors beside a stack; :mod:`.memory`: the estimate that refuses a run too big.
- :mod:`.faults`: every error a person can cause (:class:`~.faults.EngineError`).
- :mod:`.device_data`, :mod:`.hygiene`: data on the device, model modes and random state.

Importing this package imports no torch (so ``cnnviz train`` can refuse a bomb first); the
names below load their module on first use.
"""
from __future__ import annotations

import importlib

_API = {
    "Session": "engine", "Evaluation": "engine", "check_memory": "engine",
    "Trainer": "training", "Control": "training", "Progress": "training", "ProbeRequest": "training",
    "State": "training", "LiveProbe": "live", "Snapshot": "live", "Latest": "live", "KeptWeights": "kept",
    "EngineError": "faults", "DeviceError": "faults", "StackRefused": "faults", "DataUnavailable": "faults",
    "NonFiniteError": "faults", "OutOfMemory": "faults", "NotEnoughMemory": "faults", "LayerFailed": "faults",
    "WeightsError": "weights", "build_model": "build", "build_loss": "build",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
