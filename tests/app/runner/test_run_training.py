"""Training in the live window: curves grow, Pause stops within a step, Step, Reset, faults become messages."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.app.run_helpers import spin, torch_forward, wait_probe, wait_state


def train_points(runner) -> int:
    return len(runner.hub.curves.train_data()["step"])


def test_training_grows_the_loss_curve_and_pause_stops_within_a_step(live, qtbot):
    window = live()
    runner = window.runner
    runner.toolbar.train_action.trigger()
    wait_state(qtbot, runner, "running")
    assert runner.toolbar.pause_action.isEnabled() and not runner.toolbar.train_action.isEnabled()
    assert runner.toolbar.pause_action.shortcut().toString() == "F6"  # F6 toggles train / pause
    qtbot.waitUntil(lambda: train_points(runner) >= 5 and runner.last_progress.step >= 60, timeout=20_000)
    assert "steps/s" in window.status_fields["run"].text()
    losses = runner.hub.curves.train_data()["loss"]
    assert losses[-2:].mean() < losses[:2].mean()  # digits learns within a few dozen steps

    t0 = time.perf_counter()
    runner.toolbar.pause_action.trigger()
    wait_state(qtbot, runner, "paused", timeout=5000)
    assert time.perf_counter() - t0 < 3.0  # a step is milliseconds; a loaded machine may delay the signal
    spin(50)
    stopped_at = runner.last_progress.step
    spin(300)
    assert runner.last_progress.step == stopped_at  # nothing trains while paused
    runner.forward()
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == stopped_at)
    assert snap.probe.step == stopped_at


def test_step_runs_one_step_and_refreshes_the_probe(live, qtbot):
    window = live()
    runner = window.runner
    before = runner.hub.snapshot.probe.activations[0].copy()
    runner.toolbar.step_action.trigger()
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == 1)
    assert not np.array_equal(snap.probe.activations[0], before)
    assert runner.state == "paused" and runner.last_progress.step == 1
    assert "step 1" in window.status_fields["run"].text()


def test_reset_goes_back_to_the_seeds_weights_and_clears_the_curves(live, qtbot, dialogs):
    window = live()
    runner = window.runner
    runner.worker.step(20)
    qtbot.waitUntil(lambda: runner.last_progress is not None and runner.last_progress.step == 20, timeout=20_000)
    assert train_points(runner) > 0
    dialogs.yes_no_answers.append(True)  # the trained weights are not saved: reset them anyway
    runner.toolbar.reset_action.trigger()
    assert dialogs.questions[-1][0] == "Trained weights not saved"
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == 0)
    assert train_points(runner) == 0 and runner.hub.curves.is_empty
    np.testing.assert_allclose(snap.probe.activations[0], torch_forward(window.document.stack, 0, 0),
                               rtol=1e-5, atol=1e-5)


def test_an_edit_while_training_pauses_and_keeps_the_trained_layers(live, qtbot):
    from cnnviz.core.model.stack import set_param

    window = live()
    runner = window.runner
    runner.train()
    qtbot.waitUntil(lambda: runner.last_progress is not None and runner.last_progress.step >= 30, timeout=20_000)
    window.history.push_edit(set_param(window.document.stack, 6, "p", 0.5))  # the Dropout
    snap = wait_probe(qtbot, runner)
    assert runner.state == "paused"
    message = window.statusBar().currentMessage()
    assert message.startswith("Training paused") and "Kept the trained weights of 4 of 4 layers" in message
    assert snap.probe.step >= 30  # the step count goes on with the kept weights
    assert train_points(runner) > 0


def test_closing_while_training_asks_and_stops_the_worker(live, qtbot, dialogs):
    window = live()
    runner = window.runner
    runner.train()
    wait_state(qtbot, runner, "running")
    dialogs.yes_no_answers.append(False)
    assert not window.close()
    assert dialogs.questions[-1] == ("Training is running", "Training is running: stop it?")
    assert window.isVisible() and runner.worker._thread.isRunning()
    dialogs.yes_no_answers.extend([True, True])  # stop training; discard the trained weights
    window.files._forced_dirty = False
    window.history.setClean()
    assert window.close()
    assert dialogs.questions[-1][0] == "Trained weights not saved"
    assert not runner.worker._thread.isRunning()


def test_a_huge_learning_rate_stops_with_the_layer_named(live, qtbot, dialogs):
    window = live(lr=1e12)
    runner = window.runner
    dialogs.yes_no_answers.append(True)  # lower the learning rate and reset
    runner.train()
    qtbot.waitUntil(lambda: bool(dialogs.questions), timeout=20_000)
    title, message = dialogs.questions[-1]
    assert title == "Training stopped: NaN or Inf"
    assert "layer" in message and "lower the learning rate" in message
    assert runner.state == "paused"
    assert window.document.stack.training.lr == pytest.approx(1e11)
    wait_probe(qtbot, runner, lambda s: s.probe.step == 0)


def test_out_of_memory_suggests_a_smaller_batch_and_that_batch_trains(live, qtbot, dialogs, monkeypatch):
    from cnnviz.core.run import engine
    from cnnviz.core.run.faults import OutOfMemory

    real_step = engine.Session.step

    def step(self):
        if self.batch_size > 32:
            raise OutOfMemory(f"out of memory on cpu while training at batch {self.batch_size}: try a batch of 32",
                              device="cpu", batch_size=self.batch_size, suggested_batch=32)
        return real_step(self)

    monkeypatch.setattr(engine.Session, "step", step)
    window = live()
    runner = window.runner
    dialogs.yes_no_answers.append(True)
    runner.train()
    qtbot.waitUntil(lambda: bool(dialogs.questions), timeout=20_000)
    assert dialogs.questions[-1][0] == "Out of memory" and "try a batch of 32" in dialogs.questions[-1][1]
    assert window.document.stack.training.batch_size == 32
    runner.train()
    qtbot.waitUntil(lambda: runner.last_progress is not None and runner.last_progress.step >= 10, timeout=20_000)
    runner.pause()


def test_an_unexpected_error_in_the_worker_reaches_the_error_dialog(live, qtbot, dialogs, monkeypatch):
    from cnnviz.core.run import probes

    window = live()
    runner = window.runner

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a probe")

    monkeypatch.setattr(probes, "take", broken)
    runner.forward()
    qtbot.waitUntil(lambda: bool(dialogs.exceptions), timeout=10_000)
    assert "RuntimeError: a bug in a probe" in dialogs.exceptions[-1][0]
    monkeypatch.undo()
    runner.toolbar.next_button.click()  # the worker goes on serving
    wait_probe(qtbot, runner, lambda s: s.probe.index == 1)


def test_the_keyboard_drives_the_run(live, qtbot, dialogs):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = live()
    runner = window.runner
    window.activateWindow()
    window.stack_view.setFocus()
    QTest.keyClick(window.stack_view, Qt.Key.Key_F10)
    wait_probe(qtbot, runner, lambda s: s.probe.step == 1)
    QTest.keyClick(window.stack_view, Qt.Key.Key_F6)
    wait_state(qtbot, runner, "running")
    QTest.keyClick(window.stack_view, Qt.Key.Key_F6)
    wait_state(qtbot, runner, "paused")
    dialogs.yes_no_answers.append(True)  # the trained weights are not saved: reset them anyway
    QTest.keyClick(window.stack_view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    wait_probe(qtbot, runner, lambda s: s.probe.step == 0)
    QTest.keyClick(window.stack_view, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    wait_probe(qtbot, runner, lambda s: s.probe.index == 1)
