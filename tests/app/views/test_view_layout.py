"""A view's readings change with every probe: that must not lay out the window around the view again,
while a real change of the view's size hints still reaches the layouts above it."""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from cnnviz.app.views.panel import ViewPanel
from cnnviz.app.views.softmax import SoftmaxView


class LayoutRequests(QtCore.QObject):
    """Counts the layout requests each watched widget receives."""

    def __init__(self, *widgets: QtWidgets.QWidget) -> None:
        super().__init__()
        self.counts = {w: 0 for w in widgets}
        for w in widgets:
            w.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QtCore.QEvent.Type.LayoutRequest and obj in self.counts:
            self.counts[obj] += 1
        return False


def docked(qtbot, view: QtWidgets.QWidget) -> tuple[QtWidgets.QMainWindow, QtWidgets.QDockWidget]:
    window = QtWidgets.QMainWindow()
    window.setCentralWidget(QtWidgets.QLabel("centre"))
    dock = QtWidgets.QDockWidget("view", window)
    dock.setWidget(view)
    window.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    qtbot.waitExposed(window)
    return window, dock


def settle(qtbot) -> None:
    for _ in range(3):
        QtWidgets.QApplication.processEvents()
        qtbot.wait(5)


class LabelView(ViewPanel):
    """A view whose reading is a QLabel, as most views' captions are: a new text lays out its content."""

    def __init__(self) -> None:
        super().__init__()
        content = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(content)
        self.plot = QtWidgets.QFrame(content)
        self.plot.setMinimumSize(200, 150)
        layout.addWidget(self.plot, 1)
        self.caption = QtWidgets.QLabel(content)
        layout.addWidget(self.caption)
        self._set_content(content)
        self._show_content()

    def show_reading(self, value: float) -> None:
        self.caption.setText(f"predicted <b>7</b> ({value:.1f} %)")


def test_new_readings_do_not_lay_out_the_dock_or_the_window(qtbot):
    view = LabelView()
    window, dock = docked(qtbot, view)
    view.show_reading(10.0)
    settle(qtbot)
    requests = LayoutRequests(view, dock, window)
    for k in range(8):
        view.show_reading(20.0 + 7.3 * k)
        settle(qtbot)
    assert requests.counts[view] > 0            # the view's own content was laid out again
    assert requests.counts[dock] == 0 and requests.counts[window] == 0


def test_the_softmax_views_readings_lay_out_nothing(qtbot):
    """Its bars and caption are painted: a new probe repaints them and asks no layout of anything."""
    view = SoftmaxView()
    window, dock = docked(qtbot, view)
    classes = [f"class {i}" for i in range(10)]
    rng = np.random.default_rng(0)

    def show(seed_probs):
        view.set_distribution(seed_probs, true_class=3, classes=classes)
        view.flush()

    show(np.full(10, 0.1, np.float32))
    settle(qtbot)
    requests = LayoutRequests(view, view.graphics, view.caption, dock, window)
    captions = set()
    for _ in range(8):
        z = rng.normal(size=10)
        show((np.exp(z) / np.exp(z).sum()).astype(np.float32))
        captions.add(view.caption.text())
        settle(qtbot)
    assert len(captions) == 8                    # the reading did change every time
    assert not any(requests.counts.values()), requests.counts


def test_a_real_change_of_the_content_size_reaches_the_dock(qtbot):
    view = SoftmaxView()
    window, dock = docked(qtbot, view)
    view.set_distribution(np.full(4, 0.25, np.float32), true_class=0)
    view.flush()
    settle(qtbot)
    before = dock.minimumSizeHint().width()
    view.graphics.setMinimumWidth(before + 200)   # the content needs more room now
    settle(qtbot)
    assert view.minimumSizeHint().width() >= before + 200
    assert dock.minimumSizeHint().width() >= before + 200
    assert view.width() >= before + 200            # and the dock gave it


def test_the_hint_and_the_content_swap_in_place(qtbot):
    view = SoftmaxView()
    window, dock = docked(qtbot, view)
    assert view.is_empty and view._hint_page.isVisible()
    view.set_distribution(np.full(4, 0.25, np.float32), true_class=0)
    view.flush()
    settle(qtbot)
    content = view.graphics.parentWidget()
    assert not view.is_empty and content.isVisible() and not view._hint_page.isVisible()
    assert content.geometry() == view.rect()
    dock.resize(dock.width() + 40, dock.height())
    window.resize(window.width() + 60, window.height())
    settle(qtbot)
    assert content.geometry() == view.rect()     # the shown page follows the panel's size
    view.clear("gone")
    assert view.is_empty and view.hint_text == "gone" and view._hint_page.geometry() == view.rect()
