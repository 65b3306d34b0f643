"""The network overview: a column per layer, the pixels of the activations, clicks, "+k more", the error column.

The layout and pixel arithmetic (``overview_layout``) is tested without Qt; the
view with real probes of the bundled LeNet-5, Tiny VGG and digits nets, and in
the live window (a click selects the layer, the window opens on the overview).
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cnnviz.app.views import overview_layout as ol
from cnnviz.core.model import assets, files
from cnnviz.core.shapes import fmt_shape, infer
from tests.app.run_helpers import digits_stack, wait_probe
from tests.app.views.overview_helpers import probe_of, show, viewport_point


# ================================================================ the layout, without Qt
def _infos(report, acts=None):
    return [ol.LayerInfo(r.index, r.type, r.label, r.input_shape, r.output_shape,
                         r.output_shape if acts is None else acts[r.index], r.error) for r in report.layers]


def test_the_flow_has_the_input_a_column_per_layer_and_the_softmax():
    stack = files.load(assets.path("examples", "lenet5.cnnviz"))
    report = infer(stack)
    flow = ol.build_flow(report.input_shape, _infos(report), classes=[str(i) for i in range(10)])
    cols = flow.columns()
    assert [c.key for c in cols] == ["input"] + [f"layer {i}" for i in range(12)] + ["softmax"]
    kinds = [c.kind for c in cols]
    assert kinds == ["image"] + ["maps"] * 6 + ["flat", "units", "units", "units", "units", "units", "bars"]
    assert cols[7].origin == (16, 5, 5) and cols[7].count == 400
    assert cols[12].classes == tuple(str(i) for i in range(10))   # the last Linear scores the classes
    assert cols[8].classes is None                                 # Linear(120) does not
    assert [c.shape for c in cols[1:13]] == [r.output_shape for r in report.layers]


def test_a_broken_stack_stops_at_the_break_with_an_error_column():
    stack = files.load(assets.path("examples", "broken.cnnviz"))
    report = infer(stack)
    bad = report.first_error
    flow = ol.build_flow(report.input_shape, _infos(report, acts=[None] * len(report.layers)), softmax=False,
                         error=report.problem, error_at=bad.index)
    cols = flow.columns()
    assert [c.key for c in cols] == ["input"] + [f"layer {i}" for i in range(bad.index)] + ["error"]
    assert all(c.kind == "pending" for c in cols[1:-1])
    assert "kernel" in cols[-1].text and cols[-1].index == bad.index


def test_branches_sit_side_by_side_sharing_the_height():
    a = ol.Column("a", "maps", 0, "a", (4, 8, 8), count=4, tile=(8, 8))
    b1 = ol.Column("b1", "maps", 1, "b1", (4, 8, 8), count=4, tile=(8, 8))
    b2 = ol.Column("b2", "maps", 2, "b2", (2, 8, 8), count=2, tile=(8, 8))
    c = ol.Column("c", "maps", 3, "c", (4, 8, 8), count=4, tile=(8, 8))
    flow = ol.Flow((a, ol.Branches((ol.Flow((b1,)), ol.Flow((b2,)))), c))
    placed, width = ol.layout(flow, 1000, 600, ol.Metrics())
    at = {p.key: p for p in placed}
    assert [p.key for p in placed] == ["a", "b1", "b2", "c"]
    assert at["b1"].x == at["b2"].x > at["a"].x + at["a"].width
    assert at["b1"].height == at["b2"].height == 300 and at["b2"].y == 300
    assert at["c"].x > max(at["b1"].x + at["b1"].width, at["b2"].x + at["b2"].width)
    assert width > at["c"].x + at["c"].width


def test_a_wide_layer_shows_its_first_maps_and_k_more_and_expands():
    col = ol.Column("layer 0", "maps", 0, "0", (64, 8, 8), count=64, tile=(8, 8))
    placed, _ = ol.layout(ol.Flow((col,)), 800, 500, ol.Metrics())
    p = placed[0]
    assert p.more > 0 and p.grid.n + p.more == 64 and p.grid.cols == 1 and p.more_rect is not None
    assert p.grid.th >= ol.THUMB_MIN
    placed, _ = ol.layout(ol.Flow((col,)), 800, 500, ol.Metrics(), expanded={"layer 0"})
    q = placed[0]
    assert q.more == 0 and q.expanded and q.grid.n == 64 and q.grid.cols > 1
    assert q.grid.y + q.grid.height <= q.body_y + q.body_height


def test_the_selected_column_is_large():
    col = ol.Column("layer 0", "maps", 0, "0", (6, 28, 28), count=6, tile=(28, 28))
    other = ol.Column("layer 1", "maps", 1, "1", (6, 28, 28), count=6, tile=(28, 28))
    placed, _ = ol.layout(ol.Flow((col, other)), 1000, 600, ol.Metrics(), selected="layer 0")
    assert placed[0].large and not placed[1].large
    assert placed[0].grid.th > 2 * placed[1].grid.th and placed[0].grid.cols > 1


def test_quantize_maps_levels_to_colours_and_nan_inf_draw():
    v = np.array([-1.0, 0.0, 1.0, 2.0, np.nan, np.inf, -np.inf], np.float32)
    q = ol.quantize(v, (0.0, 1.0))
    assert q.tolist() == [0, 0, 254, 254, ol.NO_VALUE, 254, 0]
    assert ol.quantize(np.array([0.5], np.float32), (0.0, 1.0))[0] == 127


def test_the_raster_is_each_map_scaled_by_nearest_neighbour():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 2**31, size=(5, 3, 4)).astype(np.uint32)
    grid = ol.Grid(0, 0, 3, 2, 6, 8, 2, 5)   # 5 tiles of 6×8 (twice 3×4), 2 px apart, one unused
    image = ol.Raster(grid, (3, 4)).draw(maps, none=7)
    assert image.shape == (grid.height, grid.width)
    for k in range(5):
        x, y, w, h = (int(v) for v in grid.rect(k))
        np.testing.assert_array_equal(image[y:y + h, x:x + w], np.repeat(np.repeat(maps[k], 2, 0), 2, 1))
    assert (image[6:8] == 7).all()                 # the gap between rows
    x, y, _, _ = (int(v) for v in grid.rect(5))    # the unused sixth tile
    assert (image[y:, x:] == 7).all()


def test_pixels_are_argb32_premultiplied_as_the_image_reads_them(qtbot):
    from PySide6 import QtGui

    table = np.array([[10, 20, 30], [200, 100, 50]], np.uint8)
    pal = ol.palette32(table)
    assert pal[0] == 0xFF0A141E and pal[ol.COLOURS - 1] == 0xFFC86432 and pal[ol.NO_VALUE] == 0   # gaps clear
    rgb = np.zeros((3, 1, 2), np.float32)
    rgb[:, 0, 0] = (1.0, 0.5, 0.0)
    rgb[:, 0, 1] = np.nan                          # NaN draws black
    packed = np.ascontiguousarray(ol.pack_rgb(rgb))
    image = QtGui.QImage(packed.data, 2, 1, 8, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    assert image.pixelColor(0, 0).getRgb() == (255, 128, 0, 255)
    assert image.pixelColor(1, 0).getRgb() == (0, 0, 0, 255)


def test_steady_levels_hold_while_the_data_fits():
    levels = ol.SteadyLevels()
    first, sym = levels.update(np.array([0.0, 0.93], np.float32))
    assert not sym and first[0] <= 0 and first[1] >= 0.93
    again, _ = levels.update(np.array([0.0, 0.9], np.float32))
    assert again == first


# ================================================================ the view, with real probes
@pytest.mark.parametrize("name", ["lenet5", "tiny-vgg"])
def test_one_column_per_layer_with_the_reports_shapes(overview, name):
    report, _probe = show(overview, name)
    keys = [p.key for p in overview.columns]
    assert keys == ["input"] + [f"layer {i}" for i in range(len(report.layers))] + ["softmax"]
    assert overview.column_texts("input")["shape"] == fmt_shape(report.input_shape)
    for r in report.layers:
        texts = overview.column_texts(f"layer {r.index}")
        assert texts["shape"] == fmt_shape(r.output_shape)
        assert r.label in texts["title"] or texts["title"].endswith("…")
        assert "…" in texts["range"]   # the colour range under the column
    assert not overview.is_empty


def test_a_thumbnails_pixels_are_the_levels_mapped_activation(overview):
    _report, probe = show(overview, "lenet5", selected=0)
    act = probe.activations[3]                      # Conv2d 16×10×10, a normal column
    p = overview.column("layer 3")
    (levels, symmetric) = overview.column_levels("layer 3")
    lo, hi = levels
    assert lo <= float(act.min()) and float(act.max()) <= hi   # one scale for the layer's maps
    image = overview.column_pixels("layer 3")
    palette = overview.palette_for(symmetric)
    g = p.grid
    for k in (0, 7, 15):
        x, y, w, h = (round(v - o) for v, o in zip(g.rect(k), (g.x, g.y, 0, 0)))
        tile = image[y:y + h, x:x + w]
        rows = (np.arange(10) * h + h // 2) // 10    # the display pixel at the middle of each map pixel
        cols = (np.arange(10) * w + w // 2) // 10
        expected = palette[ol.quantize(act[k], levels)]
        np.testing.assert_array_equal(tile[np.ix_(rows, cols)], expected)
    # the largest value of channel 7 is drawn where it is
    k = 7
    x, y, w, h = (round(v - o) for v, o in zip(g.rect(k), (g.x, g.y, 0, 0)))
    expected_index = ol.quantize(act[k], levels)
    top = palette[expected_index.max()]
    iy, ix = np.unravel_index(int(np.argmax(act[k])), act[k].shape)
    assert image[y + (iy * h + h // 2) // 10, x + (ix * w + w // 2) // 10] == top


def test_hover_reads_the_layer_channel_and_range(overview, qtbot):
    _report, probe = show(overview, "lenet5", selected=0)
    rect = overview.thumbnail_rect("layer 3", 2)
    text = overview.tooltip_at(rect.center())
    assert "layer 3" in text and "channel 2" in text
    lo, hi = float(probe.activations[3][2].min()), float(probe.activations[3][2].max())
    from cnnviz.app.views.levels import fmt_value
    assert f"values {fmt_value(lo)} to {fmt_value(hi)}" in text
    overview.canvas.viewport().grab()
    QTest.mouseMove(overview.canvas.viewport(), viewport_point(overview, rect.center()))
    qtbot.waitUntil(lambda: "channel 2" in overview.status.text())
    flat = overview.thumbnail_rect("layer 11", 9)   # the logits, named by class
    assert probe.classes[9] in overview.tooltip_at(flat.center())


def test_a_click_emits_the_layer_and_channel_and_plus_more_expands(overview, qtbot):
    show(overview, "digits", selected=0)
    p = overview.column("layer 2")                   # Conv2d 32×8×8: the first maps and "+k more"
    assert p.more > 0
    clicks = []
    overview.thumbnailClicked.connect(lambda layer, ch: clicks.append((layer, ch)))
    rect = overview.thumbnail_rect("layer 2", 3)
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, rect.center()))
    assert clicks == [(2, 3)] and overview.focused_channel == (2, 3)
    more = overview.more_rect("layer 2")
    assert f"+{p.more} more" == overview.column_texts("layer 2")["more"]
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, more.center()))
    q = overview.column("layer 2")
    assert q.more == 0 and q.expanded and q.grid.n == 32 and overview.column_texts("layer 2")["more"] == "show fewer"
    assert overview.thumbnail_rect("layer 2", 31) is not None
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, overview.more_rect("layer 2").center()))
    assert overview.column("layer 2").more == p.more


def test_nan_and_inf_maps_draw_without_a_traceback(overview):
    _stack, report, probe = probe_of("lenet5")
    acts = list(probe.activations)
    bad = acts[3].copy()
    bad[0, 0, 0] = np.nan
    bad[1] = np.inf
    bad[2] = np.nan
    acts[3] = bad
    acts[7] = np.full_like(acts[7], np.nan)
    overview.set_report(report)
    overview.set_probe(replace(probe, activations=tuple(acts)))
    overview.flush()
    overview.grab()
    (lo, hi), _ = overview.column_levels("layer 3")
    assert np.isfinite(lo) and np.isfinite(hi)
    assert "NaN or inf" in overview.tooltip_at(overview.thumbnail_rect("layer 3", 2).center())


def test_the_softmax_bars_mark_the_true_class(overview):
    _report, probe = show(overview, "lenet5")
    assert overview.column("softmax").column.classes == tuple(probe.classes)
    rect = overview.thumbnail_rect("softmax", probe.label)
    assert "the true class" in overview.tooltip_at(rect.center())


def test_names_from_the_file_are_plain_text(overview):
    _stack, report, probe = probe_of("lenet5")
    layers = tuple(replace(r, label="<b>bold</b>") if r.index == 3 else r for r in report.layers)
    overview.set_report(replace(report, layers=layers))
    overview.set_probe(probe)
    overview.flush()
    assert overview.column_texts("layer 3")["title"].startswith("3 · <b>")
    overview._hover_at(overview.thumbnail_rect("layer 3", 0).center(), None)
    assert "&lt;b&gt;" in overview.canvas.toolTip() and "<b>bold" in overview.status.text()


def test_a_report_that_cannot_run_shows_the_columns_up_to_the_break(overview):
    stack = files.load(assets.path("examples", "broken.cnnviz"))
    report = infer(stack)
    overview.set_report(report)
    overview.clear("The stack cannot run")
    overview.flush()
    keys = [p.key for p in overview.columns]
    assert keys == ["input"] + [f"layer {i}" for i in range(report.first_error.index)] + ["error"]
    assert not overview.is_empty
    assert overview.column_texts("error")["error"] == "The stack cannot run"
    assert overview.column_texts("layer 5")["shape"] == fmt_shape(report.layers[5].output_shape)


# ================================================================ in the live window
def test_the_window_opens_on_the_overview_and_a_click_selects_the_layer(make_window, examples, qtbot):
    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    overview = runner.hub.overview
    assert window.center_tabs.tabText(0) == "Overview" and window.center_tabs.currentWidget() is overview
    wait_probe(qtbot, runner)
    assert window.selected_layer() == 0 and overview.column("layer 0").large
    keys = [p.key for p in overview.columns]
    assert keys == ["input"] + [f"layer {i}" for i in range(len(window.document.stack.layers))] + ["softmax"]
    rect = overview.thumbnail_rect("layer 3", 5)
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, rect.center()))
    assert window.selected_layer() == 3
    assert overview.focused_channel == (3, 5)
    assert runner.hub.maps.enlarged_channel == 5      # the feature-map view follows the channel
    runner.hub.flush()
    assert overview.column("layer 3").large and not overview.column("layer 0").large


def test_a_stack_that_cannot_run_shows_the_error_column_in_the_window(make_window, examples, qtbot):
    stack = files.load(examples["broken"])
    window = make_window(stack=stack, live=True)
    overview = window.runner.hub.overview
    qtbot.waitUntil(lambda: overview.column("error") is not None, timeout=20_000)
    overview.flush()
    bad = infer(stack).first_error
    assert "kernel" in overview.column_texts("error")["error"]
    assert [p.key for p in overview.columns][-2:] == [f"layer {bad.index - 1}", "error"]


def test_an_edit_runs_again_and_the_overview_follows(make_window, examples, qtbot):
    from cnnviz.core.model.stack import set_param

    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    overview = runner.hub.overview
    wait_probe(qtbot, runner)
    assert overview.column_texts("layer 0")["shape"] == "16×8×8"
    window.history.push_edit(set_param(window.document.stack, 0, "out_channels", 8))
    wait_probe(qtbot, runner, lambda snap: snap.probe.activations[0].shape[0] == 8)
    assert overview.column_texts("layer 0")["shape"] == "8×8×8"
    assert overview.column("layer 0").grid.n == 8


def test_a_hidden_overview_draws_when_it_is_shown_again(overview):
    show(overview, "lenet5")
    _, _, other = probe_of("tiny-vgg")
    _, report, _ = probe_of("tiny-vgg")
    overview.hide()
    overview.set_report(report)
    overview.set_probe(other)
    overview.flush()
    assert overview.column("layer 0").column.shape == (6, 28, 28)   # not drawn while hidden
    overview.show()
    overview.flush()
    assert overview.column("layer 0").column.shape == (10, 62, 62)


def test_training_steps_redraw_the_overview(make_window, examples, qtbot):
    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    overview = runner.hub.overview
    wait_probe(qtbot, runner)
    before = overview.column_pixels("layer 0").copy()
    runner.worker.step(30)
    snap = wait_probe(qtbot, runner, lambda snap: snap.probe.step >= 30)
    overview.flush()
    after = overview.column_pixels("layer 0")
    assert snap.probe.step >= 30 and not np.array_equal(before, after)
