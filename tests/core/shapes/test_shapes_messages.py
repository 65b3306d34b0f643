"""Errors, warnings, receptive fields and MACs of the shape engine.

Errors are sentences with the numbers and a fix, and every fix an error
proposes is applied here and re-inferred: the layer must then work. Lints are
checked one by one; receptive fields against hand computations and against
the gradient of one output pixel in real torch; MACs against the formula.
"""
from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.core.model import assets, files
from cnnviz.core.model.layers import as_pair
from cnnviz.core.model.stack import InputSpec, Loss, Stack
from cnnviz.core.shapes import STRICTER, ReceptiveField, infer
from tests.core.shapes.stacks import CI, FIXABLE, FIXABLE_STACKS, L, S, example, spatial_layer


def error_of(stack: Stack):
    bad = infer(stack).first_error
    assert bad is not None, "expected an error"
    return bad


# ------------------------------------------------------------------ errors
def test_kernel_too_big_says_span_padded_input_and_fixes():
    bad = error_of(S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, dilation=3)))
    assert bad.error_code == "kernel" and bad.error_param == "kernel_size"
    assert "kernel 3 with dilation 3 spans 7 pixels" in bad.error
    assert "padded input is 5 high (5 + 0 + 0)" in bad.error
    assert bad.error_fixes == ("padding ≥ 1", "dilation ≤ 2", "kernel ≤ 2", "an input of at least 7×7")
    assert bad.error.endswith(": use padding ≥ 1, dilation ≤ 2, kernel ≤ 2, or an input of at least 7×7")


def test_kernel_fix_for_one_axis_grows_only_that_axis():
    bad = error_of(S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=[1, 7])))
    assert "5 wide" in bad.error and "in the width" in bad.error and bad.error_axis == 1
    assert "an input of at least 5×7" in bad.error_fixes


def test_broken_example_points_at_the_third_convolution():
    report = infer(example("broken.cnnviz"))
    bad = report.first_error
    assert bad.index == 6 and bad.type == "Conv2d" and bad.error_code == "kernel"
    assert "kernel 5 spans 5 pixels but the padded input is 3 high (3 + 0 + 0)" in bad.error
    assert all(not r.reachable and r.output_shape is None and r.error is None for r in report.layers[7:])
    assert all(r.reachable and r.output_shape is not None for r in report.layers[:6])
    assert not report.ok and report.output_shape is None and report.num_classes is None


@pytest.mark.parametrize("stack, code, words", [
    (S(3, 5, 5, L("Conv2d", out_channels=4, kernel_size=3, groups=2)), "groups",
     ["groups=2", "in_channels=3", "3 / 2 is not whole", "set groups to 1"]),
    (S(4, 5, 5, L("Conv2d", out_channels=6, kernel_size=3, groups=4)), "groups",
     ["out_channels=6", "set groups to 1 or 2"]),
    (S(3, 5, 5, L("Conv2d", in_channels=1, out_channels=4, kernel_size=3)), "channels",
     ["in_channels is 1", "the input gives 3 channels", "set in_channels to 3", "leave it out"]),
    (S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=1), L("BatchNorm2d", num_features=3)), "channels",
     ["num_features is 3", "layer 0 (Conv2d) gives 2 channels", "set num_features to 2"]),
    (S(1, 5, 5, L("Conv2d", out_channels=1, kernel_size=1), L("Conv2d", in_channels=3, out_channels=2,
                                                               kernel_size=1)), "channels",
     ["gives 1 channel:", "set in_channels to 1"]),
    (S(3, 5, 5, L("Flatten"), L("Linear", in_features=7, out_features=3)), "features",
     ["in_features is 7", "gives 75 features", "Flatten turns 3×5×5 into 75", "set in_features to 75"]),
    (S(1, 1, 1, L("Flatten"), L("Linear", in_features=7, out_features=3)), "features", ["gives 1 feature "]),
    (S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=7, padding="same", stride=2)), "same_stride",
     ["padding='same' only works with stride 1", "stride is 2", "stride 1", "padding 3 instead of 'same'"]),
    (S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, padding=5, padding_mode="reflect")), "pad_mode",
     ["smaller than the height (5)", "the padding is 5", "padding ≤ 4", "'replicate' or 'zeros'",
      "an input of at least 6×6"]),
    (S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, padding=6, padding_mode="circular")), "pad_mode",
     ["at most the height (5)", "the padding is 6", "padding ≤ 5"]),
    (S(3, 5, 5, L("MaxPool2d", kernel_size=3, padding=2)), "pool_pad",
     ["padding 2 is more than half the kernel 3", "at most 1", "padding ≤ 1", "a kernel of at least 4"]),
    (S(3, 5, 5, L("MaxPool2d", kernel_size=7)), "too_small",
     ["kernel 7 spans 7 pixels", "padded input is 5 high", "padding from 1 to 3", "kernel ≤ 5", "ceil_mode=true",
      "an input of at least 7×7"]),
    (S(3, 5, 5, L("AvgPool2d", kernel_size=7, stride=1, ceil_mode=True)), "too_small", ["kernel ≤ 5"]),
    (S(3, 5, 5, L("Flatten"), L("Conv2d", out_channels=3, kernel_size=3)), "rank",
     ["Conv2d needs channel×height×width maps", "receives 75 from layer 0 (Flatten)", "move this layer before it"]),
    (S(3, 5, 5, L("Flatten"), L("BatchNorm2d")), "rank", ["BatchNorm2d needs channel×height×width maps"]),
    (S(3, 5, 5, L("BatchNorm1d")), "rank",
     ["BatchNorm1d needs a flat vector of features per sample (N×C)", "receives 3×5×5 from the input",
      "use BatchNorm2d for maps, or add Flatten before it"]),
    (S(3, 5, 5, L("Flatten", start_dim=2), L("BatchNorm1d")), "rank",
     ["receives 3×25 from layer 0 (Flatten)", "no 1-D maps (N×C×L)", "add Flatten before it"]),
    (S(3, 5, 5, L("Flatten"), L("Linear", out_features=4), L("BatchNorm1d", num_features=5)), "features",
     ["num_features is 5", "layer 1 (Linear) gives 4 features", "set num_features to 4", "leave it out"]),
    (S(3, 5, 5, L("MaxPool2d", kernel_size=2, return_indices=True)), "return_indices",
     ["(values, indices)", "set return_indices to false"]),
    (S(3, 5, 5, L("Flatten", start_dim=0)), "batch_merge", ["batch dimension", "use start_dim=1"]),
    (S(3, 5, 5, L("Flatten", start_dim=3, end_dim=1)), "flatten_order",
     ["start_dim=3 comes after end_dim=1", "N×3×5×5", "start_dim ≤ end_dim"]),
    (S(3, 5, 5, L("Flatten", start_dim=-1, end_dim=-2)), "flatten_order",
     ["start_dim=-1 (dimension 3) comes after end_dim=-2 (dimension 2)"]),
    (S(3, 5, 5, L("Softmax", dim=4)), "dim_range", ["dim=4 is outside -4..3", "N×3×5×5"]),
    (S(3, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, padding="full")), "param",
     ["padding:", "'same' or 'valid'", "'full'"]),
    (S(3, 5, 5, L("Conv2d", out_channels=2, kernel_size=[3, 3, 3])), "param", ["a list of 3"]),
    (S(3, 5, 5, L("Conv2d", kernel_size=3)), "param", ["Conv2d needs out_channels: an integer from 1 to 16384"]),
    (S(3, 5, 5, L("AdaptiveAvgPool2d")), "param", ["needs output_size", "null keeps that dimension"]),
    (S(64, 4096, 4096, L("Conv2d", out_channels=2 ** 14, kernel_size=1)), "too_large",
     ["16384×4096×4096", "values per sample", "GiB"]),
    (S(3, 5, 5, L("Conv2d", out_channels=2 ** 14, kernel_size=1),
       L("Conv2d", out_channels=2 ** 14, kernel_size=5)), "too_large", ["6,710,902,784 parameters"]),
])
def test_error_sentences(stack, code, words):
    bad = error_of(stack)
    assert bad.error_code == code, bad.error
    for w in words:
        assert w in bad.error, f"{w!r} not in {bad.error!r}"
    assert bad.error[0].isalpha() and not bad.error.endswith((".", ":", ",")), bad.error
    for junk in ("None", "[1]", "{", "()", "  "):
        assert junk not in bad.error, f"{junk!r} in {bad.error!r}"


def test_stricter_codes_are_documented_failures():
    assert STRICTER == {"rank", "batch_merge", "return_indices", "too_large"}


def test_messages_say_one_channel_not_one_channels():
    for stack in (S(1, 4, 4, L("Conv2d", in_channels=2, out_channels=2, kernel_size=1)),
                  S(1, 4, 4, L("BatchNorm2d", num_features=2))):
        assert "gives 1 channel:" in error_of(stack).error
    out = infer(S(1, 4, 4, L("Flatten"), L("Linear", out_features=1),
                  loss=Loss("CrossEntropyLoss", {"weight": [1.0, 2.0]})))
    assert "scores 1 class:" in out.loss.error


def test_layers_after_the_first_error_are_unreachable():
    stack = S(1, 4, 4, L("Conv2d", out_channels=2, kernel_size=9), L("ReLU"), L("Flatten"), L("Linear", out_features=3))
    report = infer(stack)
    assert [r.reachable for r in report.layers] == [True, False, False, False]
    assert [r.output_shape for r in report.layers] == [None] * 4
    assert report.layers[0].error and all(r.error is None for r in report.layers[1:])
    assert report.loss.error is None and not report.ok


def test_loss_weight_count_must_match_classes():
    base = [L("Flatten"), L("Linear", out_features=3)]
    assert "weight has 2 entries but the stack scores 3 classes" in infer(
        S(1, 4, 4, *base, loss=Loss("CrossEntropyLoss", {"weight": [1, 2]}))).loss.error
    assert infer(S(1, 4, 4, *base, loss=Loss("NLLLoss", {"weight": [1, 2, 3]}))).loss.error is None


# --------------------------------------------------- proposed fixes work
_NUMBER = re.compile(r"(-?\d+)")
_N = r"(\d+|\[\d+, \d+\])"  # a number, or [height, width] where a fix changes both axes of a list


def _n(text: str):
    return text if text.startswith("[") else int(text)


def apply_fix(stack: Stack, index: int, axis: int | None, fix: str) -> list[Stack]:
    """The stacks a reader would make from one proposed fix (several where it names alternatives)."""
    layer = stack.layers[index]

    def with_axis(key: str, n) -> Stack:
        value = layer.params.get(key)
        if isinstance(n, str):  # "[h, w]": both axes
            value = [int(x) for x in _NUMBER.findall(n)]
        elif isinstance(value, list) and axis is not None:
            value = list(value)
            value[axis] = n
        else:
            value = n
        layers = list(stack.layers)
        layers[index] = layer.with_param(key, value)
        return Stack(stack.name, stack.input, tuple(layers), stack.loss)

    def setp(key: str, value) -> Stack:
        layers = list(stack.layers)
        layers[index] = layer.with_param(key, value)
        return Stack(stack.name, stack.input, tuple(layers), stack.loss)

    m = re.fullmatch(r"an input of at least (\d+)×(\d+)", fix)
    if m:
        return [Stack(stack.name, InputSpec(stack.input.channels, int(m[1]), int(m[2])), stack.layers, stack.loss)]
    if fix == "ceil_mode=true":
        return [setp("ceil_mode", True)]
    if fix == "stride 1":
        return [setp("stride", 1)]
    m = re.fullmatch(rf"padding ≤ {_N} with dilation 1", fix)
    if m:
        changed = with_axis("padding", _n(m[1])).layers[index].with_param("dilation", 1)
        return [Stack(stack.name, stack.input, stack.layers[:index] + (changed,) + stack.layers[index + 1:],
                      stack.loss)]
    if fix == "stride 1 with padding_mode 'zeros'":
        return [Stack(stack.name, stack.input, stack.layers[:index]
                      + (layer.with_param("stride", 1).with_param("padding_mode", "zeros"),)
                      + stack.layers[index + 1:], stack.loss)]
    m = re.fullmatch(r"padding_mode '(\w+)'(?: or '(\w+)')?", fix)
    if m:
        return [setp("padding_mode", mode) for mode in m.groups() if mode]
    m = re.fullmatch(r"padding_mode 'zeros' with padding ≥ (\d+)", fix)
    if m:
        return [Stack(stack.name, stack.input, stack.layers[:index]
                      + (layer.with_param("padding", int(m[1])).with_param("padding_mode", "zeros"),)
                      + stack.layers[index + 1:], stack.loss)]
    m = re.fullmatch(r"padding from (\d+) to (\d+)", fix)
    if m:
        return [with_axis("padding", int(m[1])), with_axis("padding", int(m[2]))]
    m = re.fullmatch(r"padding \[(\d+), (\d+)\] instead of 'same' .*", fix)
    if m:
        return [setp("padding", [int(m[1]), int(m[2])])]
    for pattern, key in ((rf"padding (?:≥ |≤ )?{_N}(?: instead of 'same' .*)?", "padding"),
                         (rf"dilation ≤ {_N}", "dilation"),
                         (rf"(?:a )?kernel (?:≤|of at least) {_N}", "kernel_size")):
        m = re.fullmatch(pattern, fix)
        if m:
            return [with_axis(key, _n(m[1]))]
    raise AssertionError(f"a fix the test cannot read: {fix!r}")


def assert_fixes_work(stack: Stack, strict: bool = True) -> int:
    """Apply every fix the first error proposes; the layer (and all before it) must then work.

    Not ``strict``: where no single change can make the layer work, the error may propose
    changes that each get past this error (the layer then fails for another reason).
    """
    bad = infer(stack).first_error
    assert bad is not None
    results = []
    for fix in bad.error_fixes:
        for fixed in apply_fix(stack, bad.index, bad.error_axis, fix):
            after = infer(fixed).layers[:bad.index + 1]
            results.append((fix, [r for r in after if r.error]))
    for fix in bad.error_fixes:
        m = re.fullmatch(r"an input of at least (\d+)×(\d+)", fix)
        if m:  # and no less: one pixel fewer on a grown side fails again
            h, w = int(m[1]), int(m[2])
            for smaller in ((h - 1, w) if h > stack.input.height else None,
                            (h, w - 1) if w > stack.input.width else None):
                if smaller:
                    less = Stack(stack.name, InputSpec(stack.input.channels, *smaller), stack.layers, stack.loss)
                    assert any(r.error for r in infer(less).layers[:bad.index + 1]), (fix, smaller)
    if strict or any(not left for _, left in results):
        for fix, left in results:
            assert not left, f"fix {fix!r} of {bad.error!r} leaves: {[r.error for r in left]} in {stack}"
    else:
        for fix, left in results:
            assert [r.error_code for r in left] != [bad.error_code], f"fix {fix!r} of {bad.error!r} fixes nothing"
    return len(bad.error_fixes)


@pytest.mark.parametrize("stack", FIXABLE_STACKS)
def test_proposed_fixes_work(stack):
    assert assert_fixes_work(stack) >= 1


def test_broken_example_fixes_work():
    stack = example("broken.cnnviz")
    assert assert_fixes_work(stack) >= 2
    assert "an input of at least 36×36" in infer(stack).first_error.error_fixes


@CI
@given(c=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12),
       layers=st.lists(spatial_layer(), min_size=1, max_size=4))
def test_every_proposed_fix_works(c, h, w, layers):
    stack = S(c, h, w, *layers)
    bad = infer(stack).first_error
    if bad is None or bad.error_code not in FIXABLE:
        return
    assert bad.error_fixes, f"no fix proposed for {bad.error!r} in {stack}"
    assert_fixes_work(stack, strict=False)


# ------------------------------------------------------------------ lints
HEAD = (L("Flatten"), L("Linear", out_features=10))


def warnings_of(stack: Stack) -> tuple[list[str], list[str]]:
    report = infer(stack)
    return [w for r in report.layers for w in r.warnings], list(report.loss.warnings)


def test_softmax_before_cross_entropy():
    layer_w, loss_w = warnings_of(S(1, 8, 8, *HEAD, L("Softmax", dim=1)))
    assert any("Softmax before CrossEntropyLoss applies softmax twice" in w for w in layer_w)
    assert any("Remove Softmax" in w for w in loss_w)
    layer_w, _ = warnings_of(S(1, 8, 8, *HEAD, L("Softmax", dim=1), L("Dropout")))
    assert any("applies softmax twice" in w for w in layer_w), "Dropout after Softmax hides nothing"


def test_log_softmax_before_cross_entropy():
    _, loss_w = warnings_of(S(1, 8, 8, *HEAD, L("LogSoftmax", dim=1)))
    assert any("LogSoftmax before CrossEntropyLoss is redundant" in w for w in loss_w)


def test_nll_without_log_softmax():
    _, loss_w = warnings_of(S(1, 8, 8, *HEAD, loss=Loss("NLLLoss")))
    assert any("NLLLoss expects log-probabilities but the stack ends with Linear" in w for w in loss_w)
    _, loss_w = warnings_of(S(1, 8, 8, loss=Loss("NLLLoss")))
    assert any("end the stack with LogSoftmax(dim=1)" in w for w in loss_w)
    _, loss_w = warnings_of(S(1, 8, 8, *HEAD, L("LogSoftmax", dim=1), loss=Loss("NLLLoss")))
    assert loss_w == []


def test_softmax_before_nll():
    layer_w, loss_w = warnings_of(S(1, 8, 8, *HEAD, L("Softmax", dim=1), loss=Loss("NLLLoss")))
    assert any("use LogSoftmax(dim=1) instead of Softmax" in w for w in loss_w)
    assert any("NLLLoss expects log-probabilities but Softmax gives probabilities" in w for w in layer_w)


def test_final_output_must_be_class_scores():
    _, loss_w = warnings_of(S(1, 8, 8, L("Conv2d", out_channels=2, kernel_size=3)))
    assert any("ends with 2×6×6 per sample" in w and "add Flatten and a Linear" in w for w in loss_w)
    _, loss_w = warnings_of(S(1, 8, 8, L("Flatten"), L("Linear", out_features=1)))
    assert any("scores 1 class;" in w for w in loss_w)
    _, loss_w = warnings_of(S(1, 8, 8, *HEAD))
    assert loss_w == []


def test_batchnorm_after_flatten_is_an_error(torch_reference):
    stack = S(1, 8, 8, L("Flatten"), L("BatchNorm2d"))
    bad = error_of(stack)
    assert bad.index == 1 and bad.error_code == "rank"
    assert torch_reference.run(stack).fail_index == 1, "torch fails there too"


def test_one_by_one_collapse_with_convs_following():
    stack = S(1, 5, 5, L("Conv2d", out_channels=3, kernel_size=5), L("ReLU"),
              L("Conv2d", out_channels=3, kernel_size=3, padding=1), *HEAD)
    report = infer(stack)
    assert any("1×1 here but Conv2d at layer 2 follows" in w and "3×3 kernel" in w for w in report.layers[0].warnings)
    quiet = S(1, 5, 5, L("Conv2d", out_channels=3, kernel_size=5), L("Conv2d", out_channels=3, kernel_size=1), *HEAD)
    assert not any("1×1 here" in w for r in infer(quiet).layers for w in r.warnings)


def test_linear_on_maps_warns():
    report = infer(S(3, 5, 5, L("Linear", out_features=4)))
    assert report.layers[0].error is None and report.layers[0].output_shape == (3, 5, 4)
    assert any("Linear acts on the last dimension only (5 of 3×5×5)" in w and "add Flatten" in w
               for w in report.layers[0].warnings)


def test_implicit_softmax_dim():
    report = infer(S(1, 8, 8, *HEAD, L("Softmax")))
    assert any("dim is not set: torch picks dim=1" in w for w in report.layers[-1].warnings)
    rows = infer(S(1, 8, 8, L("Flatten", start_dim=2), L("LogSoftmax")))
    texts = rows.layers[-1].warnings
    assert any("dim=0" in w for w in texts) and any("across the batch" in w for w in texts)
    assert not any("dim is not set" in w for w in infer(S(1, 8, 8, *HEAD, L("Softmax", dim=1))).layers[-1].warnings)


@pytest.mark.parametrize("prefix, per_sample_rank", [((), 3), ((L("Flatten", start_dim=2),), 2), ((L("Flatten"),), 1)])
def test_implicit_softmax_dim_is_torchs_choice(prefix, per_sample_rank):
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.functional._get_softmax_dim("softmax", per_sample_rank + 1, 3)
    report = infer(S(2, 3, 4, *prefix, L("Softmax")))
    assert any(f"torch picks dim={theirs} implicitly" in w for w in report.layers[-1].warnings)


def test_examples_have_no_surprising_warnings():
    for path in assets.examples():
        report = infer(files.load(path))
        if path.name == "broken.cnnviz":
            continue
        assert report.ok, (path.name, report.first_error)
        assert report.loss.warnings == (), (path.name, report.loss.warnings)


# --------------------------------------------------------- receptive field
def test_receptive_field_lenet5_by_hand():
    report = infer(example("lenet5.cnnviz"))
    # conv5 p2: 5 (jump 1); pool2: 5 + 1 = 6 (jump 2); conv5: 6 + 4·2 = 14; pool2: 14 + 1·2 = 16 (jump 4)
    sizes = [r.receptive_field.size[0] if r.receptive_field else None for r in report.layers]
    jumps = [r.receptive_field.jump[0] if r.receptive_field else None for r in report.layers]
    assert sizes[:6] == [5, 5, 6, 14, 14, 16]
    assert jumps[:6] == [1, 1, 2, 2, 2, 4]
    first = report.layers[0].receptive_field
    assert first.start == (0.5, 0.5), "padding 2 centres the first output on pixel 0"


def test_receptive_field_dilation_demo_3_7_15():
    report = infer(example("dilation-demo.cnnviz"))
    convs = [r.receptive_field.size for r in report.layers if r.type == "Conv2d"]
    assert convs == [(3, 3), (7, 7), (15, 15), (19, 19)]


def field_extent(rf: ReceptiveField, axis: int, i: int) -> tuple[int, int]:
    """Input pixels (first, last) that output ``i`` sees along ``axis``, padding included."""
    centre = rf.start[axis] + i * rf.jump[axis]
    first = centre - rf.size[axis] / 2
    assert first == int(first), rf
    return int(first), int(first) + rf.size[axis] - 1


def assert_extent(seen: list[int], field: tuple[int, int], n: int, where) -> None:
    """Where the field lies inside the image its end pixels are taps, so the gradient reaches exactly them;
    where it reaches into the padding, strides and dilation can leave holes at the clipped ends."""
    if not seen:
        return  # a window that lies entirely in the padding sees nothing
    if 0 <= field[0] and field[1] < n:
        assert (seen[0], seen[-1]) == field, where
    else:
        assert max(field[0], 0) <= seen[0] and seen[-1] <= min(field[1], n - 1), where


@st.composite
def rf_stack(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(1, 4))
        if draw(st.booleans()):
            layers.append(L("Conv2d", out_channels=1, kernel_size=[k, draw(st.integers(1, 4))],
                            stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, 2)),
                            dilation=draw(st.integers(1, 3)), bias=False))
        else:
            layers.append(L("AvgPool2d", kernel_size=k, stride=draw(st.integers(1, 3)),
                            padding=draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans())))
    size = draw(st.integers(8, 24))
    return S(1, size, size + draw(st.integers(0, 5)), *layers)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(rf_stack())
def test_receptive_field_matches_torch_gradients(torch_reference, stack):
    """The non-zero extent of d(output pixel)/d(input) is the reported field, clipped to the image."""
    import torch

    report = infer(stack)
    if not report.ok:
        return
    rf = report.layers[-1].receptive_field
    model = torch.nn.Sequential(*[torch_reference.layer(l, (1, 1)) for l in stack.layers])
    for m in model:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.ones_(m.weight)
    _, h, w = stack.input.shape
    _, oh, ow = report.output_shape
    for i, j in {(0, 0), (oh - 1, ow - 1), (oh // 2, ow // 2), (oh // 3, (2 * ow) // 3)}:
        x = torch.ones(1, 1, h, w, requires_grad=True)
        with torch_reference.one_thread():
            model(x)[0, 0, i, j].backward()
        rows = x.grad[0, 0].abs().sum(1).nonzero().flatten().tolist()
        cols = x.grad[0, 0].abs().sum(0).nonzero().flatten().tolist()
        assert_extent(rows, field_extent(rf, 0, i), h, (i, j, rf))
        assert_extent(cols, field_extent(rf, 1, j), w, (i, j, rf))


# ------------------------------------------------------------------- MACs
@pytest.mark.parametrize("cin, cout, k, s, p, d, g, hw", [
    (1, 6, 5, 1, 2, 1, 1, (28, 28)), (4, 8, [3, 1], 2, 0, 1, 2, (9, 7)), (6, 6, 3, 1, 2, 2, 6, (5, 5)),
    (3, 4, 2, [1, 2], [1, 0], 1, 1, (4, 6)),
])
def test_conv_macs_and_params_formula(cin, cout, k, s, p, d, g, hw):
    r = infer(S(cin, *hw, L("Conv2d", out_channels=cout, kernel_size=k, stride=s, padding=p, dilation=d,
                            groups=g))).layers[0]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (as_pair(v) for v in (k, s, p, d))
    oh = (hw[0] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (hw[1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    assert r.output_shape == (cout, oh, ow)
    assert r.macs == oh * ow * cout * (cin // g) * kh * kw
    assert r.params == cout * (cin // g) * kh * kw + cout


def test_linear_macs_formula():
    flat = infer(S(3, 4, 5, L("Flatten"), L("Linear", out_features=7))).layers[1]
    assert flat.macs == 60 * 7 and flat.params == 60 * 7 + 7
    rows = infer(S(3, 4, 5, L("Linear", out_features=7, bias=False))).layers[0]
    assert rows.macs == 3 * 4 * 5 * 7 and rows.params == 5 * 7


def test_lenet5_totals():
    report = infer(example("lenet5.cnnviz"))
    assert report.total_params == 61706
    macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert report.total_macs == macs
    assert report.output_shape == (10,) and report.num_classes == 10
    assert math.prod(report.layers[0].output_shape) == report.layers[0].activation_elements


def test_two_linears_with_only_a_batchnorm1d_between_them_are_flagged():
    """A BatchNorm1d scales and shifts each feature: Linear → BatchNorm1d → Linear is still one linear map."""
    def warned(*between):
        report = infer(S(1, 4, 4, L("Flatten"), L("Linear", out_features=8), *between, L("Linear", out_features=3)))
        return any("no activation between Linear at layer 1" in w for w in report.layers[-1].warnings)

    assert warned(L("BatchNorm1d")) and warned(L("BatchNorm1d"), L("Dropout")) and warned()
    assert not warned(L("BatchNorm1d"), L("ReLU")) and not warned(L("ReLU"), L("BatchNorm1d"))
