"""The softmax view's painted chart and caption: what is painted is where the readings say, hovering reads a
class, and a new reading repaints without laying anything out."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from cnnviz.app.views import SoftmaxView  # noqa: E402
from cnnviz.app.views._common import BLUE, GREEN, GREY, VERMILION  # noqa: E402
from cnnviz.app.views.class_bars import value_ticks  # noqa: E402
from cnnviz.app.views.softmax import LOG_STEPS  # noqa: E402

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
Z = np.array([0.2, -1, 1.5, 0.1, 2.9, -3, 2.2, -2, 0.3, -4], np.float32)
P = (np.exp(Z - Z.max()) / np.exp(Z - Z.max()).sum()).astype(np.float32)


def _view(qtbot, size, **kwargs) -> SoftmaxView:
    view = SoftmaxView(**kwargs)
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    return view


def _colour(image, point) -> str:
    ratio = image.devicePixelRatio()
    return image.pixelColor(round(point.x() * ratio), round(point.y() * ratio)).name()


def test_lying_bars_are_painted_where_they_are_read(qtbot):
    view = _view(qtbot, (300, 260))
    view.set_distribution(P, true_class=6, classes=FASHION)
    view.flush()
    assert view.horizontal
    chart = view.graphics
    image = chart.grab().toImage()
    rects = chart.bar_rects()
    assert rects[4].right() == pytest.approx(chart.point(4, float(P[4])).x(), abs=0.5)
    assert rects[0].top() < rects[1].top(), "class 0 at the top"
    assert _colour(image, rects[4].center()) == BLUE.lower()
    assert _colour(image, rects[2].center()) == GREY.lower()
    cls, at = view.marker_at()
    assert cls == 6 and _colour(image, chart.point(cls, at)) == GREEN.lower()
    assert chart.point(cls, at).x() > rects[6].right(), "the marker is right of the true bar"


def test_log_bars_hang_from_zero_on_a_round_axis(qtbot):
    view = _view(qtbot, (640, 320), orientation="vertical")
    lp = np.log(P)
    view.set_distribution(P, lp, true_class=4)
    view.set_log(True)
    view.flush()
    lo, hi = view.value_range()
    assert lo <= lp.min() * 1.04 and hi > 0
    assert any(np.isclose(-lo, m * 10.0 ** e) for m in LOG_STEPS for e in range(-1, 4)), lo
    chart = view.graphics
    zero = chart.point(0, 0.0).y()
    for i, rect in enumerate(chart.bar_rects()):
        assert rect.top() == pytest.approx(zero, abs=0.5) and rect.bottom() == pytest.approx(
            chart.point(i, float(lp[i])).y(), abs=0.5)
    values = [v for v, _ in chart.value_tick_labels()]
    assert 0.0 in values and all(lo <= v <= hi for v in values)
    image = chart.grab().toImage()
    assert _colour(image, chart.bar_rects()[4].center()) == BLUE.lower()
    assert "✓" in view.caption.text() and GREEN in view.caption.text()


def test_value_ticks_are_round_numbers():
    assert [t for _, t in value_ticks(0.0, 1.12, 6)] == ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert [t for _, t in value_ticks(0.0, 1.12, 3)] == ["0", "0.5", "1.0"]
    assert [t for _, t in value_ticks(-10.0, 1.2, 4)] == ["-10", "-5", "0"]


def test_hover_reads_the_class_under_the_pointer(qtbot):
    view = _view(qtbot, (640, 320), orientation="vertical")
    view.set_distribution(P, true_class=6, classes=FASHION)
    view.flush()
    summary = view.caption.text()
    assert "predicted <b>Coat</b>" in summary and VERMILION in summary   # ✗: the prediction is wrong
    chart = view.graphics
    QTest.mouseMove(chart, chart.bar_rects()[2].center().toPoint())
    assert chart.class_at(QtCore.QPointF(chart.bar_rects()[2].center())) == 2
    assert view.caption.text().startswith("<b>Pullover</b>: p = ") and "log p = " in view.caption.text()
    QtWidgets.QApplication.sendEvent(chart, QtCore.QEvent(QtCore.QEvent.Type.Leave))
    assert view.caption.text() == summary


def test_a_new_reading_repaints_without_a_layout(qtbot):
    view = _view(qtbot, (300, 260))
    view.set_distribution(P, true_class=6, classes=FASHION)
    view.flush()
    QtWidgets.QApplication.processEvents()
    content = view.graphics.parentWidget()
    hints = (view.graphics.sizeHint(), view.caption.sizeHint(), content.sizeHint())
    requests = []

    class Watch(QtCore.QObject):
        def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QtCore.QEvent.Type.LayoutRequest:
                requests.append(obj)
            return False

    watch = Watch()
    for widget in (content, view):
        widget.installEventFilter(watch)
    rng = np.random.default_rng(0)
    captions = set()
    for _ in range(5):
        z = rng.normal(size=10)
        view.set_distribution((np.exp(z) / np.exp(z).sum()).astype(np.float32), true_class=6, classes=FASHION)
        view.flush()
        QtWidgets.QApplication.processEvents()
        captions.add(view.caption.text())
    assert len(captions) == 5
    assert requests == []
    assert (view.graphics.sizeHint(), view.caption.sizeHint(), content.sizeHint()) == hints


def test_a_caption_too_long_is_elided_and_whole_in_its_tooltip(qtbot):
    view = _view(qtbot, (200, 260))
    names = [f"a very long class name number {i}" for i in range(3)]
    view.set_distribution(np.array([0.7, 0.2, 0.1], np.float32), true_class=1, classes=names)
    view.flush()
    caption = view.caption
    caption.grab()
    assert caption.is_elided()
    at = QtCore.QPoint(5, 5)
    caption.event(QtGui.QHelpEvent(QtCore.QEvent.Type.ToolTip, at, caption.mapToGlobal(at)))
    assert "true a very long class name number 1 (20.0 %)" in QtWidgets.QToolTip.text()


def test_a_reading_too_wide_for_one_line_breaks_at_its_separator_and_keeps_its_height(qtbot):
    """In a narrow dock the predicted and the true class go on two lines (nothing elided); the height is
    decided by the width and the names, so new probes, and the pointer over a bar, leave it as it is."""
    view = SoftmaxView(orientation="horizontal")
    qtbot.addWidget(view)
    view.resize(230, 300)
    view.show()
    qtbot.waitExposed(view)
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    p = np.full(10, 0.02, np.float32)
    p[9] = 0.82
    view.set_distribution(p, true_class=9, classes=classes)
    view.flush()
    QtWidgets.QApplication.processEvents()
    caption = view.caption
    assert caption.lines == 2 and caption.height() >= 2 * caption.fontMetrics().lineSpacing()
    caption.grab()   # paints
    assert not caption.is_elided()
    height = caption.height()
    for top in (0.31, 0.999, 0.5):
        q = np.full(10, (1 - top) / 9, np.float32)
        q[9] = top
        view.set_distribution(q, true_class=9, classes=classes)
        view.flush()
        QtWidgets.QApplication.processEvents()
        assert caption.lines == 2 and caption.height() == height
    view.resize(900, 300)   # wide: one line
    QtWidgets.QApplication.processEvents()
    assert caption.lines == 1
