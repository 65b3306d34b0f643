"""A proposed fix is a one-click, undoable action: in the red row's context menu and in the details panel."""
from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack


def _fix_actions(window, layer: int):
    panel = window.stack_panel
    rect = panel.view.visualRect(panel.model.index(panel.model.row_of_layer(layer)))
    menu = panel.view.build_menu(rect.center())
    assert menu is not None
    return menu, [a for a in menu.actions() if a.text().startswith("Apply fix")]


def _undo(window, qtbot):
    """Ctrl+Z, as pressed in the stack list."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
    window.stack_view.setFocus()
    QTest.keyClick(window.stack_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)


def test_context_menu_of_the_red_row_applies_each_fix_and_ctrl_z_undoes_it(make_window, examples, qtbot):
    window = make_window(examples["broken"])
    bad = window.document.report.first_error
    assert bad is not None and bad.index == 6
    before = window.document.stack
    menu, actions = _fix_actions(window, 6)
    assert [a.text() for a in actions] == [f"Apply fix: {fix.label}" for fix in bad.error_fixes]
    assert "Apply fix: input 36×36" in [a.text() for a in actions]
    assert menu.actions()[len(actions)].isSeparator()  # then the list's own actions
    for n in range(len(actions)):
        _, actions = _fix_actions(window, 6)
        actions[n].trigger()
        report = window.document.report
        assert report.layers[6].ok, actions[n].text()
        then = report.first_error  # the Flatten's 32 features now reach the Linear that wants 400
        assert then.index == 9
        _, more = _fix_actions(window, 9)
        assert [a.text() for a in more] == ["Apply fix: in_features=32"]
        more[0].trigger()
        assert window.document.report.first_error is None and window.document.report.loss.error is None
        _undo(window, qtbot)
        assert window.document.report.first_error.error == then.error
        _undo(window, qtbot)
        assert window.document.stack == before
        assert window.document.report.first_error.error == bad.error
    _, working = _fix_actions(window, 0)
    assert working == []  # a layer that works offers nothing


def test_details_panel_offers_the_same_fixes(make_window, examples, qtbot):
    window = make_window(examples["broken"])
    bad = window.document.report.first_error
    window.stack_panel.select_layer(6)
    details = window.details
    html = details.toHtml()
    for fix in bad.error_fixes:
        assert f"Apply: {fix.label}" in html
    assert "cnnviz:fix:6:0" in details.html()
    n = len(bad.error_fixes) - 1  # the input size
    details.anchorClicked.emit(QUrl(f"cnnviz:fix:6:{n}"))
    assert window.document.report.layers[6].ok
    assert window.document.stack.input.shape[1:] == (36, 36)
    assert "Apply:" not in details.toHtml()
    _undo(window, qtbot)
    assert window.document.report.first_error.error == bad.error


def test_softmax_without_dim_offers_dim_1(make_window, qtbot):
    stack = Stack(input=InputSpec(1, 8, 8), loss=Loss("NLLLoss"),
                  layers=(Layer("Flatten", {}), Layer("Linear", {"out_features": 10}), Layer("LogSoftmax", {})))
    window = make_window(stack=stack)
    _, actions = _fix_actions(window, 2)
    assert [a.text() for a in actions] == ["Apply fix: dim=1"]
    window.stack_panel.select_layer(2)
    assert "Apply: dim=1" in window.details.toHtml()
    actions[0].trigger()
    assert window.document.stack.layers[2].params["dim"] == 1
    assert not any(w.startswith("dim is not set") for w in window.document.report.layers[2].warnings)
    _undo(window, qtbot)
    assert "dim" not in window.document.stack.layers[2].params
