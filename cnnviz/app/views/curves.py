"""Loss and accuracy while training: two stacked plots sharing the step axis.

Points arrive at hundreds per second from the training loop; they go into
preallocated numpy buffers that double when full, and the curves are redrawn
at most about 30 times a second (less often once one redraw of a long run costs
more than a few milliseconds), downsampled and clipped to the visible range.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    BLUE,
    ORANGE,
    REDRAW_MS,
    VERMILION,
    GridLines,
    ViewPanel,
    graphics_widget,
    label_style,
    make_throttler,
    palette_colors,
    settle,
    status_label,
    style_axes,
)
from cnnviz.app.views.levels import fmt_value

REDRAW_SHARE = 0.3      # at most about this share of the GUI thread goes to redrawing curves
MAX_REDRAW_MS = 250


class Series:
    """Columns of float64 that grow by doubling: O(1) appends, views without copies."""

    def __init__(self, columns: int, capacity: int = 1024) -> None:
        self._data = np.full((max(capacity, 16), columns), np.nan)
        self.n = 0

    def append(self, row: tuple[float, ...]) -> None:
        if self.n == self._data.shape[0]:
            grown = np.full((self._data.shape[0] * 2, self._data.shape[1]), np.nan)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n] = row
        self.n += 1

    def column(self, i: int) -> np.ndarray:
        """The first n values of column i (a view: valid until the next append that grows)."""
        return self._data[: self.n, i]

    def last(self, i: int) -> float:
        return float(self._data[self.n - 1, i]) if self.n else math.nan

    def clear(self) -> None:
        self.n = 0


class _Ema:
    """Exponential moving average with TensorBoard's start-up correction; NaN and ±inf are skipped."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.reset()

    def reset(self) -> None:
        self._acc = 0.0
        self._count = 0

    def update(self, x: float) -> float:
        if math.isfinite(x):
            self._acc = self.alpha * self._acc + (1 - self.alpha) * x
            self._count += 1
        if self._count == 0:
            return math.nan
        return self._acc / (1 - self.alpha ** self._count)


RAW_LINE = "#A9C9E8"   # the unsmoothed curve: a lighter BLUE, so the smoothed line stands out

TRAIN_STEP, TRAIN_LOSS, TRAIN_LOSS_SMOOTH, TRAIN_ACC, TRAIN_ACC_SMOOTH = range(5)
TEST_STEP, TEST_LOSS, TEST_ACC = range(3)


class CurvesView(ViewPanel):
    """Training loss (raw and smoothed) and accuracy, with held-out points, growing while training.

    Data API (GUI thread; cheap enough to call for every step):

    - ``append_train(step, loss, accuracy=None)``: one training step; accuracy in [0, 1].
    - ``append_test(step, loss, accuracy=None)``: one held-out evaluation.
    - ``clear(message)``: forget all points and show the hint.
    - ``flush()``: redraw now instead of at the next ~33 ms tick.

    NaN or infinite losses are kept (``train_data()`` returns them), drawn as
    gaps, skipped by the smoothing, and reported in the caption.
    """

    EMPTY_HINT = "Press Train to see the loss and accuracy curves"

    def __init__(self, parent: QtWidgets.QWidget | None = None, smoothing: float = 0.9) -> None:
        super().__init__(parent)
        if not 0 <= smoothing < 1:
            raise ValueError("smoothing must be in [0, 1)")
        self._train = Series(5)
        self._test = Series(3)
        self._loss_ema = _Ema(smoothing)
        self._acc_ema = _Ema(smoothing)
        self._train_nonfinite = False
        self._test_nonfinite = False
        self._first_bad_step: float | None = None
        self._train_dirty = self._test_dirty = False
        self.redraws = 0

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        header.addStretch(1)
        self.log_box = QtWidgets.QCheckBox("log loss", content)
        self.log_box.setToolTip("Draw the loss on a logarithmic scale")
        self.log_box.toggled.connect(self.set_log_loss)
        header.addWidget(self.log_box)
        outer.addLayout(header)
        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(200, 160)
        outer.addWidget(self.graphics, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.caption.setWordWrap(True)
        outer.addWidget(self.caption)
        self._set_content(content)

        style = label_style(self)
        self.loss_plot = self._make_plot("loss", style)
        self.graphics.addItem(self.loss_plot, row=0, col=0)
        self.acc_plot = self._make_plot("accuracy (%)", style)
        self.graphics.addItem(self.acc_plot, row=1, col=0)
        self.acc_plot.setXLink(self.loss_plot)
        self.acc_plot.setLabel("bottom", "step", **style)
        self.loss_plot.getAxis("bottom").setStyle(showValues=False)
        self.acc_plot.setYRange(0, 100, padding=0.02)
        self.acc_plot.enableAutoRange(y=False)
        # The two plots share the step axis, and pyqtgraph links their x ranges by screen position: left axes
        # of different widths (labels "2.5" and "100") would show the two plots different steps. One fixed
        # width, room for the longest tick label either has ("-0.0001", "1e-05", "100").
        width = int(QtGui.QFontMetrics(self.font()).horizontalAdvance("-0.0001") + self.fontMetrics().height() + 12)
        for plot in (self.loss_plot, self.acc_plot):
            plot.getAxis("left").setWidth(width)
        # The step axis grows in round chunks (0 … 1000, 0 … 1200, …), not with every step: an axis whose
        # range changes is laid out and drawn again, which was two thirds of a repaint's cost.
        self._follow = True          # the step axis follows the run until the person pans or zooms it
        self._x_end = 0.0
        self.loss_plot.enableAutoRange(x=False)
        self.loss_plot.setXRange(0, 1, padding=0)
        self.loss_plot.enableAutoRange(y=False)   # the loss axis too moves in round steps (_fit_steps)
        self._y_range: tuple[float, float] | None = None
        for plot in (self.loss_plot, self.acc_plot):
            for name in ("left", "bottom"):
                plot.getAxis(name).enableAutoSIPrefix(False)   # a label set again on every range change
        self.loss_plot.getViewBox().sigRangeChangedManually.connect(self._stop_following)
        self.acc_plot.getViewBox().sigRangeChangedManually.connect(self._stop_following)
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.graphics.setToolTip("Drag or scroll to look at some of the steps; double-click to see the whole run")

        faint = pg.mkColor(RAW_LINE)
        bg, fg = palette_colors(self)
        self.loss_legend = self.loss_plot.addLegend(offset=(-8, 8), labelTextColor=fg, brush=pg.mkBrush(bg))
        self.train_raw = self.loss_plot.plot(pen=pg.mkPen(faint, width=1), name="train")
        self.train_smooth = self.loss_plot.plot(pen=pg.mkPen(BLUE, width=2), name="train, smoothed")
        self.test_loss = self.loss_plot.plot(pen=pg.mkPen(ORANGE, width=1.5), symbol="o", symbolSize=6,
                                             symbolBrush=ORANGE, symbolPen=None, name="held-out")
        self.train_acc_raw = self.acc_plot.plot(pen=pg.mkPen(faint, width=1))
        self.train_acc = self.acc_plot.plot(pen=pg.mkPen(BLUE, width=2))
        self.test_acc = self.acc_plot.plot(pen=pg.mkPen(ORANGE, width=1.5), symbol="o", symbolSize=6,
                                           symbolBrush=ORANGE, symbolPen=None)
        for plot in (self.loss_plot, self.acc_plot):
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
        # pyqtgraph draws about 5 samples per pixel; noisy raw curves look the same at 1.5 and the
        # smoothed ones at 0.5, and wide lines over thousands of segments are what painting costs.
        for curve, factor in ((self.train_raw, 1.5), (self.train_acc_raw, 1.5), (self.train_smooth, 0.5),
                              (self.train_acc, 0.5)):
            curve.opts["autoDownsampleFactor"] = factor

        self._throttle = make_throttler(self, self._redraw)

    def _stop_following(self, *_) -> None:
        self._follow = False
        self._y_range = None
        self.loss_plot.enableAutoRange(y=True)   # the person looks at some steps: the loss axis fits them

    def follow_run(self) -> None:
        """Show the whole run again on the step axis, and keep doing so as it grows (after a pan or zoom)."""
        self._follow = True
        self._x_end = 0.0
        self._y_range = None
        self._fit_steps()

    @property
    def step_range(self) -> tuple[float, float]:
        """The steps the plots show (the shared x axis)."""
        lo, hi = self.loss_plot.getViewBox().viewRange()[0]
        return float(lo), float(hi)

    def _fit_steps(self) -> None:
        """While following: the step axis from the first step to the next round number past the last."""
        if not self._follow:
            return
        ends = [float(x[x.size - 1]) for x in (self._train.column(TRAIN_STEP), self._test.column(TEST_STEP))
                if x.size]
        if not ends:
            return
        first = min(float(x[0]) for x in (self._train.column(TRAIN_STEP), self._test.column(TEST_STEP)) if x.size)
        start = 0.0 if first >= 0 else first
        last = max(ends)
        span = max(last - start, 1.0) * 1.02
        # A round chunk of about a sixth of the run: the range changes every sixth of the run so far (a
        # range change costs a few milliseconds: the linked plots, the axes), and the run fills 70 % or more.
        unit = 10.0 ** math.floor(math.log10(span / 6))
        chunk = next(m * unit for m in (1, 2, 5, 10) if m * unit >= span / 6)
        end = math.ceil(span / chunk) * chunk + start
        if end != self._x_end:
            self._x_end = end
            self.loss_plot.setXRange(start, end, padding=0)
        self._fit_loss()

    def _fit_loss(self) -> None:
        """While following on a linear axis: the loss axis from the lowest to the highest finite loss,
        widened to tenths of its span (it changes when a loss crosses a tick, not with every point)."""
        if self.log_box.isChecked():
            self._y_range = None
            self.loss_plot.enableAutoRange(y=True)
            return
        lo, hi = math.inf, -math.inf
        for column in (self._train.column(TRAIN_LOSS), self._train.column(TRAIN_LOSS_SMOOTH),
                       self._test.column(TEST_LOSS)):
            finite = column[np.isfinite(column)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if not math.isfinite(lo):
            return
        if lo >= 0 and lo < 0.5 * hi:
            lo = 0.0   # a loss falling towards zero: the axis starts at 0
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        step = 10.0 ** math.floor(math.log10(span)) / 2
        bottom = math.floor(lo / step) * step
        top = math.ceil(hi / step) * step
        if top <= bottom:
            top = bottom + step
        new = (bottom, top + 0.04 * (top - bottom))   # room above the first, highest loss
        if new != self._y_range:
            self._y_range = new
            self.loss_plot.setYRange(*new, padding=0)

    def _clicked(self, event) -> None:
        if event.double():
            self.follow_run()

    def _make_plot(self, label: str, style: dict) -> pg.PlotItem:
        plot = pg.PlotItem(enableMenu=False)
        plot.hideButtons()
        style_axes(plot, self)
        plot.setLabel("left", label, **style)
        plot.getViewBox().setMouseEnabled(x=True, y=False)
        GridLines(plot)
        return plot

    # ------------------------------------------------------------ API
    def append_train(self, step: float, loss: float, accuracy: float | None = None) -> None:
        loss = float(loss)
        acc = math.nan if accuracy is None else 100.0 * float(accuracy)
        if not math.isfinite(loss):
            self._train_nonfinite = True
            if self._first_bad_step is None:
                self._first_bad_step = float(step)
        if accuracy is not None and not math.isfinite(acc):
            self._train_nonfinite = True
        smooth = self._loss_ema.update(loss)
        acc_smooth = self._acc_ema.update(acc) if accuracy is not None else math.nan
        self._train.append((float(step), loss, smooth, acc, acc_smooth))
        self._train_dirty = True
        self._changed()

    def append_test(self, step: float, loss: float, accuracy: float | None = None) -> None:
        loss = float(loss)
        acc = math.nan if accuracy is None else 100.0 * float(accuracy)
        if not math.isfinite(loss) or accuracy is None or not math.isfinite(acc):
            self._test_nonfinite = True
        self._test.append((float(step), loss, acc))
        self._test_dirty = True
        self._changed()

    def set_log_loss(self, on: bool) -> None:
        if self.log_box.isChecked() != bool(on):
            self.log_box.setChecked(bool(on))
            return
        self.loss_plot.setLogMode(y=bool(on))
        self._y_range = None
        self._fit_loss()

    def clear(self, message: str | None = None) -> None:
        self._train.clear()
        self._test.clear()
        self._loss_ema.reset()
        self._acc_ema.reset()
        self._train_nonfinite = self._test_nonfinite = False
        self._first_bad_step = None
        for curve in self._curves():
            curve.setData([], [])
        self._train_dirty = self._test_dirty = False
        self._follow = True
        self._x_end = 0.0
        self._y_range = None
        self._throttle.setTimeout(REDRAW_MS)
        self.caption.clear()
        super().clear(message)

    def flush(self) -> None:
        self._throttle.flush()

    def train_data(self) -> dict[str, np.ndarray]:
        """Copies of everything appended by ``append_train`` (accuracy in %), with the smoothed loss."""
        t = self._train
        return {"step": t.column(TRAIN_STEP).copy(), "loss": t.column(TRAIN_LOSS).copy(),
                "smoothed": t.column(TRAIN_LOSS_SMOOTH).copy(), "accuracy": t.column(TRAIN_ACC).copy()}

    def test_data(self) -> dict[str, np.ndarray]:
        t = self._test
        return {"step": t.column(TEST_STEP).copy(), "loss": t.column(TEST_LOSS).copy(),
                "accuracy": t.column(TEST_ACC).copy()}

    # ------------------------------------------------------------ drawing
    def _curves(self) -> tuple[pg.PlotDataItem, ...]:
        return (self.train_raw, self.train_smooth, self.test_loss, self.train_acc_raw, self.train_acc,
                self.test_acc)

    def _changed(self) -> None:
        self._show_content()
        self._throttle.throttle()

    def _redraw(self) -> None:
        started = time.perf_counter()
        self.redraws += 1
        t, s = self._train, self._test
        if self._train_dirty:
            self._train_dirty = False
            steps = t.column(TRAIN_STEP)
            clean = not self._train_nonfinite
            # Smoothed columns only hold NaN before the first finite value; 'finite' handles that.
            self.train_raw.setData(steps, t.column(TRAIN_LOSS), skipFiniteCheck=clean,
                                   connect="all" if clean else "finite")
            self.train_smooth.setData(steps, t.column(TRAIN_LOSS_SMOOTH), connect="finite")
            self.train_acc_raw.setData(steps, t.column(TRAIN_ACC), connect="finite")
            self.train_acc.setData(steps, t.column(TRAIN_ACC_SMOOTH), connect="finite")
        if self._test_dirty:
            self._test_dirty = False
            test_steps = s.column(TEST_STEP)
            clean_test = not self._test_nonfinite
            self.test_loss.setData(test_steps, s.column(TEST_LOSS), skipFiniteCheck=clean_test,
                                   connect="all" if clean_test else "finite")
            self.test_acc.setData(test_steps, s.column(TEST_ACC), skipFiniteCheck=clean_test,
                                  connect="all" if clean_test else "finite")
        self._fit_steps()
        settle(self.loss_plot, self.acc_plot)   # one paint per redraw, not two
        self._update_caption()
        self._adapt_interval(time.perf_counter() - started)

    def _adapt_interval(self, seconds: float) -> None:
        """Keep redrawing to a fraction of the GUI thread's time: long runs redraw less often.

        Painting costs about as much again as ``setData``, so an interval of
        ``REDRAW_SHARE``⁻¹ × 2 × that time leaves the rest of the thread free.
        """
        ms = 2e3 * seconds / REDRAW_SHARE
        self._throttle.setTimeout(int(min(MAX_REDRAW_MS, max(REDRAW_MS, ms))))

    def _update_caption(self) -> None:
        t, s = self._train, self._test
        parts = []
        if t.n:
            parts.append(f"step {t.last(TRAIN_STEP):,.0f}  ·  loss {fmt_value(t.last(TRAIN_LOSS))} "
                         f"(smoothed {fmt_value(t.last(TRAIN_LOSS_SMOOTH))})")
            if math.isfinite(t.last(TRAIN_ACC)):
                parts.append(f"accuracy {t.last(TRAIN_ACC):.1f} %")
        if s.n:
            held = f"held-out loss {fmt_value(s.last(TEST_LOSS))}"
            if math.isfinite(s.last(TEST_ACC)):
                held += f", accuracy {s.last(TEST_ACC):.1f} %"
            parts.append(held)
        text = "  ·  ".join(parts)
        if self._first_bad_step is not None:
            text += (f"<br><span style='color:{VERMILION}'>the loss became NaN or infinite at step "
                     f"{self._first_bad_step:,.0f}: try a smaller learning rate</span>")
        self.caption.setText(text)
