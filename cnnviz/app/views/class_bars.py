"""A bar per class, painted by one QWidget: the softmax view's chart.

A probe while training changes the bars' lengths and little else, ten times a second, and the GUI thread
shares the GIL with the training thread: every Python call made per refresh slows the training down. So
everything that stays from one probe to the next (the axes, their tick labels, the grid, the class names)
is painted once into a pixmap, kept until the size, the pixel ratio, the classes, the value range, the
orientation or the palette change; a refresh only stores the new lengths and asks for a paint, and the
paint draws that pixmap, the bars (one call per brush), the true class's outline and its marker.

The caption under the chart is :class:`~.caption_line.CaptionLine`, painted the same way.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import BLUE, GREEN, GREY, class_ticks, palette_colors

BAR_WIDTH = 0.75          # of one class's room
NAME_WIDTH = 140          # the longest a class name may be beside lying bars (pixels)
TICK = 4                  # the value axis's tick marks (pixels)
MARKER = 13               # the true class's triangle (pixels)
FRAMES_KEPT = 12          # frames (and painted axes) kept: a log axis's few lower ends, the other orientation



def nice_step(span: float, count: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into about ``count`` parts."""
    raw = span / max(count, 1.0)
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


def value_ticks(lo: float, hi: float, count: float) -> list[tuple[float, str]]:
    """Round tick values inside ``lo..hi``, about ``count`` of them, with their labels ("0", "0.2", "-10")."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    step = nice_step(hi - lo, count)
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    first = math.ceil(lo / step - 1e-9)
    out = []
    for n in range(first, first + 1000):
        v = n * step
        if v > hi + 1e-9 * step:
            break
        text = f"{v:.{digits}f}"
        out.append((v, "0" if float(text) == 0 else text))
    return out


@dataclass(eq=False)
class _Frame:
    """Where things go at one size, for one set of classes, value range and orientation: the plot rectangle,
    the two axes' ticks, and the axes painted (made at the first paint that needs them)."""

    plot: QtCore.QRectF
    value_ticks: list[tuple[float, str]]
    class_ticks: list[tuple[int, str]]
    label_room: float    # pixels across a class label
    background: QtGui.QPixmap | None = None
    ratio: float = 0.0   # the device pixel ratio the background was painted for


class ClassBars(QtWidgets.QWidget):
    """Bars of one value per class: the predicted class filled blue, the others grey, the true class
    outlined in green with a green triangle over its bar (right of it, pointing left, when the bars lie down).

    ``set_bars`` stores the lengths and asks for a paint: it never changes the widget's size hint nor asks for
    a layout. ``hovered`` says which class the pointer is over (None when over none, or when it leaves).
    The three colours are the predicted bar's fill, the other bars' fill, and the true class's outline and
    marker.
    """

    hovered = QtCore.Signal(object)   # the class index under the pointer, or None

    def __init__(self, parent: QtWidgets.QWidget | None = None, predicted: str = BLUE, other: str = GREY,
                 true: str = GREEN) -> None:
        super().__init__(parent)
        self._colours = (other, predicted, true)
        self.setMouseTracking(True)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)   # the background pixmap covers all
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self._values = np.zeros(0, np.float32)
        self._classes: tuple[str, ...] = ()
        self._predicted: int | None = None
        self._true: int | None = None
        self._range = (0.0, 1.0)
        self._marker_at = 0.0
        self._horizontal = False
        self._hover: int | None = None
        self._frames: OrderedDict[tuple, _Frame] = OrderedDict()   # with their backgrounds: log ranges come and go
        self._rects: tuple | None = None     # (the frame, grey rects, predicted rect, true rect)
        self._overlay_cache: tuple | None = None
        self._widest: tuple[tuple[str, ...], int, int] = ((), 0, 0)
        self._pens: tuple[QtGui.QPen, QtGui.QPen] = (QtGui.QPen(), QtGui.QPen())   # (zero line, true outline)
        self._brushes = tuple(QtGui.QBrush(QtGui.QColor(c)) for c in self._colours)   # (others, predicted, marker)

    # ------------------------------------------------------------ data
    def set_bars(self, values: np.ndarray, classes: Sequence[str], predicted: int | None, true: int | None,
                 value_range: tuple[float, float], marker_at: float, horizontal: bool) -> None:
        """Draw ``values`` (one per class; NaN and infinities drawn as 0) as bars from 0, the value axis spanning
        ``value_range``, the true class's marker at ``marker_at`` on it; ``horizontal`` lays the bars down."""
        self._values = np.asarray(values, dtype=np.float32)
        self._classes = tuple(classes)
        self._predicted, self._true = predicted, true
        self._range = (float(value_range[0]), float(value_range[1]))
        self._marker_at = float(marker_at)
        self._horizontal = bool(horizontal)
        self._rects = None
        self.update()

    # ------------------------------------------------------------ readings
    @property
    def values(self) -> np.ndarray:
        """The bars' lengths as drawn."""
        return self._values

    @property
    def horizontal(self) -> bool:
        return self._horizontal

    @property
    def value_range(self) -> tuple[float, float]:
        return self._range

    def bar_colours(self) -> list[str]:
        """Each bar's fill colour as drawn, by name ("#0072b2"), class order."""
        other, predicted, _ = (QtGui.QColor(c).name() for c in self._colours)
        return [predicted if i == self._predicted else other for i in range(self._values.size)]

    @property
    def outlined(self) -> int | None:
        """The class whose bar is outlined (the true class), or None."""
        return self._true

    @property
    def marker(self) -> tuple[int, float] | None:
        """(the true class, where its marker sits on the value axis), or None without a true class."""
        return None if self._true is None else (self._true, self._marker_at)

    def tick_labels(self) -> list[tuple[int, str]]:
        """The class axis's labels as (class index, text)."""
        return list(self._frame(self._horizontal).class_ticks)

    def value_tick_labels(self) -> list[tuple[float, str]]:
        """The value axis's labels as (value, text)."""
        return list(self._frame(self._horizontal).value_ticks)

    def point(self, position: float, value: float) -> QtCore.QPointF:
        """Where (class ``position``, ``value``) lies on the widget, in pixels."""
        plot = self._frame(self._horizontal).plot
        return self._point(plot, position, value)

    def bar_rects(self) -> list[QtCore.QRectF]:
        """Each bar's rectangle on the widget, in pixels (class order)."""
        return self._bar_boxes(self._frame(self._horizontal).plot)

    def class_room(self, classes: Sequence[str], value_range: tuple[float, float]) -> float:
        """Pixels of axis per class if these bars stood up, less a 3-pixel gap (for choosing the orientation)."""
        classes = tuple(classes)
        plot = self._frame(False, classes, (float(value_range[0]), float(value_range[1]))).plot
        return max(plot.width(), 1.0) / max(len(classes), 1) - 3

    def name_room(self, classes: Sequence[str]) -> tuple[int, int]:
        """(the widest of these names, the width of "Abcdef") in the widget's font, in pixels: what the names
        need under standing bars. Kept while the names stay."""
        names = tuple(classes)
        if self._widest[0] != names:
            fm = self.fontMetrics()
            self._widest = (names, max((fm.horizontalAdvance(c) for c in names), default=0),
                            fm.horizontalAdvance("Abcdef"))
        return self._widest[1], self._widest[2]

    # ------------------------------------------------------------ geometry
    def _frame(self, horizontal: bool, classes: tuple[str, ...] | None = None,
               value_range: tuple[float, float] | None = None) -> _Frame:
        """The plot rectangle and ticks at the current size for these classes and value range (the ones
        drawn when not given); cached, as a refresh usually changes none of them."""
        classes = self._classes if classes is None else classes
        value_range = self._range if value_range is None else value_range
        key = (self.width(), self.height(), horizontal, value_range, classes)
        frame = self._frames.get(key)
        if frame is None:
            if len(self._frames) >= FRAMES_KEPT:
                self._frames.popitem(last=False)   # the one used longest ago
            frame = self._frames[key] = self._make_frame(horizontal, classes, value_range)
        else:
            self._frames.move_to_end(key)
        return frame

    def _make_frame(self, horizontal: bool, classes: tuple[str, ...], value_range: tuple[float, float]) -> _Frame:
        fm = self.fontMetrics()
        w, h = float(self.width()), float(self.height())
        lo, hi = value_range
        k, line = len(classes), fm.height()
        if horizontal:
            rows = max(h - 40, 1) / max(line, 1)
            every = max(1, math.ceil(k / max(rows, 1)))
            elide = QtCore.Qt.TextElideMode.ElideRight
            names = [(i, fm.elidedText(classes[i], elide, NAME_WIDTH)) for i in range(0, k, every)]
            left = max((fm.horizontalAdvance(t) for _, t in names), default=0) + TICK + 6
            bottom = line + TICK + 4
            widest = max((fm.horizontalAdvance(t) for _, t in value_ticks(lo, hi, 4)), default=10)
            right = widest / 2 + MARKER / 2 + 4
            plot = QtCore.QRectF(left, 6, max(w - left - right, 1), max(h - 6 - bottom, 1))
            ticks = value_ticks(lo, hi, max(plot.width() / (widest + 16), 1))
            return _Frame(plot, ticks, names, NAME_WIDTH)
        top, bottom = line / 2 + 2, line + TICK + 4
        height = max(h - top - bottom, 1)
        ticks = value_ticks(lo, hi, max(height / (line * 2.2), 1))
        left = max((fm.horizontalAdvance(t) for _, t in ticks), default=0) + TICK + 6
        plot = QtCore.QRectF(left, top, max(w - left - 8, 1), height)
        per_class = plot.width() / max(k, 1)
        names = class_ticks(fm, classes, per_class - 3)
        every = names[1][0] - names[0][0] if len(names) > 1 else 1
        return _Frame(plot, ticks, names, every * per_class)

    def _point(self, plot: QtCore.QRectF, position: float, value: float) -> QtCore.QPointF:
        k = max(len(self._classes), 1)
        lo, hi = self._range
        c = (position + 0.6) / k            # the class axis spans -0.6 .. k - 0.4
        v = (value - lo) / (hi - lo) if hi > lo else 0.0
        if self._horizontal:
            return QtCore.QPointF(plot.left() + v * plot.width(), plot.top() + c * plot.height())
        return QtCore.QPointF(plot.left() + c * plot.width(), plot.bottom() - v * plot.height())

    def _bar_boxes(self, plot: QtCore.QRectF) -> list[QtCore.QRectF]:
        """Each bar's rectangle in pixels, class order: the arithmetic in numpy, one Python call into Qt
        per bar (NaN and infinities drawn as 0)."""
        values = self._values
        if not np.isfinite(values).all():
            values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = self._range
        span = hi - lo if hi > lo else 1.0
        k = values.size
        if self._horizontal:
            step = plot.height() / max(len(self._classes), 1)
            x0 = plot.left() + (0.0 - lo) / span * plot.width()
            x1 = plot.left() + (values - lo) / span * plot.width()
            along = plot.top() + (np.arange(k) + 0.6 - BAR_WIDTH / 2) * step
            boxes = zip(np.minimum(x0, x1).tolist(), along.tolist(), np.abs(x1 - x0).tolist(), [BAR_WIDTH * step] * k)
        else:
            step = plot.width() / max(len(self._classes), 1)
            y0 = plot.bottom() - (0.0 - lo) / span * plot.height()
            y1 = plot.bottom() - (values - lo) / span * plot.height()
            along = plot.left() + (np.arange(k) + 0.6 - BAR_WIDTH / 2) * step
            boxes = zip(along.tolist(), np.minimum(y0, y1).tolist(), [BAR_WIDTH * step] * k, np.abs(y1 - y0).tolist())
        return [QtCore.QRectF(*box) for box in boxes]

    def _shapes(self, plot: QtCore.QRectF) -> tuple[list[QtCore.QRectF], QtCore.QRectF | None, QtCore.QRectF | None]:
        """The grey bars, the predicted bar and the true bar, in pixels (made once per refresh)."""
        rects = self._bar_boxes(plot)
        k = len(rects)
        pred = self._predicted if self._predicted is not None and self._predicted < k else None
        true = rects[self._true] if self._true is not None and self._true < k else None
        grey = rects if pred is None else rects[:pred] + rects[pred + 1:]
        return grey, None if pred is None else rects[pred], true

    def _overlay(self, frame: _Frame) -> tuple[QtGui.QPolygonF | None, QtCore.QLineF]:
        """The true class's triangle (over its bar pointing down, or right of it pointing left; None without a
        true class) and the zero line: kept while the frame, the true class and the marker's place stay."""
        key = (self._true, self._marker_at)
        cached = self._overlay_cache
        if cached is not None and cached[0] is frame and cached[1] == key:
            return cached[2], cached[3]
        plot, marker = frame.plot, None
        zero = self._point(plot, 0, 0.0)
        if self._horizontal:
            line = QtCore.QLineF(zero.x(), plot.top(), zero.x(), plot.bottom())
        else:
            line = QtCore.QLineF(plot.left(), zero.y(), plot.right(), zero.y())
        if self._true is not None:
            tip = self._point(plot, self._true, self._marker_at)
            x, y, s = tip.x(), tip.y(), MARKER / 2
            if self._horizontal:   # the tip at the left
                corners = [(x - s, y), (x + s * 0.8, y - s), (x + s * 0.8, y + s)]
            else:                  # the tip at the bottom
                corners = [(x, y + s), (x - s, y - s * 0.8), (x + s, y - s * 0.8)]
            marker = QtGui.QPolygonF([QtCore.QPointF(*c) for c in corners])
        self._overlay_cache = (frame, key, marker, line)
        return marker, line

    # ------------------------------------------------------------ painting
    def _background_pixmap(self, frame: _Frame) -> QtGui.QPixmap:
        """The axes, the grid and the tick labels, painted once per frame (size, classes, value range,
        orientation) and pixel ratio; a change of palette or font drops them all (:meth:`changeEvent`)."""
        ratio = self.devicePixelRatioF()
        if frame.background is not None and frame.ratio == ratio:
            return frame.background
        bg, fg = palette_colors(self)
        pixmap = QtGui.QPixmap(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(bg)
        painter = QtGui.QPainter(pixmap)
        try:
            self._paint_axes(painter, frame, fg)
        finally:
            painter.end()
        frame.background, frame.ratio = pixmap, ratio
        true = QtGui.QPen(QtGui.QColor(self._colours[2]), 3)
        true.setJoinStyle(QtCore.Qt.PenJoinStyle.MiterJoin)
        self._pens = (QtGui.QPen(fg, 1), true)
        return pixmap

    def _paint_axes(self, painter: QtGui.QPainter, frame: _Frame, fg: QtGui.QColor) -> None:
        plot, fm = frame.plot, self.fontMetrics()
        grid = QtGui.QColor(fg)
        grid.setAlpha(45)
        painter.setPen(QtGui.QPen(grid, 1))
        horizontal = self._horizontal
        for v, _ in frame.value_ticks:
            p = self._point(plot, 0, v)
            if horizontal:
                painter.drawLine(QtCore.QLineF(p.x(), plot.top(), p.x(), plot.bottom()))
            else:
                painter.drawLine(QtCore.QLineF(plot.left(), p.y(), plot.right(), p.y()))
        painter.setPen(QtGui.QPen(fg, 1))
        painter.drawLine(QtCore.QLineF(plot.bottomLeft(), plot.topLeft()))
        painter.drawLine(QtCore.QLineF(plot.bottomLeft(), plot.bottomRight()))
        align = QtCore.Qt.AlignmentFlag
        line = fm.height()
        for v, text in frame.value_ticks:
            p = self._point(plot, 0, v)
            if horizontal:
                painter.drawLine(QtCore.QLineF(p.x(), plot.bottom(), p.x(), plot.bottom() + TICK))
                box = QtCore.QRectF(p.x() - 60, plot.bottom() + TICK + 1, 120, line)
                painter.drawText(box, align.AlignHCenter | align.AlignTop, text)
            else:
                painter.drawLine(QtCore.QLineF(plot.left() - TICK, p.y(), plot.left(), p.y()))
                box = QtCore.QRectF(0, p.y() - line / 2, plot.left() - TICK - 3, line)
                painter.drawText(box, align.AlignRight | align.AlignVCenter, text)
        for i, text in frame.class_ticks:
            p = self._point(plot, i, self._range[0])
            if horizontal:
                painter.drawLine(QtCore.QLineF(plot.left() - TICK, p.y(), plot.left(), p.y()))
                box = QtCore.QRectF(0, p.y() - line / 2, plot.left() - TICK - 3, line)
                painter.drawText(box, align.AlignRight | align.AlignVCenter, text)
            else:
                painter.drawLine(QtCore.QLineF(p.x(), plot.bottom(), p.x(), plot.bottom() + TICK))
                room = frame.label_room
                box = QtCore.QRectF(p.x() - room / 2, plot.bottom() + TICK + 1, room, line)
                painter.drawText(box, align.AlignHCenter | align.AlignTop, text)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        frame = self._frame(self._horizontal)
        background = self._background_pixmap(frame)
        painter = QtGui.QPainter(self)
        painter.drawPixmap(0, 0, background)
        if self._values.size:
            if self._rects is None or self._rects[0] is not frame:
                self._rects = (frame, *self._shapes(frame.plot))
            _, grey, pred, true = self._rects
            marker, zero = self._overlay(frame)
            zero_pen, true_pen = self._pens
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            if grey:
                painter.setBrush(self._brushes[0])
                painter.drawRects(grey)
            if pred is not None:
                painter.setBrush(self._brushes[1])
                painter.drawRect(pred)
            painter.setPen(zero_pen)
            painter.drawLine(zero)
            if true is not None:
                painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
                painter.setPen(true_pen)
                painter.drawRect(true)
            if marker is not None:
                painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
                painter.setPen(QtCore.Qt.PenStyle.NoPen)
                painter.setBrush(self._brushes[2])
                painter.drawPolygon(marker)
        painter.end()

    # ------------------------------------------------------------ pointer
    def class_at(self, pos: QtCore.QPointF) -> int | None:
        """The class whose bar (its 0.8 of a class's room) is under ``pos``, or None."""
        plot = self._frame(self._horizontal).plot
        k = len(self._values)
        if not k or not plot.contains(pos):
            return None
        along = (pos.y() - plot.top()) / plot.height() if self._horizontal else (pos.x() - plot.left()) / plot.width()
        x = along * max(len(self._classes), 1) - 0.6
        i = int(round(x))
        return i if 0 <= i < k and abs(x - i) <= 0.4 else None

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        self._set_hover(self.class_at(event.position()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt's name)
        self._set_hover(None)
        super().leaveEvent(event)

    def _set_hover(self, hover: int | None) -> None:
        if hover != self._hover:
            self._hover = hover
            self.hovered.emit(hover)

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        kind = event.type()
        if kind in (QtCore.QEvent.Type.PaletteChange, QtCore.QEvent.Type.FontChange, QtCore.QEvent.Type.StyleChange):
            self._frames.clear()       # painted again in the new colours or font, the margins following the font
            self._widest = ((), 0, 0)
