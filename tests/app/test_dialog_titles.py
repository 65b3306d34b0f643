"""The close-while-training question shows its whole title: the box is as wide as the title bar needs."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from cnnviz.app.runner.messages import RunState
from cnnviz.app.window.dialogs import Dialogs, title_width
from tests.app.run_helpers import digits_stack, wait_probe, wait_state


def _answer_no_when_shown(seen: list) -> None:
    """Once the modal question is up, note its title, text and width, then press No as a person would."""
    def look() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, look)
            return
        box.adjustSize()
        seen.append((box.windowTitle(), box.text(), box.width()))
        box.button(QMessageBox.StandardButton.No).click()

    QTimer.singleShot(20, look)


def test_closing_while_training_asks_with_a_title_that_is_not_cut(make_window, examples, qtbot):
    window = make_window(stack=digits_stack(examples, steps=1_000_000), live=True, dialogs=Dialogs())  # never done
    runner = window.runner
    wait_probe(qtbot, runner)
    runner.train()
    wait_state(qtbot, runner, RunState.RUNNING)
    seen: list = []
    _answer_no_when_shown(seen)
    window.close()  # the guard asks; No keeps the window (and the training) going
    assert seen, "no question was asked before closing while training"
    title, text, width = seen[0]
    assert title == "Training is running" and "stop it" in text
    assert width >= title_width(title)  # the window manager has room for the whole title
    assert window.isVisible()
    runner.pause()
    wait_state(qtbot, runner, RunState.PAUSED)
    runner.weights_unsaved = False  # closing at the end of the test asks nothing more


def test_every_question_box_is_as_wide_as_its_title(window, qtbot):
    dialogs = Dialogs(window)
    seen: list = []
    _answer_no_when_shown(seen)
    long_title = "Trained weights not saved for a network with a long name"
    assert dialogs.ask_yes_no(long_title, "Discard?") is False
    assert seen and seen[0][2] >= title_width(long_title)
