"""What the views share: the mosaic layout, colour tables, the redraw throttle and the empty state.

The layout helpers (:func:`mosaic`, :func:`best_columns`, :func:`tile_at`) are
pure numpy so they can be tested without Qt. Everything a view draws is
float32 and C-contiguous, coloured through a uint8 lookup table with levels the
view computes itself, never pyqtgraph's per-frame ``autoLevels``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from superqt.utils import QSignalThrottler

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


# ------------------------------------------------------------------ layout
def as_maps(values: np.ndarray) -> np.ndarray:
    """An activation as float32 (C, H, W): maps stay maps, a vector becomes C maps of 1×1.

    A 2-D array is one map; higher ranks fold their leading dimensions into channels.
    """
    a = np.asarray(values, dtype=np.float32)
    if a.ndim == 0:
        a = a.reshape(1, 1, 1)
    elif a.ndim == 1:
        a = a.reshape(-1, 1, 1)
    elif a.ndim == 2:
        a = a[None]
    elif a.ndim > 3:
        a = a.reshape(-1, *a.shape[-2:])
    return np.ascontiguousarray(a)


def mosaic_size(shape: tuple[int, int], grid: tuple[int, int], gap: int) -> tuple[int, int]:
    """(height, width) in pixels of a ``grid`` of tiles of ``shape``."""
    (h, w), (rows, cols) = shape, grid
    return rows * (h + gap) - gap, cols * (w + gap) - gap


def best_columns(n: int, tile: tuple[int, int], area: tuple[float, float], gap: int = 1) -> int:
    """The number of columns that shows ``n`` tiles of ``tile`` = (h, w) largest in ``area`` = (height, width).

    Only columns near the continuous optimum are tried, so a vector of a
    million units costs no more than a handful of maps.
    """
    if n <= 0:
        return 1
    ah, aw = max(area[0], 1.0), max(area[1], 1.0)
    h, w = tile
    ideal = math.sqrt(n * (aw / (w + gap)) / (ah / (h + gap)))
    candidates = {1, n}
    for c in range(int(ideal) - 2, int(ideal) + 4):
        candidates.add(c)
    ideal_rows = n / max(ideal, 1e-9)
    for r in range(int(ideal_rows) - 2, int(ideal_rows) + 4):
        if r >= 1:
            candidates.add(math.ceil(n / r))
    best, best_scale = 1, -1.0
    for cols in sorted(c for c in candidates if 1 <= c <= n):
        rows = math.ceil(n / cols)
        if (rows - 1) * cols >= n:
            continue  # a shorter grid holds the same tiles
        mh, mw = mosaic_size(tile, (rows, cols), gap)
        scale = min(ah / mh, aw / mw)
        if scale > best_scale * (1 + 1e-9):
            best, best_scale = cols, scale
    return best


def mosaic(maps: np.ndarray, gap: int = 1, cols: int | None = None, fill: float = np.nan,
           out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Tile (C, H, W) maps row by row into one float32 image with ``gap`` pixels between tiles.

    Returns ``(image, (rows, cols))``; tile ``c`` sits at row ``c // cols``,
    column ``c % cols``, its top-left pixel at ``(row·(H+gap), col·(W+gap))``.
    Gaps and unused tiles hold ``fill`` (NaN draws as transparent). Pass the
    previous image as ``out`` to reuse its memory when the layout is unchanged:
    then only the tiles are written.
    """
    maps = as_maps(maps)
    c, h, w = maps.shape
    if cols is None:
        cols = max(1, math.ceil(math.sqrt(c)))
    cols = max(1, min(cols, c)) if c else 1
    rows = max(1, math.ceil(c / cols))
    size = mosaic_size((h, w), (rows, cols), gap)
    if out is None or out.shape != size or out.dtype != np.float32:
        out = np.full(size, fill, dtype=np.float32)
        fresh = True
    else:
        fresh = False
    # One strided copy fills every full row of tiles; the last, partial row goes tile by tile.
    full_rows = c // cols
    if full_rows:
        _tiles_view(out, full_rows, cols, h, w, gap)[...] = maps[: full_rows * cols].reshape(full_rows, cols, h, w)
    rest = c - full_rows * cols
    if rest:
        y = full_rows * (h + gap)
        for k in range(rest):
            x = k * (w + gap)
            out[y:y + h, x:x + w] = maps[full_rows * cols + k]
        if not fresh:
            for k in range(rest, cols):
                x = k * (w + gap)
                out[y:y + h, x:x + w] = fill
    return out, (rows, cols)


def _tiles_view(image: np.ndarray, rows: int, cols: int, h: int, w: int, gap: int) -> np.ndarray:
    """A (rows, cols, h, w) writable view of the first ``rows`` rows of tiles of a mosaic (no copy)."""
    assert image.flags.c_contiguous and (rows - 1) * (h + gap) + h <= image.shape[0]
    assert (cols - 1) * (w + gap) + w <= image.shape[1]
    s0, s1 = image.strides
    return np.ndarray((rows, cols, h, w), image.dtype, buffer=image,
                      strides=((h + gap) * s0, (w + gap) * s1, s0, s1))


def tile_at(x: float, y: float, shape: tuple[int, int], grid: tuple[int, int], gap: int, n: int
            ) -> tuple[int, int, int] | None:
    """(channel, y, x) under the image point (x, y) of a mosaic, or None over a gap or outside."""
    h, w = shape
    rows, cols = grid
    if x < 0 or y < 0:
        return None
    xi, yi = int(x), int(y)
    col, tx = divmod(xi, w + gap)
    row, ty = divmod(yi, h + gap)
    if col >= cols or row >= rows or tx >= w or ty >= h:
        return None
    channel = row * cols + col
    if channel >= n:
        return None
    return channel, ty, tx


def tile_origin(channel: int, shape: tuple[int, int], cols: int, gap: int) -> tuple[int, int]:
    """(x, y) of a tile's top-left pixel in the mosaic."""
    row, col = divmod(channel, cols)
    return col * (shape[1] + gap), row * (shape[0] + gap)


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


# ------------------------------------------------------------------ levels and colours
def compute_levels(values: np.ndarray, mode: str | tuple[float, float]) -> tuple[tuple[float, float], bool]:
    """Colour levels ``(low, high)`` shared by all maps, and whether they are symmetric about 0.

    ``mode``: ``"symmetric"`` (±max|v|), ``"minmax"``, ``"auto"`` (symmetric when
    the values take both signs) or an explicit ``(low, high)``. NaN and ±inf are
    ignored; empty, constant or all-NaN data still give a usable range.
    """
    if not isinstance(mode, str):
        lo, hi = float(mode[0]), float(mode[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"levels must be two finite numbers, low < high; got {mode!r}")
        return (lo, hi), math.isclose(lo, -hi)
    if mode not in ("auto", "symmetric", "minmax"):
        raise ValueError(f"levels must be 'auto', 'symmetric', 'minmax' or (low, high); got {mode!r}")
    lo, hi = _finite_min_max(values)
    symmetric = mode == "symmetric" or (mode == "auto" and lo < 0 < hi)
    if symmetric:
        m = max(abs(lo), abs(hi))
        m = m if m > 0 else 1.0
        return (-m, m), True
    if hi <= lo:
        pad = abs(lo) * 0.5 if lo else 1.0
        lo, hi = lo - pad, hi + pad
    return (lo, hi), False


def _finite_min_max(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    lo, hi = float(values.min()), float(values.max())
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def nice_ceil(x: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 (times a power of ten) that is ≥ x > 0."""
    exp = math.floor(math.log10(x))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * 10.0 ** exp >= x * (1 - 1e-9):
            return m * 10.0 ** exp
    return 10.0 ** (exp + 1)


def round_levels(levels: tuple[float, float], symmetric: bool) -> tuple[float, float]:
    """Widen levels outward to a step of a tenth of their (rounded) span.

    Colours then stay the same while the data's extremes wobble from step to
    step, and the colour bar keeps round numbers.
    """
    lo, hi = levels
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return levels
    step = nice_ceil(span) / 10
    if symmetric:
        m = math.ceil(hi / step - 1e-6) * step
        return -m, m
    return math.floor(lo / step + 1e-6) * step, math.ceil(hi / step - 1e-6) * step


@lru_cache(maxsize=16)
def colormap(name: str) -> pg.ColorMap:
    return pg.colormap.get(name)


@lru_cache(maxsize=16)
def lut(name: str) -> np.ndarray:
    """A 256-entry uint8 RGB lookup table for a pyqtgraph colour map."""
    table = colormap(name).getLookupTable(nPts=256, alpha=False)
    return np.ascontiguousarray(table, dtype=np.uint8)


# ------------------------------------------------------------------ formatting
def fmt_value(v: float) -> str:
    """A reading for a status line: 4 significant digits, scientific when tiny or huge."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3e}"


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
    label = QtWidgets.QLabel(parent)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    return label
