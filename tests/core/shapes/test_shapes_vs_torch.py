"""The shape engine against real torch: exhaustive sweeps of small parameter grids.

For every catalogue layer type, a grid over its shape-changing keywords and
small inputs (including sizes where the layer cannot work) is run through
``torch.nn`` modules built straight from the keywords. torch succeeding must
mean cnnviz reports no error (cnnviz may be stricter only with the codes in
``shapes.STRICTER``), and where both succeed, output shapes and parameter
counts must be equal. Each test gathers every mismatch of its grid into one
failure message.
"""
from __future__ import annotations

import itertools

import pytest

from cnnviz.core.model.layers import CATALOGUE
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack
from cnnviz.core.shapes import infer

pytest.importorskip("torch")

SIZES = [(1, 1), (2, 2), (3, 3), (4, 5), (5, 4), (7, 7), (8, 3)]
PAIRS_K = [1, 2, 3, 5, [1, 3], [3, 2]]


def stack(c: int, hw: tuple[int, int], *layers: Layer) -> Stack:
    return Stack(input=InputSpec(c, hw[0], hw[1]), layers=tuple(layers))


def L(type_: str, **params) -> Layer:  # noqa: N802 - reads like the file format
    return Layer(type_, params)


def check_all(cases: list[Stack], torch_reference, min_cases: int = 1) -> None:
    assert len(cases) >= min_cases
    problems = []
    for s in cases:
        why = torch_reference.mismatch(s)
        if why:
            problems.append(f"{torch_reference.describe(s)}\n    {why}")
    assert not problems, (f"{len(problems)} of {len(cases)} cases disagree with torch:\n"
                          + "\n".join(problems[:40]))


def test_every_catalogue_type_is_swept():
    tests = [name for name in globals() if name.startswith("test_sweep_")]
    missing = {t for t in CATALOGUE
               if t.lower() not in _SWEPT_TOGETHER and not any(n.startswith(f"test_sweep_{t.lower()}") for n in tests)}
    assert not missing, f"no torch sweep for {sorted(missing)}"


_SWEPT_TOGETHER = {"relu", "leakyrelu", "gelu", "sigmoid", "tanh", "dropout", "dropout2d", "logsoftmax",
                   "relu6", "elu", "silu", "hardswish", "hardsigmoid", "identity"}


# ---------------------------------------------------------------- Conv2d
def test_sweep_conv2d_geometry(torch_reference):
    cases = [
        stack(1, hw, L("Conv2d", out_channels=2, kernel_size=k, stride=s, padding=p, dilation=d))
        for hw in SIZES
        for k in PAIRS_K
        for s in (1, 2, 3, [2, 1])
        for p in (0, 1, 2, [0, 2], "same", "valid")
        for d in (1, 2, [3, 1])
    ]
    check_all(cases, torch_reference, 3000)


def test_sweep_conv2d_padding_modes(torch_reference):
    cases = [
        stack(1, hw, L("Conv2d", out_channels=1, kernel_size=k, padding=p, dilation=d, padding_mode=mode))
        for hw in [(1, 1), (1, 3), (2, 2), (3, 4), (4, 4)]
        for k in (1, 2, 3, 5)
        for p in (0, 1, 2, 3, 4, [0, 3], "same", "valid")
        for d in (1, 2)
        for mode in ("zeros", "reflect", "replicate", "circular")
    ]
    check_all(cases, torch_reference, 1000)


def test_sweep_conv2d_channels_groups_bias(torch_reference):
    cases = []
    for cin, cout, g, given, bias in itertools.product((1, 2, 3, 4, 6), (2, 3, 4, 6), (1, 2, 3),
                                                      ("omit", "right", "wrong"), (True, False)):
        params = dict(out_channels=cout, kernel_size=[1, 2], groups=g, bias=bias)
        if given == "right":
            params["in_channels"] = cin
        elif given == "wrong":
            params["in_channels"] = cin + 1
        cases.append(stack(cin, (3, 3), Layer("Conv2d", params)))
    check_all(cases, torch_reference, 300)


# --------------------------------------------------------------- pooling
def test_sweep_maxpool2d(torch_reference):
    cases = [
        stack(2, hw, L("MaxPool2d", kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil))
        for hw in SIZES
        for k in (1, 2, 3, [2, 3])
        for s in (None, 1, 2, 3)
        for p in (0, 1, 2)
        for d in (1, 2, 3)
        for ceil in (False, True)
    ]
    check_all(cases, torch_reference, 2000)


def test_sweep_avgpool2d(torch_reference):
    cases = [
        stack(2, hw, L("AvgPool2d", kernel_size=k, stride=s, padding=p, ceil_mode=ceil))
        for hw in SIZES
        for k in (1, 2, 3, 4, [3, 2])
        for s in (None, 1, 2, 3, [1, 3])
        for p in (0, 1, 2, [1, 0])
        for ceil in (False, True)
    ]
    cases += [
        stack(1, hw, L("AvgPool2d", kernel_size=3, stride=2, padding=1, ceil_mode=ceil, count_include_pad=cip,
                       divisor_override=div))
        for hw in SIZES
        for ceil in (False, True)
        for cip in (False, True)
        for div in (None, 1, 5)
    ]
    check_all(cases, torch_reference, 1400)


def test_sweep_adaptiveavgpool2d(torch_reference):
    cases = [
        stack(3, hw, L("AdaptiveAvgPool2d", output_size=o))
        for hw in SIZES
        for o in (1, 2, 3, 7, [None, 2], [3, None], [None, None], [1, 5])
    ]
    check_all(cases, torch_reference, 50)


# ----------------------------------------------------------- normalisation
def test_sweep_batchnorm2d(torch_reference):
    cases = []
    for c, given, affine, bias, track in itertools.product((1, 3), ("omit", "right", "wrong"), (True, False),
                                                           (True, False), (True, False)):
        params = dict(affine=affine, bias=bias, track_running_stats=track)
        if given != "omit":
            params["num_features"] = c if given == "right" else c + 1
        for hw in ((1, 1), (2, 3)):
            cases.append(stack(c, hw, Layer("BatchNorm2d", params)))
            cases.append(stack(c, hw, L("Flatten"), Layer("BatchNorm2d", params)))
            cases.append(stack(c, hw, L("Flatten", start_dim=2), Layer("BatchNorm2d", params)))
    check_all(cases, torch_reference, 100)


def test_sweep_batchnorm1d(torch_reference):
    """On N×C as torch; on N×C×L (Flatten(start_dim=2)) torch runs and cnnviz refuses (no 1-D maps: "rank"
    is stricter); on maps torch fails too."""
    cases = []
    for c, given, affine, bias, track in itertools.product((1, 3), ("omit", "right", "wrong"), (True, False),
                                                           (True, False), (True, False)):
        for hw in ((1, 1), (2, 3)):
            flat = c * hw[0] * hw[1]
            for prefix, n in (((L("Flatten"),), flat), ((L("Flatten"), L("Linear", out_features=4)), 4),
                              ((), c), ((L("Flatten", start_dim=2),), c)):
                params = {"affine": affine, "bias": bias, "track_running_stats": track}
                if given != "omit":
                    params["num_features"] = n if given == "right" else n + 1
                cases.append(stack(c, hw, *prefix, Layer("BatchNorm1d", params)))
    check_all(cases, torch_reference, 150)


# -------------------------------------------- activations and regularisation
@pytest.mark.parametrize("prefix", [(), (L("Flatten"),), (L("Flatten", start_dim=2),)], ids=["maps", "flat", "rows"])
def test_sweep_elementwise(torch_reference, prefix):
    layers = [L("ReLU"), L("ReLU", inplace=True), L("LeakyReLU", negative_slope=0.2), L("GELU"),
              L("GELU", approximate="tanh"), L("Sigmoid"), L("Tanh"), L("Dropout", p=0.0), L("Dropout", p=1.0),
              L("Dropout2d", p=0.3), L("Dropout2d", p=0.5, inplace=True),
              L("ReLU6"), L("ReLU6", inplace=True), L("ELU"), L("ELU", alpha=0.5, inplace=True), L("ELU", alpha=-2.0),
              L("SiLU"), L("SiLU", inplace=True), L("Hardswish"), L("Hardswish", inplace=True), L("Hardsigmoid"),
              L("Hardsigmoid", inplace=True), L("Identity")]
    cases = [stack(2, hw, *prefix, layer) for hw in SIZES[:4] for layer in layers]
    check_all(cases, torch_reference, 90)


# ------------------------------------------------------------- reshaping
def test_sweep_flatten(torch_reference):
    prefixes = [(), (L("Flatten", start_dim=2),), (L("Flatten"),)]
    cases = [
        stack(2, hw, *prefix, L("Flatten", start_dim=a, end_dim=b))
        for hw in ((1, 1), (3, 4))
        for prefix in prefixes
        for a in range(-5, 5)
        for b in range(-5, 5)
    ]
    check_all(cases, torch_reference, 500)


def test_sweep_linear(torch_reference):
    prefixes = [(), (L("Flatten"),), (L("Flatten", start_dim=2),), (L("Flatten", start_dim=1, end_dim=2),)]
    cases = []
    for hw, prefix, given, bias in itertools.product(((1, 1), (2, 3)), prefixes, ("omit", "right", "wrong"),
                                                     (True, False)):
        s0 = stack(3, hw, *prefix)
        last = infer(s0).output_shape[-1]
        params = dict(out_features=4, bias=bias)
        if given == "right":
            params["in_features"] = last
        elif given == "wrong":
            params["in_features"] = last + 1
        cases.append(stack(3, hw, *prefix, Layer("Linear", params)))
        cases.append(stack(3, hw, *prefix, Layer("Linear", params), L("Linear", out_features=2)))
    check_all(cases, torch_reference, 90)


# --------------------------------------------------------------- output
def test_sweep_softmax(torch_reference):
    prefixes = [(), (L("Flatten", start_dim=2),), (L("Flatten"),)]
    cases = [
        stack(2, (3, 2), *prefix, L(kind, dim=dim))
        for kind in ("Softmax", "LogSoftmax")
        for prefix in prefixes
        for dim in (None, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4)
    ]
    check_all(cases, torch_reference, 60)


# ------------------------------------------------------ whole examples
def test_examples_match_torch(torch_reference):
    from cnnviz.core.model import assets, files

    cases = [files.load(p) for p in assets.examples()]
    assert len(cases) >= 8
    check_all([s for s in cases if not s.has_blocks], torch_reference)


def test_examples_with_blocks_match_torch_at_every_depth():
    from cnnviz.core.model import assets, files
    from tests.core.shapes.test_blocks_vs_torch import compare

    cases = [s for s in (files.load(p) for p in assets.examples()) if s.has_blocks]
    assert {s.name for s in cases} >= {"Mini ResNet", "Mini Inception"}
    for stack in cases:
        assert compare(stack) is None, stack.name


# ----------------------------------------------------------------- losses
def test_sweep_losses(torch_reference):
    """The loss's own check (one weight per class) against torch computing the loss on the stack's scores."""
    import torch

    problems = []
    for loss_type in ("CrossEntropyLoss", "NLLLoss"):
        for classes in (2, 3):
            for weight in (None, [1.0, 2.0], [1.0, 0.5, 0.0]):
                for extra in ({}, {"reduction": "sum", "ignore_index": 1}, {"reduction": "none"}):
                    if loss_type == "CrossEntropyLoss":
                        extra = {**extra, "label_smoothing": 0.1}
                    params = {**extra, **({"weight": weight} if weight is not None else {})}
                    stack = Stack(input=InputSpec(1, 2, 2), layers=(L("Flatten"), L("Linear", out_features=classes)),
                                  loss=Loss(loss_type, params))
                    ours = infer(stack).loss.error is None
                    kwargs = {**params, **({"weight": torch.tensor(weight)} if weight is not None else {})}
                    try:
                        getattr(torch.nn, loss_type)(**kwargs)(torch.zeros(2, classes), torch.tensor([0, 1]))
                        theirs = True
                    except (RuntimeError, ValueError, IndexError):
                        theirs = False
                    if ours != theirs:
                        problems.append(f"{loss_type}({params}) on {classes} classes: "
                                        f"cnnviz ok={ours}, torch ok={theirs}")
    assert not problems, "\n".join(problems)
