"""What the GUI thread and the runner's worker thread hand each other: immutable requests and results,
and the one-slot mailbox that makes the latest result win."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.model.stack import Stack, TrainingConfig


@dataclass(frozen=True)
class Target:
    """Which sample the views follow: ``index`` of ``split``, or a file of the person's own."""

    index: int = 0
    split: str = "test"
    mode: str = "eval"
    image: str | None = None


@dataclass(frozen=True)
class Build:
    """Build a session for ``stack`` (a value: the reference is the snapshot), or drop it when None."""

    generation: int
    stack: Stack | None
    config: TrainingConfig = field(default_factory=TrainingConfig)
    message: str = ""
    """Why there is no stack to run (the core's sentence), when ``stack`` is None."""
    keep_weights: bool = True
    """Carry trained weights of unchanged layers over from the session being replaced."""


@dataclass(frozen=True)
class SessionInfo:
    """What the GUI learns when a session is ready."""

    generation: int
    stack: Stack
    config: TrainingConfig
    device: Any
    data_name: str
    classes: tuple[str, ...]
    test_labels: np.ndarray
    train_size: int
    notes: tuple[str, ...]
    description: str
    kept: str
    """What happened to the weights: "" (from the seed) or which trained layers were kept."""
    step: int


@dataclass(frozen=True)
class Snapshot:
    """A probe for the views and the weights the filter view may need; ``error`` when it failed."""

    generation: int
    target: Target
    probe: Any = None
    weights: dict[int, np.ndarray] = field(default_factory=dict)
    error: str = ""


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
        with self._lock:
            value, self._value, self._full = self._value, None, False
            return value
