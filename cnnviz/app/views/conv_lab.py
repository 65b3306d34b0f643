"""The convolution lab: a Conv2d's, MaxPool2d's or AvgPool2d's window sliding over the layer's real input.

For the selected layer, the current sample and the current weights: the input grid of one input channel
with the padding the layer puts around it, the window with its dilation gaps moving by the stride, the
output grid filling in cell by cell, and the arithmetic of the current output cell (every tap's input,
weight and product, the bias and the sum) next to the value torch's forward pass gave. The arithmetic is
:mod:`cnnviz.core.lab.taps`' (the same as ``cnnviz explain``); what is drawn around it is
:mod:`.lab_steps`'. Play, pause, step, scrub and speed; a click on an output cell jumps to it; the pointer
over an input cell marks every output cell that reads it.

A frame is cheap: the grids are cached pixmaps (rebuilt when the data, the crop or the size change) and a
frame paints them with the window's few rectangles over them. An input too big to draw cell by cell is
shown as a crop around the window with a minimap of where it is.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views._common import BLUE, ORANGE, SEQUENTIAL, VERMILION, ViewPanel, lut, status_label, title_label
from cnnviz.app.views.lab_steps import Grid, cell_of, fmt, padded_channel, readers, steps_of
from cnnviz.core.lab.taps import SPATIAL, Arithmetic, LabError, Window, taps_of, window_of

MAX_CELLS = 32      # a grid with more cells per axis than this is drawn as a crop around the window
CROP_CELLS = 20     # the crop's cells per axis
MAX_CELL_PX = 44
SPEEDS = (1, 2, 4, 8, 15, 30, 60, 120)  # output cells per second
FRAME_MS = 33       # at most about 30 frames per second
NUMBERS_HZ = 10     # while the window moves faster, its numbers are refreshed this often
TOLERANCE = 1e-5


def _plain(label: QtWidgets.QLabel) -> QtWidgets.QLabel:
    label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    return label


def colours(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(…, 3) uint8 RGB of ``values`` through the sequential map, levels [lo, hi]; nan/−inf grey."""
    table = lut(SEQUENTIAL)
    span = hi - lo if hi > lo else 1.0
    with np.errstate(invalid="ignore"):
        idx = np.clip((np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo) - lo) / span * 255, 0, 255).astype(np.uint8)
    rgb = table[idx]
    rgb[~np.isfinite(values)] = (90, 95, 102)
    return np.ascontiguousarray(rgb)


def finite_levels(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


class _Pane:
    """Where a grid (or its crop) is drawn: ``rows``×``cols`` grid cells from (``r0``, ``c0``), ``cell`` px each."""

    def __init__(self) -> None:
        self.x = self.y = 0
        self.cell = 1
        self.r0 = self.c0 = 0
        self.rows = self.cols = 0
        self.total = (0, 0)

    @property
    def cropped(self) -> bool:
        return (self.rows, self.cols) != self.total

    def rect(self, r: int, c: int) -> QtCore.QRectF:
        return QtCore.QRectF(self.x + (c - self.c0) * self.cell, self.y + (r - self.r0) * self.cell,
                             self.cell, self.cell)

    def visible(self, r: int, c: int) -> bool:
        return self.r0 <= r < self.r0 + self.rows and self.c0 <= c < self.c0 + self.cols

    def at(self, pos: QtCore.QPointF) -> tuple[int, int] | None:
        if self.cell <= 0:
            return None
        c = math.floor((pos.x() - self.x) / self.cell)
        r = math.floor((pos.y() - self.y) / self.cell)
        if 0 <= r < self.rows and 0 <= c < self.cols:
            return r + self.r0, c + self.c0
        return None

    def place(self, total: tuple[int, int], focus: tuple[int, int, int, int]) -> bool:
        """Choose the crop so that grid cells ``focus`` = (r_lo, r_hi, c_lo, c_hi) (inclusive) are in it;
        True when it moved."""
        rows = total[0] if total[0] <= MAX_CELLS else CROP_CELLS
        cols = total[1] if total[1] <= MAX_CELLS else CROP_CELLS
        r0, c0 = self.r0, self.c0
        if (rows, cols, total) != (self.rows, self.cols, self.total):
            r0 = c0 = 0
        r0 = self._axis(r0, rows, total[0], focus[0], focus[1])
        c0 = self._axis(c0, cols, total[1], focus[2], focus[3])
        moved = (r0, c0, rows, cols, total) != (self.r0, self.c0, self.rows, self.cols, self.total)
        self.r0, self.c0, self.rows, self.cols, self.total = r0, c0, rows, cols, total
        return moved

    @staticmethod
    def _axis(start: int, n: int, total: int, lo: int, hi: int) -> int:
        if n >= total:
            return 0
        if lo >= start and hi < start + n:
            return start
        centre = (lo + hi) // 2 - n // 2 if hi - lo + 1 <= n else lo
        return int(min(max(centre, 0), total - n))


class LabCanvas(QtWidgets.QWidget):
    """The input grid with its padding, the window, the output grid; painted from cached pixmaps."""

    hovered = QtCore.Signal(int, int)       # input position (y, x) under the pointer
    left = QtCore.Signal()
    cellClicked = QtCore.Signal(int, int)   # an output cell (y, x)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)  # it paints every pixel: no parent beneath
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self.win: Window | None = None
        self.grid: Grid | None = None
        self.out: np.ndarray | None = None
        self.unread: np.ndarray | None = None
        self.cell = (0, 0)
        self.step = 0
        self.argmax: tuple[int, int] | None = None
        self.hover: tuple[int, int] | None = None
        self.reader_mask: np.ndarray | None = None
        self.inp = _Pane()
        self.outp = _Pane()
        self._in_pix: tuple | None = None   # (pixmap, band, cell)
        self._out_pix: tuple | None = None
        self._mini: QtGui.QPixmap | None = None
        self._readers_path = QtGui.QPainterPath()
        self._levels = ((0.0, 1.0), (0.0, 1.0))
        self._titles = ("", "")
        self._elided: tuple = (None, ("", ""))
        self.stacked = False

    # ---------------------------------------------------------------- data
    def set_data(self, win: Window, grid: Grid, out: np.ndarray, titles: tuple[str, str]) -> None:
        self.win, self.grid, self.out = win, grid, np.asarray(out, dtype=np.float32)
        self.step, self.cell, self.argmax = 0, (0, 0), None   # the view sets the cell next (the old may not exist)
        h, w = win.in_shape[1:]
        un = np.zeros(grid.values.shape, dtype=bool)
        un[-grid.y0:-grid.y0 + h, -grid.x0:-grid.x0 + w] = win.unread()
        self.unread = un
        self._levels = (finite_levels(grid.values[grid.kind == 0]), finite_levels(self.out))
        self._titles = titles
        self.hover = None
        self.reader_mask = None
        self._readers_path = QtGui.QPainterPath()
        self._in_pix = self._out_pix = self._mini = None
        self.inp.total = self.outp.total = (-1, -1)
        self._layout()
        self.update()

    def set_cell(self, step: int, argmax: tuple[int, int] | None) -> None:
        self.step = step
        self.cell = cell_of(self.win, step) if self.win is not None else (0, 0)
        self.argmax = argmax
        if self.win is not None and self._place():
            self._update_readers_path()
        self.update()

    def set_hover(self, position: tuple[int, int] | None) -> None:
        self.hover = position
        if position is None or self.win is None:
            self.reader_mask = None
        else:
            self.reader_mask = readers(self.win, *position)
        self._update_readers_path()
        self.update()

    # ---------------------------------------------------------------- geometry
    def _window_span(self) -> tuple[int, int, int, int]:
        win, g = self.win, self.grid
        oy, ox = self.cell
        rows, cols = win.axis_positions(0)[oy], win.axis_positions(1)[ox]
        return (int(rows.min()) - g.y0, int(rows.max()) - g.y0, int(cols.min()) - g.x0, int(cols.max()) - g.x0)

    def _place(self) -> bool:
        if self.win is None:
            return False
        oy, ox = self.cell
        moved_in = self.inp.place(self.grid.values.shape, self._window_span())
        moved_out = self.outp.place(self.out.shape, (oy, oy, ox, ox))
        return moved_in or moved_out

    def _layout(self) -> None:
        """Input and output side by side, or the output under the input when that draws bigger cells."""
        if self.win is None:
            return
        self._place()
        fm = self.fontMetrics()
        top = fm.height() + 6
        w, h = self.width(), self.height()
        gap = 24
        ip, op = self.inp, self.outp
        mini = 110 if ip.cropped else 0

        def fit(room_w: float, room_h: float, cols: int, rows: int) -> int:
            return int(max(3, min(MAX_CELL_PX, room_w // max(1, cols), room_h // max(1, rows))))

        # side by side: the width shared in proportion to the columns
        room_w = max(40, w - gap - 8)
        share = ip.cols / max(1, ip.cols + op.cols)
        side = (fit(room_w * share, h - top - 6 - mini, ip.cols, ip.rows),
                fit(room_w * (1 - share), h - top - 6, op.cols, op.rows))
        # one above the other: the height shared in proportion to the rows
        room_h = max(40, h - 2 * top - 10)
        share_h = ip.rows / max(1, ip.rows + op.rows)
        stacked = (fit(w - 8 - (mini + 12 if mini else 0), room_h * share_h, ip.cols, ip.rows),
                   fit(w - 8, room_h * (1 - share_h), op.cols, op.rows))
        self.stacked = min(stacked) > min(side)
        cell_in, cell_out = stacked if self.stacked else side
        if not ip.cropped and not op.cropped:
            cell_in = cell_out = min(cell_in, cell_out)  # the same size where they can be compared cell by cell
        ip.cell, op.cell = cell_in, cell_out
        ip.x, ip.y = 4, top
        if self.stacked:
            op.x, op.y = 4, int(top + ip.rows * cell_in + top + 4)
        else:
            op.x, op.y = int(4 + ip.cols * cell_in + gap), top
        self._in_pix = self._out_pix = self._mini = None
        self._update_readers_path()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._layout()

    # ---------------------------------------------------------------- caches
    def _render(self, values: np.ndarray, kind: np.ndarray | None, shade: np.ndarray | None,
                band: tuple[int, int, int, int], cell: int, levels: tuple[float, float]) -> QtGui.QPixmap:
        """Grid cells ``band`` = (r0, c0, rows, cols) at ``cell`` px: colours, padding hatched, cells beyond the
        padding crossed, unread cells shaded, grid lines, the numbers where they fit."""
        r0, c0, rows, cols = band
        crop = values[r0:r0 + rows, c0:c0 + cols]
        rgb = colours(crop, *levels)
        k = kind[r0:r0 + rows, c0:c0 + cols] if kind is not None else None
        if k is not None:
            rgb[k == 2] = (200, 200, 200)
        if shade is not None:   # unread cells darkened in the pixels: no painting per cell
            s = shade[r0:r0 + rows, c0:c0 + cols]
            rgb[s] = (rgb[s] * 0.45).astype(np.uint8)
        big = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)   # each cell cell×cell pixels
        if cell >= 6:   # the grid lines, darkened in the pixels (a QPainter line per row costs more)
            big[::cell] = (big[::cell] * 0.55).astype(np.uint8)
            big[:, ::cell] = (big[:, ::cell] * 0.55).astype(np.uint8)
        big = np.ascontiguousarray(big)
        h, w = big.shape[:2]
        image = QtGui.QImage(big.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        pix = QtGui.QPixmap.fromImage(image.copy())
        p = QtGui.QPainter(pix)
        if k is not None:
            pad_brush = QtGui.QBrush(QtGui.QColor(255, 255, 255, 150), QtCore.Qt.BrushStyle.BDiagPattern)
            cross = QtGui.QBrush(QtGui.QColor(120, 120, 120), QtCore.Qt.BrushStyle.DiagCrossPattern)
            for (r, c) in zip(*np.nonzero(k == 1)):
                p.fillRect(int(c) * cell, int(r) * cell, cell, cell, pad_brush)
            for (r, c) in zip(*np.nonzero(k == 2)):
                p.fillRect(int(c) * cell, int(r) * cell, cell, cell, cross)
        if cell >= 30:
            font = p.font()
            font.setPixelSize(max(8, cell // 4))
            p.setFont(font)
            lo, hi = levels
            mid = (lo + hi) / 2
            for r in range(rows):
                for c in range(cols):
                    v = float(crop[r, c])
                    if math.isnan(v):
                        continue
                    text = "−∞" if v == -math.inf else f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
                    p.setPen(QtGui.QColor("black") if v > mid else QtGui.QColor("white"))
                    p.drawText(QtCore.QRectF(c * cell, r * cell, cell, cell), QtCore.Qt.AlignmentFlag.AlignCenter, text)
        p.end()
        return pix

    def _cached(self, which: str, pane: _Pane) -> tuple[QtGui.QPixmap, tuple[int, int, int, int]]:
        """The pixmap of a band of cells around ``pane``'s crop (a crop moving inside it costs no render)."""
        hit = self._in_pix if which == "in" else self._out_pix
        if hit is not None:
            pix, band, cell = hit
            r0, c0, rows, cols = band
            if (cell == pane.cell and r0 <= pane.r0 and pane.r0 + pane.rows <= r0 + rows
                    and c0 <= pane.c0 and pane.c0 + pane.cols <= c0 + cols):
                return pix, band
        total = pane.total
        extra_r = 0 if pane.rows >= total[0] else pane.rows // 2
        extra_c = 0 if pane.cols >= total[1] else pane.cols // 2
        r0, c0 = max(0, pane.r0 - extra_r), max(0, pane.c0 - extra_c)
        band = (r0, c0, min(total[0], pane.r0 + pane.rows + extra_r) - r0, min(total[1], pane.c0 + pane.cols + extra_c) - c0)
        if which == "in":
            g = self.grid
            pix = self._render(g.values, g.kind, self.unread, band, pane.cell, self._levels[0])
            self._in_pix = (pix, band, pane.cell)
        else:
            pix = self._render(self.out, None, None, band, pane.cell, self._levels[1])
            self._out_pix = (pix, band, pane.cell)
        return pix, band

    def _blit(self, p: QtGui.QPainter, which: str, pane: _Pane) -> None:
        pix, (r0, c0, _rows, _cols) = self._cached(which, pane)
        cell = pane.cell
        p.drawPixmap(QtCore.QPoint(int(pane.x), int(pane.y)), pix,
                     QtCore.QRect((pane.c0 - c0) * cell, (pane.r0 - r0) * cell, pane.cols * cell, pane.rows * cell))

    def _minimap(self) -> QtGui.QPixmap:
        values = self.grid.values
        rgb = colours(values, *self._levels[0])
        h, w = values.shape
        image = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        side = 100
        if self.stacked:  # beside the input, with its caption below it: no taller than the input's crop
            side = max(24, min(side, self.inp.rows * self.inp.cell - self.fontMetrics().height() - 6))
        scale = side / max(h, w)
        return QtGui.QPixmap.fromImage(image.scaled(max(1, int(w * scale)), max(1, int(h * scale))))

    def _update_readers_path(self) -> None:
        path = QtGui.QPainterPath()
        if self.reader_mask is not None:
            pane = self.outp
            sub = self.reader_mask[pane.r0:pane.r0 + pane.rows, pane.c0:pane.c0 + pane.cols]
            for r, c in zip(*np.nonzero(sub)):
                path.addRect(pane.rect(int(r) + pane.r0, int(c) + pane.c0).adjusted(2, 2, -2, -2))
        self._readers_path = path

    # ---------------------------------------------------------------- rectangles for a person (and tests)
    def input_rect(self, y: int, x: int) -> QtCore.QRectF:
        """Where input position (y, x) is drawn (after moving the crop to it if needed)."""
        r, c = y - self.grid.y0, x - self.grid.x0
        if not self.inp.visible(r, c):
            self.inp.place(self.grid.values.shape, (r, r, c, c))
        return self.inp.rect(r, c)

    def output_rect(self, y: int, x: int) -> QtCore.QRectF:
        if not self.outp.visible(y, x):
            self.outp.place(self.out.shape, (y, y, x, x))
        return self.outp.rect(y, x)

    # ---------------------------------------------------------------- events
    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        if self.win is None:
            return
        at = self.inp.at(event.position())
        if at is None:
            if self.hover is not None:
                self.set_hover(None)
                self.left.emit()
            return
        r, c = at
        kind = int(self.grid.kind[r, c])
        position = (r + self.grid.y0, c + self.grid.x0)
        if kind == 2:
            position = None
        if position != self.hover:
            self.set_hover(position)
            if position is None:
                self.left.emit()
            else:
                self.hovered.emit(*position)

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        if self.hover is not None:
            self.set_hover(None)
            self.left.emit()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if self.win is None or event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        at = self.outp.at(event.position())
        if at is not None:
            self.cellClicked.emit(*at)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if self.win is None:
            p = QtGui.QPainter(self)
            p.fillRect(event.rect(), self.palette().color(QtGui.QPalette.ColorRole.Window))
            p.end()
            return
        p = QtGui.QPainter(self)
        win, g = self.win, self.grid
        pal = self.palette()
        fg = pal.color(QtGui.QPalette.ColorRole.WindowText)
        p.fillRect(event.rect(), pal.color(QtGui.QPalette.ColorRole.Window))
        ip, op = self.inp, self.outp
        p.setPen(fg)
        fm = self.fontMetrics()
        widths = ((max(60, self.width() - 8) if self.stacked else max(60, op.x - ip.x - 8)),
                  max(60, self.width() - op.x))
        key = (self._titles, widths)
        if self._elided[0] != key:
            self._elided = (key, tuple(fm.elidedText(t, QtCore.Qt.TextElideMode.ElideRight, wd)
                                       for t, wd in zip(self._titles, widths)))
        left_title, right_title = self._elided[1]
        p.drawText(QtCore.QRectF(ip.x, ip.y - fm.height() - 6, widths[0], fm.height() + 4),
                   QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter, left_title)
        p.drawText(QtCore.QRectF(op.x, op.y - fm.height() - 6, widths[1], fm.height() + 4),
                   QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter, right_title)
        self._blit(p, "in", ip)
        self._blit(p, "out", op)

        # the output cells not computed yet
        oy, ox = self.cell
        blank = pal.color(QtGui.QPalette.ColorRole.Base)
        blank.setAlpha(235)
        wo = win.out_shape[2]
        for r in range(op.r0, op.r0 + op.rows):
            first = ox + 1 if r == oy else 0 if r > oy else wo
            first = max(first, op.c0)
            last = op.c0 + op.cols
            if first < last:
                a = op.rect(r, first)
                p.fillRect(QtCore.QRectF(a.x(), a.y(), (last - first) * op.cell, op.cell), blank)

        # the window: each tap a cell (dilation leaves gaps), clipped positions dashed
        rows_pos, cols_pos = win.axis_positions(0)[oy], win.axis_positions(1)[ox]
        rows_tap, cols_tap = win.axis_taps(0)[oy], win.axis_taps(1)[ox]
        fill = QtGui.QColor(ORANGE)
        fill.setAlpha(90)
        tap_pen = QtGui.QPen(QtGui.QColor(ORANGE), 2)
        clip_pen = QtGui.QPen(QtGui.QColor(ORANGE), 1, QtCore.Qt.PenStyle.DashLine)
        for a, ry in enumerate(rows_pos):
            for b, cx in enumerate(cols_pos):
                r, c = int(ry) - g.y0, int(cx) - g.x0
                if not ip.visible(r, c):
                    continue
                rect = ip.rect(r, c).adjusted(1, 1, -1, -1)
                if rows_tap[a] and cols_tap[b]:
                    p.fillRect(rect, fill)
                    p.setPen(tap_pen)
                else:
                    p.setPen(clip_pen)
                p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
                p.drawRect(rect)
        span = QtCore.QRectF(ip.rect(int(rows_pos.min()) - g.y0, int(cols_pos.min()) - g.x0).topLeft(),
                             ip.rect(int(rows_pos.max()) - g.y0, int(cols_pos.max()) - g.x0).bottomRight())
        p.setPen(QtGui.QPen(QtGui.QColor(ORANGE), 1, QtCore.Qt.PenStyle.DotLine))
        p.drawRect(span.intersected(QtCore.QRectF(ip.x, ip.y, ip.cols * ip.cell, ip.rows * ip.cell)))
        if self.argmax is not None and ip.visible(self.argmax[0] - g.y0, self.argmax[1] - g.x0):
            p.setPen(QtGui.QPen(QtGui.QColor(VERMILION), 3))
            p.drawRect(ip.rect(self.argmax[0] - g.y0, self.argmax[1] - g.x0).adjusted(2, 2, -2, -2))
        if op.visible(oy, ox):
            p.setPen(QtGui.QPen(QtGui.QColor(VERMILION), 3))
            p.drawRect(op.rect(oy, ox).adjusted(1, 1, -1, -1))

        # the pointer's input cell and the output cells that read it
        if self.hover is not None:
            r, c = self.hover[0] - g.y0, self.hover[1] - g.x0
            if ip.visible(r, c):
                p.setPen(QtGui.QPen(QtGui.QColor(BLUE), 3))
                p.drawRect(ip.rect(r, c).adjusted(1, 1, -1, -1))
            p.setPen(QtGui.QPen(QtGui.QColor(BLUE), 3))
            p.drawPath(self._readers_path)

        if ip.cropped:  # the minimap: where the crop is in the whole padded input
            if self._mini is None:
                self._mini = self._minimap()
            if self.stacked:
                mx, my = ip.x + ip.cols * ip.cell + 12, ip.y
            else:
                mx, my = ip.x, ip.y + ip.rows * ip.cell + 8
            p.drawPixmap(mx, my, self._mini)
            sx = self._mini.width() / g.values.shape[1]
            sy = self._mini.height() / g.values.shape[0]
            p.setPen(QtGui.QPen(QtGui.QColor(VERMILION), 2))
            p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            p.drawRect(QtCore.QRectF(mx + ip.c0 * sx, my + ip.r0 * sy, max(2, ip.cols * sx), max(2, ip.rows * sy)))
            p.setPen(fg)
            tx, ty = (mx, my + self._mini.height() + 4) if self.stacked else (mx + self._mini.width() + 8, my)
            p.drawText(int(tx), int(ty + fm.ascent()),
                       f"crop: rows {ip.r0 + g.y0}..{ip.r0 + g.y0 + ip.rows - 1}, "
                       f"columns {ip.c0 + g.x0}..{ip.c0 + g.x0 + ip.cols - 1}")
        p.end()


class _Rows(Sequence):
    """The taps of an :class:`Arithmetic` as table rows, each formatted when it is read (the panel reads the
    visible ones only: a frame of a 4608-tap window formats 30)."""

    def __init__(self, arith: Arithmetic) -> None:
        self.arith = arith

    def __len__(self) -> int:
        return len(self.arith.taps)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a = self.arith
        t = a.taps[i]
        line = f"{t.channel:>3} {t.y:>3} {t.x:>3} {fmt(t.input, 5):>10}"
        if t.weight is not None:
            line += f" {fmt(t.weight, 5):>10} {fmt(t.product, 5):>10}"
        if a.argmax == (i if i >= 0 else len(self) + i):
            line += " ← max"
        if t.padding:
            line += " (pad)"
        return line


class TapsPanel(QtWidgets.QAbstractScrollArea):
    """The taps of the current output cell, a monospace row each, and the sum under them; only the visible
    rows are painted (a frame of the animation redraws this panel, so it must be cheap)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.header = ""
        self.lines: Sequence[str] = []     # a sequence that formats its rows when they are read (see _Rows)
        self.marks: dict[int, str] = {}    # row → colour (the max)
        self.footer: list[str] = []
        self.set_columns(46)
        self.viewport().setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.verticalScrollBar().valueChanged.connect(lambda _v: self.viewport().update())
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self.viewport().update())

    def set_columns(self, chars: int) -> None:
        """Asks to be as wide as ``chars`` monospace characters (a pool's rows are shorter than a convolution's);
        in a narrow window it gets less and scrolls sideways."""
        self._hint_width = self.fontMetrics().horizontalAdvance("M" * chars) + 24
        self.updateGeometry()

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self._hint_width, 240)

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(min(self._hint_width, self.fontMetrics().horizontalAdvance("M" * 22) + 24), 80)

    def set_rows(self, header: str, lines: Sequence[str], footer: list[str], marks: dict[int, str]) -> None:
        self.header, self.lines, self.footer, self.marks = header, lines, footer, marks
        self._ranges()
        self.viewport().update()

    def text(self) -> str:
        return "\n".join([self.header, *self.lines, "", *self.footer])

    def _row_h(self) -> int:
        return self.fontMetrics().height()

    def _body_rows(self) -> int:
        return max(1, (self.viewport().height() - (len(self.footer) + 2) * self._row_h() - 6) // self._row_h())

    def _ranges(self) -> None:
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, len(self.lines) - self._body_rows()))
        bar.setPageStep(self._body_rows())
        longest = max([len(self.header) + 12, *(len(t) for t in self.footer)])
        width = self.fontMetrics().horizontalAdvance("M") * longest
        self.horizontalScrollBar().setRange(0, max(0, width + 8 - self.viewport().width()))
        self.horizontalScrollBar().setPageStep(self.viewport().width())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._ranges()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        p = QtGui.QPainter(self.viewport())
        pal = self.palette()
        p.fillRect(self.viewport().rect(), pal.color(QtGui.QPalette.ColorRole.Base))
        fg = pal.color(QtGui.QPalette.ColorRole.Text)
        h = self._row_h()
        x = 4 - self.horizontalScrollBar().value()
        ascent = self.fontMetrics().ascent()
        font = p.font()
        bold = QtGui.QFont(font)
        bold.setBold(True)
        p.setFont(bold)
        p.setPen(fg)
        p.drawText(x, 2 + ascent, self.header)
        p.setFont(font)
        first = self.verticalScrollBar().value()
        last = min(len(self.lines), first + self._body_rows())
        width = self.viewport().width() + self.horizontalScrollBar().value()
        flags = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
        rows = [self.lines[i] for i in range(first, last)]
        for i in self.marks:   # a marked row is drawn in its colour, the others in one call
            if first <= i < last:
                rows[i - first] = ""
        p.setPen(fg)
        p.drawText(QtCore.QRectF(x, 2 + h, width, h * len(rows) + 2), flags, "\n".join(rows))
        for i, colour in self.marks.items():
            if first <= i < last:
                p.setPen(QtGui.QColor(colour))
                p.drawText(QtCore.QRectF(x, 2 + h + (i - first) * h, width, h + 2), flags, self.lines[i])
        y = self.viewport().height() - len(self.footer) * h - 4
        p.setPen(pal.color(QtGui.QPalette.ColorRole.Mid))
        p.drawLine(0, y - 3, self.viewport().width(), y - 3)
        p.setPen(fg)
        p.setFont(bold)
        p.drawText(QtCore.QRectF(x, y, width, h * len(self.footer) + 2), flags, "\n".join(self.footer))
        p.end()


class ConvLabView(ViewPanel):
    """The convolution lab for one Conv2d, MaxPool2d or AvgPool2d layer and one sample.

    Data API (GUI thread):

    - ``set_layer(layer_type, resolved, x, out, weight=None, bias=None, *, formula=(), title="")``:
      ``resolved`` the layer's keywords as shape inference resolved them, ``x`` the (C, H, W) input the layer
      receives, ``out`` its (C_out, H_out, W_out) output from torch's forward pass, ``weight``/``bias`` a
      Conv2d's (``bias`` None without one), ``formula`` the report's output-size lines. The current cell and
      channel are kept when the geometry is the same (a new probe while training).
    - ``clear(message)``.
    - Animation: ``play()``, ``pause()``, ``step_forward()``, ``set_step(n)``, ``set_speed(cells_per_s)``,
      ``set_out_channel(c)``, ``set_in_channel(c)``, ``jump_to(y, x)``.

    Read back: ``arithmetic`` (the :class:`Arithmetic` shown), ``torch_value``, ``cell``, ``step``,
    ``window``, ``canvas`` (``input_rect``/``output_rect`` give where a cell is drawn).
    """

    EMPTY_HINT = "Select a Conv2d, MaxPool2d or AvgPool2d layer to see its window slide over its input"
    stepChanged = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.window: Window | None = None
        self.arithmetic: Arithmetic | None = None
        self.torch_value: float | None = None
        self.sum_text = ""
        self.step = 0
        self.out_channel = 0
        self.in_channel = 0
        self._type = ""
        self._params: dict[str, Any] = {}
        self._x: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._key: tuple | None = None
        self._speed = 4
        self._pending: tuple | None = None
        self._frame = 0
        self._numbers_behind = False

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(3)
        head = QtWidgets.QHBoxLayout()
        head.setSpacing(4)
        self._title = title_label(content)
        head.addWidget(self._title, 1)
        outer.addLayout(head)

        bar = QtWidgets.QHBoxLayout()
        bar.setSpacing(4)
        self.play_button = QtWidgets.QPushButton("Play", content)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Slide the window over the input, one output cell after another")
        self.play_button.toggled.connect(self._play_toggled)
        self.step_button = QtWidgets.QPushButton("Step", content)
        self.step_button.setToolTip("The next output cell")
        self.step_button.clicked.connect(self.step_forward)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, content)
        self.slider.setToolTip("Scrub: the output cell shown, row by row")
        self.slider.valueChanged.connect(self.set_step)
        self.speed_box = QtWidgets.QComboBox(content)
        for s in SPEEDS:
            self.speed_box.addItem(f"{s} cells/s", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(self._speed))
        self.speed_box.setToolTip("How fast the window moves while playing")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        self.out_box = QtWidgets.QSpinBox(content)
        self.out_box.setPrefix("out channel ")
        self.out_box.valueChanged.connect(self.set_out_channel)
        self.in_box = QtWidgets.QComboBox(content)
        self.in_box.setToolTip("The input channel drawn (the taps of every input channel the output reads are listed)")
        self.in_box.currentIndexChanged.connect(self._in_chosen)
        for w in (self.play_button, self.step_button):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.speed_box)
        head.addWidget(self.out_box)   # the channels beside the title, so that neither row is wide
        head.addWidget(self.in_box)
        outer.addLayout(bar)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, content)
        left = QtWidgets.QWidget(split)
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.canvas = LabCanvas(left)
        self.canvas.cellClicked.connect(self.jump_to)
        self.canvas.hovered.connect(self._hovered)
        self.canvas.left.connect(lambda: self.hover_label.setText(self._hover_hint()))
        lv.addWidget(self.canvas, 1)
        self.hover_label = status_label(left)
        lv.addWidget(self.hover_label)
        # the output-size formula and the special cases: beside the animation, scrolling in a small window
        texts = QtWidgets.QScrollArea(left)
        texts.setWidgetResizable(True)
        texts.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        texts.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QtWidgets.QWidget(texts)
        tv = QtWidgets.QVBoxLayout(inner)
        tv.setContentsMargins(0, 0, 0, 0)
        self.formula_label = _plain(QtWidgets.QLabel(inner))
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        tv.addWidget(self.formula_label)
        self.notes_label = _plain(QtWidgets.QLabel(inner))
        self.notes_label.setWordWrap(True)
        tv.addWidget(self.notes_label)
        tv.addStretch(1)
        texts.setWidget(inner)
        texts.setMaximumHeight(self.fontMetrics().lineSpacing() * 7 + 8)
        texts.setMinimumHeight(self.fontMetrics().lineSpacing() * 2 + 4)
        lv.addWidget(texts)

        right = QtWidgets.QWidget(split)
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.cell_label = _plain(QtWidgets.QLabel(right))
        font = self.cell_label.font()
        font.setBold(True)
        self.cell_label.setFont(font)
        self.cell_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        rv.addWidget(self.cell_label)
        self.taps_panel = TapsPanel(right)
        rv.addWidget(self.taps_panel, 1)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)   # the numbers as wide as they need, the grids the rest
        split.setChildrenCollapsible(False)
        outer.addWidget(split, 1)
        self._set_content(content)

        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)

    # ================================================================ data
    def set_layer(self, layer_type: str, resolved: Mapping[str, Any], x: np.ndarray | None, out: np.ndarray | None,
                  weight: np.ndarray | None = None, bias: np.ndarray | None = None, *,
                  formula: Sequence[str] = (), title: str = "", has_bias: bool | None = None) -> None:
        """Show the layer (see the class's docstring); a clear message instead of anything that cannot work."""
        if not self.isVisible():  # drawn when the tab is shown: a probe while training costs nothing here
            self._pending = (layer_type, resolved, x, out, weight, bias, tuple(formula), title, has_bias)
            return
        self._pending = None
        self._apply(layer_type, resolved, x, out, weight, bias, tuple(formula), title, has_bias)

    def flush(self) -> None:
        """Apply a layer set while hidden."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._apply(*pending)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self.flush()

    def clear(self, message: str | None = None) -> None:
        self.pause()
        self._pending = None
        self._key = None
        self.window = None
        self.arithmetic = None
        super().clear(message)

    def _apply(self, layer_type, resolved, x, out, weight, bias, formula, title, has_bias) -> None:
        if layer_type not in SPATIAL:
            self.clear(f"{title or layer_type} has no sliding window: select a Conv2d, MaxPool2d or AvgPool2d "
                       f"layer (a Linear's arithmetic is in the Dense lab)")
            return
        if x is None or out is None or np.ndim(x) != 3 or np.ndim(out) != 3:
            self.clear(f"{title or layer_type}: no input or output for this sample yet (run a forward pass)")
            return
        if layer_type == "Conv2d" and weight is None:
            self.clear(f"{title or layer_type}: reading the weights…")
            return
        try:
            win = window_of(layer_type, resolved, np.shape(x))
        except (LabError, KeyError, ValueError, TypeError) as exc:
            self.clear(f"{title or layer_type}: {exc}")
            return
        if tuple(win.out_shape) != tuple(np.shape(out)):
            self.clear(f"{title or layer_type}: the output torch gave ({'×'.join(map(str, np.shape(out)))}) is not "
                       f"the one the keywords give ({'×'.join(map(str, win.out_shape))}); the stack changed")
            return
        if layer_type == "Conv2d":
            want = (win.out_shape[0], win.in_shape[0] // max(1, win.groups), *win.kernel)
            if tuple(np.shape(weight)) != want:
                self.clear(f"{title or layer_type}: weights {'×'.join(map(str, np.shape(weight)))} do not fit "
                           f"(expected {'×'.join(map(str, want))})")
                return
            if bias is None and (has_bias if has_bias is not None else bool(resolved.get("bias", True))):
                self.clear(f"{title or layer_type}: reading the bias…")
                return
        if steps_of(win) == 0:
            self.clear(f"{title or layer_type}: the output has no cells")
            return
        key = (layer_type, tuple(sorted((k, str(v)) for k, v in resolved.items())), np.shape(x))
        same = key == self._key
        self._key = key
        self._type, self._params = layer_type, dict(resolved)
        self._x, self._out = np.asarray(x, dtype=np.float32), np.asarray(out, dtype=np.float32)
        self._weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        self._bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.window = win
        self._title.setText(title)
        self.taps_panel.set_columns(46 if layer_type == "Conv2d" else 36)
        if not same:
            self.step, self.out_channel = 0, 0
        n = steps_of(win)
        self.step = min(self.step, n - 1)
        self.out_channel = min(self.out_channel, win.out_shape[0] - 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(self.step)
        self.slider.blockSignals(False)
        self.out_box.blockSignals(True)
        self.out_box.setRange(0, win.out_shape[0] - 1)
        self.out_box.setValue(self.out_channel)
        self.out_box.blockSignals(False)
        self.formula_label.setText("\n".join(formula) if formula else "")
        self._fill_in_channels(keep=same)
        self._show_content()
        self._set_grids()
        self._show_cell()

    def _fill_in_channels(self, keep: bool) -> None:
        chans = list(self.window.in_channels_of(self.out_channel))
        if not keep or self.in_channel not in chans:
            self.in_channel = chans[0]
        self.in_box.blockSignals(True)
        self.in_box.clear()
        for c in chans:
            self.in_box.addItem(f"input channel {c}", c)
        self.in_box.setCurrentIndex(chans.index(self.in_channel))
        self.in_box.setVisible(self.window.type == "Conv2d" and len(chans) > 1)
        self.in_box.blockSignals(False)
        self.notes_label.setText(self._notes())

    def _set_grids(self) -> None:
        win = self.window
        grid = padded_channel(win, self._x[self.in_channel])
        _c, h, w = win.in_shape
        pad = win.padding
        padded = "" if not any(pad.values()) else (
            f", padding {pad['top']}/{pad['bottom']} rows, {pad['left']}/{pad['right']} columns"
            + ("" if win.padding_mode in ("zeros", "-inf") else f" ({win.padding_mode})"))
        self.canvas.set_data(win, grid, self._out[self.out_channel],
                             (f"input channel {self.in_channel} · {h}×{w}{padded}",
                              f"output channel {self.out_channel} · {win.out_shape[1]}×{win.out_shape[2]}"))
        self.hover_label.setText(self._hover_hint())

    def _hover_hint(self) -> str:
        return "Point at an input cell: the output cells that read it. Click an output cell: jump there."

    def _notes(self) -> str:
        win = self.window
        notes = []
        span = tuple(win.dilation[a] * (win.kernel[a] - 1) + 1 for a in range(2))
        if win.dilation != (1, 1):
            notes.append(f"dilation {win.dilation[0]}×{win.dilation[1]}: the {win.kernel[0]}×{win.kernel[1]} kernel "
                         f"covers {span[0]}×{span[1]}, with gaps between its taps")
        if win.pad_before != win.pad_after:
            notes.append(f"padding='same' with an even span: torch pads {win.pad_before[0]} row(s) on top and "
                         f"{win.pad_after[0]} below, {win.pad_before[1]} column(s) left and {win.pad_after[1]} right "
                         f"(the extra one goes after)")
        if win.ceil_mode:
            for a, name in ((0, "rows"), (1, "columns")):
                size = win.in_shape[1 + a]
                floor_n = (size + 2 * win.pad_before[a] - span[a]) // win.stride[a] + 1
                n = win.out_shape[1 + a]
                if n > floor_n:
                    start = (n - 1) * win.stride[a] - win.pad_before[a]
                    notes.append(f"ceil_mode along the {name}: {n} windows, not {floor_n}; the extra one starts at "
                                 f"{start}, inside the input or its left padding as torch requires, and is clipped "
                                 f"at the end of the padding (crossed cells are not read)")
                elif n < (size + 2 * win.pad_before[a] - span[a] + win.stride[a] - 1) // win.stride[a] + 1:
                    notes.append(f"ceil_mode along the {name}: the last window would start in the right padding, "
                                 f"so torch drops it ({n} windows)")
        unread = int(win.unread().sum())
        if unread:
            notes.append(f"{unread} input pixel(s) no window reaches (shaded): the stride does not divide")
        if win.type == "Conv2d" and win.groups > 1:
            chans = win.in_channels_of(self.out_channel)
            notes.append(f"groups={win.groups}: output channel {self.out_channel} reads input channels "
                         f"{chans.start}..{chans.stop - 1} only")
        if win.type == "MaxPool2d" and any(win.pad_before):
            notes.append("MaxPool2d pads with −∞: padding never wins")
        if win.type == "AvgPool2d":
            if win.divisor_override is not None:
                notes.append(f"divisor_override={win.divisor_override}: every window divides by it")
            elif not win.count_include_pad:
                notes.append("count_include_pad=False: a window divides by its real pixels only")
        return "\n".join(notes)

    # ================================================================ the current cell
    def _show_cell(self, full: bool = True) -> None:
        """Show the current cell. ``full=False`` (a fast animation's in-between frames): the window and the
        output grid only; the numbers, which nobody reads at 30 cells a second, follow at 10 a second and
        whenever the animation stops."""
        win = self.window
        oy, ox = cell_of(win, self.step)
        at = (self.out_channel, oy, ox)
        self._numbers_behind = not full
        if not full and self._type == "Conv2d":
            self.canvas.set_cell(self.step, None)
            self._sync_slider()
            self.stepChanged.emit(self.step)
            return
        try:
            arith = taps_of(self._type, self._params, self._x, at, weight=self._weight, bias=self._bias)
        except (LabError, ValueError, IndexError) as exc:
            self.clear(f"{self._title.text()}: {exc}")
            return
        self.arithmetic = arith
        self.torch_value = float(self._out[at])
        argmax = None
        if arith.argmax is not None:
            t = arith.taps[arith.argmax]
            argmax = (t.y, t.x) if t.channel == self.in_channel else None
        self.canvas.set_cell(self.step, argmax)
        if full:
            self.cell_label.setText(f"output [{self.out_channel}, {oy}, {ox}] · cell {self.step + 1} of {steps_of(win)}")
            self.sum_text = self._sum_text(arith)
            header, lines, marks = self._rows(arith)
            self.taps_panel.set_rows(header, lines, self.sum_text.split("\n"), marks)
        self._sync_slider()
        self.stepChanged.emit(self.step)

    def _sync_slider(self) -> None:
        if self.slider.value() != self.step:
            self.slider.blockSignals(True)
            self.slider.setValue(self.step)
            self.slider.blockSignals(False)

    @staticmethod
    def _rows(a: Arithmetic) -> tuple[str, _Rows, dict[int, str]]:
        conv = a.type == "Conv2d"
        header = f"{'ch':>3} {'y':>3} {'x':>3} {'input':>10}" + (f" {'weight':>10} {'product':>10}" if conv else "")
        marks = {a.argmax: VERMILION} if a.argmax is not None else {}
        return header, _Rows(a), marks

    def _sum_text(self, a: Arithmetic) -> str:
        lines = []
        if a.type == "Conv2d":
            lines.append(f"sum of {len(a.taps)} products".ljust(22) + fmt(a.total))
            lines.append("bias".ljust(22) + (fmt(a.bias) if a.has_bias else "(bias=False)"))
            lines.append("value = sum + bias".ljust(22) + fmt(a.value))
        elif a.type == "MaxPool2d":
            lines.append(f"max of {len(a.taps)} inputs".ljust(22) + fmt(a.value))
            if a.argmax is not None:
                t = a.taps[a.argmax]
                lines.append(f"at channel {t.channel}, y {t.y}, x {t.x}")
                lines.append("return_indices gives".ljust(22) + str(a.return_index) + f"  (= {t.y}·W + {t.x})")
            else:
                lines.append(f"every tap is padding: −∞ (return_indices gives {a.return_index})")
        else:
            lines.append(f"sum of {len(a.taps)} inputs".ljust(22) + fmt(a.total))
            lines.append("divisor".ljust(22) + f"{a.divisor}  ({self._divisor_why()})")
            lines.append(f"value = sum / {a.divisor}".ljust(22) + fmt(a.value))
        lines.append("torch's value".ljust(22) + fmt(self.torch_value))
        diff = abs(float(self.torch_value) - float(a.value)) if math.isfinite(a.value) else float("nan")
        if math.isnan(diff):
            same = (a.value == self.torch_value) or (math.isnan(a.value) and math.isnan(self.torch_value))
            lines.append("difference".ljust(22) + ("none (the same infinity)" if same else "not comparable (nan or inf)"))
        else:
            ok = diff <= TOLERANCE * max(1.0, abs(float(self.torch_value)))
            lines.append("difference".ljust(22) + f"{diff:.1e}" + (" ✓ float32" if ok else " ✗ differ"))
        return "\n".join(lines)

    def _divisor_why(self) -> str:
        win = self.window
        if win.divisor_override is not None:
            return "divisor_override"
        return "taps incl. padding" if win.count_include_pad else "real pixels only"

    # ================================================================ controls
    def set_step(self, step: int) -> None:
        if self.window is None:
            return
        step = int(min(max(step, 0), steps_of(self.window) - 1))
        if step == self.step and self.arithmetic is not None:
            return
        self.step = step
        self._show_cell()

    def step_forward(self) -> None:
        if self.window is None:
            return
        self.set_step((self.step + 1) % steps_of(self.window))

    def jump_to(self, y: int, x: int) -> None:
        if self.window is None:
            return
        self.set_step(int(y) * self.window.out_shape[2] + int(x))

    def set_out_channel(self, channel: int) -> None:
        if self.window is None or not 0 <= channel < self.window.out_shape[0]:
            return
        if channel != self.out_channel:
            self.out_channel = int(channel)
            if self.out_box.value() != channel:
                self.out_box.blockSignals(True)
                self.out_box.setValue(channel)
                self.out_box.blockSignals(False)
            self._fill_in_channels(keep=True)
            self._set_grids()
            self._show_cell()

    def set_in_channel(self, channel: int) -> None:
        if self.window is None or channel not in self.window.in_channels_of(self.out_channel):
            return
        if channel != self.in_channel:
            self.in_channel = int(channel)
            i = self.in_box.findData(channel)
            if i >= 0 and self.in_box.currentIndex() != i:
                self.in_box.blockSignals(True)
                self.in_box.setCurrentIndex(i)
                self.in_box.blockSignals(False)
            self._set_grids()
            self._show_cell()

    def _in_chosen(self, i: int) -> None:
        data = self.in_box.itemData(i)
        if data is not None:
            self.set_in_channel(int(data))

    def set_speed(self, cells_per_s: float) -> None:
        self._speed = max(0.1, float(cells_per_s))
        if self.timer.isActive():
            self.timer.start(self._interval())

    def _interval(self) -> int:
        return int(max(FRAME_MS, 1000 / self._speed))

    def _tick(self) -> None:
        if self.window is None:
            self.pause()
            return
        per_tick = max(1, round(self._speed * self._interval() / 1000))
        self._frame += 1
        self.step = (self.step + per_tick) % steps_of(self.window)
        self._show_cell(full=self._speed <= NUMBERS_HZ or self._frame % round(1000 / FRAME_MS / NUMBERS_HZ) == 0)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def play(self) -> None:
        if self.window is None:
            return
        if not self.play_button.isChecked():
            self.play_button.setChecked(True)  # → _play_toggled
        elif not self.timer.isActive():
            self.timer.start(self._interval())

    def pause(self) -> None:
        self.timer.stop()
        if self._numbers_behind and self.window is not None:
            self._show_cell()
        if self.play_button.isChecked():
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
        self.play_button.setText("Play")

    def _play_toggled(self, on: bool) -> None:
        if on and self.window is not None:
            self.timer.start(self._interval())
            self.play_button.setText("Pause")
        else:
            self.pause()

    def hideEvent(self, event: QtGui.QHideEvent) -> None:
        super().hideEvent(event)
        self.pause()  # no frames for a tab nobody sees

    # ================================================================ hover
    def _hovered(self, y: int, x: int) -> None:
        mask = self.canvas.reader_mask
        n = int(mask.sum()) if mask is not None else 0
        h, w = self.window.in_shape[1:]
        where = f"input ({y}, {x})" if 0 <= y < h and 0 <= x < w else f"padding at ({y}, {x})"
        g = self.canvas.grid
        v = float(g.values[y - g.y0, x - g.x0])
        cells = ", ".join(f"({r}, {c})" for r, c in list(zip(*np.nonzero(mask)))[:8]) if n else ""
        more = f" and {n - 8} more" if n > 8 else ""
        self.hover_label.setText(f"{where} = {fmt(v)}: read by {n} output cell{'s' if n != 1 else ''}"
                                 + (f": {cells}{more}" if n else ""))
        self.hover_label.setToolTip(tooltip(self.hover_label.text()))
