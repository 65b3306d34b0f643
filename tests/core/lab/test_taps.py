"""The lab's arithmetic against torch itself, over every keyword of Conv2d, MaxPool2d and AvgPool2d.

For a convolution the input positions an output element reads are what torch's
gradient says it depends on: the input is padded explicitly (``F.pad`` with the
padding the :class:`Window` computed and the layer's mode), convolved with padding 0
(which must give the module's own output, so the padding amounts are torch's), and
the gradient of one element with respect to the padded input is non-zero exactly at
the taps, equal there to the tap's weight; the padded input holds the tap's value.
For the pools the windows come from one-hot inputs (the output is the one exactly
where the window covers it), MaxPool2d's argmax from ``return_indices``, AvgPool2d's
divisor from an input of ones. Every value equals torch's to 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cnnviz.core.lab import taps
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import infer

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")]

LAB = settings(max_examples=100, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

_pair = st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2, max_size=2))
_stride = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))
MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _close(ours: float, theirs: float, scale: float = 1.0) -> bool:
    return abs(ours - theirs) <= 1e-5 * max(1.0, scale)


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    params = {"in_channels": cin, "out_channels": cout, "kernel_size": draw(_pair), "groups": groups,
              "dilation": draw(st.one_of(st.integers(1, 3), st.lists(st.integers(1, 2), min_size=2, max_size=2))),
              "padding_mode": draw(st.sampled_from(list(MODES))), "bias": draw(st.booleans())}
    padding = draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=2, max_size=2),
                             st.sampled_from(["same", "same", "valid"])))
    params["padding"] = padding
    params["stride"] = 1 if padding == "same" else draw(_stride)
    shape = (cin, draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    return params, shape, draw(st.integers(0, 2**31 - 1))


@st.composite
def pool_case(draw, kind: str):
    kernel = draw(_pair)
    params = {"kernel_size": kernel, "stride": draw(st.one_of(st.none(), _stride)), "ceil_mode": draw(st.booleans())}
    half = [k // 2 for k in (kernel if isinstance(kernel, list) else [kernel, kernel])]
    if draw(st.booleans()):  # mostly within torch's limit (at most half the kernel), sometimes beyond it
        params["padding"] = [draw(st.integers(0, half[0])), draw(st.integers(0, half[1]))]
    else:
        params["padding"] = draw(st.integers(0, 2))
    if kind == "MaxPool2d":
        params["dilation"] = draw(st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2)))
    else:
        params["count_include_pad"] = draw(st.booleans())
        params["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 7)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    return params, shape, draw(st.integers(0, 2**31 - 1))


def _resolved(kind: str, params: dict, shape) -> tuple[dict, taps.Window]:
    try:
        resolved = taps.resolve(Layer(kind, params), shape)
    except taps.LabError:
        assume(False)  # a layer shape inference refuses (torch refuses it too: tests/core/shapes)
    return resolved, taps.window_of(kind, resolved, shape)


def _torch_kwargs(resolved: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in resolved.items()}


def _cells(draw_data, win: taps.Window, n: int = 3) -> list[tuple[int, int, int]]:
    c, h, w = win.out_shape
    corners = [(0, 0, 0), (c - 1, h - 1, w - 1)]
    return corners + [draw_data.draw(st.tuples(st.integers(0, c - 1), st.integers(0, h - 1), st.integers(0, w - 1)))
                      for _ in range(n - 2)]


# --------------------------------------------------------------------- Conv2d
@LAB
@given(conv_case(), st.data())
def test_conv_taps_are_what_torch_depends_on(case, data):
    params, shape, seed = case
    resolved, win = _resolved("Conv2d", params, shape)
    rng = np.random.default_rng(seed)
    module = torch.nn.Conv2d(**_torch_kwargs(resolved))
    with torch.no_grad():  # non-zero weights of both signs, every one different
        w = rng.uniform(0.5, 1.5, module.weight.shape) * rng.choice([-1, 1], module.weight.shape)
        module.weight.copy_(torch.tensor(w, dtype=torch.float32))
    x = torch.tensor(rng.normal(size=(1, *shape)), dtype=torch.float32)
    with torch.no_grad():
        reference = module(x)
    assert tuple(reference.shape[1:]) == win.out_shape

    # The window's padding is torch's: explicit padding, then a convolution without any, gives the module's output.
    pads = (win.pad_before[1], win.pad_after[1], win.pad_before[0], win.pad_after[0])
    xp = F.pad(x, pads, mode=MODES[win.padding_mode]).detach().requires_grad_(True)
    out = F.conv2d(xp, module.weight.detach(), None if module.bias is None else module.bias.detach(),
                   module.stride, 0, module.dilation, module.groups)
    torch.testing.assert_close(out.detach(), reference, rtol=1e-5, atol=1e-5)

    if any(win.pad_before + win.pad_after):
        event(f"padded, padding_mode {win.padding_mode}")
    if win.pad_before != win.pad_after:
        event("uneven padding ('same' with an even span)")
    event(f"groups {win.groups}, dilation {'>1' if max(win.dilation) > 1 else '1'}")
    weight = module.weight.detach().numpy()
    bias = None if module.bias is None else module.bias.detach().numpy()
    top, left = win.pad_before
    padded = xp.detach()[0].numpy()
    for c, y, xx in _cells(data, win):
        got = taps.taps_of("Conv2d", resolved, x[0].numpy(), (c, y, xx), weight=weight, bias=bias)
        (grad,) = torch.autograd.grad(out[0, c, y, xx], xp, retain_graph=True)
        grad = grad[0].numpy()
        depends = {tuple(int(v) for v in p) for p in zip(*np.nonzero(grad))}
        reads = {(t.channel, t.y + top, t.x + left) for t in got.taps}
        assert reads == depends, (resolved, shape, (c, y, xx))
        assert len(got.taps) == len(reads)  # no position twice
        assert {t.channel for t in got.taps} == set(win.in_channels_of(c))
        for t in got.taps:
            assert t.weight == pytest.approx(grad[t.channel, t.y + top, t.x + left], abs=1e-6)
            assert t.input == pytest.approx(float(padded[t.channel, t.y + top, t.x + left]), abs=1e-6)
            inside = 0 <= t.y < shape[1] and 0 <= t.x < shape[2]
            assert t.padding is (not inside)
            assert t.product == pytest.approx(t.input * t.weight)
        scale = sum(abs(t.product) for t in got.taps)
        assert _close(got.value, float(reference[0, c, y, xx]), scale)
        assert (got.bias is None) is (bias is None)


@LAB
@given(conv_case())
def test_conv_unread_cells_are_those_no_output_depends_on(case):
    params, shape, _ = case
    resolved, win = _resolved("Conv2d", params, shape)
    module = torch.nn.Conv2d(**_torch_kwargs(resolved))
    with torch.no_grad():  # positive weights: a gradient of the summed output cannot cancel to zero
        module.weight.copy_(torch.rand(module.weight.shape) + 0.5)
    x = torch.randn(1, *shape, requires_grad=True)
    module(x).sum().backward()
    untouched = (x.grad[0] == 0).numpy()
    for ci in range(shape[0]):
        assert (untouched[ci] == win.unread()).all(), (resolved, shape)
        assert ci in [i for co in win.out_channels_of(ci) for i in win.in_channels_of(co)]


@pytest.mark.parametrize("kernel", [2, 4, 3])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_same_padding_with_an_even_span_pads_more_after(kernel, dilation):
    _, win = _resolved("Conv2d", {"out_channels": 1, "kernel_size": kernel, "dilation": dilation,
                                  "padding": "same"}, (1, 9, 7))
    total = dilation * (kernel - 1)
    assert win.pad_before == (total // 2, total // 2)
    assert win.pad_after == (total - total // 2,) * 2
    assert win.out_shape[1:] == (9, 7)
    x, weight = torch.randn(1, 1, 9, 7), torch.randn(1, 1, kernel, kernel)
    same = F.conv2d(x, weight, padding="same", dilation=dilation)
    explicit = F.conv2d(F.pad(x, (win.pad_before[1], win.pad_after[1], win.pad_before[0], win.pad_after[0])),
                        weight, dilation=dilation)
    torch.testing.assert_close(same, explicit)
    if total % 2:  # the other way round is not what torch does
        other = F.conv2d(F.pad(x, (win.pad_after[1], win.pad_before[1], win.pad_after[0], win.pad_before[0])),
                         weight, dilation=dilation)
        assert not torch.allclose(same, other)


# --------------------------------------------------------------------- pools
def _one_hot_windows(kind: str, module, shape) -> np.ndarray:
    """(H, W, H_out, W_out) bool: whether input pixel (y, x) lies in output cell (oy, ox)'s window, from
    one-hot images (0 elsewhere, so the max or mean is positive exactly where the window covers the 1; a
    dilated MaxPool2d window over padding only gives −inf)."""
    _, h, w = shape
    eye = torch.eye(h * w).reshape(h * w, 1, h, w)
    out = module(eye)
    out = out[0] if isinstance(out, tuple) else out
    return (out[:, 0] > 0).reshape(h, w, *out.shape[2:]).numpy()


@LAB
@given(st.sampled_from(["MaxPool2d", "AvgPool2d"]).flatmap(lambda k: st.tuples(st.just(k), pool_case(k))))
def test_pool_windows_values_argmax_and_divisors_match_torch(case):
    kind, (params, shape, seed) = case
    resolved, win = _resolved(kind, params, shape)
    kwargs = _torch_kwargs(resolved)
    module = getattr(torch.nn, kind)(**kwargs)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(1, *shape)), dtype=torch.float32)
    if kind == "MaxPool2d":
        reference, indices = torch.nn.MaxPool2d(**{**kwargs, "return_indices": True})(x)
    else:
        reference, indices = module(x), None
    assert tuple(reference.shape[1:]) == win.out_shape

    clipped = not win.axis_taps(0).all() or not win.axis_taps(1).all()
    event(f"{kind}: {'a ceil_mode window clipped' if clipped else 'no window clipped'}")
    if kind == "AvgPool2d" and any(win.pad_before):
        event(f"AvgPool2d padded, count_include_pad {win.count_include_pad}, override {win.divisor_override}")
    if win.unread().any():
        event(f"{kind}: unread cells")
    member = _one_hot_windows(kind, module, shape)
    assert (~member.any(axis=(2, 3)) == win.unread()).all(), (resolved, shape)
    ones = module(torch.ones(1, *shape))
    reads = win.positions()
    for c in range(win.out_shape[0]):
        for oy in range(win.out_shape[1]):
            for ox in range(win.out_shape[2]):
                got = taps.taps_of(kind, resolved, x[0].numpy(), (c, oy, ox))
                real = {(t.y, t.x) for t in got.taps if not t.padding}
                assert real == {tuple(p) for p in zip(*np.nonzero(member[:, :, oy, ox]))}, (resolved, shape)
                assert set(win.window(oy, ox)) == {(t.y, t.x) for t in got.taps}
                m = reads.taps[oy, ox]
                assert set(zip(reads.ys[oy, ox][m].tolist(), reads.xs[oy, ox][m].tolist())) == set(win.window(oy, ox))
                assert all(t.channel == c for t in got.taps)
                if kind == "MaxPool2d":
                    assert got.return_index == int(indices[0, c, oy, ox])
                    if got.argmax is None:  # a dilated window over padding only
                        event("MaxPool2d: a window over padding only")
                        assert not real and got.value == float(reference[0, c, oy, ox]) == -np.inf
                        continue
                assert _close(got.value, float(reference[0, c, oy, ox]), sum(abs(t.input or 0) for t in got.taps))
                if kind == "MaxPool2d":
                    top = got.taps[got.argmax]
                    assert not top.padding and top.input == got.value
                    assert all(t.input is None for t in got.taps if t.padding)
                else:
                    assert got.divisor == int(win.divisors()[oy, ox])
                    assert float(ones[0, c, oy, ox]) == pytest.approx(len(real) / got.divisor, rel=1e-6)
                    assert all(t.input == 0.0 for t in got.taps if t.padding)


@LAB
@given(pool_case("MaxPool2d"))
def test_maxpool_padding_taps_are_the_window_avgpool_counts(case):
    """With dilation 1 a MaxPool2d window (padding taps included) is AvgPool2d's: with count_include_pad its
    divisor counts every tap, clipped where torch clips a ceil_mode window at the end of the padding."""
    params, shape, _ = case
    params = {**params, "dilation": 1}
    resolved, win = _resolved("MaxPool2d", params, shape)
    avg = torch.nn.AvgPool2d(**_torch_kwargs({k: v for k, v in resolved.items() if k not in
                                              ("dilation", "return_indices")}), count_include_pad=True)
    ones = avg(torch.ones(1, *shape))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    for oy in range(win.out_shape[1]):
        for ox in range(win.out_shape[2]):
            got = taps.taps_of("MaxPool2d", resolved, x, (0, oy, ox))
            real = sum(not t.padding for t in got.taps)
            assert float(ones[0, 0, oy, ox]) == pytest.approx(real / len(got.taps), rel=1e-6), (resolved, shape)


def test_a_dilated_maxpool_window_over_padding_only_is_minus_infinity_as_in_torch():
    x = np.full((1, 1, 1), 3.0, np.float32)
    resolved, win = _resolved("MaxPool2d", {"kernel_size": 2, "padding": 1, "dilation": 2}, (1, 1, 1))
    got = taps.taps_of("MaxPool2d", resolved, x, (0, 0, 0))
    value, index = F.max_pool2d(torch.tensor(x)[None], 2, 2, 1, 2, return_indices=True)
    assert got.value == float(value) == -np.inf and got.argmax is None
    assert got.return_index == int(index) == 2
    assert [(t.y, t.x, t.padding, t.input) for t in got.taps] == [(-1, -1, True, None), (-1, 1, True, None),
                                                                    (1, -1, True, None), (1, 1, True, None)]
    assert got.to_json()["value"] is None and win.unread().all()


def test_maxpool_ties_go_to_the_first_tap_as_in_torch():
    x = np.zeros((1, 4, 4), np.float32)
    x[0, 1, 1] = x[0, 1, 0] = 5.0
    resolved, _ = _resolved("MaxPool2d", {"kernel_size": 2}, (1, 4, 4))
    got = taps.taps_of("MaxPool2d", resolved, x, (0, 0, 0))
    _, indices = F.max_pool2d(torch.tensor(x)[None], 2, return_indices=True)
    assert got.return_index == int(indices[0, 0, 0, 0]) == 4
    assert (got.taps[got.argmax].y, got.taps[got.argmax].x) == (1, 0)


def test_geometry_of_a_stride_that_skips_pixels():
    _, win = _resolved("Conv2d", {"out_channels": 4, "kernel_size": 2, "stride": 3, "groups": 2}, (4, 8, 7))
    assert win.out_shape == (4, 3, 2)
    unread = win.unread()  # windows start at rows 0, 3, 6 and columns 0, 3 and are 2 wide
    assert np.flatnonzero(unread.all(axis=1)).tolist() == [2, 5]
    assert np.flatnonzero(unread.all(axis=0)).tolist() == [2, 5, 6]
    assert unread.sum() == 8 * 7 - 6 * 4
    assert list(win.in_channels_of(3)) == [2, 3] and list(win.out_channels_of(1)) == [0, 1]
    reads = win.positions()
    assert reads.ys.shape == reads.xs.shape == reads.taps.shape == (3, 2, 2, 2) and reads.taps.all()
    assert (reads.ys[2, 1, 1, 0], reads.xs[2, 1, 1, 0]) == (7, 3)
    big = taps.Window("Conv2d", (1, 4096, 4096), (1, 4094, 4094), (3, 3), (1, 1), (1, 1), (0, 0), (0, 0))
    huge = big.positions()  # views: 4094² × 9 positions without allocating them
    assert huge.ys.shape == (4094, 4094, 3, 3) and huge.ys.base is not None and huge.ys[4093, 5, 2, 1] == 4095
    assert win.window(1, 1) == [(3, 3), (3, 4), (4, 3), (4, 4)]
    with pytest.raises(taps.LabError, match="outside"):
        win.window(3, 0)


# --------------------------------------------------------------------- Linear
@LAB
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_linear_taps_name_where_flatten_took_each_index(c, h, w, features, bias, seed):
    torch.manual_seed(seed)
    maps = torch.randn(1, c, h, w, requires_grad=True)
    linear = torch.nn.Linear(c * h * w, features, bias=bias)
    out = linear(torch.flatten(maps, 1))
    flat = torch.flatten(maps, 1)[0].detach().numpy()
    weight = linear.weight.detach().numpy()
    b = linear.bias.detach().numpy() if bias else None
    for j in range(features):
        got = taps.taps_of("Linear", {}, flat, (j,), weight=weight, bias=b, origin=(c, h, w))
        (grad,) = torch.autograd.grad(out[0, j], maps, retain_graph=True)
        assert [t.index for t in got.taps] == list(range(c * h * w))
        for t in got.taps:
            assert t.index == (t.channel * h + t.y) * w + t.x
            assert t.input == float(maps.detach()[0, t.channel, t.y, t.x])
            assert t.weight == pytest.approx(float(grad[0, t.channel, t.y, t.x]))
        assert _close(got.value, float(out.detach()[0, j]), sum(abs(t.product) for t in got.taps))
        doc = got.to_json()
        assert set(doc["taps"][0]) == {"index", "channel", "y", "x", "input", "weight", "product"}
        assert (doc["bias"] is None) is (not bias)


def test_flat_origin_looks_through_shape_keeping_layers_to_the_flatten():
    def report(*layers):
        return infer(Stack(input=InputSpec(2, 3, 4), layers=tuple(Layer(t, p) for t, p in layers)))

    r = report(("Flatten", {}), ("Dropout", {}), ("Linear", {"out_features": 5}), ("ReLU", {}),
               ("Linear", {"out_features": 3}))
    assert taps.flat_origin(r, 2) == (2, 3, 4)
    assert taps.flat_origin(r, 4) is None  # after another Linear the index has no place in the maps
    partial = report(("Flatten", {"start_dim": 2}), ("Linear", {"out_features": 5}))
    assert taps.flat_origin(partial, 1) is None
    got = taps.taps_of("Linear", {}, np.arange(6, dtype=np.float32).reshape(2, 3), (1, 0),
                       weight=np.ones((1, 3), np.float32), bias=None)
    assert [t.input for t in got.taps] == [3.0, 4.0, 5.0] and got.value == 12.0 and got.taps[0].channel is None


# --------------------------------------------------------------------- what can be explained
def test_locate_names_the_layers_that_can_be_explained_and_the_valid_range():
    stack = Stack(input=InputSpec(1, 6, 6), layers=(Layer("Conv2d", {"out_channels": 2, "kernel_size": 3}),
                                                    Layer("ReLU", {}, name="\x1b[31mred"), Layer("Flatten"),
                                                    Layer("Linear", {"out_features": 4})))
    report = infer(stack)
    target = taps.locate(stack, report, "3", "2")
    assert (target.type, target.at, target.origin) == ("Linear", (2,), (2, 4, 4))
    with pytest.raises(taps.LabError) as relu:
        taps.locate(stack, report, "1", "0,0,0")
    assert "0 (Conv2d), 3 (Linear)" in str(relu.value) and "\x1b" not in str(relu.value)
    with pytest.raises(taps.LabError, match=r"C 0\.\.1, Y 0\.\.3, X 0\.\.3"):
        taps.locate(stack, report, "0", "0,4,0")
    with pytest.raises(taps.LabError, match="3 coordinates"):
        taps.locate(stack, report, "0", "1")
    with pytest.raises(taps.LabError, match="no blocks"):
        taps.locate(stack, report, "0.body.1", "0,0,0")
    with pytest.raises(taps.LabError, match="it has 4 layers"):
        taps.locate(stack, report, "9", "0")
    with pytest.raises(taps.LabError, match="not a layer path"):
        taps.locate(stack, report, "conv", "0")
    with pytest.raises(taps.LabError, match="whole numbers"):
        taps.locate(stack, report, "0", "a,b,c")


def test_taps_module_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; import cnnviz.core.lab.taps, cnnviz.core.lab; "
            "assert 'torch' not in sys.modules, 'torch'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr
