"""What the views share on the Qt side: colours and lookup tables, the redraw throttle, overlays, the
empty state. The arithmetic they draw with is pure numpy in :mod:`.mosaic` and :mod:`.levels`.

Everything a view draws is float32 and C-contiguous, coloured through a uint8
lookup table with levels the view computes itself, never pyqtgraph's
per-frame ``autoLevels``.
"""
from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views.elided import ElidedLabel
from cnnviz.app.views.mosaic import mosaic_size
from cnnviz.app.views.panel import ViewPanel  # noqa: F401  (the views' base, imported from here too)

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
class Redraw(QtCore.QObject):
    """A view's redraw: asked for with every new piece of data, run at most once per ``ms``, each time in an
    event-loop turn of its own, and not while the view is hidden.

    - ``throttle()`` asks for a redraw. The first one runs at the next turn of the event loop (after the
      caller returns: a probe routed to ten views is ten short tasks, with input and timers served between
      them, not one long one); asks within ``ms`` of the last redraw coalesce into one at the end of it.
    - While the widget is hidden (another tab in front, a closed dock) nothing is drawn: the request waits
      and runs when the widget is shown (a :class:`ViewPanel`'s ``showEvent`` says so; any other widget
      calls :meth:`shown`).
    - ``flush()`` runs a pending redraw now, shown or not (callers and tests that read what was drawn).
    """

    triggered = QtCore.Signal()
    _ended = -math.inf   # when the last redraw of any view ended: one redraw per pass of the event loop
    TURN_S = 0.001

    def __init__(self, widget: QtWidgets.QWidget, slot: Callable[[], None], ms: int = REDRAW_MS) -> None:
        super().__init__(widget)   # the widget is reached as parent(): no Python reference cycle through it
        self._ms = int(ms)
        self._pending = False
        self._last = -math.inf
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)
        self.triggered.connect(slot)   # (a signal, as Qt holds it: the view is not kept alive by its redraw)
        redraws = getattr(widget, "_redraws", None)
        if redraws is not None:
            redraws.append(self)   # a ViewPanel: its showEvent runs what waited while it was hidden

    def _visible(self) -> bool:
        widget = self.parent()
        return widget is not None and widget.isVisible()

    @property
    def pending(self) -> bool:
        """True while a redraw has been asked for and not yet run."""
        return self._pending

    def setTimeout(self, ms: int) -> None:  # noqa: N802 (the name QSignalThrottler had)
        self._ms = int(ms)

    def timeout(self) -> int:
        return self._ms

    def throttle(self) -> None:
        self._pending = True
        if self._timer.isActive() or not self._visible():
            return
        since = (time.perf_counter() - self._last) * 1e3
        self._timer.start(int(max(0.0, self._ms - since)))

    def flush(self) -> None:
        if self._pending:
            self._timer.stop()
            self._run()

    def _fire(self) -> None:
        if not (self._pending and self._visible()):
            return
        if time.perf_counter() - Redraw._ended < self.TURN_S:
            # Another view has just redrawn in this pass of the event loop: wait for the next one, so its
            # paint, the person's input and the timers come in between (ten views, ten short tasks).
            self._timer.start(0)
            return
        self._run()

    def _run(self) -> None:
        self._pending = False
        self._last = time.perf_counter()
        try:
            self.triggered.emit()
        finally:
            Redraw._ended = time.perf_counter()

    def shown(self) -> None:
        """The widget was shown: run what was asked for while it was hidden."""
        if self._pending and not self._timer.isActive():
            self._timer.start(0)


def settle(*plots) -> None:
    """Bring the ranges and view matrices of these PlotItems or ViewBoxes up to date now, at the end of a
    redraw. pyqtgraph otherwise does it lazily inside the paint, where the changed matrix asks for a second
    paint of the same frame (every redraw painted twice)."""
    for plot in plots:
        vb = plot.getViewBox() if hasattr(plot, "getViewBox") else plot
        vb.prepareForPaint()


def make_throttler(widget: QtWidgets.QWidget, slot: Callable[[], None], ms: int = REDRAW_MS) -> Redraw:
    """The view's :class:`Redraw` of ``slot``: ``.throttle()`` to ask for a redraw, ``.flush()`` to run a
    pending one now."""
    return Redraw(widget, slot, ms)


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


class SteadyLabel(QtWidgets.QLabel):
    """A word-wrapped label that keeps the height of the tallest text it has shown at its width.

    A reading that wraps to two lines for one sample and one for the next would otherwise resize the plot
    above it with every probe: the plot jumps, and each jump lays out and repaints it all again.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, lines: int = 1) -> None:
        super().__init__(parent)
        # Room for ``lines`` from the start: the first long reading (a hover) moves nothing under the cursor.
        self._one_line = lines * self.fontMetrics().lineSpacing() + 4
        self._width = -1
        self._measured = (-1, -1)   # (width, minimum height) when last measured
        self._longest = 0           # the longest text measured at that width
        self.setMinimumHeight(self._one_line)
        # Opaque: a new reading repaints the label alone, not the panel (or dock) behind it as well.
        self.setAutoFillBackground(True)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        if text == self.text():
            return   # the same reading (Qt would skip it too): no measuring
        super().setText(text)
        self._hold()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if event.size().width() != self._width:
            self._width = event.size().width()
            self.setMinimumHeight(max(self._one_line, self._needed()))   # a new width: start again from here

    def _needed(self) -> int:
        width = self.width()
        return self.heightForWidth(width) if width > 0 and self.wordWrap() else self.sizeHint().height()

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._hold()

    def _hold(self) -> None:
        if not self.isVisible():
            return   # not laid out: its width says nothing yet (a hidden tab's label stays one line high)
        # A reading no longer than one measured at this width wraps no further (the same words with other
        # digits, every probe while training): measuring rich text lays it out twice, so skip it.
        length = len(self.text())
        if self._measured == (self.width(), self.minimumHeight()) and length <= self._longest:
            return
        if self._measured[0] != self.width():
            self._longest = 0
        self._longest = max(self._longest, length)
        need = self._needed()
        if need > self.minimumHeight():
            self.setMinimumHeight(need)
        self._measured = (self.width(), self.minimumHeight())


def status_label(parent: QtWidgets.QWidget, lines: int = 1) -> QtWidgets.QLabel:
    """A label for readings under the cursor; selectable so values can be copied.

    Long text wraps instead of widening the view (a panel must not grow with its readings), and the label
    keeps its tallest height (:class:`SteadyLabel`), so the view above it holds still; ``lines`` are
    reserved from the start (2 for a hover readout that often wraps).
    """
    label = SteadyLabel(parent, lines)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
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
