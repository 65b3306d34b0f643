"""A convolution's weights as one mosaic: a row per output channel (filter), a column per input channel."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    DIVERGING,
    ViewPanel,
    colormap,
    gap_path,
    graphics_widget,
    label_style,
    lut,
    make_throttler,
    palette_colors,
    status_label,
    style_axes,
    tile_overlays,
    title_label,
)
from cnnviz.app.views.levels import compute_levels, fmt_value, round_levels
from cnnviz.app.views.mosaic import best_columns, mosaic, tile_at

MAX_SHOWN = 64


def _ticks(count: int, size: int, gap: int, limit: int = 16) -> list[tuple[float, str]]:
    """Channel numbers at tile centres, thinned to about ``limit`` labels."""
    every = max(1, math.ceil(count / limit))
    return [(i * (size + gap) + size / 2, str(i)) for i in range(0, count, every)]


class FilterView(ViewPanel):
    """The filters of a Conv2d layer, centred at 0 on a diverging colour map.

    Data API (GUI thread):

    - ``set_weights(weights, title="")``: a Conv2d weight of shape
      (out_channels, in_channels / groups, kh, kw): row ``o``, column ``i`` is the
      kernel that output channel ``o`` applies to input channel ``i`` of its group.
      At most ``max_shown`` rows and columns are drawn, with a note saying so.
      A 2-D weight (Linear) is drawn as one (out, in) matrix.
    - ``clear(message)``.

    Hovering reads the output channel, input channel, kernel position and weight.

    A layer with one input channel (the first Conv2d of a greyscale network) has a single column of
    filters; they are wrapped row by row into the grid that draws them largest in the panel, so a
    wide panel is filled rather than holding a thin strip.
    """

    EMPTY_HINT = "Select a Conv2d layer to see its filters"

    def __init__(self, parent: QtWidgets.QWidget | None = None, max_shown: int = MAX_SHOWN, gap: int = 1) -> None:
        super().__init__(parent)
        self.max_shown = max_shown
        self._gap = gap
        self._weights: np.ndarray | None = None
        self._shown: np.ndarray | None = None
        self._title = ""
        self._levels = (-1.0, 1.0)
        self._grid = (1, 1)
        self._tile = (1, 1)
        self._matrix = False
        self._hover: tuple | None = None
        self._image_shape: tuple[int, ...] | None = None
        self._shown_gap: int | None = None
        self._wrapped = False
        self._wrap_key: tuple | None = None
        self._wrap_cols = 1

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        self._title_label = title_label(content)
        outer.addWidget(self._title_label)
        self.note = QtWidgets.QLabel(content)
        self.note.setWordWrap(True)
        outer.addWidget(self.note)
        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(160, 120)
        outer.addWidget(self.graphics, 1)
        self.status = status_label(content)
        outer.addWidget(self.status)
        self._set_content(content)

        self.plot = pg.PlotItem(enableMenu=False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        style_axes(self.plot, self, axes=("left", "top"))
        self.plot.hideAxis("bottom")
        style = label_style(self)
        self.plot.setLabel("left", "output channel", **style)
        self.plot.setLabel("top", "input channel", **style)
        self.graphics.addItem(self.plot, row=0, col=0)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setLookupTable(lut(DIVERGING), update=False)
        self.plot.addItem(self.image_item)
        self._gaps, self._highlight = tile_overlays(self.plot, "#000000")

        _, fg = palette_colors(self)
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=colormap(DIVERGING), interactive=False,
                                        width=14, colorMapMenu=False)
        for side in ("left", "right", "top", "bottom"):
            self.colorbar.getAxis(side).setPen(pg.mkPen(fg))
        self.colorbar.getAxis("right").setTextPen(pg.mkPen(fg))
        self.colorbar.getAxis("right").setTickFont(QtGui.QFont(self.font()))
        self.graphics.addItem(self.colorbar, row=0, col=1)

        self._throttle = make_throttler(self, self._render)
        self.plot.getViewBox().sigResized.connect(self._on_resized)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.status.setText("Point at a kernel to read its weights")

    # ------------------------------------------------------------ API
    def set_weights(self, weights: np.ndarray, title: str = "") -> None:
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim == 2:
            self._matrix = True
            w4 = w[None, None]
        elif w.ndim == 4:
            self._matrix = False
            w4 = w
        else:
            raise ValueError(f"filters must be (out, in, kh, kw) or (out, in), not {w.shape}")
        self._weights = w
        self._title = title
        n_out, n_in = w4.shape[:2]
        shown = w4 if self._matrix else w4[: self.max_shown, : self.max_shown]
        self._shown = np.ascontiguousarray(shown)
        notes = []
        if self._matrix:
            notes.append(f"{w.shape[0]} outputs × {w.shape[1]} inputs: one row per output feature")
        else:
            kh, kw = w4.shape[2:]
            if n_in == 1 and n_out > 1:
                notes.append(f"{n_out} filters of 1×{kh}×{kw} (one input channel), left to right, row by row")
            else:
                notes.append(f"{n_out} filters of {n_in}×{kh}×{kw}: a row per output channel, "
                             f"a column per input channel")
            if n_out > self.max_shown or n_in > self.max_shown:
                notes.append(f"showing the first {min(n_out, self.max_shown)} of {n_out} output and "
                             f"{min(n_in, self.max_shown)} of {n_in} input channels")
        self.note.setText("; ".join(notes))
        self._show_content()
        self._throttle.throttle()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._weights = None
        self._shown = None
        self._image_shape = None
        self.image_item.clear()
        self._hover = None
        self._highlight.hide()
        super().clear(message)

    @property
    def weights(self) -> np.ndarray | None:
        return self._weights

    @property
    def shown_channels(self) -> tuple[int, int]:
        """(output, input) channels drawn."""
        if self._shown is None:
            return 0, 0
        return self._shown.shape[0], self._shown.shape[1]

    @property
    def levels(self) -> tuple[float, float]:
        return self._levels

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def hover_info(self) -> tuple | None:
        """(out, in, ky, kx, value) for kernels, (out, in, value) for a matrix, or None."""
        return self._hover

    # ------------------------------------------------------------ drawing
    def _render(self) -> None:
        shown = self._shown
        if shown is None:
            return
        n_out, n_in, kh, kw = shown.shape
        if self._matrix:
            image, gap = shown[0, 0], 0
            grid, tile = (1, 1), image.shape
        else:
            gap = self._gap
            self._wrapped = n_in == 1 and n_out > 1
            cols = self._wrap_columns(n_out, kh, kw, gap) if self._wrapped else n_in
            image, grid = mosaic(shown.reshape(n_out * n_in, kh, kw), gap, cols=cols, fill=0.0)
            tile = (kh, kw)
        (lo, hi), _ = compute_levels(shown, "symmetric")
        self._levels = round_levels((lo, hi), True)
        self.image_item.setImage(image, levels=self._levels, autoLevels=False)
        self.colorbar.setLevels(values=self._levels)
        layout = (image.shape, grid, tile, gap)
        if layout != (self._image_shape, self._grid, self._tile, self._shown_gap):
            self._image_shape, self._grid, self._tile, self._shown_gap = image.shape, grid, tile, gap
            self._gaps.setPath(gap_path(tile, grid, gap, grid[0] * grid[1], frame=1))
            self.plot.setRange(QtCore.QRectF(-1, -1, image.shape[1] + 2, image.shape[0] + 2), padding=0)
            if self._matrix:
                self.plot.getAxis("left").setTicks(None)
                self.plot.getAxis("top").setTicks(None)
                self.plot.setLabel("left", "output feature", **label_style(self))
                self.plot.setLabel("top", "input feature", **label_style(self))
            elif self._wrapped:  # filter r·cols + c at row r, column c
                rows, cols = grid
                self.plot.getAxis("left").setTicks([[(t, str(int(label) * cols)) for t, label in
                                                     _ticks(rows, kh, gap)]])
                self.plot.getAxis("top").setTicks([[(t, f"+{label}") for t, label in _ticks(cols, kw, gap)]])
                self.plot.setLabel("left", "filter (first of the row)", **label_style(self))
                self.plot.setLabel("top", "the one input channel: filter + column", **label_style(self))
            else:
                self.plot.getAxis("left").setTicks([_ticks(n_out, kh, gap)])
                self.plot.getAxis("top").setTicks([_ticks(n_in, kw, gap)])
                self.plot.setLabel("left", "output channel", **label_style(self))
                self.plot.setLabel("top", "input channel", **label_style(self))
        if self._title_label.text() != self._title:
            self._title_label.setText(self._title)

    def _wrap_columns(self, n: int, kh: int, kw: int, gap: int) -> int:
        """The columns that draw ``n`` kernels largest in the plot's area (kept while the area is the same)."""
        size = self.plot.getViewBox().size()
        area = (size.height(), size.width())
        if area[0] < 8 or area[1] < 8:
            area = (3.0, 4.0)
        key = (n, kh, kw, gap, round(area[0]), round(area[1]))
        if key != self._wrap_key:
            self._wrap_key = key
            self._wrap_cols = best_columns(n, (kh, kw), area, gap)
        return self._wrap_cols

    def _on_resized(self, *_) -> None:
        if self._shown is None or not self._wrapped:
            return
        n_out, _n_in, kh, kw = self._shown.shape
        if self._wrap_columns(n_out, kh, kw, self._gap) != self._grid[1]:
            self._throttle.throttle()

    # ------------------------------------------------------------ pointer
    def _on_mouse_moved(self, pos: QtCore.QPointF) -> None:
        info = None
        vb = self.plot.getViewBox()
        if self._shown is not None and vb.sceneBoundingRect().contains(pos):
            p = vb.mapSceneToView(pos)
            info = self._read(p.x(), p.y())
        if info == self._hover:
            return
        self._hover = info
        if info is None:
            self._highlight.hide()
            self.status.setText("Point at a kernel to read its weights")
            return
        if self._matrix:
            o, i, v = info
            self.status.setText(f"output {o}  ·  input {i}  ·  weight {fmt_value(v)}")
            self._highlight.hide()
            return
        o, i, ky, kx, v = info
        self.status.setText(f"filter {o}  ·  input channel {i}  ·  ky {ky}, kx {kx}  ·  weight {fmt_value(v)}")
        kh, kw = self._tile
        row, col = divmod(o * self._shown.shape[1] + i, self._grid[1])
        self._highlight.setRect(QtCore.QRectF(col * (kw + self._gap), row * (kh + self._gap), kw, kh))
        self._highlight.show()

    def _read(self, x: float, y: float) -> tuple | None:
        assert self._shown is not None
        n_out, n_in, kh, kw = self._shown.shape
        if self._matrix:
            m = self._shown[0, 0]
            xi, yi = int(math.floor(x)), int(math.floor(y))
            if 0 <= yi < m.shape[0] and 0 <= xi < m.shape[1]:
                return yi, xi, float(m[yi, xi])
            return None
        hit = tile_at(x, y, (kh, kw), self._grid, self._gap, n_out * n_in)
        if hit is None:
            return None
        tile, ky, kx = hit
        o, i = divmod(tile, n_in)
        return o, i, ky, kx, float(self._shown[o, i, ky, kx])
