"""SoftmaxView, CurvesView and GradientView: the numbers drawn are the numbers given."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from cnnviz.app.views import CurvesView, GradientView, SoftmaxView  # noqa: E402
from cnnviz.app.views._common import BLUE, GREEN, GREY  # noqa: E402
from cnnviz.app.views.softmax import LOG_FLOOR  # noqa: E402

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _log_softmax(z):
    s = z - z.max()
    return s - np.log(np.exp(s).sum())


def _widget(qtbot, cls, size, **kwargs):
    view = cls(**kwargs)
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    return view


# ------------------------------------------------------------------ softmax
@pytest.fixture
def z():
    return np.array([0.2, -1, 1.5, 0.1, 2.9, -3, 2.2, -2, 0.3, -4], np.float32)


def test_softmax_bars_are_the_probabilities_with_true_and_predicted_marked(qtbot, z):
    view = _widget(qtbot, SoftmaxView, (640, 320), orientation="vertical")
    assert view.is_empty and "probabilities" in view.hint_text
    p = _softmax(z)
    view.set_distribution(p, _log_softmax(z), true_class=6, classes=FASHION)
    view.flush()
    np.testing.assert_array_equal(view.bar_heights(), p)
    np.testing.assert_array_equal(view.bar_positions(), np.arange(10))
    assert view.predicted == 4 and view.true_class == 6
    colours = view.bar_colours()
    assert colours[4] == BLUE.lower() and colours[0] == GREY.lower(), "the predicted class stands out"
    assert view.outlined_class() == 6, "the true class is outlined"
    cls, at = view.marker_at()
    assert cls == 6 and at > p[6] and at < view.value_range()[1], "a marker sits over the true class's bar"
    ticks = dict(view.tick_labels())
    assert ticks[6] == "Shirt" and ticks[4] == "Coat"
    assert "Coat" in view.caption.text() and "Shirt" in view.caption.text()


def test_softmax_paints_the_bars_and_the_marker_where_it_says(qtbot, z):
    """Real pixels: the predicted bar blue, another grey, the true class's marker green, where the
    readings put them."""
    view = _widget(qtbot, SoftmaxView, (640, 320), orientation="vertical")
    p = _softmax(z)
    view.set_distribution(p, true_class=6, classes=FASHION)
    view.flush()
    chart = view.graphics
    image = chart.grab().toImage()
    ratio = image.devicePixelRatio()
    rects = chart.bar_rects()

    def colour(point):
        return image.pixelColor(round(point.x() * ratio), round(point.y() * ratio)).name()

    top = chart.point(4, float(p[4])).y()
    assert rects[4].top() == pytest.approx(top, abs=0.5), "the predicted bar is as long as its probability"
    assert colour(rects[4].center()) == BLUE.lower()
    assert colour(rects[2].center()) == GREY.lower()
    cls, at = view.marker_at()
    assert colour(chart.point(cls, at)) == GREEN.lower()
    assert colour(chart.point(4, float(p[4]) + 0.03)) != BLUE.lower(), "nothing blue above the bar's end"


def test_log_switch_shows_log_softmax(qtbot, z):
    view = _widget(qtbot, SoftmaxView, (640, 320), orientation="vertical")
    lp = _log_softmax(z)
    view.set_distribution(_softmax(z), lp, true_class=0)
    view.log_box.setChecked(True)
    view.flush()
    assert view.log_mode
    np.testing.assert_array_equal(view.bar_heights(), lp)
    lo, hi = view.value_range()
    assert lo <= lp.min() and hi > 0
    view.set_log(False)
    view.flush()
    assert not view.log_box.isChecked()
    np.testing.assert_allclose(view.bar_heights(), _softmax(z))


def test_log_values_come_from_probs_when_not_given_and_zero_is_floored(qtbot):
    view = _widget(qtbot, SoftmaxView, (640, 320), orientation="vertical")
    p = np.array([0.5, 0.5, 0.0], np.float32)
    view.set_distribution(p)
    view.set_log(True)
    view.flush()
    np.testing.assert_allclose(view.bar_heights(), [math.log(0.5), math.log(0.5), LOG_FLOOR])


def test_narrow_softmax_lays_bars_down_with_names_on_the_left(qtbot, z):
    view = _widget(qtbot, SoftmaxView, (260, 300))
    view.set_distribution(_softmax(z), true_class=6, classes=FASHION)
    view.flush()
    assert view.horizontal
    np.testing.assert_allclose(view.bar_heights(), _softmax(z))
    ticks = dict(view.tick_labels())
    assert ticks[9] == "Ankle boot"
    cls, at = view.marker_at()
    assert cls == 6 and at > 1.0, "right of every bar"
    assert "◀" in view.caption.text()


def test_softmax_refuses_mismatched_input(qtbot):
    view = _widget(qtbot, SoftmaxView, (300, 200))
    with pytest.raises(ValueError):
        view.set_distribution(np.ones(3) / 3, classes=["a", "b"])
    with pytest.raises(ValueError):
        view.set_distribution(np.ones(3) / 3, true_class=3)
    with pytest.raises(ValueError):
        view.set_distribution(np.ones(3) / 3, log_probs=np.zeros(4))


# ------------------------------------------------------------------ curves
def test_curves_keep_every_point_including_nan(qtbot):
    view = _widget(qtbot, CurvesView, (500, 400))
    assert view.is_empty
    rng = np.random.default_rng(0)
    losses = rng.random(1000) + 0.5
    losses[500] = np.nan
    losses[501] = np.inf
    for i, loss in enumerate(losses):
        view.append_train(i, loss, 0.5)
    view.append_test(999, 0.7, 0.8)
    view.flush()
    data = view.train_data()
    np.testing.assert_array_equal(data["step"], np.arange(1000))
    np.testing.assert_array_equal(data["loss"], losses)
    np.testing.assert_array_equal(data["accuracy"], np.full(1000, 50.0))
    assert np.isfinite(data["smoothed"]).all(), "the smoothing skips NaN and inf"
    np.testing.assert_array_equal(view.train_raw.yData, losses)
    assert len(view.train_raw.xData) == 1000
    assert view.test_loss.yData.tolist() == [0.7] and view.test_acc.yData.tolist() == [80.0]
    assert "step 500" in view.caption.text(), "the caption says when the loss broke"
    view.grab()  # NaN and inf paint


def test_curves_redraw_at_most_about_30_times_a_second(qtbot):
    import time

    view = _widget(qtbot, CurvesView, (500, 400))
    calls = []
    original = view.train_raw.setData
    view.train_raw.setData = lambda *a, **k: (calls.append((time.perf_counter(), len(a[1]))), original(*a, **k))[1]
    for i in range(2000):
        view.append_train(i, 1.0 / (i + 1))
    assert calls == [], "nothing is drawn inside the caller"
    qtbot.waitUntil(lambda: bool(calls) and calls[-1][1] == 2000, timeout=1000)
    end = time.perf_counter() + 0.4
    i = 2000
    while time.perf_counter() < end:   # a point every millisecond or so for 0.4 s
        view.append_train(i, 1.0 / (i + 1))
        i += 1
        QTest.qWait(1)
    qtbot.waitUntil(lambda: calls[-1][1] == i, timeout=1000)
    gaps = np.diff([t for t, _ in calls])
    assert len(calls) <= 1 + 0.4 / 0.033 + 2, len(calls)
    assert gaps.min() >= 0.030, gaps


def test_curves_step_axis_shows_the_run_and_grows_in_round_chunks(qtbot):
    """The x axis holds every step, ends at a round number near the last one, and changes a few times per
    decade of steps (not with every redraw: a changed axis is laid out again); a pan stops it following the
    run, a double-click follows again."""
    view = _widget(qtbot, CurvesView, (500, 400))
    ranges = []
    for i in range(1, 3001):
        view.append_train(i, 1.0 / i)
        if i % 10 == 0:
            view.flush()
            ranges.append(view.step_range)
    lo, hi = view.step_range
    assert lo == 0 and 3000 <= hi <= 3000 * 1.4, (lo, hi)
    assert all(r[1] >= 10 * (k + 1) for k, r in enumerate(ranges)), "every step drawn is in sight"
    changes = sum(1 for a, b in zip(ranges, ranges[1:]) if a != b)
    assert 5 <= changes <= 45, changes   # 300 redraws; about 15 ranges per decade of steps
    assert all(r[1] * 0.7 <= 10 * (k + 1) for k, r in enumerate(ranges) if k >= 10), "the run fills the width"
    view.loss_plot.getViewBox().translateBy(x=-500)
    view.loss_plot.getViewBox().sigRangeChangedManually.emit([True, False])
    panned = view.step_range
    view.append_train(3001, 0.1)
    view.append_train(9000, 0.1)
    view.flush()
    assert view.step_range == panned, "a panned axis stays where the person put it"
    view.follow_run()
    assert view.step_range[1] >= 9000
    view.clear()
    view.append_train(5, 1.0)
    view.flush()
    assert view.step_range[1] < 100, "a new run is followed from its start"


def test_both_curves_show_the_same_steps_whatever_their_labels(qtbot):
    """Loss ticks "0.5" and accuracy ticks "100" have different widths; the linked plots still show the same
    steps from the first one on (pyqtgraph links x ranges by screen position)."""
    view = _widget(qtbot, CurvesView, (260, 300))
    for i in range(1, 151):
        view.append_train(i, 2.5 / i, 0.5)
    view.flush()
    view.grab()   # the axes size themselves while painting
    view.flush()
    loss_vb, acc_vb = view.loss_plot.getViewBox(), view.acc_plot.getViewBox()
    assert loss_vb.width() == acc_vb.width()
    assert loss_vb.viewRange()[0] == pytest.approx(acc_vb.viewRange()[0])
    assert acc_vb.viewRange()[0][0] <= 1, "the accuracy plot shows the first steps too"


def test_curves_grow_past_their_first_buffer_and_clear(qtbot):
    view = _widget(qtbot, CurvesView, (500, 400))
    for i in range(5000):
        view.append_train(i, 1.0)
    assert view.train_data()["loss"].size == 5000
    view.clear()
    assert view.is_empty and view.train_data()["loss"].size == 0
    view.append_train(0, 2.0)
    view.flush()
    assert view.train_raw.yData.tolist() == [2.0]


def test_curves_smoothing_converges_to_a_constant_loss(qtbot):
    view = _widget(qtbot, CurvesView, (500, 400))
    for i in range(50):
        view.append_train(i, 3.0)
    np.testing.assert_allclose(view.train_data()["smoothed"], 3.0)


# ------------------------------------------------------------------ gradients
def _identity_case(z, y, n=64, noise=3e-9, seed=0):
    formula = _softmax(z).astype(np.float32)
    formula[y] -= 1
    formula /= n
    autograd = (formula + np.random.default_rng(seed).standard_normal(formula.size) * noise).astype(np.float32)
    return autograd, formula


def test_gradient_view_prints_the_max_difference(qtbot, z):
    view = _widget(qtbot, GradientView, (600, 420))
    assert view.is_empty
    a, b = _identity_case(z, 6)
    view.set_identity(a, b, FASHION, note="sample 7 of 64, mean reduction (÷ 64)")
    view.flush()
    expected = np.abs(a - b).max()
    assert view.max_difference == expected
    assert f"max |difference| = {expected:.1e}" in view.difference_label.text()
    assert "mean reduction" in view.difference_label.text()
    assert view.agrees
    np.testing.assert_allclose(view.autograd_bars.opts["height"], a)
    np.testing.assert_allclose(view.formula_bars.opts["height"], b)
    np.testing.assert_allclose(view.diff_bars.opts["height"], a - b)
    np.testing.assert_allclose(view.autograd_bars.opts["x"], np.arange(10) - 0.2)
    np.testing.assert_allclose(view.formula_bars.opts["x"], np.arange(10) + 0.2)
    assert view.norms_panel.is_empty and "norms" in view.norms_panel.hint_text
    view.clear()
    assert view.is_empty and view.max_difference is None
    assert view.identity_panel.is_empty and "autograd" in view.identity_panel.hint_text


def test_gradient_view_says_when_autograd_and_formula_differ(qtbot, z):
    view = _widget(qtbot, GradientView, (600, 420))
    _, b = _identity_case(z, 6)
    a = b * 0.3  # what a Softmax before CrossEntropyLoss does to the gradient's size
    view.set_identity(a, b)
    view.flush()
    assert view.agrees is False
    assert f"{np.abs(a - b).max():.1e}" in view.difference_label.text()
    assert "differ" in view.difference_label.text()
    view.set_identity(b[None], b[None], agrees=True)   # a batch of one, with the engine's verdict
    view.flush()
    assert view.agrees is True and view.max_difference == 0
    assert "max |difference| = 0.0" in view.difference_label.text()
    with pytest.raises(ValueError):
        view.set_identity(np.zeros((2, 10)), np.zeros((2, 10)))


def test_cross_entropy_check_line(qtbot):
    view = _widget(qtbot, GradientView, (600, 420))
    view.set_losses(0.69314718, 0.69314718)
    view.flush()
    text = " ".join(view.loss_label.text().split())
    assert text == "CrossEntropyLoss(z) = 0.6931 · NLLLoss(LogSoftmax(z)) = 0.6931 · difference 0.0"
    view.set_losses(2.05, 1.61, ("CrossEntropyLoss(Softmax(z))", "NLLLoss(LogSoftmax(z))"))
    view.flush()
    assert "difference 4.4e-01" in view.loss_label.text()


def test_norms_are_log_scaled_bars_by_layer(qtbot):
    view = _widget(qtbot, GradientView, (600, 420))
    labels = ["0 Conv2d", "3 Conv2d", "7 Linear"]
    w, g = np.array([2.0, 4.0, 10.0]), np.array([1e-3, 0.0, 0.1])
    view.set_norms(labels, w, g)
    view.tabs.setCurrentIndex(1)
    view.flush()
    wo = view.weight_bars.opts
    lo = wo["y0"]
    np.testing.assert_allclose(np.asarray(wo["height"]) + lo, np.log10(w))
    go = view.grad_bars.opts
    np.testing.assert_allclose(np.asarray(go["x"]), [0.2, 2.2])  # a zero norm has no bar on a log scale
    np.testing.assert_allclose(np.asarray(go["height"]) + go["y0"], np.log10([1e-3, 0.1]))
    assert view.norms_plot.getAxis("left").logMode
    ticks = dict(view.norms_plot.getAxis("bottom")._tickLevels[0])
    assert ticks[2] == "7 Linear"
    with pytest.raises(ValueError):
        view.set_norms(labels, w[:2], g)
    view.set_norms(["0 Conv2d", "1 ReLU", "2 Linear"], [2.0, None, 3.0], [0.1, None, 0.2])  # as probes give them
    view.flush()
    assert dict(view.norms_plot.getAxis("bottom")._tickLevels[0]) == {0: "0 Conv2d", 1: "2 Linear"}
