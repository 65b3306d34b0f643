"""A layer inside a block, selected in the stack list, shows its own maps, gradient and weights (not the block's)."""
from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.model.paths import LayerPath
from tests.app.run_helpers import digits_stack, show_tab, wait_probe


def hooked(stack, index: int, path: str, split: str = "test"):
    """The output of the module at ``path`` for held-out sample ``index``, by a forward hook, and dL/d(it)."""
    import torch

    from cnnviz.core import data
    from cnnviz.core.run import build

    config = stack.training
    ds = data.load(config.data, stack.input.shape, config.seed)
    model = build.build_model(stack, seed=config.seed).eval()
    seen = []
    handle = model.get_submodule(path).register_forward_hook(lambda _m, _i, out: seen.append(out))
    x = data.normalize(np.asarray(getattr(ds, split).images[index:index + 1]), ds.mean, ds.std)
    try:
        out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        handle.remove()
    y = torch.tensor([int(getattr(ds, split).labels[index])])
    loss = build.build_loss(stack.loss)(out, y)
    (grad,) = torch.autograd.grad(loss, seen)
    return seen[0].detach()[0].numpy(), grad[0].numpy(), model.get_submodule(path)


@pytest.fixture
def resnet(make_window, examples, qtbot):
    from dataclasses import replace

    from cnnviz.core.model import files

    stack = files.load(examples["resnet-mini"])
    stack = replace(stack, training=replace(digits_stack(examples).training, data="digits"))
    window = make_window(stack=stack, live=True)
    wait_probe(qtbot, window.runner)
    return window


def test_an_inner_row_shows_that_layers_maps_gradient_and_weights(resnet, qtbot):
    window = resnet
    runner, hub = window.runner, window.runner.hub
    stack = window.document.stack
    window.select_path("4.body.1")   # the BatchNorm2d inside the first Residual
    assert window.selected_path() == LayerPath(4, "body", 1) and window.selection() == ("layer", 4)
    snap = wait_probe(qtbot, runner)
    act, grad, _ = hooked(stack, snap.probe.index, "4.body.1")
    np.testing.assert_allclose(hub.maps.maps, act, rtol=1e-4, atol=1e-5)
    assert not np.allclose(hub.maps.maps, snap.probe.activations[4]), "the block's output is not the layer's"
    assert hub.maps._title.startswith("layer 4 → body → 1 · ") and "16×14×14" in hub.maps._title
    assert "4.body.1" not in (snap.probe.grad_layers or ())   # the gradient maps are hidden: no gradient taken

    show_tab(window, "Gradient maps")   # shown, they ask for this layer's gradient, and get it
    snap = wait_probe(qtbot, runner, lambda s: s.probe.inner_grads.get("4.body.1") is not None)
    assert runner.target.grad_layers == ("4.body.1",) and set(snap.probe.inner_grads) == {"4.body.1"}
    np.testing.assert_allclose(hub.grad_maps.maps, grad, rtol=1e-4, atol=1e-6)
    assert "layer 4 → body → 1" in hub.grad_maps._title

    show_tab(window, "Filters")
    window.select_path("6.shortcut.0")   # the 1×1 convolution of the second block's shortcut
    snap = wait_probe(qtbot, runner)
    _, _, module = hooked(stack, snap.probe.index, "6.shortcut.0")
    np.testing.assert_array_equal(hub.filters.weights, module.weight.detach().numpy())
    assert hub.filters.weights.shape == (32, 16, 1, 1)

    show_tab(window, "Convolution lab")   # its window slides over the block's input, with its own weights
    hub.flush()
    p = hub.snapshot.probe
    np.testing.assert_array_equal(hub.conv_lab._x, p.activations[5])
    np.testing.assert_array_equal(hub.conv_lab._out, p.inner_activations["6.shortcut.0"])
    np.testing.assert_array_equal(hub.conv_lab._weight, module.weight.detach().numpy())
    assert hub.conv_lab.arithmetic.value == pytest.approx(hub.conv_lab.torch_value, rel=1e-4, abs=1e-5)
    window.select_path("4.body.3")   # the second convolution of the body: over the ReLU before it
    hub.flush()
    np.testing.assert_array_equal(hub.conv_lab._x, p.inner_activations["4.body.2"])
    assert hub.conv_lab.arithmetic.value == pytest.approx(hub.conv_lab.torch_value, rel=1e-4, abs=1e-5)

    window.select_layer(4)   # the block's own row: its output again
    np.testing.assert_array_equal(hub.maps.maps, hub.snapshot.probe.activations[4])


def test_a_click_on_an_inner_column_of_the_overview_selects_that_layer(resnet, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from tests.app.views.test_overview import viewport_point

    window = resnet
    hub = window.runner.hub
    overview = hub.overview
    show_tab(window, "Overview")
    hub.flush()
    assert overview.column("layer 4.body.2") is not None and [r.block for r in overview.regions] == ["4", "6", "8"]
    rect = overview.thumbnail_rect("layer 4.body.2", 1)
    QTest.mouseClick(overview.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(overview, rect.center()))
    assert window.selected_path() == LayerPath(4, "body", 2) and window.selection() == ("layer", 4)
    act, _, _ = hooked(window.document.stack, hub.snapshot.probe.index, "4.body.2")
    np.testing.assert_allclose(hub.maps.maps, act, rtol=1e-4, atol=1e-5)
    hub.flush()
    assert overview.column("layer 4.body.2").large and overview.focused_channel == ("4.body.2", 1)
