"""A file the desktop hands to a running cnnviz (macOS's QFileOpenEvent) opens in the window."""
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from cnnviz.app.window.file_open import FileOpenFilter
from cnnviz.core.model.stack import RemoveLayer


def test_file_open_event_opens_the_file(make_window, examples):
    window = make_window()
    QApplication.instance().installEventFilter(FileOpenFilter(window))
    QApplication.sendEvent(QApplication.instance(), QFileOpenEvent(str(examples["digits"])))
    assert window.document.stack.name == "Digits net"


def test_file_open_event_asks_before_losing_changes(make_window, examples, dialogs):
    window = make_window()
    QApplication.instance().installEventFilter(FileOpenFilter(window))
    window.history.push_edit(RemoveLayer(0))
    before = window.document.stack
    dialogs.unsaved_answers.append("cancel")
    QApplication.sendEvent(QApplication.instance(), QFileOpenEvent(str(examples["digits"])))
    assert window.document.stack == before
    assert dialogs.questions and dialogs.questions[0][0] == "unsaved"
