"""Training health over time, for one layer and for all: weight and gradient histograms as heat maps (one row
per probe, newest at the top, the values along x), the update-to-weight ratio ‖Δw‖/‖w‖ of every layer on a
log axis with the usual band shaded and a warning in red outside 1e-5..1e-1, and the share of dead units of
every rectifier.

Fed the :class:`~cnnviz.core.run.health.Health` each probe carries (``add``), on the GUI thread; numpy only,
no torch. At most ``max_rows`` probes are kept, the oldest dropped. A layer's rows are drawn over the
widest range among them: ranges are powers of two, so a narrower row's bins add up exactly into the wider
bins (:func:`~cnnviz.core.run.health.rebin`). Redrawn at most ten times a second, as probes come.

"log counts" colours the heat maps by ``log1p`` of the counts (off by default: the counts as they are), so
that the few weights or gradients far out in a tail show beside the thousands near 0. The curves' legends
are rows of coloured names above their plots, wrapped to the plot's width, so that they never cover the
curves; a layer is named as the other views name it, by its path and its type ("3.body.1 ReLU").
"""
from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.app.views._common import (
    BLUE,
    GREEN,
    ORANGE,
    SEQUENTIAL,
    VERMILION,
    ViewPanel,
    graphics_widget,
    label_style,
    lut,
    make_throttler,
    settle,
    status_label,
    style_axes,
    title_label,
)
from cnnviz.core.run.health import BAND, EXPLODING, VANISHING, Health, rebin, update_warning

MAX_ROWS = 500
"""Probes kept (about 40 s of training at the probe rate); the oldest go first."""
REDRAW_MS = 100
COLOURS = (BLUE, ORANGE, GREEN, VERMILION, "#CC79A7", "#56B4E9", "#F0E442", "#000000")


class _StepAxis(pg.AxisItem):
    """The heat maps' rows named by the training step each probe was taken at."""

    def __init__(self, orientation: str = "left") -> None:
        super().__init__(orientation)
        self.steps: list[int] = []

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            k = math.floor(v)
            out.append(f"{self.steps[k]:,}" if 0 <= k < len(self.steps) and abs(v - k - 0.5) < 0.25 else "")
        return out

    def tickValues(self, minVal, maxVal, size):
        n = len(self.steps)
        if n == 0:
            return []
        every = max(1, math.ceil(n / max(1, size / 40)))
        return [(every, [k + 0.5 for k in range(n - 1, -1, -every)])]


def layer_name(path: str, kind: str = "") -> str:
    """A layer as the probe views name it: its path and its type ("2 ReLU", "3.body.1 Conv2d")."""
    return f"{path} {kind}" if kind else str(path)


class _LegendRow(pg.GraphicsWidget):
    """A plot's title and legend above it: the title, then a row of coloured names wrapped to the width it
    gets, so that the legend never covers the data.

    ``set_entries([(name, colour), ...])``; ``emphasis``: the index of the entry in bold (-1: none)."""

    def __init__(self, widget: QtWidgets.QWidget, title: str = "") -> None:
        super().__init__()
        style = label_style(widget)
        self._fg = style["color"]
        self._title = (f"<div align='center' style='font-size:{style['font-size']}'>{html.escape(title)}</div>"
                       if title else "")
        size = widget.font().pointSizeF()
        self._size = f"{max(7.0, (size if size > 0 else 9) - 1):.0f}pt"
        self.item = QtWidgets.QGraphicsTextItem(self)
        self.item.document().setDocumentMargin(1)
        self.entries: list[tuple[str, str]] = []
        self.emphasis = -1
        self.html = ""
        self._height = 0.0
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_entries(self, entries, emphasis: int = -1) -> None:
        self.entries = [(str(name), str(colour)) for name, colour in entries]
        self.emphasis = emphasis
        parts = []
        for k, (name, colour) in enumerate(self.entries):
            text = html.escape(name).replace(" ", "&nbsp;")
            if k == emphasis:
                text = f"<b>{text}</b>"
            parts.append(f"<span style='color:{colour}'>━━</span>&nbsp;{text}")
        self.html = (f"<div style='color:{self._fg}'>{self._title}<div style='font-size:{self._size}'>"
                     + " &nbsp; ".join(parts) + "</div></div>")
        self.item.setHtml(self.html)
        self._fit()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    def _fit(self) -> None:
        width = self.size().width()
        self.item.setTextWidth(width if width > 40 else -1)
        height = math.ceil(self.item.boundingRect().height()) if self.entries or self._title else 0.0
        if height != self._height:
            self._height = height
            self.updateGeometry()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def sizeHint(self, which, constraint=QtCore.QSizeF()):  # noqa: N802 (Qt's name)
        if which == QtCore.Qt.SizeHint.MaximumSize:
            return QtCore.QSizeF(1e6, self._height)
        return QtCore.QSizeF(0, self._height)


class _Ring:
    """The last ``capacity`` probes' health as preallocated arrays (one row per probe), oldest overwritten."""

    FIELDS = ("weight_hist", "weight_range", "grad_hist", "grad_range", "update_ratio", "dead")

    def __init__(self, capacity: int, health: Health | None = None) -> None:
        self.capacity = capacity
        self.n = 0
        self.pos = 0
        self.latest: Health | None = None
        self.steps = np.zeros(capacity, np.int64)
        self.arrays: dict[str, np.ndarray] = {}
        if health is not None:
            for name in self.FIELDS:
                value = np.asarray(getattr(health, name))
                self.arrays[name] = np.zeros((capacity, *value.shape), value.dtype)

    def append(self, health: Health, step: int) -> None:
        for name, array in self.arrays.items():
            array[self.pos] = getattr(health, name)
        self.steps[self.pos] = step
        self.latest = health
        self.pos = (self.pos + 1) % self.capacity
        self.n = min(self.n + 1, self.capacity)

    def ordered(self, array: np.ndarray) -> np.ndarray:
        """``array``'s kept rows (a ring's, or a slice of one), oldest first."""
        if self.n < self.capacity:
            return array[:self.n]
        return np.concatenate((array[self.pos:], array[:self.pos]))

    def column(self, name: str, i: int | None = None) -> np.ndarray:
        array = self.arrays[name]
        return self.ordered(array if i is None else array[:, i])


class HealthView(ViewPanel):
    """Per-layer training health over the probes: ``add(health, step)``, ``set_layer(path)``, ``clear()``,
    ``flush()``; ``layer_box`` picks the layer the heat maps show."""

    EMPTY_HINT = ("Training health appears while training: each layer's weight and gradient histograms, "
                  "its update-to-weight ratio and the dead units of each ReLU")

    def __init__(self, parent: QtWidgets.QWidget | None = None, max_rows: int = MAX_ROWS) -> None:
        super().__init__(parent)
        self._capacity = max(1, int(max_rows))
        self._ring = _Ring(self._capacity)
        self._emphasis = -1
        self._layers: tuple[str, ...] = ()
        self._rectifiers: tuple[str, ...] = ()
        self._wanted: str | None = None
        self._ratio_curves: list[pg.PlotDataItem] = []
        self._dead_curves: list[pg.PlotDataItem] = []
        self.renders = 0

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        self.title = title_label(content)
        self.title.setText("Training health")
        top.addWidget(self.title, 1)
        self.log_box = QtWidgets.QCheckBox("log counts", content)
        self.log_box.setObjectName("health_log_counts")
        self.log_box.setToolTip("Colour the histograms by log(1 + count): the few values out in a tail show "
                                "beside the many near 0")
        self.log_box.toggled.connect(lambda _=False: self._throttle.throttle())
        top.addWidget(self.log_box)
        top.addSpacing(8)
        top.addWidget(QtWidgets.QLabel("Layer", content))
        self.layer_box = QtWidgets.QComboBox(content)
        self.layer_box.setObjectName("health_layer")
        self.layer_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.layer_box.currentIndexChanged.connect(lambda _=0: self._throttle.throttle())
        top.addWidget(self.layer_box)
        outer.addLayout(top)
        self.graphics = graphics_widget(content)
        outer.addWidget(self.graphics, 1)
        self.warning_label = QtWidgets.QLabel(content)
        self.warning_label.setObjectName("health_warning")
        self.warning_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(f"color: {VERMILION}; font-weight: bold;")
        self.warning_label.hide()
        outer.addWidget(self.warning_label)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        outer.addWidget(self.caption)
        self._set_content(content)

        self.weight_plot, self.weight_image, self._weight_axis = self._heat_map("weights", 0, 0)
        self.grad_plot, self.grad_image, self._grad_axis = self._heat_map("gradients dL/dw", 0, 1)
        self.ratio_legend = _LegendRow(self, "‖Δw‖/‖w‖ per step")
        self.graphics.addItem(self.ratio_legend, row=1, col=0)
        self.dead_legend = _LegendRow(self, "dead units (0 for the whole batch)")
        self.graphics.addItem(self.dead_legend, row=1, col=1)
        self.ratio_legend.set_entries([])
        self.dead_legend.set_entries([])
        self.ratio_plot = self._plot(2, 0)
        self.ratio_plot.setLogMode(y=True)
        self.band = pg.LinearRegionItem(values=(math.log10(BAND[0]), math.log10(BAND[1])),
                                        orientation="horizontal", movable=False, brush=pg.mkBrush(0, 158, 115, 45),
                                        pen=pg.mkPen(None))
        self.band.setZValue(-20)
        self.ratio_plot.addItem(self.band, ignoreBounds=True)
        for limit in (VANISHING, EXPLODING):
            line = pg.InfiniteLine(math.log10(limit), angle=0, pen=pg.mkPen(VERMILION, style=QtCore.Qt.PenStyle.DashLine))
            self.ratio_plot.addItem(line, ignoreBounds=True)
        self.ratio_plot.setYRange(math.log10(VANISHING) - 1, math.log10(EXPLODING) + 0.5, padding=0)
        self.dead_plot = self._plot(2, 1)
        self.dead_plot.setYRange(0, 1, padding=0.02)
        self._throttle = make_throttler(self, self._render, REDRAW_MS)

    # ------------------------------------------------------------ building
    def _plot(self, row: int, col: int) -> pg.PlotItem:
        """A curves plot; its title is in the legend row above it."""
        plot = pg.PlotItem(enableMenu=False)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        style_axes(plot, self)
        plot.getAxis("bottom").setLabel("step", **label_style(self))
        for name in ("bottom", "left"):
            plot.getAxis(name).enableAutoSIPrefix(False)   # its label rewritten at every range change otherwise
        self.graphics.addItem(plot, row=row, col=col)
        return plot

    def _heat_map(self, what: str, row: int, col: int) -> tuple[pg.PlotItem, pg.ImageItem, _StepAxis]:
        axis = _StepAxis("left")
        plot = pg.PlotItem(enableMenu=False, axisItems={"left": axis})
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        style_axes(plot, self)
        plot.setTitle(f"{what}: one row per probe", color=label_style(self)["color"],
                      size=label_style(self)["font-size"])
        plot.getAxis("bottom").setLabel("value", **label_style(self))
        axis.setLabel("step", **label_style(self))
        plot.getAxis("bottom").enableAutoSIPrefix(False)
        image = pg.ImageItem(axisOrder="row-major")
        plot.addItem(image)
        self.graphics.addItem(plot, row=row, col=col)
        return plot, image, axis

    # ------------------------------------------------------------ API
    def add(self, health: Health | None, step: int | None = None) -> None:
        """One probe's health (None, a probe taken while paused, is skipped); a new set of layers starts over."""
        if health is None:
            return
        if health.layers != self._layers or health.rectifiers != self._rectifiers:
            self._start(health)
        self._ring.append(health, int(health.step if step is None else step))
        self._show_content()
        self._throttle.throttle()

    def set_layer(self, path) -> None:
        """Show the layer at ``path`` (an index, "3.body.1" or a LayerPath) when it has weights; else keep the one
        shown (a ReLU's dead units are in their own plot)."""
        self._wanted = str(path)
        k = self.layer_box.findData(self._wanted)
        if k >= 0:
            self.layer_box.setCurrentIndex(k)

    def clear(self, message: str | None = None) -> None:
        self._start(None)
        self.warning_label.hide()
        self.caption.setText("")
        super().clear(message)

    def flush(self) -> None:
        self._throttle.flush()

    # ------------------------------------------------------------ readings
    @property
    def rows(self) -> int:
        """How many probes are kept."""
        return self._ring.n

    @property
    def layer(self) -> str | None:
        """The path of the layer the heat maps show."""
        return self.layer_box.currentData()

    @property
    def log_counts(self) -> bool:
        """Whether the heat maps are coloured by log(1 + count)."""
        return self.log_box.isChecked()

    def set_log_counts(self, on: bool) -> None:
        self.log_box.setChecked(bool(on))

    def weight_pixels(self) -> np.ndarray | None:
        """The weight heat map last drawn (rows × bins: the counts, or their log1p with log counts on), or None."""
        return None if self.weight_image.image is None else np.asarray(self.weight_image.image)

    def grad_pixels(self) -> np.ndarray | None:
        return None if self.grad_image.image is None else np.asarray(self.grad_image.image)

    @property
    def warning(self) -> str:
        """The warning shown ("" when none is)."""
        return self.warning_label.text() if not self.warning_label.isHidden() else ""

    # ------------------------------------------------------------ drawing
    def _start(self, health: Health | None) -> None:
        """A new set of layers: the picker and the curves made again (the rows of another model say nothing)."""
        self._ring = _Ring(self._capacity, health)
        self._emphasis = -1
        self._layers = health.layers if health is not None else ()
        self._rectifiers = health.rectifiers if health is not None else ()
        for plot, curves in ((self.ratio_plot, self._ratio_curves), (self.dead_plot, self._dead_curves)):
            for curve in curves:
                plot.removeItem(curve)
            curves.clear()
        wanted = self._wanted
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        if health is not None:
            for path, kind in zip(health.layers, health.kinds):
                self.layer_box.addItem(f"{path} · {kind}", path)
            for k, (path, kind) in enumerate(zip(health.layers, health.kinds)):
                pen = pg.mkPen(COLOURS[k % len(COLOURS)], width=1.5)
                curve = pg.PlotDataItem(pen=pen, name=layer_name(path, kind), connect="finite")
                self.ratio_plot.addItem(curve)
                self._ratio_curves.append(curve)
            for k, path in enumerate(health.rectifiers):
                curve = pg.PlotDataItem(pen=pg.mkPen(COLOURS[k % len(COLOURS)], width=1.5),
                                        name=layer_name(path, _rectifier_kind(health, k)))
                self.dead_plot.addItem(curve)
                self._dead_curves.append(curve)
        self.ratio_legend.set_entries([(c.name(), COLOURS[k % len(COLOURS)]) for k, c in enumerate(self._ratio_curves)])
        self.dead_legend.set_entries([(c.name(), COLOURS[k % len(COLOURS)]) for k, c in enumerate(self._dead_curves)])
        k = self.layer_box.findData(wanted) if wanted is not None else -1
        self.layer_box.setCurrentIndex(k if k >= 0 else 0 if self.layer_box.count() else -1)
        self.layer_box.blockSignals(False)
        self.weight_image.clear()
        self.grad_image.clear()

    def _render(self) -> None:
        ring = self._ring
        if ring.n == 0 or ring.latest is None:
            return
        self.renders += 1
        steps = ring.ordered(ring.steps).astype(np.float64)
        i = max(0, self.layer_box.currentIndex())
        latest = ring.latest
        n = ring.n
        log = self.log_box.isChecked()
        if self._layers:
            for image, plot, axis, hist, ranges in (
                    (self.weight_image, self.weight_plot, self._weight_axis, "weight_hist", "weight_range"),
                    (self.grad_image, self.grad_plot, self._grad_axis, "grad_hist", "grad_range")):
                counts = ring.column(hist, i)
                r = ring.column(ranges, i).astype(np.float64)
                top = float(r.max())
                same = bool((r == top).all())
                pixels = np.ascontiguousarray(counts if same else rebin(counts, r, top), dtype=np.float32)
                if log:
                    pixels = np.log1p(pixels)   # a new array: ``pixels`` may be the ring's own rows
                peak = float(pixels.max())
                image.setImage(pixels, levels=(0.0, peak if peak > 0 else 1.0), lut=lut(SEQUENTIAL), autoLevels=False)
                image.setRect(QtCore.QRectF(-top, 0, 2 * top, n))
                axis.steps = [int(v) for v in steps]
                axis.picture = None
                axis.update()
                if plot.getViewBox().viewRange() != [[-top, top], [0, n]]:
                    plot.setRange(xRange=(-top, top), yRange=(0, n), padding=0)
            ratios = ring.column("update_ratio").astype(np.float64)
            ratios[~(ratios > 0)] = np.nan   # a log axis: 0 and NaN are gaps
            for k, curve in enumerate(self._ratio_curves):
                curve.setData(steps, ratios[:, k])
            if self._emphasis != i:
                self._emphasis = i
                for k, curve in enumerate(self._ratio_curves):
                    curve.setPen(pg.mkPen(COLOURS[k % len(COLOURS)], width=3 if k == i else 1.2))
                self.ratio_legend.set_entries(self.ratio_legend.entries, emphasis=i)
        if self._rectifiers:
            dead = ring.column("dead").astype(np.float64)
            for k, curve in enumerate(self._dead_curves):
                curve.setData(steps, dead[:, k])
        for plot in (self.ratio_plot, self.dead_plot):
            plot.setXRange(float(steps[0]), float(max(steps[-1], steps[0] + 1)), padding=0.02)
        warning = update_warning(latest.layers, latest.update_ratio, latest.kinds)
        self.warning_label.setText(warning)
        self.warning_label.setVisible(bool(warning))
        self.caption.setText(self._caption(latest, i, int(steps[-1])))
        settle(self.weight_plot, self.grad_plot, self.ratio_plot, self.dead_plot)

    def _caption(self, h: Health, i: int, step: int) -> str:
        parts = [f"step {step:,}"]
        if h.layers:
            ratio = float(h.update_ratio[i])
            parts.append(f"layer {layer_name(h.layers[i], h.kinds[i])}: weights within ±{float(h.weight_range[i]):.3g}, "
                         f"gradients within ±{float(h.grad_range[i]):.3g}, ‖Δw‖/‖w‖ "
                         + ("–" if math.isnan(ratio) else f"{ratio:.2g}"))
        if h.rectifiers:
            parts.append("dead units: " + ", ".join(
                f"{layer_name(path, _rectifier_kind(h, k))} {'–' if math.isnan(d) else f'{100 * d:.0f}%'}"
                for k, (path, d) in enumerate(zip(h.rectifiers, h.dead))))
        return " · ".join(parts)


def _rectifier_kind(h: Health, k: int) -> str:
    kinds = getattr(h, "rectifier_kinds", ())
    return kinds[k] if k < len(kinds) else ""

