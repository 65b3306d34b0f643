"""Helpers for the tests of the live window (tests/app/runner/test_run_*.py)."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from PySide6.QtWidgets import QApplication

from cnnviz.core.model import files
from cnnviz.core.model.stack import TrainingConfig

TIMEOUT_MS = 20_000


def digits_stack(examples, **training):
    """The digits net, with training settings changed as asked."""
    stack = files.load(examples["digits"])
    return replace(stack, training=replace(stack.training or TrainingConfig(), **training))


def wait_probe(qtbot, runner, condition=lambda snap: True, timeout=TIMEOUT_MS):
    """Wait until the views show a snapshot of the current generation (and target) meeting ``condition``."""
    def ready():
        snap = runner.hub.snapshot
        assert not runner.edit_pending and not runner.hub.stale
        assert snap is not None and snap.generation == runner.generation and snap.target == runner.target
        assert condition(snap)

    qtbot.waitUntil(ready, timeout=timeout)
    runner.hub.flush()
    return runner.hub.snapshot


def show_tab(window, title: str) -> None:
    """Bring the centre tab ``title`` to the front, as a click on it does."""
    tabs = window.center_tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index(title))


def wait_state(qtbot, runner, state, timeout=TIMEOUT_MS):
    qtbot.waitUntil(lambda: runner.state == state, timeout=timeout)


def spin(ms: int) -> None:
    """Let the event loop run for ``ms`` (no condition to wait for)."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.005)


def torch_forward(stack, index: int, upto: int, split: str = "test") -> np.ndarray:
    """Layer ``upto``'s output for held-out sample ``index``, computed here with torch as a person would."""
    import torch

    from cnnviz.core import data
    from cnnviz.core.run import build

    config = stack.training or TrainingConfig()
    ds = data.load(config.data, stack.input.shape, config.seed)
    model = build.build_model(stack, seed=config.seed).eval()
    x = data.normalize(np.asarray(getattr(ds, split).images[index:index + 1]), ds.mean, ds.std)
    with torch.no_grad():
        h = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for i, module in enumerate(model):
            h = module(h)
            if i == upto:
                return h[0].numpy()
    raise IndexError(upto)
