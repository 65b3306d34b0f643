"""The status bar's run field: new text while training lays out nothing unless it needs more room."""
import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QMainWindow

from cnnviz.app.window.steady_label import SteadyLabel


class LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


@pytest.fixture
def bar(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    label = SteadyLabel(window)
    window.statusBar().addPermanentWidget(label)
    label.setText("step 1,000 · 140 steps/s · forward 0.5 ms")
    window.resize(900, 300)
    window.show()
    qtbot.waitExposed(window)
    return window, label


def test_text_as_wide_or_narrower_asks_no_layout_of_the_status_bar_or_the_window(bar, qtbot, qapp):
    window, label = bar
    qapp.processEvents()
    width = label.width()
    spy = LayoutRequests()
    for w in (window, window.statusBar()):
        w.installEventFilter(spy)
    for text in ("step 1,001 · 139 steps/s · forward 0.6 ms", "step 1,002 · 9 steps/s · forward 1.1 ms", "step 2"):
        label.setText(text)
        qapp.processEvents()
    assert spy.count == 0
    assert label.width() == width and label.text() == "step 2"   # never narrower while it shows text


def test_a_wider_text_gets_the_room_it_needs(bar, qapp):
    _window, label = bar
    before = label.width()
    label.setText("step 1,000,000 · 140 steps/s · forward 0.5 ms · paused: the cosine schedule ended")
    qapp.processEvents()
    assert label.width() > before
    assert label.width() >= label.fontMetrics().horizontalAdvance(label.text())


def test_emptied_it_lets_go_of_its_width(bar, qapp):
    _window, label = bar
    label.setText("")
    label.setText("step 0")
    qapp.processEvents()
    assert label.width() < label.fontMetrics().horizontalAdvance("step 1,000 · 140 steps/s · forward 0.5 ms")
