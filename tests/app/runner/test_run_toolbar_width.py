"""The Run controls stay on screen at every width from 1024 px, whatever the undo label says."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from cnnviz.core.model.stack import set_param
from tests.app.run_helpers import digits_stack, wait_probe


def _hidden_controls(window) -> list[str]:
    """The Run actions and pickers a person cannot see (pushed into a toolbar's » overflow, or cut short)."""
    QApplication.processEvents()
    toolbar = window.runner.toolbar
    missing = []
    for action in (toolbar.forward_action, toolbar.train_action, toolbar.pause_action, toolbar.step_action,
                   toolbar.reset_action):
        button = window.run_toolbar.widgetForAction(action)
        if button is None or not button.isVisible():
            missing.append(action.text())
    for box in (toolbar.device_box, toolbar.data_box):
        if not box.isVisible() or box.width() < box.minimumSizeHint().width():
            missing.append(box.objectName())
    data = toolbar.data_box
    if data.width() < data.fontMetrics().horizontalAdvance(data.currentText()) + 20:
        missing.append(f"{data.objectName()} shows {data.currentText()!r} cut short")
    return missing


@pytest.mark.parametrize("size", [(1600, 1000), (1280, 800), (1024, 700)])
def test_run_controls_stay_visible_after_an_edit_and_undo(make_window, examples, qtbot, size):
    window = make_window(stack=digits_stack(examples), live=True)
    wait_probe(qtbot, window.runner)
    window.resize(*size)
    stack = window.document.stack
    window.history.push_edit(set_param(stack, 0, "kernel_size", 5))
    window.history.undo()  # the undo action's text is now "Redo Change kernel_size of Conv2d"-long
    window.history.redo()
    window.history.undo()
    qtbot.waitUntil(lambda: window.width() <= size[0], timeout=2000)
    assert _hidden_controls(window) == []
    undo = window.undo_action
    assert "kernel_size" in undo.text() or "kernel_size" in window.redo_action.text()
