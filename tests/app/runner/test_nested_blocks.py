"""A block nested in a block, selected in the window, shows its own output (not the outer block's), the layer
after it reads that output in the Convolution lab, and the overview fills the nested block's column."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Layer, Stack, concat, residual
from tests.app.run_helpers import digits_stack, show_tab, wait_probe
from tests.app.runner.test_run_blocks import hooked


def conv(c):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": 3, "padding": 1})


def nested(examples) -> Stack:
    base = digits_stack(examples)
    return Stack("nested", base.input, (
        conv(4),
        residual([conv(4), residual([conv(4), Layer("ReLU")]), conv(4)]),   # 1.body.1: a Residual in a Residual
        concat([conv(2), concat([conv(1)], [conv(1)])], [conv(2)]),
        Layer("Flatten"), Layer("Linear", {"out_features": 10})), training=replace(base.training, data="digits"))


def test_a_nested_block_shows_its_own_output_and_feeds_the_next_layer(make_window, examples, qtbot):
    stack = nested(examples)
    window = make_window(stack=stack, live=True)
    runner, hub = window.runner, window.runner.hub
    wait_probe(qtbot, runner)
    window.select_path("1.body.1")
    assert window.selected_path() == LayerPath(1, "body", 1)
    snap = wait_probe(qtbot, runner)
    act, _grad, _ = hooked(stack, snap.probe.index, "1.body.1")
    hub.flush()
    np.testing.assert_allclose(hub.maps.maps, act, rtol=1e-4, atol=1e-5)
    assert not np.allclose(hub.maps.maps, snap.probe.activations[1]), "the outer block's output is not the nested one's"
    assert hub.maps._title.startswith("layer 1 → body → 1 · ")

    show_tab(window, "Convolution lab")   # the convolution after the nested block reads the nested block's output
    window.select_path("1.body.2")
    wait_probe(qtbot, runner)
    hub.flush()
    p = hub.snapshot.probe
    np.testing.assert_array_equal(hub.conv_lab._x, p.inner_activations["1.body.1"])

    show_tab(window, "Overview")
    overview = hub.overview
    overview.flush()
    for key in ("1.body.1", "2.branches.0.1"):
        column = next(q for q in overview.columns if q.column.path == key)
        assert column.column.kind == "maps" and overview.column_pixels(column.key) is not None, key


def test_a_flatten_inside_a_block_shows_the_maps_it_was_flattened_from(make_window, examples, qtbot):
    base = digits_stack(examples)
    stack = Stack("flat branches", base.input, (
        conv(3),
        concat([conv(2), Layer("Flatten")], [conv(1), Layer("Flatten"), Layer("ReLU")]),   # 2·8·8 and 1·8·8
        Layer("Linear", {"out_features": 10})), training=replace(base.training, data="digits"))
    window = make_window(stack=stack, live=True)
    runner, hub = window.runner, window.runner.hub
    wait_probe(qtbot, runner)
    for path, origin in (("1.branches.0.1", (2, 8, 8)), ("1.branches.1.2", (1, 8, 8))):
        window.select_path(path)
        snap = wait_probe(qtbot, runner)
        hub.flush()
        assert hub.maps._origin == origin, path
        np.testing.assert_array_equal(hub.maps.maps, snap.probe.inner_activations[path].reshape(origin))
        assert "flattened from" in hub.maps._title
