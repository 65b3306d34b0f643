"""The training-health view alone (no worker, no torch): one heat-map row per probe holding its counts, the
layer picker, exact re-binning of rows with narrower ranges, bounded memory, the warning in red."""
from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.run.health import BINS, Health

LAYERS, KINDS = ("0", "3.body.1", "5"), ("Conv2d", "Conv2d", "Linear")


def health(step, seed=0, ratio=(1e-3, 2e-3, 5e-4), w_range=(0.5, 0.25, 0.125), dead=(0.1, 0.3)):
    rng = np.random.default_rng(seed)
    return Health(step=step, layers=LAYERS, kinds=KINDS,
                  weight_hist=rng.integers(0, 50, (3, BINS)).astype(np.int32),
                  weight_range=np.array(w_range, np.float32),
                  grad_hist=rng.integers(0, 50, (3, BINS)).astype(np.int32),
                  grad_range=np.array([2.0 ** -6] * 3, np.float32),
                  update_ratio=np.array(ratio, np.float32), rectifiers=("1", "4"),
                  dead=np.array(dead, np.float32), batch=16, rectifier_kinds=("ReLU", "ReLU6"))


@pytest.fixture
def hv(qtbot):
    from cnnviz.app.views.health import HealthView

    view = HealthView(max_rows=6)
    qtbot.addWidget(view)
    view.resize(900, 640)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_one_row_per_add_and_the_rows_are_the_counts(hv):
    assert hv.is_empty
    fed = [health(10 * k, seed=k) for k in range(4)]
    for h in fed:
        hv.add(h, h.step)
        hv.flush()
    assert not hv.is_empty and hv.rows == 4
    np.testing.assert_array_equal(hv.weight_pixels(), np.stack([h.weight_hist[0] for h in fed]))
    np.testing.assert_array_equal(hv.grad_pixels(), np.stack([h.grad_hist[0] for h in fed]))
    rect = hv.weight_image.mapRectToParent(hv.weight_image.boundingRect())
    assert rect.left() == pytest.approx(-0.5) and rect.right() == pytest.approx(0.5)  # the value range on x
    assert rect.height() == pytest.approx(4)
    assert hv.warning == "" and "‖Δw‖/‖w‖ 0.001" in hv.caption.text()
    assert [c.yData[-1] for c in hv._dead_curves] == pytest.approx([0.1, 0.3])
    hv.add(None, 50)   # a probe taken while paused has no health
    assert hv.rows == 4


def test_the_picker_and_set_layer_choose_the_heat_maps_layer(hv):
    fed = [health(k, seed=k) for k in range(3)]
    for h in fed:
        hv.add(h)
    hv.set_layer("3.body.1")
    hv.flush()
    assert hv.layer == "3.body.1"
    np.testing.assert_array_equal(hv.weight_pixels(), np.stack([h.weight_hist[1] for h in fed]))
    hv.set_layer(1)   # a ReLU: no weights, the layer shown stays
    assert hv.layer == "3.body.1"
    hv.set_layer(5)
    hv.flush()
    np.testing.assert_array_equal(hv.grad_pixels(), np.stack([h.grad_hist[2] for h in fed]))


def test_a_row_with_a_narrower_range_is_added_into_the_wider_bins(hv):
    wide, narrow = health(1, seed=1, w_range=(1.0, 0.25, 0.125)), health(2, seed=2)  # layer 0: ±1 then ±0.5
    hv.add(wide)
    hv.add(narrow)
    hv.flush()
    pixels = hv.weight_pixels()
    np.testing.assert_array_equal(pixels[0], wide.weight_hist[0])
    expected = np.zeros(BINS)
    expected[BINS // 4:3 * BINS // 4] = narrow.weight_hist[0].reshape(-1, 2).sum(1)
    np.testing.assert_array_equal(pixels[1], expected)
    assert pixels[1].sum() == narrow.weight_hist[0].sum()


def test_memory_is_bounded_dropping_the_oldest(hv):
    fed = [health(k, seed=k) for k in range(9)]
    for h in fed:
        hv.add(h)
    hv.flush()
    assert hv.rows == 6
    np.testing.assert_array_equal(hv.weight_pixels(), np.stack([h.weight_hist[0] for h in fed[3:]]))
    assert hv._weight_axis.steps == [3, 4, 5, 6, 7, 8]


def test_an_exploding_ratio_shows_the_warning_naming_the_layer(hv):
    hv.add(health(1))
    hv.flush()
    assert hv.warning == "" and hv.warning_label.isHidden()
    hv.add(health(2, ratio=(1e-3, 0.4, 5e-4)))
    hv.flush()
    assert not hv.warning_label.isHidden()
    assert "exploding" in hv.warning.lower() and "3.body.1 (Conv2d)" in hv.warning
    assert "#D55E00" in hv.warning_label.styleSheet()   # in red
    hv.add(health(3, ratio=(1e-3, 1e-3, 1e-7)))
    hv.flush()
    assert "vanishing" in hv.warning.lower() and "layer 5 (Linear)" in hv.warning and "3.body.1" not in hv.warning


def test_clear_and_another_model_start_over(hv):
    hv.add(health(1))
    hv.clear("loading")
    assert hv.is_empty and hv.rows == 0 and hv.hint_text == "loading"
    hv.add(health(1))
    other = Health(step=2, layers=("0",), kinds=("Linear",), weight_hist=np.ones((1, BINS), np.int32),
                   weight_range=np.array([1.0], np.float32), grad_hist=np.ones((1, BINS), np.int32),
                   grad_range=np.array([1.0], np.float32), update_ratio=np.array([1e-3], np.float32),
                   rectifiers=(), dead=np.zeros(0, np.float32))
    hv.add(other)
    hv.flush()
    assert hv.rows == 1 and hv.layer_box.count() == 1 and hv.weight_pixels().shape == (1, BINS)


def test_log_counts_colours_by_log1p_of_the_counts_and_back(hv, qtbot):
    fed = [health(k, seed=k) for k in range(3)]
    fed[1].grad_hist[0, 7] = 100_000   # a tail of many, beside bins of tens
    for h in fed:
        hv.add(h)
    hv.flush()
    counts_w = np.stack([h.weight_hist[0] for h in fed]).astype(np.float64)
    counts_g = np.stack([h.grad_hist[0] for h in fed]).astype(np.float64)
    assert not hv.log_counts and not hv.log_box.isChecked()      # off by default: the counts as they are
    np.testing.assert_array_equal(hv.weight_pixels(), counts_w)
    assert tuple(hv.grad_image.levels) == pytest.approx((0.0, 100_000.0))
    hv.log_box.click()                                             # as a person does
    assert hv.log_counts
    qtbot.waitUntil(lambda: hv.renders > 0 and np.allclose(hv.weight_pixels(), np.log1p(counts_w)), timeout=2000)
    hv.flush()
    np.testing.assert_allclose(hv.weight_pixels(), np.log1p(counts_w), rtol=1e-6)
    np.testing.assert_allclose(hv.grad_pixels(), np.log1p(counts_g), rtol=1e-6)
    assert tuple(hv.grad_image.levels) == pytest.approx((0.0, np.log1p(100_000.0)), rel=1e-6)
    assert tuple(hv.weight_image.levels) == pytest.approx((0.0, np.log1p(counts_w.max())), rel=1e-6)
    hv.add(health(3, seed=3))                                      # a new row keeps the colouring
    hv.flush()
    assert hv.weight_pixels()[-1] == pytest.approx(np.log1p(health(3, seed=3).weight_hist[0].astype(float)))
    hv.set_log_counts(False)
    hv.flush()
    np.testing.assert_array_equal(hv.grad_pixels()[:3], counts_g)


def test_the_legends_name_layers_by_path_and_type(hv):
    hv.add(health(1, dead=(0.25, 0.5)))
    hv.flush()
    assert hv.ratio_legend.names == ["0 Conv2d", "3.body.1 Conv2d", "5 Linear"]
    assert hv.dead_legend.names == ["1 ReLU", "4 ReLU6"]
    assert [c.name() for c in hv._dead_curves] == ["1 ReLU", "4 ReLU6"]
    text = hv.dead_legend.item.toPlainText()
    assert "1 ReLU" in text and "4 ReLU6" in text and "dead units" in text
    assert "dead units: 1 ReLU 25%, 4 ReLU6 50%" in hv.caption.text()
    assert "layer 0 Conv2d:" in hv.caption.text()
    hv.set_layer("3.body.1")
    hv.flush()
    assert hv.ratio_legend.emphasis == 1 and "<b>3.body.1&nbsp;Conv2d</b>" in hv.ratio_legend.html


@pytest.mark.parametrize("size", [(700, 450), (900, 640)])
def test_the_legends_cover_no_plot_at_the_size_a_1024x700_window_gives(hv, qtbot, size):
    many = Health(step=1, layers=tuple(f"{b}.body.{j}" for b in range(4) for j in (0, 3)),
                  kinds=("Conv2d",) * 8, weight_hist=np.ones((8, BINS), np.int32),
                  weight_range=np.ones(8, np.float32), grad_hist=np.ones((8, BINS), np.int32),
                  grad_range=np.ones(8, np.float32), update_ratio=np.full(8, 1e-3, np.float32),
                  rectifiers=tuple(f"{b}.body.2" for b in range(6)), dead=np.full(6, 0.2, np.float32),
                  rectifier_kinds=("ReLU",) * 6)
    hv.resize(*size)
    hv.add(many)
    hv.flush()
    qtbot.wait(50)
    hv.flush()
    for legend, plot in ((hv.ratio_legend, hv.ratio_plot), (hv.dead_legend, hv.dead_plot)):
        box = legend.sceneBoundingRect()
        assert box.height() > 10 and len(legend.names) in (6, 8)
        for other in (hv.ratio_plot, hv.dead_plot, hv.weight_plot, hv.grad_plot):
            assert not box.intersects(other.getViewBox().sceneBoundingRect())
        text = legend.item.mapRectToScene(legend.item.boundingRect())
        assert text.right() <= box.right() + 1 and text.bottom() <= box.bottom() + 1   # wrapped, not cut
        assert plot.getViewBox().sceneBoundingRect().height() > 60                    # room left for the curves
