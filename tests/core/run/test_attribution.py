"""Saliency and Grad-CAM against the papers' formulas computed independently here, with plain autograd.

The reference splits the Sequential by hand (features up to the Grad-CAM layer, the rest up to the
class scores), keeps the activation's gradient with ``retain_grad`` and calls ``backward`` on a deep
copy of the model; the upsampling is bilinear interpolation written out in numpy (half-pixel
centres, as ``align_corners=False``).
"""
import copy

import numpy as np
import pytest
import torch

from cnnviz.core import shapes
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.run import attribution, build
from cnnviz.core.run.attribution import AttributionError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = {"rtol": 1e-5, "atol": 1e-5}


def lenet():
    return files.load(assets.path("examples", "lenet5.cnnviz"))


def small(head=()):
    """A random small stack: non-square input, BatchNorm, an inplace ReLU, Dropout, padding."""
    layers = (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),
              Layer("BatchNorm2d"),
              Layer("ReLU", {"inplace": True}),
              Layer("Conv2d", {"out_channels": 5, "kernel_size": 3, "padding": 1}),
              Layer("ReLU"),
              Layer("MaxPool2d", {"kernel_size": 2}),
              Layer("Flatten"),
              Layer("Dropout", {"p": 0.5}),
              Layer("Linear", {"out_features": 6}),
              *head)
    return Stack("small", InputSpec(3, 12, 10), layers)


def model_of(stack, seed=0):
    model = build.build_model(stack, seed=seed)
    # BatchNorm's running statistics away from (0, 1), so eval mode really differs from train mode.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def image(stack, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, *stack.input.shape, generator=g)


def bilinear(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling with half-pixel centres, clamped at the edges (torch's align_corners=False)."""
    h, w = a.shape

    def axis(n_out, n_in):
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, fr = axis(height, h)
    c0, c1, fc = axis(width, w)
    top = a[r0][:, c0] * (1 - fc) + a[r0][:, c1] * fc
    bottom = a[r1][:, c0] * (1 - fc) + a[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def reference(model, x, layer, end, class_index=None):
    """Saliency and Grad-CAM from the formulas: z_c = output of layer ``end``; A = output of ``layer``."""
    m = copy.deepcopy(model).eval()
    features, rest = m[:layer + 1], m[layer + 1:end + 1]
    leaf = x.clone().requires_grad_(True)
    a = features(leaf)
    a.retain_grad()
    z = rest(a).reshape(-1)
    c = int(z.argmax()) if class_index is None else class_index
    z[c].backward()
    dx = leaf.grad[0]
    alpha = a.grad[0].mean(dim=(1, 2))  # α_k = (1/Z) Σ_ij ∂z_c/∂A^k_ij
    raw = torch.relu((alpha[:, None, None] * a[0]).sum(0)).detach().numpy()
    up = bilinear(raw.astype(np.float64), *x.shape[2:])
    return {"c": c, "score": float(z[c].detach()), "sal": dx.abs().max(0).values.numpy(), "grad": dx.numpy(),
            "alpha": alpha.numpy(), "raw": raw, "up": up}


@pytest.mark.parametrize("make, layer", [(lenet, 5), (small, 5)])
def test_matches_the_formulas(make, layer):
    stack = make()
    model, x = model_of(stack), image(stack)
    end = len(stack.layers) - 1
    sal, cam = attribution.attribute(model, x)
    ref = reference(model, x, layer, end)
    assert sal.class_index == cam.class_index == ref["c"] and cam.layer == layer
    assert sal.score_layer == end and sal.score == pytest.approx(ref["score"], rel=1e-6)
    np.testing.assert_allclose(sal.gradient, ref["grad"], **TOL)
    np.testing.assert_allclose(sal.map, ref["sal"], **TOL)
    assert sal.map.shape == stack.input.shape[1:] and sal.gradient.shape == stack.input.shape
    np.testing.assert_allclose(cam.weights, ref["alpha"], **TOL)
    np.testing.assert_allclose(cam.raw, ref["raw"], **TOL)
    np.testing.assert_allclose(cam.map, ref["up"], **TOL)
    assert cam.map.shape == stack.input.shape[1:]
    assert cam.raw.max() > 0 and np.abs(sal.map).max() > 0  # something was measured


def test_every_class_and_an_earlier_layer_match_too():
    stack = small()
    model, x = model_of(stack), image(stack, seed=4)
    for c in (0, 3, 5):
        cam = attribution.grad_cam(model, x, class_index=c, layer=2)
        sal = attribution.saliency(model, x, class_index=c)
        ref = reference(model, x, 2, len(stack.layers) - 1, class_index=c)
        assert cam.class_index == sal.class_index == c and cam.layer == 2
        np.testing.assert_allclose(cam.map, ref["up"], **TOL)
        np.testing.assert_allclose(cam.raw, ref["raw"], **TOL)
        np.testing.assert_allclose(sal.map, ref["sal"], **TOL)


@pytest.mark.parametrize("head", ["Softmax", "LogSoftmax"])
def test_a_softmax_head_is_explained_through_the_logit_before_it(head):
    stack = small(head=(Layer(head, {"dim": 1}),))
    model, x = model_of(stack), image(stack)
    end = len(stack.layers) - 2
    sal, cam = attribution.attribute(model, x, class_index=2, layer_types=[la.type for la in stack.layers],
                                     layer_dims=[1] * len(stack.layers))
    ref = reference(model, x, 5, end, class_index=2)  # z_c: the Linear's output, not the probability
    assert sal.score_layer == end and sal.score == pytest.approx(ref["score"], rel=1e-6)
    np.testing.assert_allclose(sal.gradient, ref["grad"], **TOL)
    np.testing.assert_allclose(cam.raw, ref["raw"], **TOL)
    through_head = reference(model, x, 5, end + 1, class_index=2)  # what explaining the probability would give
    assert not np.allclose(through_head["grad"], ref["grad"], rtol=1e-3, atol=1e-6)
    # The types default to the model's own modules: the same answer.
    again = attribution.saliency(model, x, class_index=2)
    np.testing.assert_array_equal(again.gradient, sal.gradient)


def test_softmax_over_the_batch_is_not_a_class_head():
    types = ["Conv2d", "Flatten", "Linear", "Softmax"]
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3),
                                torch.nn.Softmax(dim=0))
    assert attribution.score_layer(model, types, [None, None, None, 0]) == 3
    assert attribution.score_layer(model, types, [None, None, None, 1]) == 2
    assert attribution.score_layer(model) == 3  # the module's own dim=0


def test_no_gradient_left_on_the_parameters_and_modes_restored():
    stack = small()
    model, x = model_of(stack), image(stack)
    model.train()
    model[1].eval()  # a module in its own mode must come back as it was
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    sal, cam = attribution.attribute(model, x)
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # BatchNorm's running statistics untouched (eval mode ran)
        assert torch.equal(v, state[k]), k
    # Eval mode during the computation: Dropout off, BatchNorm on its running statistics, so it is
    # deterministic and equals the reference computed in eval mode.
    sal2, _ = attribution.attribute(model, x)
    np.testing.assert_array_equal(sal.gradient, sal2.gradient)
    np.testing.assert_allclose(cam.raw, reference(model, x, 5, 8)["raw"], **TOL)


def test_a_gradient_already_on_the_parameters_is_left_alone():
    stack = lenet()
    model, x = model_of(stack), image(stack)
    model(x).sum().backward()  # the last training batch's gradient
    before = [p.grad.clone() for p in model.parameters()]
    attribution.attribute(model, x)
    for p, g in zip(model.parameters(), before):
        assert torch.equal(p.grad, g)


def test_the_input_tensor_is_not_changed_and_needs_no_grad():
    stack = small()
    model, x = model_of(stack), image(stack)
    copy_x = x.clone()
    with torch.no_grad():  # a caller inside no_grad still gets gradients
        sal = attribution.saliency(model, x)
    assert torch.equal(x, copy_x) and x.grad is None and not x.requires_grad
    assert np.abs(sal.gradient).max() > 0


def test_default_layer_is_the_last_feature_map_by_shape_inference_too():
    for stack, expected in ((lenet(), 5), (small(), 5)):
        report = shapes.infer(stack)
        assert attribution.default_layer([r.output_shape for r in report.layers]) == expected
    assert attribution.default_layer([(4, 3, 3), (36,), (2,)]) == 0
    with pytest.raises(AttributionError, match="no layer before the class scores has a C×H×W"):
        attribution.default_layer([(36,), (2,)])


def test_refusals_say_what_is_wrong():
    stack = small()
    model, x = model_of(stack), image(stack)
    with pytest.raises(AttributionError, match=r"class 6 does not exist: the stack scores 6 classes \(0 to 5\)"):
        attribution.saliency(model, x, class_index=6)
    with pytest.raises(AttributionError, match=r"layer 6 \(Flatten\) outputs 100, not a C×H×W feature map"):
        attribution.grad_cam(model, x, layer=6)
    with pytest.raises(AttributionError, match="not a layer before the class scores"):
        attribution.grad_cam(model, x, layer=8)
    with pytest.raises(AttributionError, match=r"one image as a \(1, C, H, W\) tensor, got \(2, 3, 12, 10\)"):
        attribution.saliency(model, torch.cat([x, x]))
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(120, 3))
    with pytest.raises(AttributionError, match="Grad-CAM needs|before Flatten"):
        attribution.grad_cam(mlp, torch.zeros(1, 1, 12, 10))
    assert attribution.saliency(mlp, torch.ones(1, 1, 12, 10)).gradient.shape == (1, 12, 10)
