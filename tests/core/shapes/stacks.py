"""What the shape tests build stacks from: short constructors, the examples, the stacks whose error offers
fixes, and a Hypothesis strategy of spatial layers."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack

CI = settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def L(type_: str, **params) -> Layer:  # noqa: N802
    return Layer(type_, params)


def S(c: int, h: int, w: int, *layers: Layer, loss: Loss | None = None) -> Stack:  # noqa: N802
    return Stack(input=InputSpec(c, h, w), layers=tuple(layers), loss=loss or Loss())


def example(name: str) -> Stack:
    return files.load(assets.path("examples", name))


FIXABLE_STACKS = [
    S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, dilation=3)),
    S(1, 5, 3, L("Conv2d", out_channels=2, kernel_size=7)),
    S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=[1, 7], padding=[0, 0])),
    S(1, 2, 2, L("Conv2d", out_channels=2, kernel_size=5, padding_mode="reflect")),
    S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, padding=5, padding_mode="reflect")),
    S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=7, padding="same", stride=2)),
    S(3, 5, 5, L("MaxPool2d", kernel_size=3, padding=2)),
    S(3, 5, 5, L("MaxPool2d", kernel_size=7)),
    S(3, 5, 5, L("MaxPool2d", kernel_size=3, dilation=3)),
    S(3, 5, 5, L("AvgPool2d", kernel_size=[2, 7], padding=[1, 0])),
]
"""One stack per kind of spatial failure whose message proposes fixes."""


FIXABLE = {"kernel", "too_small", "pad_mode", "pool_pad", "same_stride"}
_small_pair = st.one_of(st.integers(1, 9), st.lists(st.integers(1, 9), min_size=2, max_size=2))


@st.composite
def spatial_layer(draw):
    kind = draw(st.sampled_from(["Conv2d", "MaxPool2d", "AvgPool2d"]))
    params = {"kernel_size": draw(_small_pair)}
    if kind == "Conv2d":
        params["out_channels"] = 2
        params["padding"] = draw(st.one_of(st.integers(0, 4), st.lists(st.integers(0, 4), min_size=2, max_size=2),
                                           st.sampled_from(["same", "valid"])))
        params["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        params["stride"] = draw(st.sampled_from([1, 1, 2]))
    else:
        params["padding"] = draw(st.integers(0, 3))
        params["ceil_mode"] = draw(st.booleans())
        params["stride"] = draw(st.sampled_from([None, 1, 2, 3]))
    if kind != "AvgPool2d":
        params["dilation"] = draw(st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2)))
    return Layer(kind, params)
