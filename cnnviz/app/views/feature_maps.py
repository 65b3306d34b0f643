"""Every channel of one layer's activation as a single mosaic image, beside the input image.

One ``ImageItem`` shows all channels (tiles with 1-pixel gaps, grid fitted to
the widget's shape) so a training step costs one texture upload, not one per
channel. Levels are shared by all channels and computed here from the data,
rounded outward to a step and kept while the data still fits them, so colours
stay steady while training.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    DIVERGING,
    MAP_BACKGROUND,
    SEQUENTIAL,
    ViewPanel,
    colormap,
    gap_path,
    graphics_widget,
    lut,
    make_throttler,
    palette_colors,
    status_label,
    tile_overlays,
    title_label,
)
from cnnviz.app.views.levels import compute_levels, fmt_value, round_levels
from cnnviz.app.views.mosaic import as_maps, best_columns, mosaic, tile_at, tile_origin

KEEP_LEVELS_SHARE = 0.6   # new data spanning at least this share of the current levels keeps them
LEVEL_MODES = (("auto", "auto"), ("symmetric", "± max |value|"), ("minmax", "min – max"))


class FeatureMapView(ViewPanel):
    """A layer's activation maps for one sample, as one mosaic, with the input image beside them.

    Data API (call on the GUI thread; arrays are kept by reference, not copied):

    - ``set_input(image)``: the sample, (C, H, W) with C of 1 or 3, or (H, W); None hides it.
    - ``set_maps(maps, title="", levels=None)``: (C, H, W) maps; a vector (after Flatten or
      Linear) is drawn as a strip of 1×1 cells; 2-D is one map. ``levels``: ``"auto"``
      (symmetric about 0 when the values take both signs), ``"symmetric"``, ``"minmax"``,
      ``(low, high)``, or None to keep the current choice (the person's, from the menu).
      Symmetric levels use a diverging colour map centred at 0, others a sequential
      one. ``classes``: one name per value of a vector (the last layer's logits): the hover
      then reads "Ankle boot · 0.12". ``origin_shape``: the (C, H, W) a vector was flattened
      from (after Flatten): it is shown as those C maps, the hover naming the flat index too.
      For gradient maps (dL/d activation) use a second view set to
      ``set_level_mode("symmetric")`` once, so the person's choice for activations stays.
    - ``clear(message)``: back to the hint.

    Repaints are throttled to about 30 per second; ``flush()`` draws a pending update now.
    Hovering a tile reads its channel, position and value; clicking enlarges that channel,
    and a click or Esc returns to the mosaic.
    """

    EMPTY_HINT = "Run a forward pass to see feature maps"
    hovered = QtCore.Signal(object)          # (channel, y, x, value), or None when off the maps
    enlargedChanged = QtCore.Signal(int)     # the enlarged channel, -1 back to the mosaic

    def __init__(self, parent: QtWidgets.QWidget | None = None, gap: int = 1) -> None:
        super().__init__(parent)
        self._gap = gap
        self._maps: np.ndarray | None = None
        self._vector = False
        self._title = ""
        self._classes: list[str] | None = None
        self._origin: tuple[int, int, int] | None = None
        self._level_mode: str | tuple[float, float] = "auto"
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._symmetric = False
        self._grid: tuple[int, int] = (1, 1)
        self._buffer: np.ndarray | None = None
        self._shown_shape: tuple[int, ...] | None = None
        self._cmap_name: str | None = None
        self._enlarged: int | None = None
        self._hover_point: QtCore.QPointF | None = None
        self._hover: tuple | None = None
        self._input: np.ndarray | None = None
        self._columns_key: tuple | None = None
        self._columns_cols = 1

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        self._title_label = title_label(content)
        header.addWidget(self._title_label, 1)
        header.addWidget(QtWidgets.QLabel("Colours:", content))
        self._levels_box = QtWidgets.QComboBox(content)
        for key, text in LEVEL_MODES:
            self._levels_box.addItem(text, key)
        self._levels_box.setToolTip("How values map to colours, shared by all channels:\n"
                                    "auto: symmetric around 0 when values take both signs, else min to max")
        self._levels_box.currentIndexChanged.connect(self._on_levels_choice)
        header.addWidget(self._levels_box)
        outer.addLayout(header)

        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(160, 120)
        outer.addWidget(self.graphics, 1)
        self.status = status_label(content, lines=2)
        outer.addWidget(self.status)
        self.status.setTextFormat(QtCore.Qt.TextFormat.PlainText)  # class and layer names are not markup
        self._set_content(content)

        layout = self.graphics.ci
        _, fg = palette_colors(self)
        self._input_caption = pg.LabelItem("input", color=fg.name())
        self._input_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self._input_filler = pg.GraphicsWidget()
        self._input_item = pg.ImageItem(axisOrder="row-major")
        self._input_vb.addItem(self._input_item)

        self.maps_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.maps_vb.setBackgroundColor(MAP_BACKGROUND)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.maps_vb.addItem(self.image_item)
        layout.addItem(self.maps_vb, row=0, col=1, rowspan=3)

        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(SEQUENTIAL), interactive=False,
                                        width=14, colorMapMenu=False)
        self.colorbar.getAxis("right").setTextPen(pg.mkPen(fg))
        self.colorbar.getAxis("right").setTickFont(QtGui.QFont(self.font()))
        for side in ("left", "right", "top", "bottom"):
            self.colorbar.getAxis(side).setPen(pg.mkPen(fg))
        layout.addItem(self.colorbar, row=0, col=2, rowspan=3)
        # What does not change every frame paints from a pixmap cache when the scene repaints whole
        # (expose, resize, grab): the colour bar, the input and its caption.
        cache = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        for item in [self.colorbar.getAxis(side) for side in ("left", "right", "top", "bottom")] + \
                [self.colorbar.bar, self._input_item, self._input_caption]:
            item.setCacheMode(cache)
        self.graphics.ci.geometryChanged.connect(self._layout_input)

        self._gaps, self._highlight = tile_overlays(self.maps_vb, "#FFFFFF")
        self._channel_tag = pg.TextItem("", color="#FFFFFF", fill=pg.mkBrush(0, 0, 0, 170), anchor=(0, 0))
        self._channel_tag.setZValue(11)
        self._channel_tag.hide()
        # Which input pixels the hovered output pixel sees (its receptive field), drawn on the input.
        self._rf = None
        self._rf_item = QtWidgets.QGraphicsRectItem()
        rf_pen = pg.mkPen("#E69F00", width=2)
        rf_pen.setCosmetic(True)
        self._rf_item.setPen(rf_pen)
        self._rf_item.setZValue(10)
        self._rf_item.hide()
        self._input_vb.addItem(self._rf_item, ignoreBounds=True)
        self.maps_vb.addItem(self._channel_tag, ignoreBounds=True)

        self._throttle = make_throttler(self, self._render)
        self.maps_vb.sigResized.connect(self._on_resized)
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self._esc = QtGui.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape), self)
        self._esc.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._esc.activated.connect(self.show_mosaic)
        self._esc.setEnabled(False)
        self._set_status_hint()

    # ------------------------------------------------------------ public API
    def set_input(self, image: np.ndarray | None) -> None:
        """Show the sample beside the maps: (C, H, W) with C 1 or 3, (H, W), or None to hide it."""
        layout = self.graphics.ci
        if image is None:
            self._input = None
            if self._input_shown:
                for item in (self._input_caption, self._input_vb, self._input_filler):
                    layout.removeItem(item)
                layout.layout.setColumnFixedWidth(0, 0)
            return
        a = np.asarray(image, dtype=np.float32)
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
        elif a.ndim == 3 and a.shape[-1] in (1, 3, 4):
            a = a[..., 0] if a.shape[-1] == 1 else a[..., :3]
        elif a.ndim == 3:
            a = a[0]
        elif a.ndim != 2:
            raise ValueError(f"an input image must be (C, H, W) or (H, W), not {a.shape}")
        a = np.ascontiguousarray(a)
        if self._input_shown and self._input is not None and self._input.shape == a.shape \
                and np.array_equal(self._input, a, equal_nan=True):
            return   # the same sample again (every probe while training): nothing to draw
        self._input = a
        (lo, hi), _ = compute_levels(a, "minmax")
        if a.ndim == 2:
            self._input_item.setImage(a, levels=(lo, hi), lut=lut("CET-L1"), autoLevels=False)
        else:
            self._input_item.setImage(a, levels=(lo, hi), lut=None, autoLevels=False)
        self._input_vb.setRange(QtCore.QRectF(0, 0, a.shape[1], a.shape[0]), padding=0)
        if not self._input_shown:
            layout.addItem(self._input_caption, row=0, col=0)
            layout.addItem(self._input_vb, row=1, col=0)
            layout.addItem(self._input_filler, row=2, col=0)
            layout.layout.setRowStretchFactor(2, 1)
        self._layout_input()

    def _layout_input(self, *_) -> None:
        """Give the input a column of about a fifth of the width and a box of its own aspect, at the top."""
        if self._input is None:
            return
        width = self.graphics.width()
        col = float(min(220, max(64, 0.2 * width)))
        h, w = self._input.shape[:2]
        box = min(col * h / max(w, 1), 0.8 * self.graphics.height())
        grid = self.graphics.ci.layout
        grid.setColumnFixedWidth(0, col)
        self._input_caption.setMaximumHeight(self.fontMetrics().height() + 6)
        self._input_vb.setMinimumHeight(box)
        self._input_vb.setMaximumHeight(box)

    def set_maps(self, maps: np.ndarray, title: str = "",
                 levels: str | tuple[float, float] | None = None,
                 classes=None, origin_shape: tuple[int, ...] | None = None) -> None:
        """Show ``maps`` (see the class docstring for shapes, ``levels``, ``classes`` and
        ``origin_shape``); redraws within ~33 ms."""
        raw = np.asarray(maps)
        self._origin = None
        if raw.ndim == 1 and origin_shape is not None and len(origin_shape) == 3 \
                and math.prod(int(n) for n in origin_shape) == raw.size and raw.size:
            self._origin = tuple(int(n) for n in origin_shape)
            raw = raw.reshape(self._origin)
        self._vector = raw.ndim <= 1
        self._classes = [str(c) for c in classes] if classes is not None and self._vector \
            and len(classes) == raw.size else None
        self._maps = as_maps(raw)
        self._title = title
        if levels is not None:
            self.set_level_mode(levels)
        if self._enlarged is not None and self._enlarged >= self._maps.shape[0]:
            self._set_enlarged(None)
        self._show_content()
        self._throttle.throttle()

    def set_level_mode(self, mode: str | tuple[float, float]) -> None:
        """Choose how values map to colours: 'auto', 'symmetric', 'minmax' or fixed (low, high)."""
        compute_levels(np.zeros(1, np.float32), mode)  # validates
        self._level_mode = mode if isinstance(mode, str) else (float(mode[0]), float(mode[1]))
        index = self._levels_box.findData(mode) if isinstance(mode, str) else -1
        self._levels_box.blockSignals(True)
        self._levels_box.setCurrentIndex(index)
        self._levels_box.blockSignals(False)
        if self._maps is not None:
            self._throttle.throttle()

    def set_receptive_field(self, rf) -> None:
        """The receptive field of the maps shown (``size``, ``jump``, ``start`` per axis, as the core's
        ``ReceptiveField``), or None: hovering a map pixel then outlines the input pixels it sees."""
        self._rf = rf
        self._rf_item.hide()

    def receptive_rect(self, y: int, x: int) -> QtCore.QRectF | None:
        """The input pixels output pixel (y, x) sees, clipped to the input; None without a field or input."""
        if self._rf is None or self._input is None:
            return None
        h, w = self._input.shape[:2]
        (sh, sw), (jh, jw), (oh, ow) = self._rf.size, self._rf.jump, self._rf.start
        top, left = oh + y * jh - sh / 2, ow + x * jw - sw / 2
        rect = QtCore.QRectF(left, top, sw, sh).intersected(QtCore.QRectF(0, 0, w, h))
        return rect if not rect.isEmpty() else None

    def clear(self, message: str | None = None) -> None:
        self._maps = None
        self._levels = (0.0, 1.0)
        self._buffer = None
        self._shown_shape = None
        self._set_enlarged(None)
        self._hide_hover()
        self.image_item.clear()
        super().clear(message)

    def flush(self) -> None:
        """Draw a pending update now instead of at the next throttle tick."""
        self._throttle.flush()

    def enlarge(self, channel: int) -> None:
        """Show one channel alone, filling the view (1-D activations have no single maps to enlarge)."""
        if self._maps is None or self._vector or not 0 <= channel < self._maps.shape[0]:
            return
        self._set_enlarged(channel)
        self._render()

    def show_mosaic(self) -> None:
        """Back from an enlarged channel to all channels."""
        if self._enlarged is None:
            return
        self._set_enlarged(None)
        self._render()

    # ------------------------------------------------------------ readings for callers and tests
    @property
    def _input_shown(self) -> bool:
        return self._input_vb in self.graphics.ci.items

    @property
    def maps(self) -> np.ndarray | None:
        return self._maps

    @property
    def levels(self) -> tuple[float, float]:
        """The colour levels last drawn with."""
        return self._levels

    @property
    def symmetric(self) -> bool:
        return self._symmetric

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the mosaic last drawn."""
        return self._grid

    @property
    def gap(self) -> int:
        return 0 if self._vector else self._gap

    @property
    def origin_shape(self) -> tuple[int, int, int] | None:
        """The (C, H, W) the vector shown was flattened from, or None."""
        return self._origin

    @property
    def classes(self) -> list[str] | None:
        """The names of a vector's values (the logits' classes), or None."""
        return self._classes

    @property
    def enlarged_channel(self) -> int | None:
        return self._enlarged

    @property
    def hover_info(self) -> tuple | None:
        """What the cursor reads: ('map', channel, y, x, value), ('unit', i, value), ('input', y, x, value) or None."""
        return self._hover

    def tile_rect(self, channel: int) -> QtCore.QRectF:
        """Where tile ``channel`` lies in the mosaic's image coordinates."""
        assert self._maps is not None
        h, w = self._maps.shape[1:]
        x, y = tile_origin(channel, (h, w), self._grid[1], self.gap)
        return QtCore.QRectF(x, y, w, h)

    # ------------------------------------------------------------ drawing
    def _render(self) -> None:
        maps = self._maps
        if maps is None:
            return
        c, h, w = maps.shape
        gap = self.gap
        mode = self._level_mode
        levels, symmetric = compute_levels(maps, mode)
        if isinstance(mode, str):
            levels = self._steady_levels(levels, symmetric)
        if self._enlarged is not None:
            image = maps[self._enlarged]
        else:
            cols = self._columns(c, h, w, gap)
            image, grid = mosaic(maps, gap, cols, fill=0.0, out=self._buffer)
            self._buffer = image
            if grid != self._grid or image.shape != self._shown_shape:
                self._grid = grid
                self._gaps.setPath(gap_path((h, w), grid, gap, c))
        self._gaps.setVisible(self._enlarged is None)
        cmap = DIVERGING if symmetric else SEQUENTIAL
        if cmap != self._cmap_name:
            self._cmap_name = cmap
            self.image_item.setLookupTable(lut(cmap), update=False)
            self.colorbar.setColorMap(colormap(cmap))
        self.image_item.setImage(image, levels=levels, autoLevels=False)
        if image.shape != self._shown_shape:
            self._shown_shape = image.shape
            self._fit()
        if levels != self._levels:
            self._levels = levels
            self.colorbar.setLevels(values=levels)
        self._symmetric = symmetric
        title = self._title
        if self._enlarged is not None:
            title = f"{title} · channel {self._enlarged} (click or Esc for all channels)"
        if self._title_label.text() != title:
            self._title_label.setText(title)
        if self._hover_point is not None:
            self._update_hover(self._hover_point)

    def _steady_levels(self, data: tuple[float, float], symmetric: bool) -> tuple[float, float]:
        """Keep the current levels while they hold the data and are not much wider than it.

        Without this, a maximum that hovers around a rounding step makes every
        map's colours (and the colour bar) jump back and forth between steps.
        """
        lo, hi = self._levels
        if (symmetric == self._symmetric and lo <= data[0] and data[1] <= hi
                and data[1] - data[0] >= KEEP_LEVELS_SHARE * (hi - lo)):
            return self._levels
        return round_levels(data, symmetric)

    def _columns(self, c: int, h: int, w: int, gap: int) -> int:
        size = self.maps_vb.size()
        area = (size.height(), size.width())
        key = (c, h, w, gap, round(area[0]), round(area[1]))
        if key != self._columns_key:
            self._columns_key = key
            if area[0] < 8 or area[1] < 8:
                area = (3.0, 4.0)
            self._columns_cols = best_columns(c, (h, w), area, gap)
        return self._columns_cols

    def _fit(self) -> None:
        if self._shown_shape is None:
            return
        h, w = self._shown_shape[:2]
        self.maps_vb.setRange(QtCore.QRectF(0, 0, w, h), padding=0.02)

    def _on_resized(self, *_) -> None:
        if self._maps is None:
            return
        if self._enlarged is None:
            c, h, w = self._maps.shape
            before = self._grid[1]
            if self._columns(c, h, w, self.gap) != before:
                self._throttle.throttle()
                return
        self._fit()

    def _set_enlarged(self, channel: int | None) -> None:
        if channel == self._enlarged:
            return
        self._enlarged = channel
        self._esc.setEnabled(channel is not None)
        self._hide_hover()
        self.enlargedChanged.emit(-1 if channel is None else channel)

    def _on_levels_choice(self, index: int) -> None:
        mode = self._levels_box.itemData(index)
        if mode:
            self.set_level_mode(mode)

    # ------------------------------------------------------------ pointer
    def _on_mouse_moved(self, pos: QtCore.QPointF) -> None:
        self._hover_point = pos
        self._update_hover(pos)

    def _update_hover(self, pos: QtCore.QPointF) -> None:
        info = None
        if self._maps is not None and self.maps_vb.sceneBoundingRect().contains(pos):
            p = self.maps_vb.mapSceneToView(pos)
            info = self._read_maps(p.x(), p.y())
        elif self._input is not None and self._input_shown \
                and self._input_vb.sceneBoundingRect().contains(pos):
            p = self._input_vb.mapSceneToView(pos)
            x, y = int(math.floor(p.x())), int(math.floor(p.y()))
            if 0 <= y < self._input.shape[0] and 0 <= x < self._input.shape[1]:
                v = self._input[y, x]
                info = ("input", y, x, v.tolist() if np.ndim(v) else float(v))
        if info == self._hover:
            return
        self._hover = info
        self._show_hover(info)
        self.hovered.emit(None if info is None or info[0] != "map" else info[1:])

    def _read_maps(self, x: float, y: float) -> tuple | None:
        assert self._maps is not None
        c, h, w = self._maps.shape
        if self._enlarged is not None:
            xi, yi = int(math.floor(x)), int(math.floor(y))
            if 0 <= xi < w and 0 <= yi < h:
                return ("map", self._enlarged, yi, xi, float(self._maps[self._enlarged, yi, xi]))
            return None
        hit = tile_at(x, y, (h, w), self._grid, self.gap, c)
        if hit is None:
            return None
        ch, ty, tx = hit
        if self._vector:
            return ("unit", ch, float(self._maps[ch, 0, 0]))
        return ("map", ch, ty, tx, float(self._maps[ch, ty, tx]))

    def _show_hover(self, info: tuple | None) -> None:
        if info is None:
            self._hide_hover(keep_point=True)
            return
        kind = info[0]
        if kind == "map":
            _, ch, y, x, v = info
            text = f"channel {ch}  ·  y {y}, x {x}  ·  value {fmt_value(v)}"
            if self._origin is not None:
                _, h, w = self._origin
                text = f"value {(ch * h + y) * w + x} of the flattened vector  ·  from ({ch}, {y}, {x})  ·  " \
                       f"{text}"
            rect = self.receptive_rect(y, x)
            if rect is not None:
                self._rf_item.setRect(rect)
                self._rf_item.show()
                text += (f"  ·  sees input rows {int(rect.top())}–{math.ceil(rect.bottom()) - 1}, "
                         f"columns {int(rect.left())}–{math.ceil(rect.right()) - 1}")
            else:
                self._rf_item.hide()
            self.status.setText(text)
        elif kind == "unit":
            _, i, v = info
            if self._classes is not None:
                self.status.setText(f"{self._classes[i]}  ·  {fmt_value(v)}  ·  unit {i}")
            else:
                self.status.setText(f"unit {i}  ·  value {fmt_value(v)}")
        else:
            _, y, x, v = info
            text = ", ".join(fmt_value(c) for c in v) if isinstance(v, list) else fmt_value(v)
            self.status.setText(f"input  ·  y {y}, x {x}  ·  value {text}")
        if kind in ("map", "unit") and self._enlarged is None:
            rect = self.tile_rect(info[1])
            self._highlight.setRect(rect)
            self._highlight.show()
            tag = self._classes[info[1]] if kind == "unit" and self._classes is not None else str(info[1])
            self._channel_tag.setText(tag)
            self._channel_tag.setPos(rect.topLeft())
            self._channel_tag.show()
        else:
            self._highlight.hide()
            self._channel_tag.hide()

    def _hide_hover(self, keep_point: bool = False) -> None:
        if not keep_point:
            self._hover_point = None
        self._hover = None
        self._rf_item.hide()
        self._highlight.hide()
        self._channel_tag.hide()
        self._set_status_hint()

    def _set_status_hint(self) -> None:
        if self._enlarged is not None:
            self.status.setText("Click or press Esc to see all channels")
        else:
            self.status.setText("Point at a map to read its values; click a map to enlarge it")

    def _on_mouse_clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or self._maps is None:
            return
        pos = event.scenePos()
        if not self.maps_vb.sceneBoundingRect().contains(pos):
            return
        event.accept()
        if self._enlarged is not None:
            self.show_mosaic()
            return
        p = self.maps_vb.mapSceneToView(pos)
        info = self._read_maps(p.x(), p.y())
        if info is not None and info[0] == "map":
            self.enlarge(info[1])
