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
Qt); the scene's items are :mod:`.overview_items`, and :mod:`.overview_draw`
draws a column into them. Repaints are throttled to about 30 a second;
``flush()`` draws at once.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    BLUE,
    DIVERGING,
    SEQUENTIAL,
    ViewPanel,
    make_throttler,
    palette_colors,
    status_label,
)
from cnnviz.app.views.overview_draw import GREYS, PAD_TEXT, SPACING_HALF, ColumnDrawer  # noqa: F401 (also here)
from cnnviz.app.views.overview_items import _Canvas, _ColumnItems, short_value
from cnnviz.app.views.overview_layout import (
    Flow,
    LayerInfo,
    Metrics,
    Placed,
    block_regions,
    build_flow,
    layout,
)
from cnnviz.app.views.overview_pointer import OverviewPointer
from cnnviz.app.views.overview_read import column_values, shape_of


class OverviewView(OverviewPointer, ViewPanel):
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
        self._pending: set[str] = set()   # columns whose last values are not drawn yet (out of sight)
        self._width = 0.0

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(0, 0, 0, 2)
        outer.setSpacing(2)
        self.scene = QtWidgets.QGraphicsScene(self)
        bg, fg = palette_colors(self)
        self.scene.setBackgroundBrush(bg)
        self.canvas = _Canvas(self, self.scene)
        self.canvas.horizontalScrollBar().sliderMoved.connect(self._stop_following)
        self.canvas.horizontalScrollBar().valueChanged.connect(self._scrolled)
        self.canvas.setMinimumSize(200, 160)
        outer.addWidget(self.canvas, 1)
        self.status = status_label(content)
        self.status.setTextFormat(QtCore.Qt.TextFormat.PlainText)   # layer and class names are not markup
        self.status.setContentsMargins(4, 0, 4, 0)
        outer.addWidget(self.status)
        self._set_content(content)

        self._draw = ColumnDrawer(self.scene, self.font(), bg, fg)   # fonts, palettes: draws a column
        self._layout_key: tuple | None = None
        self._layout_flow = None
        self._layout_out: tuple | None = None
        self._metrics = Metrics(line=self._draw.line, text_width=self._draw.text_width)

        self._frame = self._draw.outline("#E69F00", 11)
        self._focus_frame = self._draw.outline("#D55E00", 10)
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
        self._draw_pending(everything=True)
        items = self._items.get(key)
        return dict(items.texts) if items is not None else {}

    def column_pixels(self, key: str) -> np.ndarray | None:
        """The image (h, w) of uint32 ARGB32_Premultiplied pixels last drawn for a column, or None."""
        self._draw_pending(everything=True)
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
        return self._draw.palette(DIVERGING if symmetric else SEQUENTIAL)

    def column_levels(self, key: str) -> tuple[tuple[float, float], bool] | None:
        self._draw_pending(everything=True)
        items = self._items.get(key)
        return (items.levels.levels, items.levels.symmetric) if items is not None else None

    # ------------------------------------------------------------ building
    def _layers(self) -> list[LayerInfo]:
        p = self._probe
        report = self._probe_report if p is not None else self._report
        acts = p.activations if p is not None else ()
        inner = getattr(p, "inner_activations", None) or {}
        out = []

        def info(r, values) -> LayerInfo:
            lists = tuple((key, tuple(info(q, shape_of(inner.get(str(q.path)))) for q in reports))
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
        values: dict[str, np.ndarray | None] = {}   # the columns' values, read for the columns drawn

        def value(c) -> np.ndarray | None:
            if c.key not in values:
                values[c.key] = column_values(c, p)
            return values[c.key]

        # The colour ranges first (a column's width follows its widest range label): of every column when the
        # flow is new, else of those in sight (the others' when they come into sight, see _draw_pending).
        steady = flow is self._layout_flow and self._by_key
        ranges = {c.key: self._range_of(c, value(c)) for c in columns
                  if not steady or self._in_sight(self._by_key.get(c.key))}
        selected = None
        if isinstance(self._selected, str):
            selected = f"layer {self._selected}"
        elif self._selected is not None:
            selected = "input" if self._selected < 0 else f"layer {self._selected}"
        vp = self.canvas.viewport().size()
        bar = self.canvas.horizontalScrollBar()
        key = (vp.width(), vp.height(), bar.isVisible(), selected, frozenset(self._expanded),
               tuple(sorted(self._widest.items())))
        moved = not (flow is self._layout_flow and key == self._layout_key)
        if not moved:   # nothing that places the columns changed: the same places
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
        # Every column when the places changed; else the columns in sight, the rest when scrolled to (a wide
        # network's redraw while training costs the columns on screen, not all of them).
        self._pending = set()
        for q in placed:
            if moved or self._in_sight(q):
                self._draw_column(q, value(q.column), ranges.get(q.key))
            else:
                self._pending.add(q.key)
        if width != self._width:
            self._width = width
        self.scene.setSceneRect(0, 0, max(width, vp.width()), height)
        self._draw.draw_regions(flow, placed)
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

    def _range_of(self, c, v: np.ndarray | None) -> str:
        """Column ``c``'s colour levels for its values ``v``, updated (its items made if new); the range label
        they give ("" for a column without levels), remembered as the column's widest when it is."""
        if v is None or c.kind not in ("maps", "flat", "units", "image") or (c.kind == "image" and v.shape[0] == 3):
            return ""
        (lo, hi), _ = self._items_for(c.key).levels.update(v, "minmax" if c.kind == "image" else "auto")
        text = f"{short_value(lo)} … {short_value(hi)}"
        widest = self._widest.get(c.key, "")
        if self._draw.text_width(text) > self._draw.text_width(widest):
            self._widest[c.key] = text
        return text

    def _draw_column(self, q: Placed, v: np.ndarray | None, range_text: str | None) -> None:
        """Draw placed column ``q`` with its values ``v`` (its range label computed when None)."""
        if range_text is None:
            range_text = self._range_of(q.column, v)
        self._draw.draw_column(q, self._items_for(q.key), v, range_text, self._true_class)

    def _items_for(self, key: str) -> _ColumnItems:
        """Column ``key``'s scene items, made when it has none yet."""
        items = self._items.get(key)
        if items is None:
            items = self._items[key] = self._draw.new_items()
        return items

    def _in_sight(self, q: Placed | None) -> bool:
        """True when column ``q`` is on screen or within half a screen of it (None: not placed yet)."""
        if q is None:
            return True
        x0 = float(self.canvas.horizontalScrollBar().value())
        w = float(self.canvas.viewport().width())
        return q.x + q.width >= x0 - w / 2 and q.x <= x0 + 1.5 * w

    def _scrolled(self, _value: int) -> None:
        self._draw_pending()

    def _draw_pending(self, everything: bool = False) -> None:
        """Draw the columns left for later by the last redraw that are in sight now (all with ``everything``)."""
        if not self._pending:
            return
        for key in list(self._pending):
            q = self._by_key.get(key)
            if q is not None and (everything or self._in_sight(q)):
                self._pending.discard(key)
                self._draw_column(q, column_values(q.column, self._probe), None)

    @property
    def regions(self) -> list:
        """The blocks' frames drawn (:class:`~.overview_layout.Region`), outer first."""
        flow = self._flow
        return block_regions(flow, self._placed) if flow is not None else []


HINT = "Point at a map to read it; click it to select its layer and channel"
