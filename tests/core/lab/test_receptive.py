"""The receptive field measured: the effective field (torch's gradient) against the theoretical one (the report).

With every weight, bias and input pixel positive (and nothing that routes a gradient to one pixel of a
window, as MaxPool2d does), every input pixel of the theoretical field reaches the output pixel by a path of
positive products, and no other pixel does: the gradient's nonzero support is the field clipped to the input,
and its bounding box is the field even where dilation leaves holes in it. Whatever the weights, the support
lies inside the field. The values are those of a direct ``torch.autograd.grad`` on the same layers.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnviz.core.lab import receptive
from cnnviz.core.lab.receptive import Rect, smallest_square
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import infer

torch = pytest.importorskip("torch")
build = pytest.importorskip("cnnviz.core.run.build")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv(out=2, k=3, **kw):
    return Layer("Conv2d", {"out_channels": out, "kernel_size": k, **kw})


# (name, input, layers, holes): ``holes`` when dilation or a stride beyond the field leaves gaps in it.
STACKS = {
    "padding": (InputSpec(1, 12, 12), [conv(2, 3, padding=1), Layer("ReLU"), conv(3, 5, padding=2)], False),
    "stride": (InputSpec(2, 17, 15), [conv(2, 3, stride=2), conv(2, 3, stride=2, padding=1), Layer("ReLU"),
                                      conv(2, 3)], False),
    "dilation": (InputSpec(1, 24, 24), [conv(2, 3), conv(2, 3, dilation=2, padding=2), conv(2, 3, dilation=4)], False),
    "dilated holes": (InputSpec(1, 20, 20), [conv(2, 3, dilation=3)], True),
    "strided holes": (InputSpec(1, 16, 16), [conv(2, 1, stride=2), conv(2, 3)], True),
    "asymmetric": (InputSpec(1, 14, 19), [conv(2, [3, 5], stride=[1, 2], padding=[1, 0]),
                                          Layer("AvgPool2d", {"kernel_size": 2}),
                                          conv(2, 3, dilation=[2, 1], padding="same")], False),
}


def positive_model(stack, seed=0):
    model = build.build_model(stack, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.9 + 0.1)
    return model


def positive_image(shape, seed=1):
    return torch.rand((1, *shape), generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.1


def direct_gradient(model, image, layer, channel, y, x):
    """|∂ out / ∂ input| summed over channels, the modules called one by one (no hooks, no cnnviz code)."""
    leaf = image.clone().requires_grad_(True)
    h = leaf
    for module in list(model)[:layer + 1]:
        h = module(h)
    (g,) = torch.autograd.grad(h[0, channel, y, x], leaf)
    return g[0].abs().sum(0).numpy(), float(h[0, channel, y, x].detach())


def pixels(shape):
    """Corners, edges and the centre of a layer's maps."""
    _, h, w = shape
    return sorted({(y, x) for y, x in itertools.product((0, h // 2, h - 1), (0, w // 2, w - 1))})


@pytest.mark.parametrize("name", list(STACKS))
def test_the_gradient_fills_the_theoretical_field_for_positive_weights_and_inputs(name):
    spec, layers, holes = STACKS[name]
    stack = Stack(input=spec, layers=tuple(layers))
    report = infer(stack)
    model = positive_model(stack).eval()
    image = positive_image(spec.shape)
    checked = 0
    for i, r in enumerate(report.layers):
        if r.type == "ReLU":
            continue
        for y, x in pixels(r.output_shape):
            f = receptive.effective_field(model, image, i, r.output_shape[0] - 1, y, x, report=report)
            rect = f.theoretical
            assert rect is not None and f.theoretical_size == r.receptive_field.size
            assert f.support == rect, (name, i, y, x)
            hit = f.map > 0
            inside = np.zeros_like(hit)
            inside[rect.top:rect.bottom, rect.left:rect.right] = True
            assert not (hit & ~inside).any()
            if not holes:
                assert hit[inside].all(), (name, i, y, x)
            checked += 1
    assert checked >= 9


def test_holes_are_holes():
    """A dilated kernel on the input reads 3×3 pixels of its 7×7 span: the support says so, the box does not."""
    spec, layers, _ = STACKS["dilated holes"]
    stack = Stack(input=spec, layers=tuple(layers))
    f = receptive.effective_field(positive_model(stack), positive_image(spec.shape), 0, 0, 5, 5, report=infer(stack))
    assert f.theoretical == Rect(5, 5, 7, 7) == f.support
    rows, cols = np.nonzero(f.map)
    assert sorted(set(rows)) == [5, 8, 11] and sorted(set(cols)) == [5, 8, 11] and len(rows) == 9


@pytest.mark.parametrize("seed", range(4))
def test_the_support_lies_inside_the_field_whatever_the_weights(seed):
    """Signed weights, a max pool and ReLUs make zeros inside the field, never gradient outside it."""
    spec = InputSpec(2, 21, 18)
    stack = Stack(input=spec, layers=(conv(3, 3, padding=1), Layer("ReLU"), Layer("MaxPool2d", {"kernel_size": 2}),
                                      conv(3, 3, dilation=2, stride=2), Layer("Tanh"), conv(2, [3, 2], padding=1)))
    report = infer(stack)
    model = build.build_model(stack, seed=seed).eval()
    image = torch.randn((1, *spec.shape), generator=torch.Generator().manual_seed(seed))
    for i in (0, 2, 3, 5):
        shape = report.layers[i].output_shape
        for y, x in pixels(shape):
            f = receptive.effective_field(model, image, i, seed % shape[0], y, x, report=report)
            if f.support is not None:
                assert f.theoretical.contains(f.support), (i, y, x)


@pytest.mark.parametrize("layer, channel, y, x", [(0, 1, 0, 0), (2, 0, 3, 4), (4, 2, 2, 1)])
def test_values_are_torch_autograd_on_the_model_in_eval_mode(layer, channel, y, x):
    spec = InputSpec(3, 16, 16)
    stack = Stack(input=spec, layers=(conv(4, 3), Layer("BatchNorm2d"), Layer("Dropout", {"p": 0.5}),
                                      Layer("ReLU", {"inplace": True}), conv(3, 3, stride=2)))
    model = build.build_model(stack, seed=3)
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.train()
    image = torch.randn((1, *spec.shape), generator=torch.Generator().manual_seed(5))
    f = receptive.effective_field(model, image, layer, channel, y, x)
    assert model.training and all(m.training for m in model)   # every module's mode put back
    assert all(p.grad is None for p in model.parameters())      # autograd.grad: nothing left on the model
    expected, value = direct_gradient(model.eval(), image, layer, channel, y, x)
    np.testing.assert_allclose(f.map, expected, rtol=1e-6, atol=1e-7)
    assert f.value == pytest.approx(value, rel=1e-6)
    assert f.map.shape == (16, 16) and f.map.dtype == np.float32
    assert (f.layer, f.channel, f.y, f.x) == (str(layer), channel, y, x)
    train_map, _ = direct_gradient(model.train(), image, layer, channel, y, x)
    if layer >= 2:
        assert not np.allclose(train_map, expected)  # Dropout in train mode would have changed it


def test_circular_padding_wraps_the_field_round_the_image():
    """The one case where torch's gradient leaves the rectangle: a corner pixel reads the opposite edges."""
    stack = Stack(input=InputSpec(1, 10, 10), layers=(conv(1, 3, padding=1, padding_mode="circular"),))
    f = receptive.effective_field(positive_model(stack), positive_image((1, 10, 10)), 0, 0, 0, 0, report=infer(stack))
    assert f.theoretical == Rect(0, 0, 2, 2)
    assert set(zip(*np.nonzero(f.map))) == {(y, x) for y in (9, 0, 1) for x in (9, 0, 1)}


def test_a_layer_inside_a_block_by_its_path():
    spec = InputSpec(1, 12, 12)
    res = Layer("Residual", body=(conv(2, 3, padding=1), Layer("ReLU"), conv(2, 3, padding=1)), shortcut=())
    stack = Stack(input=spec, layers=(conv(2, 3, padding=1), res, conv(2, 3)))
    report = infer(stack)
    model = positive_model(stack)
    image = positive_image(spec.shape)
    f = receptive.effective_field(model, image, "1.body.2", 1, 0, 6, report=report)
    leaf = image.clone().requires_grad_(True)
    body = model[1].body
    out = body[2](body[1](body[0](model[0](leaf))))
    (g,) = torch.autograd.grad(out[0, 1, 0, 6], leaf)
    np.testing.assert_allclose(f.map, g[0].abs().sum(0).numpy(), rtol=1e-6)
    assert f.theoretical_size == report.at("1.body.2").receptive_field.size == (7, 7)
    assert f.support == f.theoretical == Rect(0, 3, 4, 7)   # rows -3..3 clipped at the top
    whole = receptive.effective_field(model, image, 1, 1, 6, 6, report=report)
    assert whole.theoretical_size == (7, 7) and whole.support == whole.theoretical == Rect(3, 3, 7, 7)


def test_a_layer_without_maps_or_a_pixel_off_the_maps_is_refused():
    spec = InputSpec(1, 8, 8)
    stack = Stack(input=spec, layers=(conv(2, 3), Layer("Flatten"), Layer("Linear", {"out_features": 3})))
    report = infer(stack)
    model = build.build_model(stack, seed=0)
    image = torch.zeros((1, 1, 8, 8))
    with pytest.raises(receptive.ReceptiveError, match=r"layer 1 \(.*\) outputs 72, not C×H×W"):
        receptive.effective_field(model, image, 1, 0, 0, 0, report=report)
    with pytest.raises(receptive.ReceptiveError, match="row 6 is outside"):
        receptive.effective_field(model, image, 0, 0, 6, 0, report=report)
    with pytest.raises(receptive.ReceptiveError, match="channel 2 is outside"):
        receptive.effective_field(model, image, 0, 2, 0, 0)
    with pytest.raises(receptive.ReceptiveError, match="no layer at 7"):
        receptive.effective_field(model, image, 7, 0, 0, 0)


def test_a_pixel_that_does_not_depend_on_the_input_has_no_effective_extent():
    spec = InputSpec(1, 6, 6)
    stack = Stack(input=spec, layers=(conv(1, 3), Layer("ReLU")))
    model = build.build_model(stack, seed=0)
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
        model[0].bias.fill_(0.0)
    f = receptive.effective_field(model, torch.ones((1, 1, 6, 6)), 1, 0, 2, 2, report=infer(stack))
    assert not f.map.any() and f.support is None and f.square is None and f.extent == 0
    assert f.theoretical == Rect(2, 2, 3, 3)


# ------------------------------------------------------------------ the smallest square
def brute_square(m, share):
    total = m.sum()
    h, w = m.shape
    for side in range(1, max(h, w) + 1):
        sh, sw = min(side, h), min(side, w)
        best = max(m[t:t + sh, l:l + sw].sum() for t in range(h - sh + 1) for l in range(w - sw + 1))
        if best >= share * total * (1 - 1e-9):
            return side
    raise AssertionError


@pytest.mark.parametrize("seed", range(12))
def test_the_smallest_square_is_the_brute_force_one(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 10, size=2)
    m = rng.random((h, w)) ** 4 * (rng.random((h, w)) > 0.3)
    share = float(rng.choice([0.5, 0.9, 0.95, 1.0]))
    sq = smallest_square(m, share)
    if m.sum() == 0:
        assert sq is None
        return
    assert max(sq.height, sq.width) == brute_square(m, share) or min(h, w) < brute_square(m, share)
    assert m[sq.top:sq.bottom, sq.left:sq.right].sum() >= share * m.sum() * (1 - 1e-9)
    side = brute_square(m, share)
    assert (sq.height, sq.width) == (min(side, h), min(side, w))


def test_the_smallest_square_of_a_block_is_the_block():
    m = np.zeros((20, 20))
    m[4:9, 11:16] = 1.0
    assert smallest_square(m, 0.95) == Rect(4, 11, 5, 5)
    assert smallest_square(m, 0.3) == Rect(5, 12, 3, 3)   # 9 of 25, of the nine 3×3 windows the central one
    assert smallest_square(np.ones((10, 10)), 0.95) == Rect(0, 0, 10, 10)   # 9×9 holds 81 %
    assert smallest_square(np.zeros((4, 4))) is None


# ------------------------------------------------------------------ growth with depth
def test_growth_has_one_point_per_layer_with_the_reports_sizes():
    spec = InputSpec(1, 28, 28)
    res = Layer("Residual", body=(conv(2, 3, padding=1), Layer("ReLU"), conv(2, 3, padding=1)), shortcut=())
    stack = Stack(input=spec, layers=(conv(2, 3), Layer("ReLU"), Layer("MaxPool2d", {"kernel_size": 2}), res,
                                      conv(2, 3, dilation=2), Layer("Flatten"), Layer("Linear", {"out_features": 4})))
    report = infer(stack)
    points = receptive.field_growth(report)
    assert [p.index for p in points] == list(range(len(report.layers)))
    assert [p.label for p in points] == [r.label for r in report.layers]
    assert [p.theoretical for p in points] == [(3, 3), (3, 3), (4, 4), (12, 12), (20, 20), None, None]
    assert [p.theoretical for p in points[:5]] == [r.receptive_field.size for r in report.layers[:5]]
    nested = receptive.field_growth(report, nested=True)
    assert [p.path for p in nested] == [str(r.path) for r in report.walk()]
    assert nested[4].path == "3.body.0" and nested[4].theoretical == (8, 8)

    model = positive_model(stack)
    image = positive_image(spec.shape)
    grown = receptive.effective_growth(model, image, report)
    assert len(grown) == len(report.layers)
    assert [p.theoretical for p in grown] == [p.theoretical for p in points]
    assert [p.effective is None for p in grown] == [False] * 5 + [True, True]
    for p, r in zip(grown[:5], report.layers[:5]):
        _, h, w = r.output_shape
        assert p.pixel == (h // 2, w // 2)
        leaf = image.clone().requires_grad_(True)
        out = leaf
        for module in list(model)[:p.index + 1]:
            out = module(out)
        (g,) = torch.autograd.grad(out[0, :, h // 2, w // 2].sum(), leaf)
        sq = smallest_square(g[0].abs().sum(0).numpy())
        assert p.effective == max(sq.height, sq.width) <= max(p.theoretical)
    assert grown[0].effective == 3 and grown[4].effective > grown[0].effective
