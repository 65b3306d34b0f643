"""What the views share on the Qt side: colours and lookup tables, the redraw throttle, overlays, the
empty state. The arithmetic they draw with is pure numpy in :mod:`.mosaic` and :mod:`.levels`.

Everything a view draws is float32 and C-contiguous, coloured through a uint8
lookup table with levels the view computes itself, never pyqtgraph's
per-frame ``autoLevels``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import QSignalThrottler

from cnnviz.app.views.elided import ElidedLabel
from cnnviz.app.views.mosaic import mosaic_size

SEQUENTIAL = "viridis"
DIVERGING = "CET-D1A"          # blue, white at 0, red
REDRAW_MS = 33                 # at most about 30 redraws per second

# Colours chosen to stay apart for colour-blind readers (Okabe-Ito).
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILION = "#D55E00"
GREY = "#9AA5B1"
MAP_BACKGROUND = "#5A5F66"     # behind mosaics: makes the 1-pixel gaps visible for every colour map


def gap_path(shape: tuple[int, int], grid: tuple[int, int], gap: int, n: int, frame: int = 0) -> QtGui.QPainterPath:
    """The gaps between tiles and the unused tiles of the last row, as one path to paint over a mosaic.

    Painting the gaps on top keeps the image free of NaN, so pyqtgraph stays on
    its fast path (NaN pixels cost a mask search every frame). ``frame`` adds a
    border that wide around the whole mosaic.
    """
    (h, w), (rows, cols) = shape, grid
    height, width = mosaic_size(shape, grid, gap)
    path = QtGui.QPainterPath()
    path.setFillRule(QtCore.Qt.FillRule.WindingFill)  # overlapping rectangles stay filled
    if gap:
        for r in range(1, rows):
            path.addRect(0, r * (h + gap) - gap, width, gap)
        for c in range(1, cols):
            path.addRect(c * (w + gap) - gap, 0, gap, height)
    unused = rows * cols - n
    if unused > 0:
        x = (cols - unused) * (w + gap) - (gap if cols - unused else 0)
        path.addRect(x, (rows - 1) * (h + gap) - (gap if rows > 1 else 0), width - x, h + (gap if rows > 1 else 0))
    if frame:
        path.addRect(-frame, -frame, width + 2 * frame, frame)
        path.addRect(-frame, height, width + 2 * frame, frame)
        path.addRect(-frame, 0, frame, height)
        path.addRect(width, 0, frame, height)
    return path


# ------------------------------------------------------------------ colours
@lru_cache(maxsize=16)
def colormap(name: str) -> pg.ColorMap:
    return pg.colormap.get(name)


@lru_cache(maxsize=16)
def lut(name: str) -> np.ndarray:
    """A 256-entry uint8 RGB lookup table for a pyqtgraph colour map."""
    table = colormap(name).getLookupTable(nPts=256, alpha=False)
    return np.ascontiguousarray(table, dtype=np.uint8)


# ------------------------------------------------------------------ Qt helpers
def make_throttler(parent: QtCore.QObject, slot: Callable[[], None], ms: int = REDRAW_MS) -> QSignalThrottler:
    """A leading-edge throttler: the first request redraws at once, bursts coalesce to one redraw per ``ms``.

    Call ``.throttle()`` to request a redraw and ``.flush()`` to run a pending one now.
    """
    throttler = QSignalThrottler(parent=parent)
    throttler.setTimeout(ms)
    throttler.triggered.connect(slot)
    return throttler


def tile_overlays(target, highlight: str) -> tuple[QtWidgets.QGraphicsPathItem, QtWidgets.QGraphicsRectItem]:
    """The items drawn over a mosaic: its gaps (one path in the background colour) and the hover frame.

    ``target`` is the ViewBox or PlotItem holding the mosaic; ``highlight`` the frame's colour.
    """
    gaps = QtWidgets.QGraphicsPathItem()
    gaps.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
    gaps.setBrush(pg.mkBrush(MAP_BACKGROUND))
    gaps.setZValue(5)
    target.addItem(gaps, ignoreBounds=True)
    frame = QtWidgets.QGraphicsRectItem()
    pen = pg.mkPen(highlight, width=2)
    pen.setCosmetic(True)
    frame.setPen(pen)
    frame.setZValue(10)
    frame.hide()
    target.addItem(frame, ignoreBounds=True)
    return gaps, frame


def palette_colors(widget: QtWidgets.QWidget) -> tuple[QtGui.QColor, QtGui.QColor]:
    """(background, foreground) of the widget's palette, so plots follow light and dark themes."""
    pal = widget.palette()
    return pal.color(QtGui.QPalette.ColorRole.Base), pal.color(QtGui.QPalette.ColorRole.WindowText)


def graphics_widget(parent: QtWidgets.QWidget) -> pg.GraphicsLayoutWidget:
    """A GraphicsLayoutWidget in the palette's colours, with small margins."""
    glw = pg.GraphicsLayoutWidget(parent)
    bg, _ = palette_colors(parent)
    glw.setBackground(bg)
    glw.ci.layout.setContentsMargins(4, 4, 4, 4)
    glw.ci.layout.setSpacing(6)
    glw.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
    return glw


def style_axes(plot: pg.PlotItem, widget: QtWidgets.QWidget, axes: Sequence[str] = ("left", "bottom")) -> None:
    """Axes in the palette's text colour and the widget's font size, readable at a glance."""
    _, fg = palette_colors(widget)
    font = QtGui.QFont(widget.font())
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        axis.setTickFont(font)
    for name in axes:
        plot.showAxis(name)


def label_style(widget: QtWidgets.QWidget) -> dict[str, str]:
    """Keyword style for ``AxisItem.setLabel`` matching the widget's font."""
    _, fg = palette_colors(widget)
    size = widget.font().pointSizeF()
    return {"color": fg.name(), "font-size": f"{size if size > 0 else 9:.0f}pt"}

def class_ticks(fm: QtGui.QFontMetrics, names: Sequence[str], room: float) -> list[tuple[int, str]]:
    """Tick labels for one bar per class, ``room`` pixels apart: every name, elided to fit.

    When even "Ab…" does not fit under each bar, every n-th name is shown, elided to the room of
    n bars, so an axis always reads class names (never bare class numbers that say nothing).
    """
    k = len(names)
    room = max(float(room), 1.0)
    every = 1 if room >= fm.horizontalAdvance("Ab…") else max(1, math.ceil(fm.horizontalAdvance("Abc…") / room))
    elide = QtCore.Qt.TextElideMode.ElideRight
    width = int(every * room - (3 if every > 1 else 0))
    return [(i, fm.elidedText(str(names[i]), elide, width)) for i in range(0, k, every)]


def scientific_ticks(values: Sequence[float], scale: float = 1.0, spacing: float = 0.0) -> list[str]:
    """Tick strings of an axis in its own units, 3 significant digits: '-5e-09', '0', '2.5e-07'."""
    out = []
    for v in values:
        v = float(v) * scale
        if spacing and abs(v) < 1e-6 * abs(spacing * scale):
            v = 0.0
        out.append("0" if v == 0 else f"{v:.3g}")
    return out



class GridLines(QtWidgets.QGraphicsPathItem):
    """Light lines across a plot at one axis's major ticks.

    pyqtgraph's own grid (``showGrid``) is drawn inside the axis picture and
    costs several milliseconds per paint here, which adds up at 30 redraws a
    second; one path of cosmetic lines costs a few microseconds.
    """

    def __init__(self, plot: pg.PlotItem, axis: str = "left", alpha: int = 45) -> None:
        super().__init__()
        self._plot = plot
        self._axis = axis
        color = QtGui.QColor(plot.getAxis(axis).textPen().color())
        color.setAlpha(alpha)
        pen = QtGui.QPen(color)
        pen.setCosmetic(True)
        pen.setWidth(1)
        self.setPen(pen)
        self.setZValue(-10)
        plot.addItem(self, ignoreBounds=True)
        vb = plot.getViewBox()
        vb.sigRangeChanged.connect(self.refresh)
        vb.sigResized.connect(self.refresh)

    def set_axis(self, axis: str) -> None:
        """Follow another axis (``left`` for lines across, ``bottom`` for lines up)."""
        self._axis = axis
        self.refresh()

    def refresh(self, *_) -> None:
        vb = self._plot.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        across = self._axis in ("left", "right")
        lo, hi = (y0, y1) if across else (x0, x1)
        size = vb.height() if across else vb.width()
        path = QtGui.QPainterPath()
        if size > 0 and hi > lo:
            for _, values in self._plot.getAxis(self._axis).tickValues(lo, hi, size)[:1]:
                for v in values:
                    if across:
                        path.moveTo(x0, v)
                        path.lineTo(x1, v)
                    else:
                        path.moveTo(v, y0)
                        path.lineTo(v, y1)
        self.setPath(path)


class ViewPanel(QtWidgets.QWidget):
    """A view with an empty state: a one-line hint in place of the content until data arrives.

    Subclasses build their content widget, pass it to :meth:`_set_content`,
    call :meth:`_show_content` when they have something to draw and
    :meth:`clear` to go back to the hint (``hint``, else the class's ``EMPTY_HINT``).
    """

    EMPTY_HINT = "No data yet"

    def __init__(self, parent: QtWidgets.QWidget | None = None, hint: str | None = None) -> None:
        super().__init__(parent)
        self._default_hint = hint or self.EMPTY_HINT
        self._stack = QtWidgets.QStackedLayout(self)
        self._stack.setContentsMargins(0, 0, 0, 0)
        self._hint = QtWidgets.QLabel(self._default_hint, self)
        self._hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._hint.setWordWrap(True)
        self._hint.setObjectName("emptyHint")
        self._hint.setForegroundRole(QtGui.QPalette.ColorRole.PlaceholderText)
        self._hint.setMargin(12)
        self._stack.addWidget(self._hint)

    def _set_content(self, widget: QtWidgets.QWidget) -> None:
        self._stack.addWidget(widget)

    def _show_content(self) -> None:
        if self._stack.currentIndex() != 1:
            self._stack.setCurrentIndex(1)

    def _show_hint(self, message: str | None) -> None:
        self._hint.setText(message or self._default_hint)
        self._stack.setCurrentIndex(0)

    @property
    def is_empty(self) -> bool:
        """True while the hint is shown instead of data."""
        return self._stack.currentIndex() == 0

    @property
    def hint_text(self) -> str:
        return self._hint.text()

    def clear(self, message: str | None = None) -> None:
        """Drop the data and show ``message`` (or the view's default hint)."""
        self._show_hint(message)


def status_label(parent: QtWidgets.QWidget) -> QtWidgets.QLabel:
    """A label for readings under the cursor; selectable so values can be copied.

    Long text wraps instead of widening the view (a panel must not grow with its readings).
    """
    label = QtWidgets.QLabel(parent)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMinimumHeight(label.fontMetrics().height() + 4)
    label.setWordWrap(True)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    return label


def title_label(parent: QtWidgets.QWidget) -> QtWidgets.QLabel:
    """A view's bold one-line title: elided with the whole text in the tooltip, never under the widgets beside it."""
    label = ElidedLabel(parent=parent)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label
