"""FeatureMapView and FilterView: what is drawn, what the cursor reads, what a click does."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from cnnviz.app.views import FeatureMapView, FilterView  # noqa: E402
from cnnviz.app.views._common import DIVERGING, SEQUENTIAL, lut  # noqa: E402
from tests.app.qt_helpers import click_view as _click  # noqa: E402
from tests.app.qt_helpers import move_to as _move


def _maps(c, h, w, seed=0, relu=False):
    m = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    return np.maximum(m, 0) if relu else m


def _show(view, maps, **kwargs):
    view.set_maps(maps, **kwargs)
    view.flush()


def test_empty_state_is_a_hint_until_maps_arrive(fmv):
    assert fmv.is_empty and "forward pass" in fmv.hint_text
    _show(fmv, _maps(4, 5, 5))
    assert not fmv.is_empty
    fmv.clear("Layer 3 failed: see the sidebar")
    assert fmv.is_empty and fmv.hint_text == "Layer 3 failed: see the sidebar"
    assert fmv.maps is None


def test_mosaic_pixels_are_the_maps_at_their_tiles(fmv):
    maps = _maps(10, 6, 9)
    _show(fmv, maps, title="Layer 0 · Conv2d")
    image = fmv.image_item.image
    assert image.dtype == np.float32 and image.flags.c_contiguous
    rows, cols = fmv.grid
    assert rows * cols >= 10 > (rows - 1) * cols
    for c in range(10):
        r = fmv.tile_rect(c)
        x, y = int(r.x()), int(r.y())
        assert (y, x) == ((c // cols) * 7, (c % cols) * 10)
        np.testing.assert_array_equal(image[y:y + 6, x:x + 9], maps[c])


def test_levels_are_computed_once_and_fixed_not_auto(fmv):
    maps = _maps(8, 7, 7)
    _show(fmv, maps, levels="symmetric")
    lo, hi = fmv.levels
    assert lo == -hi and hi >= np.abs(maps).max()
    np.testing.assert_allclose(fmv.image_item.getLevels(), fmv.levels)
    assert fmv.symmetric
    np.testing.assert_array_equal(fmv.image_item.lut, lut(DIVERGING))
    _show(fmv, maps, levels=(-0.5, 2.0))
    np.testing.assert_allclose(fmv.image_item.getLevels(), (-0.5, 2.0))
    _show(fmv, maps * 10)  # None keeps the chosen fixed levels
    np.testing.assert_allclose(fmv.image_item.getLevels(), (-0.5, 2.0))


def test_auto_levels_choose_min_max_and_a_sequential_map_for_relu_outputs(fmv):
    maps = _maps(6, 5, 5, relu=True)
    _show(fmv, maps, levels="auto")
    lo, hi = fmv.levels
    assert lo == 0 and maps.max() <= hi <= 1.3 * maps.max()
    assert not fmv.symmetric
    np.testing.assert_array_equal(fmv.image_item.lut, lut(SEQUENTIAL))
    np.testing.assert_allclose(fmv.colorbar.levels(), fmv.levels)


def test_user_choice_of_levels_is_kept_across_new_data(fmv):
    _show(fmv, _maps(4, 5, 5, relu=True))
    fmv._levels_box.setCurrentIndex(fmv._levels_box.findData("symmetric"))
    fmv.flush()
    assert fmv.symmetric
    _show(fmv, _maps(4, 5, 5, seed=3, relu=True))
    assert fmv.symmetric


def test_hover_reads_channel_position_and_value(fmv, qtbot):
    maps = _maps(12, 8, 8, seed=4)
    _show(fmv, maps)
    for c, y, x in ((0, 0, 0), (5, 3, 6), (11, 7, 2)):
        r = fmv.tile_rect(c)
        _move(fmv.graphics, fmv.maps_vb, r.x() + x + 0.5, r.y() + y + 0.5)
        assert fmv.hover_info == ("map", c, y, x, pytest.approx(float(maps[c, y, x])))
        assert f"channel {c}" in fmv.status.text() and f"y {y}, x {x}" in fmv.status.text()
        assert fmv._channel_tag.isVisible() and fmv._channel_tag.textItem.toPlainText() == str(c)


def test_hover_over_a_gap_reads_nothing(fmv):
    _show(fmv, _maps(4, 8, 8))
    r = fmv.tile_rect(0)
    _move(fmv.graphics, fmv.maps_vb, r.right() + 0.5, r.y() + 3.5)
    assert fmv.hover_info is None


def test_click_enlarges_that_channel_and_click_or_esc_returns(fmv, qtbot):
    maps = _maps(9, 6, 6, seed=5)
    _show(fmv, maps)
    r = fmv.tile_rect(7)
    with qtbot.waitSignal(fmv.enlargedChanged) as signal:
        _click(fmv.graphics, fmv.maps_vb, r.x() + 2.5, r.y() + 2.5)
    assert signal.args == [7] and fmv.enlarged_channel == 7
    np.testing.assert_array_equal(fmv.image_item.image, maps[7])
    assert "channel 7" in fmv._title_label.text()
    _move(fmv.graphics, fmv.maps_vb, 4.5, 1.5)
    assert fmv.hover_info == ("map", 7, 1, 4, pytest.approx(float(maps[7, 1, 4])))
    new = _maps(9, 6, 6, seed=6)
    _show(fmv, new)                       # new data keeps the enlarged channel
    np.testing.assert_array_equal(fmv.image_item.image, new[7])
    fmv.graphics.setFocus()
    QTest.keyClick(fmv.graphics, Qt.Key.Key_Escape)
    assert fmv.enlarged_channel is None
    assert fmv.image_item.image.shape != new[7].shape
    fmv.enlarge(2)
    _click(fmv.graphics, fmv.maps_vb, 1.5, 1.5)
    assert fmv.enlarged_channel is None


def test_vector_activations_draw_as_a_strip_of_cells(fmv):
    v = np.linspace(-1, 1, 84, dtype=np.float32)
    _show(fmv, v, title="Layer 9 · Linear · 84")
    image = fmv.image_item.image
    rows, cols = fmv.grid
    assert fmv.gap == 0 and image.shape == (rows, cols)
    np.testing.assert_array_equal(image.reshape(-1)[:84], v)
    _move(fmv.graphics, fmv.maps_vb, 5.5, 1.5)
    assert fmv.hover_info == ("unit", cols + 5, pytest.approx(float(v[cols + 5])))
    fmv.enlarge(3)                        # no single maps to enlarge
    assert fmv.enlarged_channel is None
    _show(fmv, np.array(3.0, np.float32))  # even a scalar draws
    assert fmv.image_item.image.shape == (1, 1)


def test_nan_in_maps_keeps_levels_finite(fmv):
    maps = _maps(4, 5, 5)
    maps[1, 2, 2] = np.nan
    maps[2, 0, 0] = np.inf
    _show(fmv, maps)
    assert all(np.isfinite(fmv.levels))
    fmv.grab()  # paints without raising


def test_set_maps_coalesces_bursts_into_few_paints(fmv, qtbot):
    calls = []
    original = fmv.image_item.setImage
    fmv.image_item.setImage = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    frames = [_maps(16, 10, 10, seed=s) for s in range(50)]
    for f in frames:
        fmv.set_maps(f)
    assert calls == []                    # nothing is drawn inside the caller: at the next turn of the loop
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=1000)
    np.testing.assert_array_equal(fmv.image_item.image[:10, :10], frames[-1][0])
    fmv.set_maps(frames[0])
    fmv.set_maps(frames[1])
    qtbot.wait(10)
    assert len(calls) == 1                # within 33 ms of the last draw, asks wait
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=1000)
    qtbot.wait(80)
    assert len(calls) == 2                # the second burst became one more draw, of its last frame
    np.testing.assert_array_equal(fmv.image_item.image[:10, :10], frames[1][0])


def test_a_hidden_view_draws_nothing_until_it_is_shown(qtbot):
    """A view behind another tab costs nothing while data streams in; shown, it draws the latest at once."""
    from PySide6.QtWidgets import QLabel, QTabWidget

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QLabel("in front"), "front")
    view = FeatureMapView()
    tabs.addTab(view, "maps")
    tabs.resize(700, 500)
    tabs.show()
    qtbot.waitExposed(tabs)
    calls = []
    original = view.image_item.setImage
    view.image_item.setImage = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    frames = [_maps(8, 10, 10, seed=s) for s in range(20)]
    for f in frames:
        view.set_maps(f)
        QTest.qWait(5)
    qtbot.wait(60)
    assert calls == [], "hidden: nothing drawn"
    tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=1000)
    np.testing.assert_array_equal(view.image_item.image[:10, :10], frames[-1][0])
    tabs.setCurrentIndex(0)
    view.set_maps(frames[0])
    view.flush()
    assert len(calls) == 2, "flush draws even when hidden (what callers read is current)"


def test_grid_follows_the_widget_shape(qtbot):
    maps = _maps(24, 10, 10)
    cols = {}
    for name, size in (("wide", (1200, 300)), ("tall", (300, 1000))):
        view = FeatureMapView()
        qtbot.addWidget(view)
        view.resize(*size)
        view.show()
        qtbot.waitExposed(view)
        _show(view, maps)
        cols[name] = view.grid[1]
    assert cols["wide"] > cols["tall"]


def test_input_image_is_shown_beside_the_maps(fmv):
    grey = np.random.default_rng(1).random((1, 28, 28)).astype(np.float32)
    fmv.set_input(grey)
    _show(fmv, _maps(4, 5, 5))
    assert fmv._input_shown
    np.testing.assert_array_equal(fmv._input_item.image, grey[0])
    assert fmv._input_vb.sceneBoundingRect().right() < fmv.maps_vb.sceneBoundingRect().left()
    _move(fmv.graphics, fmv._input_vb, 3.5, 2.5)
    assert fmv.hover_info == ("input", 2, 3, pytest.approx(float(grey[0, 2, 3])))
    rgb = np.random.default_rng(2).random((3, 8, 10)).astype(np.float32)
    fmv.set_input(rgb)
    np.testing.assert_array_equal(fmv._input_item.image, np.moveaxis(rgb, 0, -1))
    fmv.set_input(None)
    assert not fmv._input_shown


# ------------------------------------------------------------------ filters
@pytest.fixture
def fv(qtbot):
    view = FilterView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_filters_rows_are_output_channels_columns_input_channels(fv):
    w = np.random.default_rng(0).standard_normal((6, 3, 5, 5)).astype(np.float32)
    fv.set_weights(w, "Layer 0 · Conv2d")
    fv.flush()
    image = fv.image_item.image
    assert fv.grid == (6, 3)
    for o in range(6):
        for i in range(3):
            np.testing.assert_array_equal(image[o * 6:o * 6 + 5, i * 6:i * 6 + 5], w[o, i])
    lo, hi = fv.levels
    assert lo == -hi and hi >= np.abs(w).max()
    np.testing.assert_allclose(fv.image_item.getLevels(), fv.levels)
    vb = fv.plot.getViewBox()
    _move(fv.graphics, vb, 2 * 6 + 4.5, 4 * 6 + 1.5)
    assert fv.hover_info == (4, 2, 1, 4, pytest.approx(float(w[4, 2, 1, 4])))
    assert "filter 4" in fv.status.text() and "input channel 2" in fv.status.text()


def test_huge_filters_are_capped_with_a_note(fv):
    w = np.zeros((100, 80, 3, 3), np.float32)
    fv.set_weights(w)
    fv.flush()
    assert fv.shown_channels == (64, 64)
    assert "64 of 100" in fv.note.text() and "64 of 80" in fv.note.text()


def test_linear_weights_draw_as_one_matrix(fv):
    w = np.random.default_rng(3).standard_normal((10, 84)).astype(np.float32)
    fv.set_weights(w)
    fv.flush()
    np.testing.assert_array_equal(fv.image_item.image, w)
    with pytest.raises(ValueError):
        fv.set_weights(np.zeros((2, 3, 4)))


def test_levels_hold_steady_while_new_data_fits_them(fmv):
    maps = _maps(8, 7, 7, seed=8)
    _show(fmv, maps, levels="auto")
    first = fmv.levels
    _show(fmv, maps * 0.9)                # a little smaller: same colours, same colour bar
    assert fmv.levels == first
    _show(fmv, maps * 0.2)                # much smaller: the levels follow
    assert fmv.levels[1] < first[1] and fmv.levels[1] >= np.abs(maps * 0.2).max()
    _show(fmv, maps * 3)                  # larger than the levels: they follow at once
    assert fmv.levels[1] >= np.abs(maps * 3).max()
