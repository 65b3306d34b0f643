"""The views' shared layout and level helpers: pure numpy, no widgets."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnviz.app.views._common import gap_path
from cnnviz.app.views.levels import compute_levels, round_levels
from cnnviz.app.views.mosaic import as_maps, best_columns, mosaic, mosaic_size, tile_at, tile_origin
from cnnviz.core.model.units import format_bytes, format_count, format_si  # noqa: E402


def _maps(c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)


@pytest.mark.parametrize("c, cols", [(7, 3), (6, 3), (1, 1), (5, 5), (10, 4)])
def test_mosaic_puts_each_channel_at_its_tile(c, cols):
    maps = _maps(c, 3, 4)
    image, (rows, got_cols) = mosaic(maps, gap=1, cols=cols)
    assert got_cols == cols and rows == math.ceil(c / cols)
    assert image.dtype == np.float32 and image.flags.c_contiguous
    assert image.shape == (rows * 4 - 1, cols * 5 - 1)
    covered = np.zeros(image.shape, bool)
    for ch in range(c):
        x, y = tile_origin(ch, (3, 4), cols, 1)
        assert (y, x) == ((ch // cols) * 4, (ch % cols) * 5)
        np.testing.assert_array_equal(image[y:y + 3, x:x + 4], maps[ch])
        covered[y:y + 3, x:x + 4] = True
    assert np.isnan(image[~covered]).all(), "gaps and unused tiles hold the fill value"


def test_mosaic_reuses_its_buffer_and_refills_unused_tiles():
    first, grid = mosaic(_maps(7, 3, 3, seed=1), gap=1, cols=3, fill=0.0)
    second_maps = _maps(7, 3, 3, seed=2)
    second, grid2 = mosaic(second_maps, gap=1, cols=3, fill=0.0, out=first)
    assert second is first and grid2 == grid
    fresh, _ = mosaic(second_maps, gap=1, cols=3, fill=0.0)
    np.testing.assert_array_equal(second, fresh)


def test_mosaic_with_no_gap_of_a_vector_is_a_reshape():
    v = np.arange(12, dtype=np.float32)
    image, grid = mosaic(as_maps(v), gap=0, cols=4)
    assert grid == (3, 4)
    np.testing.assert_array_equal(image, v.reshape(3, 4))


def test_as_maps_shapes():
    assert as_maps(np.zeros(5)).shape == (5, 1, 1)
    assert as_maps(np.zeros((4, 6))).shape == (1, 4, 6)
    assert as_maps(np.zeros((2, 3, 4, 5))).shape == (6, 4, 5)
    assert as_maps(np.zeros((3, 4, 5), np.float64)).dtype == np.float32


def test_best_columns_follows_the_area_shape():
    wide = best_columns(64, (56, 56), area=(300, 1200))
    tall = best_columns(64, (56, 56), area=(1200, 300))
    square = best_columns(64, (56, 56), area=(600, 600))
    assert wide > square > tall
    assert square == 8
    assert best_columns(1, (5, 5), (100, 100)) == 1
    assert best_columns(10, (1, 1), area=(50, 1000), gap=0) == 10   # a strip when the area is a strip


def _scale(n, tile, area, gap, cols):
    h, w = mosaic_size(tile, (math.ceil(n / cols), cols), gap)
    return min(area[0] / h, area[1] / w)


def test_best_columns_maximises_the_tile_size():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 200))
        tile = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        area = (float(rng.uniform(20, 1500)), float(rng.uniform(20, 1500)))
        gap = int(rng.integers(0, 2))
        best = _scale(n, tile, area, gap, best_columns(n, tile, area, gap))
        assert all(best >= _scale(n, tile, area, gap, c) * (1 - 1e-9) for c in range(1, n + 1)), (n, tile, area)


def test_best_columns_of_a_million_units_is_quick():
    import time
    start = time.perf_counter()
    cols = best_columns(1_000_000, (1, 1), (500, 800), gap=0)
    assert time.perf_counter() - start < 0.5   # a search over every column count takes about a second
    assert 1100 < cols < 1400


def test_tile_at_finds_channel_and_pixel_and_skips_gaps():
    shape, grid, gap, n = (3, 4), (3, 3), 1, 7
    for ch in range(n):
        x0, y0 = tile_origin(ch, shape, grid[1], gap)
        assert tile_at(x0 + 2.5, y0 + 1.2, shape, grid, gap, n) == (ch, 1, 2)
    assert tile_at(4.5, 0.5, shape, grid, gap, n) is None            # the gap after column 0
    assert tile_at(0.5, 3.5, shape, grid, gap, n) is None            # the gap under row 0
    x7, y7 = tile_origin(7, shape, grid[1], gap)
    assert tile_at(x7 + 0.5, y7 + 0.5, shape, grid, gap, n) is None  # an unused tile
    assert tile_at(-0.5, 0.5, shape, grid, gap, n) is None


def test_gap_path_covers_gaps_and_unused_tiles_only():
    shape, grid, gap, n = (3, 4), (3, 3), 1, 7
    path = gap_path(shape, grid, gap, n)
    assert path.contains(_pt(4.5, 1.5)) and path.contains(_pt(1.5, 3.5))
    for ch in range(n):
        x0, y0 = tile_origin(ch, shape, grid[1], gap)
        assert not path.contains(_pt(x0 + 1.5, y0 + 1.5)), f"tile {ch} is covered"
    x7, y7 = tile_origin(7, shape, grid[1], gap)
    assert path.contains(_pt(x7 + 1.5, y7 + 1.5)) and path.contains(_pt(x7 + 4.5, y7 + 1.5))


def _pt(x, y):
    from PySide6.QtCore import QPointF
    return QPointF(x, y)


def test_compute_levels_modes():
    both = np.array([-1.0, 0.5, 3.0], np.float32)
    assert compute_levels(both, "auto") == ((-3.0, 3.0), True)
    assert compute_levels(both, "minmax") == ((-1.0, 3.0), False)
    assert compute_levels(both, "symmetric") == ((-3.0, 3.0), True)
    relu = np.array([0.0, 0.25, 2.0], np.float32)
    assert compute_levels(relu, "auto") == ((0.0, 2.0), False)
    assert compute_levels(relu, (-1, 1)) == ((-1.0, 1.0), True)


def test_compute_levels_survive_nan_inf_constant_and_empty():
    assert compute_levels(np.array([np.nan, 1.0, -2.0, np.inf], np.float32), "auto") == ((-2.0, 2.0), True)
    for data in (np.zeros(4, np.float32), np.full(3, np.nan, np.float32), np.zeros(0, np.float32),
                 np.full(3, 5.0, np.float32)):
        for mode in ("auto", "minmax", "symmetric"):
            (lo, hi), _ = compute_levels(data, mode)
            assert math.isfinite(lo) and math.isfinite(hi) and lo < hi
    with pytest.raises(ValueError):
        compute_levels(np.zeros(2), "median")
    with pytest.raises(ValueError):
        compute_levels(np.zeros(2), (1, 1))


@pytest.mark.parametrize("levels, symmetric", [((-4.83, 4.83), True), ((0.0, 0.731), False),
                                               ((0.531, 0.552), False), ((-12.5, 3.2), False)])
def test_round_levels_widen_outward_by_at_most_about_a_quarter(levels, symmetric):
    lo, hi = round_levels(levels, symmetric)
    assert lo <= levels[0] and hi >= levels[1]
    assert (hi - lo) <= 1.3 * (levels[1] - levels[0]) + 1e-12
    if symmetric:
        assert lo == -hi


def test_formats_match_the_command_line_summary():
    assert format_bytes(4 * 15_000) == "59 KiB"
    assert format_bytes(500) == "500 bytes"
    assert format_si(416_520) == "417 k"
    assert format_si(2_500_000) == "2.5 M"
    assert format_si(61_706) == "61.7 k"
    assert format_count(61_706) == "61,706"


# ================================================================ SteadyLabel: the reading under a plot
def test_a_steady_label_keeps_its_tallest_height_and_measures_only_longer_texts(qtbot):
    from PySide6 import QtWidgets

    from cnnviz.app.views._common import status_label

    box = QtWidgets.QWidget()
    qtbot.addWidget(box)
    layout = QtWidgets.QVBoxLayout(box)
    label = status_label(box)
    layout.addWidget(label)
    box.resize(160, 200)
    box.show()
    qtbot.waitExposed(box)
    one = label.minimumHeight()
    label.setText("short")
    assert label.minimumHeight() == one
    long_text = "a reading long enough to wrap onto several lines at this width, " * 3
    label.setText(long_text)
    tall = label.minimumHeight()
    assert tall > one and tall >= label.heightForWidth(label.width())
    measured = []
    original = label._needed
    label._needed = lambda: measured.append(1) or original()
    label.setText("short again")                    # shorter: not measured, and the height holds
    label.setText(long_text.replace("a ", "b "))     # as long as one measured at this width: not measured
    assert label.minimumHeight() == tall and measured == []
    label.setText(long_text + " and a bit more text, again and again, " * 3)   # longer: measured, taller
    assert measured and label.minimumHeight() > tall
    assert label.autoFillBackground(), "opaque: a new reading repaints the label, not the panel behind it"
