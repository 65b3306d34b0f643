"""The convolution lab's grids: the input (padding drawn), the window moving over it and the output filling in.

:class:`LabCanvas` paints cached pixmaps of the grids with the window's few rectangles over them; an input too
big to draw cell by cell is a crop around the window with a minimap. Part of :mod:`.conv_lab`.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import BLUE, ORANGE, SEQUENTIAL, VERMILION, lut
from cnnviz.app.views.lab_steps import Grid, cell_of, readers
from cnnviz.core.lab.taps import Window

MAX_CELLS = 32      # a grid with more cells per axis than this is drawn as a crop around the window
CROP_CELLS = 20     # the crop's cells per axis
MAX_CELL_PX = 44


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
