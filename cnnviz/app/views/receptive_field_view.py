"""Which input pixels one map pixel sees: the theoretical receptive field and the measured (effective) one, on
the full-size input, beside the growth of the field with depth.

Fed plain arrays and numbers the worker computed (:mod:`cnnviz.core.lab.receptive`) on the GUI thread; no
torch. The map pixel is chosen with the channel, row and column boxes; ``requested`` asks for its field.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    BLUE,
    ORANGE,
    GridLines,
    ViewPanel,
    colormap,
    graphics_widget,
    label_style,
    lut,
    make_throttler,
    palette_colors,
    status_label,
    style_axes,
    title_label,
)

HEAT = "inferno"
OVERLAY_OPACITY = 0.85
BASE_OPACITY = 0.55
MAX_TICKED_LAYERS = 30
GROWTH_TITLE = "Growth with depth"


@lru_cache(maxsize=1)
def heat_lut() -> np.ndarray:
    """The heat map's RGBA lookup table: transparent at zero, opaque from a quarter of the maximum up, so the
    input shows through where the output does not depend on it."""
    table = np.empty((256, 4), np.uint8)
    table[:, :3] = lut(HEAT)
    table[:, 3] = np.clip(np.linspace(0.0, 4.0, 256), 0.0, 1.0) * 255
    return table


def _as_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) as (H, W) or (H, W, 3) for an ImageItem."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] != 3 else np.moveaxis(a, 0, -1)
    return np.ascontiguousarray(np.nan_to_num(a))


def _rect(r) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) from a tuple or anything with those attributes (the core's ``Rect``)."""
    if r is None:
        return None
    if hasattr(r, "top"):
        return int(r.top), int(r.left), int(r.height), int(r.width)
    top, left, height, width = (int(v) for v in r)
    return top, left, height, width


def _size(h: int, w: int) -> str:
    return f"{h}×{w}"


def field_caption(theoretical_size: tuple[int, int] | None, effective: int | None, share: float,
                  clipped: tuple[int, int] | None = None) -> str:
    """"theoretical 13×13, effective (95 % of the gradient) 7×7", and what the image's edge cuts off."""
    pct = f"{100 * share:g}"
    theory = "theoretical: unknown" if theoretical_size is None else f"theoretical {_size(*theoretical_size)}"
    if effective:
        measured = f"effective ({pct} % of the gradient) {effective}×{effective}"
    else:
        measured = "effective: no gradient reaches the input (this output does not depend on it for this sample)"
    text = f"{theory}, {measured}."
    if clipped is not None and theoretical_size is not None and tuple(clipped) != tuple(theoretical_size):
        text += f" The image's edge leaves {_size(*clipped)} of the theoretical field inside it."
    return text


class ReceptiveFieldView(ViewPanel):
    """The input with the effective field ``|∂ out[c, y, x] / ∂ input|`` over it, the theoretical field outlined,
    and the field's growth with depth.

    Data API (GUI thread; arrays are kept by reference):

    - ``set_layer(title, shape)``: the selected layer and its (C, H, W) maps: the boxes' ranges (a new shape
      starts at channel 0, the centre pixel). Nothing is emitted.
    - ``set_result(image, heat, theoretical=..., theoretical_size=..., effective=..., square=..., share=...)``:
      the sample (C, H, W) or (H, W), the (H, W) heat map, the theoretical field clipped to the input
      ``(top, left, height, width)`` (or the core's ``Rect``) and its unclipped (height, width), the effective
      side and its square; the caption reads both extents.
    - ``set_growth(labels, theoretical, effective=(), selected=None)``: one point per layer, its theoretical
      (height, width) or None and its effective side or None.
    - ``clear(message)``; ``flush()`` draws a pending update now.

    ``requested(channel, y, x)`` is emitted when the person changes a box.
    """

    EMPTY_HINT = "Select a layer with feature maps to see which input pixels one of its pixels sees"
    requested = QtCore.Signal(int, int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self._heat: np.ndarray | None = None
        self._theoretical: tuple[int, int, int, int] | None = None
        self._square: tuple[int, int, int, int] | None = None
        self._growth: tuple[list[str], list, list] | None = None
        self._selected: int | None = None
        self._shape: tuple[int, int, int] | None = None
        self._quiet = False

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        self.title = title_label(content)
        header.addWidget(self.title, 1)
        self.boxes: dict[str, QtWidgets.QSpinBox] = {}
        tips = {"channel": "The output channel of the selected layer", "row": "The map pixel's row (y)",
                "column": "The map pixel's column (x)"}
        for name in ("channel", "row", "column"):
            header.addWidget(QtWidgets.QLabel(f"{name.capitalize()}:", content))
            box = QtWidgets.QSpinBox(content)
            box.setRange(0, 0)
            box.setToolTip(tips[name])
            box.setKeyboardTracking(False)   # typing "12" asks once, for 12, not for 1 first
            box.valueChanged.connect(self._box_changed)
            header.addWidget(box)
            self.boxes[name] = box
        outer.addLayout(header)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, content)
        split.setChildrenCollapsible(False)
        self.graphics = graphics_widget(split)
        self.graphics.setMinimumSize(200, 160)
        self.growth_graphics = graphics_widget(split)
        self.growth_graphics.setMinimumSize(200, 160)
        split.addWidget(self.graphics)
        split.addWidget(self.growth_graphics)
        split.setStretchFactor(0, 3)   # the input full size; the plot beside it
        split.setStretchFactor(1, 2)
        outer.addWidget(split, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        outer.addWidget(self.caption)
        self._set_content(content)

        bg, fg = palette_colors(self)
        self.input_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self._base = pg.ImageItem(axisOrder="row-major")
        self._base.setOpacity(BASE_OPACITY)
        self._heat_item = pg.ImageItem(axisOrder="row-major")
        self._heat_item.setOpacity(OVERLAY_OPACITY)
        self._heat_item.setZValue(1)
        self._heat_item.setLookupTable(heat_lut())
        self.input_vb.addItem(self._base)
        self.input_vb.addItem(self._heat_item)
        self._theory_item = self._outline(ORANGE, QtCore.Qt.PenStyle.SolidLine, 10)
        self._square_item = self._outline(BLUE, QtCore.Qt.PenStyle.DashLine, 11)
        self.graphics.ci.addItem(self.input_vb, row=0, col=0)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(HEAT), interactive=False, width=14,
                                        colorMapMenu=False, label="|∂out/∂input|")
        for side in ("left", "right", "top", "bottom"):
            self.colorbar.getAxis(side).setPen(pg.mkPen(fg))
        self.colorbar.getAxis("right").setTextPen(pg.mkPen(fg))
        self.colorbar.getAxis("right").setTickFont(QtGui.QFont(self.font()))
        self.graphics.ci.addItem(self.colorbar, row=0, col=1)

        style = label_style(self)
        self.plot = pg.PlotItem(enableMenu=False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        style_axes(self.plot, self)
        GridLines(self.plot)
        self.plot.setLabel("bottom", "layer", **style)
        self.plot.setLabel("left", "field side (input pixels)", **style)
        self.plot.setTitle(GROWTH_TITLE, color=fg.name())
        legend = self.plot.addLegend(offset=(8, 8), labelTextColor=fg, brush=pg.mkBrush(bg))
        self._theory_curve = pg.PlotDataItem(pen=pg.mkPen(ORANGE, width=2), symbol="o", symbolSize=6,
                                             symbolBrush=ORANGE, symbolPen=None, connect="finite")
        self._theory_width = pg.PlotDataItem(pen=pg.mkPen(ORANGE, width=2, style=QtCore.Qt.PenStyle.DashLine),
                                             symbol="s", symbolSize=6, symbolBrush=ORANGE, symbolPen=None,
                                             connect="finite")
        self._effective_points = pg.ScatterPlotItem(symbol="t", size=9, brush=pg.mkBrush(BLUE), pen=None)
        self._selected_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(fg, width=1,
                                                                                      style=QtCore.Qt.PenStyle.DotLine))
        for item in (self._theory_curve, self._theory_width, self._effective_points):
            self.plot.addItem(item)
        self.plot.addItem(self._selected_line, ignoreBounds=True)
        self._selected_line.hide()
        self._legend = legend
        legend.addItem(self._theory_curve, "theoretical")
        legend.addItem(self._effective_points, "effective (centre pixel)")
        self.growth_graphics.addItem(self.plot)
        self.growth_graphics.scene().sigMouseMoved.connect(self._on_growth_hover)
        self._throttle = make_throttler(self, self._render)

    def _outline(self, color: str, style: QtCore.Qt.PenStyle, z: int) -> QtWidgets.QGraphicsRectItem:
        item = QtWidgets.QGraphicsRectItem()
        pen = pg.mkPen(color, width=2, style=style)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(z)
        item.hide()
        self.input_vb.addItem(item, ignoreBounds=True)
        return item

    # ------------------------------------------------------------ API
    def set_layer(self, title: str, shape: Sequence[int] | None, start: Sequence[int] | None = None) -> None:
        """The selected layer (its (C, H, W) maps): the boxes' ranges; a new shape starts at ``start``
        (channel, row, column), else at its centre pixel."""
        self.title.setText(title)
        shape = tuple(int(n) for n in shape) if shape is not None and len(shape) == 3 else None
        if shape == self._shape:
            return
        self._shape = shape
        self._quiet = True
        try:
            c, h, w = shape if shape is not None else (1, 1, 1)
            c0, y0, x0 = (int(v) for v in start) if start is not None else (0, h // 2, w // 2)
            for name, n, start in (("channel", c, c0), ("row", h, y0), ("column", w, x0)):
                box = self.boxes[name]
                box.setRange(0, n - 1)
                box.setValue(start)
                box.setEnabled(shape is not None)
        finally:
            self._quiet = False

    def choose(self, channel: int, y: int, x: int) -> None:
        """Set the boxes as the person would, emitting ``requested`` once."""
        self._quiet = True
        try:
            for name, value in (("channel", channel), ("row", y), ("column", x)):
                self.boxes[name].setValue(int(value))
        finally:
            self._quiet = False
        self._box_changed()

    @property
    def pixel(self) -> tuple[int, int, int]:
        """(channel, y, x) the boxes say."""
        return tuple(self.boxes[n].value() for n in ("channel", "row", "column"))  # type: ignore[return-value]

    def set_result(self, image: np.ndarray, heat: np.ndarray, *, theoretical=None,
                   theoretical_size: tuple[int, int] | None = None, effective: int | None = None, square=None,
                   share: float = 0.95, note: str = "") -> None:
        img = _as_display(image)
        heat = np.ascontiguousarray(np.asarray(heat, dtype=np.float32))
        if heat.shape != img.shape[:2]:
            raise ValueError(f"the heat map is {heat.shape} but the image {img.shape[:2]}")
        self._image, self._heat = img, heat
        self._theoretical, self._square = _rect(theoretical), _rect(square)
        clipped = None if self._theoretical is None else self._theoretical[2:]
        text = field_caption(theoretical_size, effective, share, clipped)
        text += (f" Orange: the theoretical field; dashed blue: the smallest square holding {100 * share:g} % "
                 f"of |∂out/∂input|.")
        self.caption.setText(f"{text} {note}".strip())
        self._show_content()
        self._throttle.throttle()

    def set_growth(self, labels: Sequence[str], theoretical: Sequence[tuple[int, int] | None],
                   effective: Sequence[int | None] = (), selected: int | None = None) -> None:
        labels = [str(s) for s in labels]
        if len(theoretical) != len(labels) or (effective and len(effective) != len(labels)):
            raise ValueError("one label, theoretical size and effective side per layer")
        self._growth = (labels, list(theoretical), list(effective) if effective else [None] * len(labels))
        self._selected = selected
        self._throttle.throttle()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._image = self._heat = None
        self._theoretical = self._square = None
        self._base.clear()
        self._heat_item.clear()
        self._theory_item.hide()
        self._square_item.hide()
        super().clear(message)

    # ------------------------------------------------------------ readings
    def shown_heat(self) -> np.ndarray | None:
        """The array the heat map was last drawn from."""
        image = self._heat_item.image
        return None if image is None else np.asarray(image)

    def shown_levels(self) -> tuple[float, float]:
        return tuple(float(v) for v in self._heat_item.levels)  # type: ignore[return-value]

    def theoretical_outline(self) -> QtCore.QRectF | None:
        return self._theory_item.rect() if self._theory_item.isVisible() else None

    def effective_outline(self) -> QtCore.QRectF | None:
        return self._square_item.rect() if self._square_item.isVisible() else None

    def growth_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What the growth plot shows: ``height`` (and ``width`` where it differs) and ``effective``."""
        out = {"height": self._theory_curve.getData()}
        if self._theory_width.isVisible():
            out["width"] = self._theory_width.getData()
        xs, ys = self._effective_points.getData()
        out["effective"] = (np.asarray(xs), np.asarray(ys))
        return out

    # ------------------------------------------------------------ drawing
    def _box_changed(self, *_) -> None:
        if not self._quiet and self._shape is not None:
            self.requested.emit(*self.pixel)

    def growth_reading(self, layer: int) -> str:
        """What the growth plot's title reads with the cursor over ``layer``."""
        if self._growth is None or not 0 <= layer < len(self._growth[0]):
            return GROWTH_TITLE
        labels, theory, effective = self._growth
        t = theory[layer]
        text = f"{labels[layer]}: theoretical {'none' if t is None else _size(*t)}"
        if effective[layer] is not None:
            text += f", effective {effective[layer]}×{effective[layer]}"
        return text

    def _on_growth_hover(self, pos) -> None:
        vb = self.plot.getViewBox()
        layer = None
        if self._growth is not None and vb.sceneBoundingRect().contains(pos):
            layer = round(vb.mapSceneToView(pos).x())
        self.plot.setTitle(self.growth_reading(layer) if layer is not None else GROWTH_TITLE)

    def _render(self) -> None:
        if self._image is not None and self._heat is not None:
            img, heat = self._image, self._heat
            lo, hi = float(img.min()), float(img.max())
            levels = (lo, hi if hi > lo else lo + 1.0)
            self._base.setImage(img, levels=levels, lut=lut("CET-L1") if img.ndim == 2 else None, autoLevels=False)
            top = float(np.nanmax(heat)) if heat.size else 0.0
            top = top if top > 0 and math.isfinite(top) else 1.0
            self._heat_item.setImage(heat, levels=(0.0, top), autoLevels=False)
            self.colorbar.setLevels(values=(0.0, top))
            h, w = heat.shape
            self.input_vb.setRange(QtCore.QRectF(0, 0, w, h), padding=0)
            for item, rect in ((self._theory_item, self._theoretical), (self._square_item, self._square)):
                if rect is None:
                    item.hide()
                else:
                    t, left, rh, rw = rect
                    item.setRect(QtCore.QRectF(left, t, rw, rh))
                    item.show()
        if self._growth is not None:
            self._render_growth()
        for vb in (self.input_vb, self.plot.getViewBox()):
            vb.prepareForPaint()   # ranges settled now, not in the paint (which would then paint twice)

    def _render_growth(self) -> None:
        labels, theory, effective = self._growth
        n = len(labels)
        xs = np.arange(n, dtype=np.float64)
        hs = np.array([np.nan if t is None else t[0] for t in theory], dtype=np.float64)
        ws = np.array([np.nan if t is None else t[1] for t in theory], dtype=np.float64)
        square = bool(np.array_equal(hs, ws, equal_nan=True))
        self._theory_curve.setData(xs, hs)
        self._theory_width.setData(xs, ws)
        self._theory_width.setVisible(not square)
        self._legend.removeItem(self._theory_curve)
        self._legend.removeItem(self._theory_width)
        self._legend.removeItem(self._effective_points)
        self._legend.addItem(self._theory_curve, "theoretical" if square else "theoretical height")
        if not square:
            self._legend.addItem(self._theory_width, "theoretical width")
        self._legend.addItem(self._effective_points, "effective (centre pixel)")
        known = [(i, float(e)) for i, e in enumerate(effective) if e is not None]
        self._effective_points.setData([i for i, _ in known], [e for _, e in known])
        axis = self.plot.getAxis("bottom")
        axis.setTicks([[(i, str(i)) for i in range(n)]] if n <= MAX_TICKED_LAYERS else None)
        if self._selected is not None and 0 <= self._selected < n:
            self._selected_line.setValue(self._selected)
            self._selected_line.show()
        else:
            self._selected_line.hide()
        tops = [v for v in (*hs, *ws, *(e for _, e in known)) if np.isfinite(v)]
        self.plot.setXRange(-0.5, max(n - 0.5, 0.5), padding=0)
        self.plot.setYRange(0, max(tops, default=1.0) * 1.08 + 1, padding=0)
