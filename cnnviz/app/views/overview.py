"""The network overview: every layer's output for one sample, left to right, input to softmax.

Like CNN Explainer's overview, for the person's own stack: each C×H×W layer is
a column of thumbnails of its maps (a wide layer shows its first maps and
"+k more", which expands on a click), a Flatten is a strip of C segments that
keeps its C×H×W origin, a vector is a column of unit cells (named by class when
it scores the classes), the softmax is labelled bars with the true class
marked. The output shape and the colour range stand under each column; where
the stack breaks an error column says why. The selected layer's column is drawn
large, its maps as big as the feature-map view shows them.

One ``QGraphicsScene``; each column is one RGBA image built with numpy by a
single gather (:class:`~.overview_layout.Raster`), its items reused from one
snapshot to the next. What is drawn where is :mod:`.overview_layout` (numpy, no
Qt). Repaints are throttled to about 30 a second; ``flush()`` draws at once.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip as plain_tooltip
from cnnviz.app.views._common import (
    BLUE,
    DIVERGING,
    GREEN,
    GREY,
    SEQUENTIAL,
    VERMILION,
    ViewPanel,
    lut,
    make_throttler,
    palette_colors,
    status_label,
)
from cnnviz.app.views.levels import compute_levels, fmt_value
from cnnviz.app.views.mosaic import as_maps
from cnnviz.app.views.overview_layout import (
    Flow,
    Grid,
    LayerInfo,
    Metrics,
    Placed,
    Raster,
    SteadyLevels,
    block_regions,
    build_flow,
    fmt,
    layout,
    pack_rgb,
    palette32,
    quantize,
)
from cnnviz.core.model.paths import LayerPath

GREYS = "CET-L1"


def short_value(v: float) -> str:
    """A range end for a column's label: 3 significant digits."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        return f"{v:.3g}"
    return f"{v:.1e}"


def _text(text: str, font: QtGui.QFont, brush) -> QtWidgets.QGraphicsSimpleTextItem:
    """A plain-text scene item (never markup), painted from a pixmap cache: text is the costly part of a frame."""
    item = QtWidgets.QGraphicsSimpleTextItem(text)
    item.setFont(font)
    item.setBrush(brush)
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item


class _ImageItem(QtWidgets.QGraphicsItem):
    """A QImage drawn 1:1 at its position (the column's pixels are already at display size)."""

    def __init__(self) -> None:
        super().__init__()
        self._image = QtGui.QImage()
        self._buffer: np.ndarray | None = None
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.NoCache)

    def set_pixels(self, pixels: np.ndarray) -> None:
        """``pixels``: (h, w) uint32 ARGB32_Premultiplied, kept by reference (the QImage reads it)."""
        h, w = pixels.shape
        if self._buffer is not pixels or self._image.width() != w or self._image.height() != h:
            if self._image.width() != w or self._image.height() != h:
                self.prepareGeometryChange()
            self._buffer = pixels
            self._image = QtGui.QImage(pixels.data, w, h, w * 4, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        if not self._image.isNull():
            painter.drawImage(0, 0, self._image)


class _Canvas(QtWidgets.QGraphicsView):
    """The scene's view: a horizontal scroll when the flow is wider; pointer events to the overview."""

    def __init__(self, owner: OverviewView, scene: QtWidgets.QGraphicsScene) -> None:
        super().__init__(scene, owner)
        self._owner = owner
        self.setMouseTracking(True)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        self.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        self._owner._hover_at(self.mapToScene(event.position().toPoint()), event.globalPosition().toPoint())
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self._owner._hover_at(None, None)
        super().leaveEvent(event)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._owner._click_at(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mousePressEvent(event)

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        """The flow runs left to right: the wheel scrolls it sideways."""
        delta = event.angleDelta()
        step = delta.x() or delta.y()
        if step:
            self._owner._stop_following()
            bar = self.horizontalScrollBar()
            bar.setValue(bar.value() - step)
            event.accept()
            return
        super().wheelEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._owner._resized()


class _ColumnItems:
    """The scene items of one column, made once and reused while the column exists."""

    def __init__(self, scene: QtWidgets.QGraphicsScene, font: QtGui.QFont, fg: QtGui.QColor,
                 small: QtGui.QFont) -> None:
        self.scene = scene
        self.title = _text("", font, fg)
        self.shape = _text("", small, fg)
        self.range = _text("", small, fg)
        for t in (self.title, self.shape, self.range):
            scene.addItem(t)
        self.image = _ImageItem()
        scene.addItem(self.image)
        self.bar = QtWidgets.QGraphicsPixmapItem()
        self.bar.setTransformationMode(QtCore.Qt.TransformationMode.FastTransformation)
        scene.addItem(self.bar)
        self.extra: list[QtWidgets.QGraphicsItem] = []
        self.extra_key: tuple | None = None
        self.dynamic: list = []     # the items a new snapshot changes (the bars and their values)
        self.bottom = 0.0
        self.raster: Raster | None = None
        self.raster_key: tuple | None = None
        self.levels = SteadyLevels()
        self.u8: np.ndarray | None = None
        self.scratch: np.ndarray | None = None
        self.texts: dict[str, str] = {}
        self.bar_key: tuple | None = None   # (palette, width) of the colour bar drawn

    def set_text(self, item: QtWidgets.QGraphicsSimpleTextItem, name: str, text: str) -> None:
        if self.texts.get(name) != text:
            self.texts[name] = text
            item.setText(text)

    def clear_extra(self) -> None:
        for item in self.extra:
            self.scene.removeItem(item)
        self.extra = []

    def remove(self) -> None:
        self.clear_extra()
        for item in (self.title, self.shape, self.range, self.image, self.bar):
            self.scene.removeItem(item)


class OverviewView(ViewPanel):
    """Every layer of one sample's pass in one flow (see the module's docstring).

    Data API (GUI thread; arrays are kept by reference):

    - ``set_report(report)``: the shape engine's report of the current stack (shapes, types, the error).
    - ``set_probe(probe, true_class=...)``: a :class:`~cnnviz.core.run.probes.Probe` to draw
      (``true_class``: the label to mark, None for the person's own image; by default the probe's).
    - ``set_selected(index)``: the layer whose column is drawn large (-1 the input, None none).
    - ``show_schematic(message)``: the report's columns without values (the stack cannot run, or it
      changed and runs again), up to the break, with ``message`` in an error column when the stack breaks.
    - ``clear(message)``: the hint; the schematic instead when the report says the stack cannot run.

    A block's column holds its inner layers: the columns of its lists in parallel inside a frame (a
    Residual's body above its shortcut, a line for the identity shortcut; a Concat's branches one above
    the other), its merge as the frame's last column. ``set_selected(path)`` takes an inner layer's path
    string too; a click on an inner layer's column says ``pathClicked(path, channel)`` instead of
    ``thumbnailClicked``.

    ``thumbnailClicked(layer, channel)``: a thumbnail (a map; a unit of a vector; a value of a
    Flatten's strip, as the channel it was flattened from) of layer ``layer`` was clicked;
    ``channel`` is -1 for a click on the column elsewhere. The clicked channel is kept as
    :attr:`focused_channel` and outlined where it is drawn.
    """

    EMPTY_HINT = "Run a forward pass to see every layer"
    thumbnailClicked = QtCore.Signal(int, int)
    pathClicked = QtCore.Signal(str, int)   # (an inner layer's path string, channel or -1)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._report = None
        self._probe_report = None   # the report of the stack the probe shown was taken on
        self._probe = None
        self._true_class: int | None = None
        self._selected: int | str | None = None
        self._region_items: list[QtWidgets.QGraphicsItem] = []
        self._expanded: set[str] = set()
        self._focused: tuple[int, int] | None = None
        self._schematic: str | None = None   # the message of a schematic, None while a probe is shown
        self._schematic_error = False
        self._noted = False   # the status line holds a note (the stack runs again), not a reading
        self._flow: Flow | None = None
        self._flow_key: tuple | None = None
        self._placed: list[Placed] = []
        self._by_key: dict[str, Placed] = {}
        self._items: dict[str, _ColumnItems] = {}
        self._hover: tuple | None = None
        self._scroll_to_selected = False
        self._scroll_to_error: tuple | None = None
        self._follow_selected = False
        self._scrolled_at: tuple | None = None
        self._hidden_update = False
        self._widest: dict[str, str] = {}   # per column, the widest range label drawn (its room)
        self._width = 0.0

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(0, 0, 0, 2)
        outer.setSpacing(2)
        self.scene = QtWidgets.QGraphicsScene(self)
        bg, fg = palette_colors(self)
        self._bg, self._fg = bg, fg
        self.scene.setBackgroundBrush(bg)
        self.canvas = _Canvas(self, self.scene)
        self.canvas.horizontalScrollBar().sliderMoved.connect(self._stop_following)
        self.canvas.setMinimumSize(200, 160)
        outer.addWidget(self.canvas, 1)
        self.status = status_label(content)
        self.status.setTextFormat(QtCore.Qt.TextFormat.PlainText)   # layer and class names are not markup
        self.status.setContentsMargins(4, 0, 4, 0)
        outer.addWidget(self.status)
        self._set_content(content)

        self._small = QtGui.QFont(self.font())
        size = self._small.pointSizeF()
        if size > 0:
            self._small.setPointSizeF(max(7.0, size - 1))
        self._font = QtGui.QFont(self._small)
        self._font.setBold(True)
        self._fm = QtGui.QFontMetricsF(self._font)
        self._fm_small = QtGui.QFontMetricsF(self._small)
        self._widths: dict[tuple, float | str] = {}   # measured and elided label texts
        self._layout_key: tuple | None = None
        self._layout_flow = None
        self._layout_out: tuple | None = None
        self._metrics = Metrics(line=self._fm.height(), text_width=self._text_width)

        self._palettes = {name: palette32(lut(name)) for name in (SEQUENTIAL, DIVERGING, GREYS)}
        self._bars = {name: self._colour_bar(name) for name in (SEQUENTIAL, DIVERGING)}
        self._frame = self._outline("#E69F00", 11)
        self._focus_frame = self._outline("#D55E00", 10)
        self._select_box = QtWidgets.QGraphicsRectItem()
        sel = QtGui.QColor(BLUE)
        sel.setAlpha(28)
        self._select_box.setBrush(sel)
        self._select_box.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self._select_box.setZValue(-10)
        self._select_box.hide()
        self.scene.addItem(self._select_box)

        self._throttle = make_throttler(self, self._render)
        self.status.setText(HINT)

    # ------------------------------------------------------------ public API
    def set_report(self, report) -> None:
        self._report = report
        if self._schematic is not None:
            self._throttle.throttle()

    def set_probe(self, probe, true_class: int | None | str = "probe") -> None:
        self._probe = probe
        self._probe_report = self._report
        self._true_class = probe.label if true_class == "probe" else true_class
        if self._schematic is not None or self._noted:
            self._schematic = None
            self._noted = False
            self._hide_hover()
            self.status.setText(HINT)
        self._show_content()
        self._throttle.throttle()

    def set_selected(self, index: int | str | None) -> None:
        if index == self._selected:
            return
        self._selected = index
        self._scroll_to_selected = True
        if self._focused is not None and self._focused[0] != index:
            self._focused = None
        self._throttle.throttle()

    def show_stale(self, note: str) -> None:
        """The stack changed and runs again: keep the last sample's columns (they still match the report they
        were drawn with) and say so under them, until the next probe; the schematic when none is shown."""
        if self._probe is None:
            self.show_schematic(note)
            return
        self._noted = True
        self.status.setText(note)

    def show_schematic(self, message: str = "", error: bool = False) -> None:
        """The report's columns without values: up to the break and ``message`` in an error column when the
        report says the stack cannot run (or ``error``: the run failed), else every column and ``message``
        under them (the changed stack runs)."""
        self._probe = None
        self._schematic = message
        self._schematic_error = error
        broken = error or bool(self._report is not None and self._report.problem)
        self.status.setText("The columns stop where the stack breaks: fix that layer to see the values" if broken
                            else message)
        self._show_content()
        self._throttle.throttle()

    def clear(self, message: str | None = None) -> None:
        report = self._report
        if report is not None and getattr(report, "problem", None):
            self.show_schematic(message or report.problem)
            return
        self._probe = None
        self._schematic = None
        self._hide_hover()
        super().clear(message)

    def flush(self) -> None:
        self._throttle.flush()

    # ------------------------------------------------------------ readings for callers and tests
    @property
    def focused_channel(self) -> tuple[int, int] | None:
        """(layer, channel) last clicked, or None."""
        return self._focused

    @property
    def columns(self) -> list[Placed]:
        """The columns drawn, in order (their ``column`` says what each is)."""
        return list(self._placed)

    def column(self, key: str) -> Placed | None:
        return self._by_key.get(key)

    def column_texts(self, key: str) -> dict[str, str]:
        """What a column's labels read: ``title``, ``shape``, ``range`` (and ``error``)."""
        items = self._items.get(key)
        return dict(items.texts) if items is not None else {}

    def column_pixels(self, key: str) -> np.ndarray | None:
        """The image (h, w) of uint32 ARGB32_Premultiplied pixels last drawn for a column, or None."""
        items = self._items.get(key)
        return items.raster.image if items is not None and items.raster is not None else None

    def thumbnail_rect(self, key: str, i: int) -> QtCore.QRectF | None:
        """Scene rectangle of tile ``i`` of a column (a map, a unit, a bar)."""
        p = self._by_key.get(key)
        if p is None or p.grid is None or not 0 <= i < p.grid.n:
            return None
        return QtCore.QRectF(*p.grid.rect(i))

    def more_rect(self, key: str) -> QtCore.QRectF | None:
        p = self._by_key.get(key)
        return QtCore.QRectF(*p.more_rect) if p is not None and p.more_rect is not None else None

    def palette_for(self, symmetric: bool) -> np.ndarray:
        return self._palettes[DIVERGING if symmetric else SEQUENTIAL]

    def column_levels(self, key: str) -> tuple[tuple[float, float], bool] | None:
        items = self._items.get(key)
        return (items.levels.levels, items.levels.symmetric) if items is not None else None

    def tooltip_at(self, scene_pos: QtCore.QPointF) -> str:
        hit = self._hit(scene_pos)
        return self._describe(hit) if hit is not None else ""

    # ------------------------------------------------------------ building
    def _text_width(self, text: str) -> float:
        return self._advance(self._fm_small, text)

    def _elided(self, fm: QtGui.QFontMetricsF, text: str, width: float) -> str:
        """``text`` elided on the right to ``width``, remembered as :meth:`_advance` is."""
        key = (id(fm), text, width)
        out = self._widths.get(key)
        if out is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            out = self._widths[key] = fm.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width)
        return out

    def _advance(self, fm: QtGui.QFontMetricsF, text: str) -> float:
        """``fm.horizontalAdvance(text)``, remembered (the same labels are measured at every redraw)."""
        key = (id(fm), text)
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            width = self._widths[key] = fm.horizontalAdvance(text)
        return width

    def _outline(self, colour: str, z: float) -> QtWidgets.QGraphicsRectItem:
        item = QtWidgets.QGraphicsRectItem()
        pen = QtGui.QPen(QtGui.QColor(colour))
        pen.setWidth(2)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(z)
        item.hide()
        self.scene.addItem(item)
        return item

    @staticmethod
    def _colour_bar(name: str) -> QtGui.QPixmap:
        table = np.ascontiguousarray(np.repeat(lut(name)[None], 2, axis=0))
        h, w = table.shape[:2]
        image = QtGui.QImage(table.data, w, h, w * 3, QtGui.QImage.Format.Format_RGB888)
        return QtGui.QPixmap.fromImage(image.copy())

    def _layers(self) -> list[LayerInfo]:
        p = self._probe
        report = self._probe_report if p is not None else self._report
        acts = p.activations if p is not None else ()
        inner = getattr(p, "inner_activations", None) or {}
        out = []

        def info(r, values) -> LayerInfo:
            lists = tuple((key, tuple(info(q, _shape(inner.get(str(q.path)))) for q in reports))
                          for key, reports in r.inner)
            path = "" if r.path is None or len(r.path) == 1 else str(r.path)
            return LayerInfo(r.index, r.type, r.label, r.input_shape, r.output_shape, values, r.error, path, lists)

        if report is not None:
            for r in report.layers:
                out.append(info(r, tuple(np.shape(acts[r.index])) if r.index < len(acts) else None))
        elif p is not None:
            for i, (label, a) in enumerate(zip(p.layer_labels, acts)):
                shape = tuple(np.shape(a))
                out.append(LayerInfo(i, label, label, None, shape, shape))
        return out

    def _current_flow(self) -> Flow | None:
        p = self._probe
        report = self._probe_report if p is not None else self._report
        if p is None and self._schematic is None:
            return None
        layers = self._layers()
        if p is not None:
            input_shape = tuple(np.shape(p.image))
            classes = tuple(p.classes)
            inner = getattr(p, "inner_activations", None) or {}
            key = (id(report), input_shape, tuple(i.values_shape for i in layers), classes,
                   tuple((k, np.shape(v)) for k, v in inner.items()))
            if key != self._flow_key:
                self._flow_key = key
                self._widest = {}
                self._flow = build_flow(input_shape, layers, classes, softmax=p.softmax is not None)
            return self._flow
        input_shape = tuple(report.input_shape) if report is not None else (1, 1, 1)
        bad = report.first_error if report is not None else None
        problem = report.problem if report is not None else None
        message = self._schematic or problem or ""
        key = (id(report), "schematic", message, self._schematic_error)
        if key != self._flow_key:
            self._flow_key = key
            if bad is not None:
                self._flow = build_flow(input_shape, layers, (), softmax=False, error=message, error_at=bad.index)
            elif problem or self._schematic_error:
                self._flow = build_flow(input_shape, layers, (), softmax=False, error=message)
            else:
                self._flow = build_flow(input_shape, layers, (), softmax=False)
        return self._flow

    # ------------------------------------------------------------ drawing
    def _stop_following(self, *_) -> None:
        self._follow_selected = False

    def _resized(self) -> None:
        if self._flow is not None:
            self._throttle.throttle()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._hidden_update:
            self._hidden_update = False
            self._throttle.throttle()

    def _render(self) -> None:
        if not self.isVisible():
            self._hidden_update = True   # another tab is in front: draw when this one is shown
            return
        flow = self._current_flow()
        if flow is None:
            return
        p = self._probe
        columns = flow.columns()
        values = {c.key: self._values(c, p) for c in columns}
        ranges: dict[str, str] = {}
        for c in columns:
            v = values[c.key]
            items = self._items.get(c.key)
            if v is not None and c.kind in ("maps", "flat", "units", "image") and not (c.kind == "image" and
                                                                                     v.shape[0] == 3):
                if items is None:
                    items = self._items[c.key] = _ColumnItems(self.scene, self._font, self._fg, self._small)
                mode = "minmax" if c.kind == "image" else "auto"
                (lo, hi), _ = items.levels.update(v, mode)
                ranges[c.key] = f"{short_value(lo)} … {short_value(hi)}"
                widest = self._widest.get(c.key, "")
                if self._text_width(ranges[c.key]) > self._text_width(widest):
                    self._widest[c.key] = ranges[c.key]
        selected = None
        if isinstance(self._selected, str):
            selected = f"layer {self._selected}"
        elif self._selected is not None:
            selected = "input" if self._selected < 0 else f"layer {self._selected}"
        vp = self.canvas.viewport().size()
        bar = self.canvas.horizontalScrollBar()
        key = (vp.width(), vp.height(), bar.isVisible(), selected, frozenset(self._expanded),
               tuple(sorted(self._widest.items())))
        if flow is self._layout_flow and key == self._layout_key:   # nothing that places the columns changed: the same places
            placed, width, height = self._layout_out
        else:
            height = max(120.0, float(vp.height()))
            placed, width = layout(flow, float(vp.width()), height, self._metrics, selected, self._expanded,
                                   ranges=self._widest)  # the widest label so far: columns hold still
            if width > vp.width() and not bar.isVisible():   # the scroll bar comes and takes its height
                height = max(120.0, height - bar.sizeHint().height())
                placed, width = layout(flow, float(vp.width()), height, self._metrics, selected, self._expanded,
                                       ranges=self._widest)
            self._layout_flow, self._layout_key, self._layout_out = flow, key, (placed, width, height)
        self._placed = placed
        self._by_key = {q.key: q for q in placed}
        for key in [k for k in self._items if k not in self._by_key]:
            self._items.pop(key).remove()
        for q in placed:
            items = self._items.get(q.key)
            if items is None:
                items = self._items[q.key] = _ColumnItems(self.scene, self._font, self._fg, self._small)
            self._draw_column(q, items, values[q.key], ranges.get(q.key, ""))
        if width != self._width:
            self._width = width
        self.scene.setSceneRect(0, 0, max(width, vp.width()), height)
        self._draw_regions(flow, placed)
        sel = self._by_key.get(selected) if selected else None
        if sel is not None:
            self._select_box.setRect(sel.x - SPACING_HALF, sel.y, sel.width + 2 * SPACING_HALF, sel.height)
            self._select_box.show()
            # Until the person scrolls, keep the selected column in sight while the columns settle (their
            # widths follow their range labels; the scroll bar's arrival shortens the view).
            if self._scroll_to_selected or (self._follow_selected and (sel.x, sel.width) != self._scrolled_at):
                self._scrolled_at = (sel.x, sel.width)
                self._follow_selected = True
                self.canvas.ensureVisible(QtCore.QRectF(sel.x, 0, sel.width, 10), 24, 0)
        else:
            self._select_box.hide()
        self._scroll_to_selected = False
        error = self._by_key.get("error")
        if error is not None and self._probe is None and self._scroll_to_error != self._flow_key:
            self._scroll_to_error = self._flow_key   # once per schematic: the reason it stops is in sight
            self.canvas.ensureVisible(QtCore.QRectF(error.x, 0, error.width, 10), 8, 0)
        self._draw_focus()
        if self._hover is not None:
            self._show_frame(self._hover)

    def _draw_regions(self, flow: Flow, placed: list[Placed]) -> None:
        """A frame around each block's columns; the identity shortcut as a line along its bottom."""
        for item in self._region_items:
            self.scene.removeItem(item)
        self._region_items = []
        colour = QtGui.QColor(self._fg)
        colour.setAlpha(110)
        pen = QtGui.QPen(colour, 1, QtCore.Qt.PenStyle.DashLine)
        for region in block_regions(flow, placed):
            frame = QtWidgets.QGraphicsRectItem(region.x, region.y + 1, region.width, region.height - 2)
            frame.setPen(pen)
            frame.setZValue(-5)
            frame.setToolTip(f"block {region.block}")
            self.scene.addItem(frame)
            self._region_items.append(frame)
            if region.identity:
                line = QtWidgets.QGraphicsLineItem(region.x + 4, region.line_y, region.x + region.width - 4,
                                                   region.line_y)
                line.setPen(QtGui.QPen(colour, 2))
                line.setToolTip("the identity shortcut: the block's input is added to its body's output")
                self.scene.addItem(line)
                self._region_items.append(line)

    @property
    def regions(self) -> list:
        """The blocks' frames drawn (:class:`~.overview_layout.Region`), outer first."""
        flow = self._flow
        return block_regions(flow, self._placed) if flow is not None else []

    def _values(self, c, p) -> np.ndarray | None:
        if p is None:
            return None
        if c.path:
            v = (getattr(p, "inner_activations", None) or {}).get(c.path)
            return np.asarray(v, dtype=np.float32) if v is not None and c.kind != "pending" else None
        if c.kind == "image":
            return np.asarray(p.image, dtype=np.float32)
        if c.kind in ("maps", "flat", "units") and 0 <= c.index < len(p.activations):
            return np.asarray(p.activations[c.index], dtype=np.float32)
        if c.kind == "bars":
            return np.asarray(p.softmax, dtype=np.float32)
        return None

    def _draw_column(self, q: Placed, items: _ColumnItems, v: np.ndarray | None, range_text: str) -> None:
        c = q.column
        fm = self._fm
        title = self._elided(fm, c.title, max(q.width + SPACING_HALF, 40.0))
        items.set_text(items.title, "title", title)
        items.title.setPos(q.x + (q.width - self._advance(fm, title)) / 2, q.y)
        shape_text = fmt(c.shape) if c.kind != "error" else ""
        items.set_text(items.shape, "shape", shape_text)
        items.set_text(items.range, "range", range_text)
        extra_key = (q, self._true_class if c.kind == "bars" else None)
        rebuild = extra_key != items.extra_key
        if rebuild:
            items.clear_extra()
            items.extra_key = extra_key
            items.dynamic = []
        bottom = q.body_y
        kind = c.kind
        if kind in ("maps", "image", "flat", "units") and v is not None:
            bottom = self._draw_values(q, items, v, rebuild)
        elif kind == "bars" and v is not None:
            bottom = self._draw_bars(q, items, v, rebuild)
        elif not rebuild:
            bottom = items.bottom
        elif kind == "error":
            text = QtWidgets.QGraphicsTextItem()
            text.setPlainText(c.text)
            text.setDefaultTextColor(QtGui.QColor(VERMILION))
            text.setTextWidth(q.width)
            text.setPos(q.x, q.body_y)
            self.scene.addItem(text)
            items.extra.append(text)
            items.texts["error"] = c.text
            items.image.hide()
            bottom = q.body_y + text.boundingRect().height()
        else:   # pending: the shape's box, no values
            g = q.grid
            if g is not None:
                box = QtWidgets.QGraphicsRectItem(g.x, g.y, g.tw, g.th)
                box.setBrush(QtGui.QColor(GREY).lighter(130))
                box.setPen(QtGui.QPen(QtGui.QColor(GREY)))
                self.scene.addItem(box)
                items.extra.append(box)
                bottom = g.y + g.th
            items.image.hide()
        items.bottom = bottom
        if kind not in ("maps", "flat", "units", "image") or v is None:
            items.bar.hide()
            items.set_text(items.range, "range", "")
        line = self._fm_small.height()
        y = min(max(bottom + 4, q.body_y), q.y + q.height - 2 * line - 14)
        for item, text in ((items.shape, shape_text), (items.range, items.texts.get("range", ""))):
            item.setPos(q.x + (q.width - self._advance(self._fm_small, text)) / 2, y)
            y += line
            if item is items.shape and items.bar.isVisible():
                items.bar.setPos(q.x + PAD_TEXT, y + 1)
                y += 6

    def _draw_values(self, q: Placed, items: _ColumnItems, v: np.ndarray, rebuild: bool) -> float:
        c = q.column
        if c.kind == "image" and v.ndim == 3 and v.shape[0] == 3:
            maps = pack_rgb(v)[None]
            tile = maps.shape[1:]
            symmetric = palette = None
        else:
            if c.kind == "flat" and c.origin is not None and (q.large or q.strip is None):
                maps = v.reshape(c.origin)
            elif q.strip is not None:
                maps = v.reshape(1, -1, 1)
            elif c.kind == "image":
                maps = as_maps(v)[:1]
            else:
                maps = as_maps(v)
            levels, symmetric = items.levels.levels, items.levels.symmetric
            n_draw = q.grid.n if q.grid is not None and q.strip is None else maps.shape[0]
            shown = maps[:n_draw]
            if items.u8 is None or items.u8.shape != shown.shape:
                items.u8 = np.empty(shown.shape, np.uint8)
                items.scratch = np.empty(shown.shape, np.float32)
            u8 = quantize(shown, levels, out=items.u8, scratch=items.scratch)
            name = GREYS if c.kind == "image" else (DIVERGING if symmetric else SEQUENTIAL)
            palette = self._palettes[name]
            maps = u8
            tile = maps.shape[1:]
        if q.strip is not None:
            x, y, w, h = q.strip
            grid = Grid(x, y, 1, 1, int(h), int(w), 0, 1)
        else:
            grid = q.grid
        key = (grid.rows, grid.cols, grid.th, grid.tw, grid.gap, grid.n, tuple(tile))
        if items.raster_key != key:
            items.raster_key = key
            items.raster = Raster(grid, tuple(tile))
        pixels = items.raster.draw(maps) if palette is None else items.raster.draw_indices(maps, palette)
        items.image.set_pixels(pixels)
        items.image.setPos(grid.x, grid.y)
        items.image.show()
        bottom = grid.y + grid.height
        if symmetric is not None:
            name = DIVERGING if symmetric else SEQUENTIAL
            width = max(10.0, q.width - 2 * PAD_TEXT)
            if items.bar_key != (name, width):
                items.bar_key = (name, width)
                bar = self._bars[name]
                items.bar.setPixmap(bar)
                items.bar.setTransform(QtGui.QTransform.fromScale(width / bar.width(), 3.0))
            items.bar.show()
        else:
            items.bar.hide()
        if q.more_rect is not None:
            x, y, w, h = q.more_rect
            bottom = y + h
        if c.kind == "flat" and q.strip is not None and c.origin is not None:
            bottom = q.strip[1] + q.strip[3]
        if not rebuild:
            return bottom
        if q.more_rect is not None:
            x, y, w, h = q.more_rect
            label = f"+{q.more} more" if q.more else "show fewer"
            box = QtWidgets.QGraphicsRectItem(x, y, w, h)
            box.setPen(QtGui.QPen(QtGui.QColor(GREY)))
            box.setBrush(QtGui.QColor(GREY).lighter(150) if self._bg.lightness() > 128 else
                         QtGui.QColor(GREY).darker(200))
            text = _text(label, self._small, self._fg)
            text.setPos(x + (w - self._fm_small.horizontalAdvance(label)) / 2, y + (h - self._fm_small.height()) / 2)
            for item in (box, text):
                self.scene.addItem(item)
                items.extra.append(item)
            items.texts["more"] = label
        if c.kind == "flat" and q.strip is not None and c.origin is not None:
            self._draw_segments(q, items)
        if c.kind == "units" and c.classes and q.label_width and q.grid is not None:
            g = q.grid
            for i, name in enumerate(c.classes):
                text = _text(name, self._small, self._fg)
                x, y, w, h = g.rect(i)
                text.setPos(x + w + 4, y + (h - self._fm_small.height()) / 2)
                self.scene.addItem(text)
                items.extra.append(text)
        return bottom

    def _draw_segments(self, q: Placed, items: _ColumnItems) -> float:
        """A Flatten's strip: a tick between its C segments (one per channel it was flattened from)."""
        x, y, w, h = q.strip
        c = q.column.origin[0]
        path = QtGui.QPainterPath()
        for k in range(1, c):   # outside the strip, so the ticks hide no value
            yy = y + k * h / c
            path.moveTo(x - 4, yy)
            path.lineTo(x - 1, yy)
            path.moveTo(x + w + 1, yy)
            path.lineTo(x + w + 4, yy)
        item = QtWidgets.QGraphicsPathItem(path)
        pen = QtGui.QPen(self._fg)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(2)
        self.scene.addItem(item)
        items.extra.append(item)
        return y + h

    def _draw_bars(self, q: Placed, items: _ColumnItems, probs: np.ndarray, rebuild: bool) -> float:
        g = q.grid
        c = q.column
        items.image.hide()
        probs = np.nan_to_num(np.asarray(probs, dtype=np.float64).reshape(-1), nan=0.0)
        pred = int(np.argmax(probs)) if probs.size else -1
        true = self._true_class
        line = self._fm_small.height()
        n = min(g.n, probs.size)
        if rebuild:
            show_names = g.th >= 0.75 * line
            back_brush = QtGui.QColor(GREY).lighter(160) if self._bg.lightness() > 128 else QtGui.QColor("#333")
            for i in range(n):
                x, y, w, h = g.rect(i)
                back = QtWidgets.QGraphicsRectItem(x, y, w, h)
                back.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
                back.setBrush(back_brush)
                bar = QtWidgets.QGraphicsRectItem(x, y, 1, h)
                bar.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
                new = [back, bar]
                value = None
                if i == true:
                    mark = QtWidgets.QGraphicsRectItem(x - 1, y - 1, w + 2, h + 2)
                    pen = QtGui.QPen(QtGui.QColor(GREEN))
                    pen.setWidth(2)
                    pen.setCosmetic(True)
                    mark.setPen(pen)
                    new.append(mark)
                if show_names:
                    name = c.classes[i] if c.classes and i < len(c.classes) else str(i)
                    label = ("✓ " if i == true else "") + name
                    text = _text(label, self._small, QtGui.QColor(GREEN) if i == true else self._fg)
                    text.setPos(x - 6 - self._fm_small.horizontalAdvance(label), y + (h - line) / 2)
                    value = _text("", self._small, self._fg)
                    value.setPos(x + w + 4, y + (h - line) / 2)
                    new += [text, value]
                for item in new:
                    self.scene.addItem(item)
                    items.extra.append(item)
                items.dynamic.append((bar, value, [None, None]))
        blue, grey = QtGui.QColor(BLUE), QtGui.QColor(GREY)
        for i, (bar, value, last) in enumerate(items.dynamic[:n]):
            x, y, w, h = g.rect(i)
            p = float(min(max(probs[i], 0.0), 1.0))
            width = max(1.0, round(w * p))
            if last[0] != (width, i == pred):
                last[0] = (width, i == pred)
                bar.setRect(x, y, width, h)
                bar.setBrush(blue if i == pred else grey)
            text = f"{p:.3f}"
            if value is not None and last[1] != text:
                last[1] = text
                value.setText(text)
        return g.y + g.height

    def _draw_focus(self) -> None:
        f = self._focused
        if f is None:
            self._focus_frame.hide()
            return
        key = "input" if f[0] == -1 else f"layer {f[0]}"
        rect = self.thumbnail_rect(key, f[1]) if f[1] >= 0 else None
        if rect is None:
            self._focus_frame.hide()
            return
        self._focus_frame.setRect(rect.adjusted(-1, -1, 1, 1))
        self._focus_frame.show()

    # ------------------------------------------------------------ pointer
    def _hit(self, pos: QtCore.QPointF | None) -> tuple | None:
        """What is under a scene point: (placed, "tile", i), (placed, "more", -1), (placed, "strip", i),
        (placed, "column", -1), or None."""
        if pos is None:
            return None
        x, y = pos.x(), pos.y()
        for q in self._placed:
            if not (q.x - SPACING_HALF <= x < q.x + q.width + SPACING_HALF and q.y <= y < q.y + q.height):
                continue
            if q.more_rect is not None:
                mx, my, mw, mh = q.more_rect
                if mx <= x < mx + mw and my <= y < my + mh:
                    return (q, "more", -1)
            if q.strip is not None:
                sx, sy, sw, sh = q.strip
                n = q.column.count
                if sx <= x < sx + sw and sy <= y < sy + sh and n:
                    return (q, "strip", min(n - 1, int((y - sy) * n / sh)))
            elif q.grid is not None and q.column.kind not in ("pending",):
                i = q.grid.at(x, y)
                if i is not None:
                    return (q, "tile", i)
            return (q, "column", -1)
        return None

    def _describe(self, hit: tuple) -> str:
        q, what, i = hit
        c = q.column
        p = self._probe
        where = "input" if c.index < 0 and c.kind == "image" else c.title.replace(" · ", " ", 1)
        where = f"layer {where}" if c.index >= 0 else where
        if c.path:
            where = f"{LayerPath.of(c.path).words()} {c.title.split(' · ', 1)[-1]}"
        if what == "more":
            return f"{where}: show all {c.count} maps" if q.more else f"{where}: show the first maps only"
        if c.kind == "error":
            return c.text
        if p is None or what == "column":
            return f"{where} · output {fmt(c.shape)}"
        v = self._values(c, p)
        if v is None:
            return f"{where} · output {fmt(c.shape)}"
        if c.kind == "bars":
            name = c.classes[i] if c.classes and i < len(c.classes) else str(i)
            mark = " · the true class" if i == self._true_class else ""
            return f"{name} · p = {fmt_value(float(v[i]))}{mark}"
        if c.kind == "units" or (c.kind == "flat" and what == "strip") or what == "strip":
            flat = v.reshape(-1)
            value = fmt_value(float(flat[i]))
            if c.kind == "flat" and c.origin is not None:
                _, h, w = c.origin
                ch, rest = divmod(i, h * w)
                return f"{where} · value {i} · from channel {ch}, y {rest // w}, x {rest % w} · {value}"
            name = c.classes[i] if c.classes and i < len(c.classes) else f"unit {i}"
            return f"{where} · {name} · {value}"
        if c.kind == "image" and v.ndim == 3 and v.shape[0] == 3:
            (lo, hi), _ = compute_levels(v, "minmax")
            return f"input · RGB · values {fmt_value(lo)} to {fmt_value(hi)}"
        maps = v.reshape(c.origin) if c.kind == "flat" and c.origin is not None else as_maps(v)
        if not 0 <= i < maps.shape[0]:
            return where
        (lo, hi), _ = compute_levels(maps[i], "minmax")
        finite = bool(np.isfinite(maps[i]).all())
        note = "" if finite else " (with NaN or inf)"
        return f"{where} · channel {i} · values {fmt_value(lo)} to {fmt_value(hi)}{note}"

    def _hover_at(self, pos: QtCore.QPointF | None, global_pos: QtCore.QPoint | None) -> None:
        hit = self._hit(pos)
        key = None if hit is None else (hit[0].key, hit[1], hit[2])
        if key == self._hover:
            return
        self._hover = key
        if hit is None:
            self._hide_hover()
            return
        text = self._describe(hit)
        self.status.setText(text)
        self.canvas.setToolTip(plain_tooltip(text))
        if global_pos is not None:
            QtWidgets.QToolTip.showText(global_pos, plain_tooltip(text), self.canvas)
        self._show_frame(key)

    def _show_frame(self, key: tuple) -> None:
        q = self._by_key.get(key[0])
        rect = None
        if q is not None and key[1] == "tile":
            rect = self.thumbnail_rect(key[0], key[2])
        elif q is not None and key[1] == "more" and q.more_rect is not None:
            rect = QtCore.QRectF(*q.more_rect)
        if rect is None:
            self._frame.hide()
        else:
            self._frame.setRect(rect.adjusted(-1, -1, 1, 1))
            self._frame.show()

    def _hide_hover(self) -> None:
        self._hover = None
        self._frame.hide()
        self.canvas.setToolTip("")

    def _click_at(self, pos: QtCore.QPointF) -> None:
        hit = self._hit(pos)
        if hit is None:
            return
        q, what, i = hit
        if what == "more":
            if q.key in self._expanded:
                self._expanded.discard(q.key)
            else:
                self._expanded.add(q.key)
            self._render()
            return
        c = q.column
        if c.index < 0:
            return
        channel = i if what in ("tile", "strip") and c.kind in ("maps", "flat", "units") else -1
        if what == "strip" and c.kind == "flat" and c.origin is not None:
            channel = i // max(1, c.origin[1] * c.origin[2])   # the channel the value was flattened from
        if c.path:
            self._focused = (c.path, channel) if channel >= 0 else None
            self.pathClicked.emit(c.path, channel)
            self._draw_focus()
            return
        self._focused = (c.index, channel) if channel >= 0 else None
        self.thumbnailClicked.emit(c.index, channel)
        self._draw_focus()


def _shape(values) -> tuple[int, ...] | None:
    return None if values is None else tuple(np.shape(values))


SPACING_HALF = 8
HINT = "Point at a map to read it; click it to select its layer and channel"
PAD_TEXT = 6
