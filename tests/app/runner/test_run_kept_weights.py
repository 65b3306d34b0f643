"""Trained weights are not lost to an edit: an invalid stack in between, undo and redo, a layer whose shape
changed, a duplicate; and what discards them asks first. The window is driven as a person drives it."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.app.qt_helpers import field
from tests.app.run_helpers import digits_stack, wait_probe


@pytest.fixture
def trained(make_window, examples, qtbot):
    """The digits net in the live window, trained 25 steps and paused."""
    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    wait_probe(qtbot, runner)
    runner.worker.step(25)
    wait_probe(qtbot, runner, lambda s: s.probe.step == 25)
    return window


def live_weights(window, qtbot) -> list[np.ndarray]:
    """Every parameter of the session's model, read on the worker thread at a step boundary."""
    future = window.runner.worker.call_at_boundary(
        lambda session: [p.detach().cpu().numpy().copy() for p in session.model.parameters()])
    qtbot.waitUntil(future.done, timeout=20_000)
    return future.result()


def type_into(window, qtbot, name: str, text: str) -> None:
    f = field(window, name)
    spin = f.h if hasattr(f, "h") else f.spin  # a kernel size is an H×W pair, linked while square
    if hasattr(f, "linked"):
        assert f.linked.isChecked()
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, text)
    QTest.keyClick(spin, Qt.Key.Key_Tab)


def pool_row(window) -> int:
    return next(i for i, layer in enumerate(window.document.stack.layers) if layer.type == "MaxPool2d")


def test_an_invalid_stack_then_undo_gives_the_trained_network_back(trained, qtbot):
    """The issue's journey: train, Pause, MaxPool2d kernel_size 40 (the stack breaks), Ctrl+Z."""
    window, runner = trained, trained.runner
    before = live_weights(window, qtbot)
    probs = runner.hub.snapshot.probe.softmax.copy()
    points = len(runner.hub.curves.train_data()["step"])
    assert points > 0 and not np.allclose(probs, 1 / probs.size, atol=1e-3)

    window.activateWindow()
    window.select_layer(pool_row(window))
    type_into(window, qtbot, "kernel_size", "40")
    qtbot.waitUntil(lambda: runner.state == "refused", timeout=20_000)
    assert runner.weights_unsaved  # nothing runs now, but the trained weights are still there to come back

    window.undo_action.trigger()
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == 25)
    assert runner.state == "paused" and snap.probe.step == 25
    for a, b in zip(live_weights(window, qtbot), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(snap.probe.softmax, probs, rtol=1e-5, atol=1e-6)
    assert len(runner.hub.curves.train_data()["step"]) == points  # the curves describe these weights: kept
    assert "Kept the trained weights of 4 of 4 layers" in window.statusBar().currentMessage()

    window.redo_action.trigger()  # broken again, and undone again: the same weights once more
    qtbot.waitUntil(lambda: runner.state == "refused", timeout=20_000)
    window.undo_action.trigger()
    wait_probe(qtbot, runner, lambda s: s.probe.step == 25)
    for a, b in zip(live_weights(window, qtbot), before):
        np.testing.assert_array_equal(a, b)


def test_a_shape_change_says_which_layer_starts_again_and_undo_brings_it_back(trained, qtbot):
    window, runner = trained, trained.runner
    before = live_weights(window, qtbot)
    conv = next(i for i, layer in enumerate(window.document.stack.layers) if layer.type == "Conv2d")
    window.activateWindow()
    window.select_layer(conv)
    out = window.document.stack.layers[conv].params["out_channels"]
    type_into(window, qtbot, "out_channels", str(out + 2))
    wait_probe(qtbot, runner, lambda s: runner.built is not None
               and runner.built.stack.layers[conv].params["out_channels"] == out + 2)
    message = window.statusBar().currentMessage()
    assert "starts again from the seed's weights" in message or "start again from the seed's weights" in message
    assert "undo brings the trained ones back" in message

    window.undo_action.trigger()
    wait_probe(qtbot, runner, lambda s: s.probe.step == 25
               and runner.built.stack.layers[conv].params["out_channels"] == out)
    for a, b in zip(live_weights(window, qtbot), before):
        np.testing.assert_array_equal(a, b)


def test_a_duplicated_layer_is_a_new_layer(trained, qtbot):
    window = trained
    conv = next(i for i, layer in enumerate(window.document.stack.layers) if layer.type == "Conv2d")
    window.select_layer(conv)
    window.stack_panel.duplicate_selected()
    layers = window.document.stack.layers
    assert layers[conv] == layers[conv + 1] and layers[conv].uid != layers[conv + 1].uid


def test_quit_after_the_trained_layers_were_edited_away_still_asks(trained, qtbot, dialogs):
    """The trained weights live on only for undo: quitting would lose them, so the window asks."""
    window, runner = trained, trained.runner
    window.activateWindow()
    window.select_layer(pool_row(window))
    type_into(window, qtbot, "kernel_size", "40")
    qtbot.waitUntil(lambda: runner.state == "refused", timeout=20_000)
    window.files._forced_dirty = False
    window.history.setClean()
    dialogs.yes_no_answers.append(False)
    assert not window.close()
    assert dialogs.questions[-1][0] == "Trained weights not saved"
    dialogs.yes_no_answers.append(True)
    assert window.close()


def test_reset_forgets_what_was_kept(trained, qtbot, dialogs):
    window, runner = trained, trained.runner
    dialogs.yes_no_answers.append(True)
    runner.toolbar.reset_action.trigger()
    wait_probe(qtbot, runner, lambda s: s.probe.step == 0)
    assert len(runner.worker.kept) == 0
    window.select_layer(pool_row(window))
    type_into(window, qtbot, "kernel_size", "40")
    qtbot.waitUntil(lambda: runner.state == "refused", timeout=20_000)
    window.undo_action.trigger()
    snap = wait_probe(qtbot, runner)
    assert snap.probe.step == 0 and not runner.weights_unsaved
