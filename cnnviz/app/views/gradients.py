"""Is the loss head right? Autograd's dL/dz beside softmax(z) − onehot(y), the two ways to the
cross-entropy, and gradient and weight norms by layer."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.app.plain_text import escaped
from cnnviz.app.views._common import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    VERMILION,
    GridLines,
    ViewPanel,
    class_ticks,
    graphics_widget,
    label_style,
    make_throttler,
    palette_colors,
    scientific_ticks,
    status_label,
    style_axes,
)
from cnnviz.app.views.levels import fmt_value


def fmt_difference(d: float) -> str:
    """A difference as the checks print it: '0.0' when exact, else two significant digits ('3.0e-08')."""
    if not math.isfinite(d):
        return str(d)
    return "0.0" if d == 0 else f"{d:.1e}"


def _one_row(values: np.ndarray, what: str) -> np.ndarray:
    """One sample's K values: a vector, or a batch of one."""
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise ValueError(f"{what} must be one sample's values per class, not an array of shape {a.shape}: "
                         f"pass one row")
    return a


def _name_ticks(widget: QtWidgets.QWidget, names: Sequence[str], room: float) -> list[tuple[int, str]]:
    """Class (or layer) names under the bars, elided the way the softmax view elides them."""
    return class_ticks(widget.fontMetrics(), names, room)


class GradientView(ViewPanel):
    """Checks of the loss head, for journey 4 ("Is my loss head right?").

    Data API (GUI thread):

    - ``set_identity(autograd, formula, classes=None, note="", agrees=None)``: dL/dz
      for one sample from autograd, and softmax(z) − onehot(y) as the caller
      computed it (already divided by N for a mean reduction), each K values (or
      a batch of one); ``note`` says which sample and reduction; ``agrees`` is the
      caller's verdict (e.g. the engine's ``GradientCheck.holds``), computed here
      when None. Drawn as paired bars per class and their difference, with
      ``max |difference|`` printed.
    - ``set_losses(ce, nll, names=(...))``: CrossEntropyLoss(z) and
      NLLLoss(LogSoftmax(z)), printed with their difference.
    - ``set_norms(labels, weight_norms, grad_norms)``: per-layer L2 norms, as
      grouped bars on a log scale; None/NaN/0 norms have no bar, and layers with
      neither norm (no parameters) are left out.
    - ``clear(message)``.
    """

    EMPTY_HINT = "Run a backward pass to check the loss and its gradients"
    AGREE_RTOL = 1e-4   # float32 autograd vs the formula: differences far below this are rounding

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._autograd: np.ndarray | None = None
        self._formula: np.ndarray | None = None
        self._diff: np.ndarray | None = None
        self._max_diff: float | None = None
        self._agrees: bool | None = None
        self._classes: list[str] = []
        self._note = ""
        self._losses: tuple[float, float] | None = None
        self._norm_labels: list[str] = []
        self._weight_norms: np.ndarray | None = None
        self._grad_norms: np.ndarray | None = None
        self._loss_names = ("CrossEntropyLoss(z)", "NLLLoss(LogSoftmax(z))")

        self.tabs = QtWidgets.QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self._set_content(self.tabs)
        style = label_style(self)

        # --- tab 1: the identity and the cross-entropy check
        page = QtWidgets.QWidget(self.tabs)
        outer = QtWidgets.QVBoxLayout(page)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        self.identity_panel = ViewPanel(
            page, hint="Run a backward pass to compare autograd's dL/dz with softmax(z) − onehot(y)")
        self.graphics = graphics_widget(self.identity_panel)
        self.graphics.setMinimumSize(200, 140)
        self.identity_panel._set_content(self.graphics)
        outer.addWidget(self.identity_panel, 1)
        self.difference_label = status_label(page)
        self.difference_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        outer.addWidget(self.difference_label)
        self.loss_label = status_label(page)
        self.loss_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.loss_label.setWordWrap(True)
        outer.addWidget(self.loss_label)
        self.tabs.addTab(page, "dL/dz = softmax(z) − onehot(y)")

        self.pair_plot = pg.PlotItem(enableMenu=False)
        self.pair_plot.setMouseEnabled(False, False)
        self.pair_plot.hideButtons()
        style_axes(self.pair_plot, self)
        GridLines(self.pair_plot)
        self.pair_plot.setLabel("left", "dL/dz", **style)
        self.pair_plot.getAxis("bottom").setStyle(showValues=False)
        bg, fg = palette_colors(self)
        legend = self.pair_plot.addLegend(offset=(-8, 6), labelTextColor=fg, brush=pg.mkBrush(bg))
        self.autograd_bars = pg.BarGraphItem(x=[0], height=[0], width=0.38, brush=BLUE, pen=None)
        self.formula_bars = pg.BarGraphItem(x=[0], height=[0], width=0.38, brush=ORANGE, pen=None)
        self.pair_plot.addItem(self.autograd_bars)
        self.pair_plot.addItem(self.formula_bars)
        legend.addItem(self.autograd_bars, "autograd dL/dz")
        legend.addItem(self.formula_bars, "softmax(z) − onehot(y)")
        self.pair_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(fg)))
        self.graphics.addItem(self.pair_plot, row=0, col=0)

        self.diff_plot = pg.PlotItem(enableMenu=False)
        self.diff_plot.setMouseEnabled(False, False)
        self.diff_plot.hideButtons()
        style_axes(self.diff_plot, self)
        GridLines(self.diff_plot)
        self.diff_plot.setLabel("left", "difference", **style)
        # The difference in its own units (1e-09 …): no "(×0.001)" scale that leaves ticks reading 500.
        diff_axis = self.diff_plot.getAxis("left")
        diff_axis.enableAutoSIPrefix(False)
        diff_axis.tickStrings = scientific_ticks
        self.diff_plot.setXLink(self.pair_plot)
        self.diff_bars = pg.BarGraphItem(x=[0], height=[0], width=0.6, brush=VERMILION, pen=None)
        self.diff_plot.addItem(self.diff_bars)
        self.diff_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(fg)))
        self.graphics.addItem(self.diff_plot, row=1, col=0)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        for plot in (self.pair_plot, self.diff_plot):
            plot.getAxis("left").setWidth(64)

        # --- tab 2: norms by layer
        self.norms_panel = ViewPanel(self.tabs, hint="Run a backward pass to see weight and gradient norms by layer")
        norms_page = QtWidgets.QWidget(self.norms_panel)
        norms_layout = QtWidgets.QVBoxLayout(norms_page)
        norms_layout.setContentsMargins(4, 4, 4, 2)
        self.norms_graphics = graphics_widget(norms_page)
        norms_layout.addWidget(self.norms_graphics, 1)
        self.norms_label = status_label(norms_page)
        norms_layout.addWidget(self.norms_label)
        self.norms_panel._set_content(norms_page)
        self.tabs.addTab(self.norms_panel, "Norms by layer")
        self.norms_plot = pg.PlotItem(enableMenu=False)
        self.norms_plot.setMouseEnabled(False, False)
        self.norms_plot.hideButtons()
        style_axes(self.norms_plot, self)
        GridLines(self.norms_plot)
        self.norms_plot.setLabel("left", "L2 norm (log scale)", **style)
        self.norms_plot.getAxis("left").setLogMode(True)
        nlegend = self.norms_plot.addLegend(offset=(-8, 6), labelTextColor=fg, brush=pg.mkBrush(bg))
        self.weight_bars = pg.BarGraphItem(x=[0], height=[0], width=0.38, brush=GREY, pen=None)
        self.grad_bars = pg.BarGraphItem(x=[0], height=[0], width=0.38, brush=GREEN, pen=None)
        self.norms_plot.addItem(self.weight_bars)
        self.norms_plot.addItem(self.grad_bars)
        nlegend.addItem(self.weight_bars, "weights ‖W‖")
        nlegend.addItem(self.grad_bars, "gradient ‖dL/dW‖")
        self.norms_graphics.addItem(self.norms_plot)

        self._throttle = make_throttler(self, self._render)
        self.tabs.currentChanged.connect(lambda _: self._throttle.throttle())
        self.graphics.scene().sigMouseMoved.connect(self._on_identity_hover)
        self.norms_graphics.scene().sigMouseMoved.connect(self._on_norms_hover)

    # ------------------------------------------------------------ API
    def set_identity(self, autograd: np.ndarray, formula: np.ndarray, classes: Sequence[str] | None = None,
                     note: str = "", agrees: bool | None = None) -> None:
        a, b = _one_row(autograd, "autograd"), _one_row(formula, "formula")
        if a.shape != b.shape:
            raise ValueError(f"autograd has {a.size} values but the formula {b.size}")
        if classes is not None and len(classes) != a.size:
            raise ValueError(f"{len(classes)} class names for {a.size} values")
        self._autograd, self._formula = a, b
        self._diff = a - b
        self._max_diff = float(np.abs(self._diff).max()) if a.size else 0.0
        self._agrees = agrees
        self._classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(a.size)]
        self._note = note
        self.identity_panel._show_content()
        self._show_content()
        self._throttle.throttle()

    def set_losses(self, ce: float, nll: float,
                   names: tuple[str, str] = ("CrossEntropyLoss(z)", "NLLLoss(LogSoftmax(z))")) -> None:
        self._losses = (float(ce), float(nll))
        self._loss_names = names
        self._show_content()
        self._throttle.throttle()

    def set_norms(self, labels: Sequence[str], weight_norms: Sequence[float | None],
                  grad_norms: Sequence[float | None]) -> None:
        """Per-layer norms; layers with neither norm (None or NaN: no parameters) are left out."""
        w = np.array([np.nan if v is None else v for v in weight_norms], dtype=np.float64).reshape(-1)
        g = np.array([np.nan if v is None else v for v in grad_norms], dtype=np.float64).reshape(-1)
        if not len(labels) == w.size == g.size:
            raise ValueError(f"{len(labels)} labels, {w.size} weight norms and {g.size} gradient norms")
        keep = np.isfinite(w) | np.isfinite(g)
        self._norm_labels = [str(x) for x, k in zip(labels, keep) if k]
        self._weight_norms, self._grad_norms = w[keep], g[keep]
        self.norms_panel._show_content()
        self._show_content()
        self._throttle.throttle()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._autograd = self._formula = self._diff = None
        self._max_diff = None
        self._losses = None
        self._weight_norms = self._grad_norms = None
        self.identity_panel.clear()
        self.norms_panel.clear()
        self.difference_label.clear()
        self.loss_label.clear()
        super().clear(message)

    # ------------------------------------------------------------ readings
    @property
    def max_difference(self) -> float | None:
        return self._max_diff

    @property
    def agrees(self) -> bool | None:
        """Whether autograd and the formula agree to float32 rounding (None before set_identity).

        The caller's verdict when it gave one (the engine's tolerance), else
        ``max |difference| ≤ AGREE_RTOL × max |formula|``.
        """
        if self._max_diff is None or self._formula is None:
            return None
        if self._agrees is not None:
            return self._agrees
        scale = float(np.abs(self._formula).max()) if self._formula.size else 0.0
        return self._max_diff <= self.AGREE_RTOL * max(scale, 1e-12)

    @staticmethod
    def log_norms(values: np.ndarray) -> np.ndarray:
        """log10 of positive finite norms, NaN for the rest (those bars are not drawn)."""
        out = np.full(values.shape, np.nan)
        ok = np.isfinite(values) & (values > 0)
        out[ok] = np.log10(values[ok])
        return out

    # ------------------------------------------------------------ drawing
    def _render(self) -> None:
        if self._autograd is not None:
            self._render_identity()
        self._render_losses()
        if self._weight_norms is not None:
            self._render_norms()

    def _render_identity(self) -> None:
        assert self._autograd is not None and self._formula is not None and self._diff is not None
        k = self._autograd.size
        x = np.arange(k, dtype=np.float64)
        a = self._autograd.astype(np.float64)
        b = self._formula.astype(np.float64)
        d = self._diff.astype(np.float64)
        self.autograd_bars.setOpts(x=x - 0.2, height=np.nan_to_num(a), width=0.38)
        self.formula_bars.setOpts(x=x + 0.2, height=np.nan_to_num(b), width=0.38)
        self.diff_bars.setOpts(x=x, height=np.nan_to_num(d), width=0.6)
        top = float(np.nanmax(np.abs(np.concatenate([a, b])))) if k else 1.0
        top = top if math.isfinite(top) and top > 0 else 1.0
        self.pair_plot.setRange(xRange=(-0.6, k - 0.4), yRange=(-1.15 * top, 1.15 * top), padding=0)
        m = self._max_diff if self._max_diff and math.isfinite(self._max_diff) else 1e-9
        self.diff_plot.setYRange(-1.2 * m, 1.2 * m, padding=0)
        room = max(self.diff_plot.getViewBox().width(), self.graphics.width() - 80) / max(k, 1) - 3
        self.diff_plot.getAxis("bottom").setTicks([_name_ticks(self, self._classes, room)])
        verdict = ""
        if self.agrees is not None:
            if self.agrees:
                verdict = f"  <span style='color:{GREEN}'>✓ the same up to float32 rounding</span>"
            else:
                verdict = (f"  <span style='color:{VERMILION}'>✗ they differ: the loss does not take z "
                           f"as raw logits</span>")
        note = f"  ·  {self._note}" if self._note else ""
        self.difference_label.setText(f"max |difference| = {fmt_difference(self._max_diff or 0.0)}{verdict}{note}")

    def _render_losses(self) -> None:
        if self._losses is None:
            return
        ce, nll = self._losses
        diff = abs(ce - nll)
        a, b = self._loss_names
        self.loss_label.setText(f"{a} = {ce:.4f}  ·  {b} = {nll:.4f}  ·  difference {fmt_difference(diff)}")

    def _render_norms(self) -> None:
        assert self._weight_norms is not None and self._grad_norms is not None
        k = len(self._norm_labels)
        lw, lg = self.log_norms(self._weight_norms), self.log_norms(self._grad_norms)
        both = np.concatenate([lw, lg])
        finite = both[np.isfinite(both)]
        if finite.size:
            lo, hi = math.floor(finite.min()) - 0.5, math.ceil(finite.max()) + 0.5
        else:
            lo, hi = -1.0, 1.0
        x = np.arange(k, dtype=np.float64)
        for bars, values, shift in ((self.weight_bars, lw, -0.2), (self.grad_bars, lg, 0.2)):
            ok = np.isfinite(values)
            bars.setOpts(x=x[ok] + shift, y0=lo, height=values[ok] - lo, width=0.38)
        self.norms_plot.setRange(xRange=(-0.6, k - 0.4), yRange=(lo, hi), padding=0)
        room = max(self.norms_plot.getViewBox().width(), self.norms_graphics.width() - 80) / max(k, 1) - 3
        self.norms_plot.getAxis("bottom").setTicks([_name_ticks(self, self._norm_labels, room)])
        self.norms_label.setText("Point at a layer to read its norms")

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override: class names follow the room
        super().resizeEvent(event)
        if self._autograd is not None or self._weight_norms is not None:
            self._throttle.throttle()

    # ------------------------------------------------------------ pointer
    def _index_at(self, plot: pg.PlotItem, pos: QtCore.QPointF, k: int) -> int | None:
        vb = plot.getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            return None
        x = vb.mapSceneToView(pos).x()
        i = int(round(x))
        return i if 0 <= i < k and abs(x - i) <= 0.45 else None

    def _on_identity_hover(self, pos: QtCore.QPointF) -> None:
        if self._autograd is None:
            return
        k = self._autograd.size
        i = self._index_at(self.pair_plot, pos, k)
        if i is None:
            i = self._index_at(self.diff_plot, pos, k)
        if i is None:
            self._render_identity()
            return
        assert self._formula is not None and self._diff is not None
        self.difference_label.setText(
            f"<b>{escaped(self._classes[i])}</b>: autograd {fmt_value(float(self._autograd[i]))}  ·  "
            f"formula {fmt_value(float(self._formula[i]))}  ·  difference {fmt_difference(float(self._diff[i]))}")

    def _on_norms_hover(self, pos: QtCore.QPointF) -> None:
        if self._weight_norms is None or self._grad_norms is None:
            return
        i = self._index_at(self.norms_plot, pos, len(self._norm_labels))
        if i is None:
            self.norms_label.setText("Point at a layer to read its norms")
            return
        self.norms_label.setText(f"<b>{escaped(self._norm_labels[i])}</b>: ‖W‖ = {fmt_value(float(self._weight_norms[i]))}"
                                 f"  ·  ‖dL/dW‖ = {fmt_value(float(self._grad_norms[i]))}")
