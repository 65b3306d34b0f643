"""What the GUI thread and the runner's worker thread hand each other: a :class:`Build` and what came of it
(:class:`Built`), and the run's state as the window shows it (:class:`RunState`).

Which sample to probe is a :class:`~cnnviz.core.run.training.ProbeRequest`; a probe comes back as a
:class:`~cnnviz.core.run.live.Snapshot` through a :class:`~cnnviz.core.run.live.Latest`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.model.stack import Stack, TrainingConfig


class RunState(str, enum.Enum):
    """What the Run controls offer: nothing yet (loading), nothing to run (refused), or a session."""

    LOADING = "loading"
    REFUSED = "refused"
    PAUSED = "paused"
    RUNNING = "running"

    def __str__(self) -> str:
        return self.value

    @property
    def has_session(self) -> bool:
        return self in (RunState.PAUSED, RunState.RUNNING)


@dataclass(frozen=True)
class Build:
    """Build a session for ``stack`` (a value: the reference is the snapshot), or drop it when None."""

    generation: int
    stack: Stack | None
    config: TrainingConfig = field(default_factory=TrainingConfig)
    message: str = ""
    """Why there is no stack to run (the core's sentence), when ``stack`` is None."""
    keep_weights: bool = True
    """Remember the trained weights of the session being replaced, and give the new one those that fit
    (by layer identity and shape: :class:`~cnnviz.core.run.kept.KeptWeights`)."""
    weights: str | None = None
    """A weights file (``NAME.safetensors`` beside an opened stack) to load into the new session before its
    first probe; then nothing is carried over."""


@dataclass(frozen=True)
class Built:
    """What the GUI learns when the session of a :class:`Build` is ready (the ``ready`` signal)."""

    generation: int
    stack: Stack
    config: TrainingConfig
    device: Any
    data_name: str
    classes: tuple[str, ...]
    test_labels: np.ndarray
    notes: tuple[str, ...]
    description: str
    kept: str
    """What happened to the weights: "" (from the seed) or which trained layers were kept."""
    step: int
    weights_loaded: str = ""
    """The weights file loaded into this session (its warnings are among ``notes``), or ""."""
    weights_error: str = ""
    """Why the :class:`Build`'s weights file was not loaded (the located WeightsError), or ""."""
    remembered_step: int = 0
    """The highest step of the trained weights the worker keeps for undo (0: none), used or not."""
    test_images: np.ndarray | None = None
    """The held-out images (N, C, H, W) in [0, 1], read-only, not copied: the mistakes gallery's thumbnails."""


def cannot_run_message(report) -> str:
    """Why the stack of ``report`` cannot run, and where to fix it (the first broken layer, else the loss)."""
    bad = report.first_error
    if bad is not None:
        return f"Fix layer {bad.index} ({bad.type}) to run the network:\n{bad.error}"
    return f"Fix the loss ({report.loss.type}) to run the network:\n{report.loss.error}"
