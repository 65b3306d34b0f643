"""Teaching text has room (issue 10 item 8): the description on opening, formulas that wrap, the input row in view."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from cnnviz.app.sidebar.details import HIDE_INTRO
from cnnviz.core.model import files


def _description(path) -> str:
    return files.load(path).description


def _wait_idle(qtbot) -> None:
    qtbot.wait(20)
    QApplication.processEvents()


def _click_hide(details, qtbot) -> None:
    """Click the "Hide" link of the description, as a person would."""
    cursor = details.document().find("Hide")
    assert not cursor.isNull() and cursor.charFormat().anchorHref() == HIDE_INTRO
    cursor.setPosition(cursor.selectionStart() + 1)
    point = details.cursorRect(cursor).center()
    with qtbot.waitSignal(details.anchorClicked, timeout=1000):
        QTest.mouseClick(details.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_opening_a_file_shows_its_description_without_selecting_the_input_row(make_window, examples, qtbot):
    path = examples["ceil-mode-demo"]
    window = make_window(path)  # cnnviz FILE
    assert window.selection() == ("layer", 0)
    text = window.details.toPlainText()
    assert window.details.isVisible() and _description(path) in text and "0 · Conv2d" in text
    _click_hide(window.details, qtbot)
    assert _description(path) not in window.details.toPlainText()
    assert "0 · Conv2d" in window.details.toPlainText()
    window.select_layer(2)
    assert _description(path) not in window.details.toPlainText()  # hidden stays hidden for this stack
    window.stack_panel.select_row(0)  # the input row keeps it
    assert _description(path) in window.details.toPlainText()


def test_the_description_shows_after_open_and_for_the_built_in_example(make_window, examples, dialogs):
    window = make_window()  # LeNet-5 at launch
    assert _description(examples["lenet5"]) in window.details.toPlainText()
    dialogs.open_answers.append(str(examples["dilation-demo"]))
    window.open_action.trigger()  # File > Open…
    assert window.document.stack.name == files.load(examples["dilation-demo"]).name
    assert window.selection() == ("layer", 0)
    assert _description(examples["dilation-demo"]) in window.details.toPlainText()
    window.files.open_example(examples["tiny-vgg"], ask=False)  # File > Examples
    text = window.details.toPlainText()
    assert _description(examples["tiny-vgg"]) in text and _description(examples["dilation-demo"]) not in text


def test_formulas_wrap_inside_the_details_panel_at_1024_by_700(make_window, examples, qtbot):
    window = make_window(examples["ceil-mode-demo"])
    window.resize(1024, 700)
    _wait_idle(qtbot)
    window.select_layer(3)  # ceil_mode with padding: the longest formula of the examples
    _wait_idle(qtbot)
    details = window.details
    assert "inside the right padding" in details.toPlainText()
    viewport = details.viewport().width()
    assert details.document().idealWidth() <= viewport
    assert details.horizontalScrollBar().maximum() == 0
    # the rule and its numbers stay aligned: "= " under the "=" of "H_out ="
    lines = details.toPlainText().splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("H_out = ⌈"))
    assert lines[rule + 1].index("=") == lines[rule].index("=")


def test_the_input_row_is_in_view_at_launch_and_after_open(make_window, examples, dialogs, qtbot):
    window = make_window()
    window.resize(1024, 700)
    view = window.stack_view
    input_row = window.stack_model.index(0)
    qtbot.waitUntil(lambda: view.visualRect(input_row).intersects(view.viewport().rect()), timeout=1000)
    assert view.visualRect(view.currentIndex()).intersects(view.viewport().rect())  # the selected first layer too
    view.verticalScrollBar().setValue(view.verticalScrollBar().maximum())  # scrolled down, then Open
    dialogs.open_answers.append(str(examples["tiny-vgg"]))
    window.open_action.trigger()
    _wait_idle(qtbot)
    assert view.visualRect(window.stack_model.index(0)).intersects(view.viewport().rect())
    assert view.visualRect(view.currentIndex()).intersects(view.viewport().rect())
