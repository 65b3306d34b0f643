"""The network overview of stacks with blocks (their inner layers in a frame) and of networks wider than the
screen (the columns in sight redrawn first)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cnnviz.app.views import overview_layout as ol
from cnnviz.core.model import assets, files
from cnnviz.core.shapes import infer
from tests.app.views.overview_helpers import probe_of, show, viewport_point


# ================================================================ blocks: their inner layers in a frame
def _tree_infos(reports, acts=None):
    """LayerInfo with the blocks' lists, as the view builds them (values: the report's shapes)."""
    def info(r):
        path = "" if len(r.path) == 1 else str(r.path)
        lists = tuple((key, tuple(info(q) for q in inner)) for key, inner in r.inner)
        return ol.LayerInfo(r.index, r.type, r.label, r.input_shape, r.output_shape, r.output_shape, r.error,
                            path, lists)
    return [info(r) for r in reports]


def test_a_residual_block_holds_its_body_above_its_shortcut_and_closes_with_the_sum():
    stack = files.load(assets.path("examples", "resnet-mini.cnnviz"))
    report = infer(stack)
    flow = ol.build_flow(report.input_shape, _tree_infos(report.layers), classes=[str(i) for i in range(10)])
    keys = [c.key for c in flow.columns()]
    assert keys[:11] == ["input", "layer 0", "layer 1", "layer 2", "layer 3"] + \
        [f"layer 4.body.{j}" for j in range(5)] + ["layer 4"]
    assert keys[11:21] == ["layer 5"] + [f"layer 6.body.{j}" for j in range(5)] + \
        ["layer 6.shortcut.0", "layer 6.shortcut.1", "layer 6", "layer 7"]
    blocks = [item for item in flow.items if isinstance(item, ol.Branches)]
    assert [(b.block, len(b.flows), b.identity) for b in blocks] == [("4", 1, True), ("6", 2, False),
                                                                     ("8", 2, False)]
    inner = {c.key: c for c in flow.columns()}["layer 4.body.1"]
    assert inner.path == "4.body.1" and inner.index == 4 and inner.kind == "maps" and inner.count == 16
    placed, _width = ol.layout(flow, 3000, 600, ol.Metrics())
    at = {q.key: q for q in placed}
    assert all(at[f"layer 6.body.{j}"].y < at["layer 6.shortcut.0"].y for j in range(5))   # the body above
    assert at["layer 6"].x > max(at[f"layer 6.body.{j}"].x for j in range(5))              # the sum closes it
    assert at["layer 6"].x > at["layer 6.shortcut.1"].x > at["layer 6.shortcut.0"].x
    regions = {r.block: r for r in ol.block_regions(flow, placed)}
    assert set(regions) == {"4", "6", "8"} and regions["4"].identity and not regions["6"].identity
    r = regions["6"]
    for key in [f"layer 6.body.{j}" for j in range(5)] + ["layer 6.shortcut.0", "layer 6"]:
        q = at[key]
        assert r.x <= q.x and q.x + q.width <= r.x + r.width and r.y <= q.y and q.y + q.height <= r.y + r.height
    assert r.x > at["layer 5"].x + at["layer 5"].width and r.x + r.width < at["layer 7"].x


def test_a_concat_block_stacks_its_branches_one_above_the_other():
    stack = files.load(assets.path("examples", "inception-mini.cnnviz"))
    report = infer(stack)
    flow = ol.build_flow(report.input_shape, _tree_infos(report.layers))
    placed, _width = ol.layout(flow, 3000, 800, ol.Metrics())
    at = {q.key: q for q in placed}
    firsts = [at[f"layer 3.branches.{k}.0"] for k in range(4)]
    assert [q.y for q in firsts] == sorted(q.y for q in firsts) and len({q.y for q in firsts}) == 4
    assert len({q.x for q in firsts}) == 1   # side by side in the flow: they start together
    assert at["layer 3"].x > max(q.x for q in placed if q.column.path.startswith("3."))
    assert at["layer 3"].column.count == 40  # the concatenation of 8 + 16 + 8 + 8 channels


def test_the_view_draws_a_blocks_inner_layers_and_a_click_names_the_path(overview, qtbot):
    _report, probe = show(overview, "resnet-mini", selected="4.body.0")
    keys = [p.key for p in overview.columns]
    assert "layer 4.body.1" in keys and "layer 6.shortcut.0" in keys
    assert overview.column("layer 4.body.0").large and not overview.column("layer 4").large
    act = probe.inner_activations["4.body.1"]
    (lo, hi), _ = overview.column_levels("layer 4.body.1")
    assert lo <= float(act.min()) and float(act.max()) <= hi   # the inner layer's own values, not the block's
    assert [r.block for r in overview.regions] == ["4", "6", "8"]
    text = overview.tooltip_at(overview.thumbnail_rect("layer 4.body.1", 2).center())
    assert text.startswith("layer 4 → body → 1 BatchNorm2d · channel 2")
    assert overview.column_texts("layer 4.body.1")["title"].startswith("body.1 · ")   # its place in the block
    paths, layers = [], []
    overview.pathClicked.connect(lambda path, ch: paths.append((path, ch)))
    overview.thumbnailClicked.connect(lambda layer, ch: layers.append((layer, ch)))
    rect = overview.thumbnail_rect("layer 6.shortcut.0", 4)
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, rect.center()))
    assert paths == [("6.shortcut.0", 4)] and layers == [] and overview.focused_channel == ("6.shortcut.0", 4)


def test_the_schematic_of_a_stack_with_blocks_frames_its_pending_inner_columns(overview):
    stack = files.load(assets.path("examples", "inception-mini.cnnviz"))
    overview.set_report(infer(stack))
    overview.show_schematic("Running the changed stack…")
    overview.flush()
    inner = [q for q in overview.columns if q.column.path]
    assert len(inner) == 15 + 9 and all(q.column.kind == "pending" for q in inner)
    assert [r.block for r in overview.regions] == ["3", "5"]


def test_a_wide_network_redraws_the_columns_in_sight_and_the_rest_when_scrolled_to(qtbot):
    """While training only the columns on screen (and half a screen either side) are redrawn for each probe;
    a column out of sight is drawn with the newest values once it is scrolled to, or read."""
    from cnnviz.app.views import OverviewView

    view = OverviewView()
    qtbot.addWidget(view)
    view.resize(520, 420)
    view.show()
    qtbot.waitExposed(view)
    _stack, report, first = probe_of("resnet-mini", 0)
    second = probe_of("resnet-mini", 1)[2]
    view.set_report(report)
    for probe in (first, second, first):   # each column's widest range label seen: the places hold still
        view.set_probe(probe)
        view.flush()
    bar = view.canvas.horizontalScrollBar()
    assert bar.maximum() > 2 * view.canvas.viewport().width()   # the flow is wider than three screens
    last = view.columns[-2].key   # the last column with maps (the softmax bars are last)
    before = view._items[last].raster.image.copy()   # (the scene's own pixels: a reading would draw it)
    view.set_probe(second)
    view.flush()
    assert last in view._pending and view.columns[0].key not in view._pending
    assert np.array_equal(view._items[last].raster.image, before)   # not redrawn: out of sight
    bar.setValue(bar.maximum())
    assert last not in view._pending
    drawn = view.column_pixels(last).copy()
    assert not np.array_equal(drawn, before)   # the second sample's values, drawn when scrolled to

    view.set_probe(first)   # and a reading draws what waits, wherever the view is scrolled
    view.flush()
    bar.setValue(0)
    view.set_probe(second)
    view.flush()
    assert last in view._pending
    assert np.array_equal(view.column_pixels(last), drawn) and last not in view._pending
