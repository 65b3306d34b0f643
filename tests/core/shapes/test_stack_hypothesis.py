"""Random stacks, valid and invalid, against real torch.

Hypothesis draws sequences of catalogue layers with small keyword values
(inside the validation ranges) and small inputs; each stack runs through
``torch.nn`` modules built from its keywords on a real batch of 2. The first
layer torch cannot run must be cnnviz's first error (cnnviz may stop earlier
only with a code in ``shapes.STRICTER``); where both run, shapes and parameter
counts are equal. The runs are derandomised so CI is reproducible.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnviz.core.model.layers import (
    BOOL,
    CATALOGUE,
    CHOICE,
    FLOAT,
    INT,
    OPT_FLOAT,
    OPT_INT,
    OPT_PAIR,
    PADDING,
    PAIR,
    SIZE,
)
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import infer

pytest.importorskip("torch")

CI = settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Small values per keyword, all inside the catalogue's ranges.
_INTS = {
    "in_channels": st.integers(1, 6), "out_channels": st.integers(1, 6), "groups": st.integers(1, 3),
    "num_features": st.integers(1, 6), "in_features": st.integers(1, 64), "out_features": st.integers(1, 8),
    "start_dim": st.integers(-4, 3), "end_dim": st.integers(-4, 3), "dim": st.integers(-4, 3),
    "divisor_override": st.integers(1, 9),
}
_PAIR_RANGE = {"kernel_size": (1, 4), "stride": (1, 3), "padding": (0, 2), "dilation": (1, 3)}


def _pair(name: str):
    lo, hi = _PAIR_RANGE[name]
    one = st.integers(lo, hi)
    return st.one_of(one, st.lists(one, min_size=2, max_size=2))


def value_for(p):
    """A small valid value for keyword ``p``."""
    if p.kind == INT:
        return _INTS[p.name]
    if p.kind == OPT_INT:
        return st.one_of(st.none(), _INTS[p.name])
    if p.kind == BOOL:
        if p.name == "return_indices":
            return st.sampled_from([False] * 9 + [True])
        return st.booleans()
    if p.kind == CHOICE:
        return st.sampled_from(p.choices)
    if p.kind == FLOAT:
        lo = p.min if p.min_inclusive else 1e-6
        return st.floats(max(lo, -2.0), min(p.max, 2.0), allow_nan=False)
    if p.kind == OPT_FLOAT:
        return st.one_of(st.none(), st.floats(p.min, p.max, allow_nan=False))
    if p.kind == PAIR:
        return _pair(p.name)
    if p.kind == OPT_PAIR:
        return st.one_of(st.none(), _pair(p.name))
    if p.kind == PADDING:
        return st.one_of(_pair(p.name), st.sampled_from(["same", "valid"]))
    if p.kind == SIZE:
        one = st.integers(1, 5)
        return st.one_of(one, st.lists(st.one_of(st.none(), one), min_size=2, max_size=2))
    raise AssertionError(p.kind)


@st.composite
def layers(draw, types=tuple(CATALOGUE)):
    spec = CATALOGUE[draw(st.sampled_from(types))]
    params = {}
    for p in spec.params:
        # required keywords always; inferred ones rarely (so they mostly fit); the rest half the time
        if p.required or draw(st.floats(0, 1)) < (0.1 if p.inferred else 0.5):
            params[p.name] = draw(value_for(p))
    return Layer(spec.type, params)


@st.composite
def stacks(draw, types=tuple(CATALOGUE), max_layers=6, max_size=12):
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    return Stack(input=InputSpec(c, h, w), layers=tuple(draw(st.lists(layers(types), min_size=1,
                                                                     max_size=max_layers))))


SPATIAL = ("Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "ReLU", "Dropout2d")
HEAD = ("Conv2d", "BatchNorm2d", "Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout")
"""A classifier head's layers: flat vectors, where BatchNorm1d works, are reached often."""


@CI
@given(stacks())
def test_random_stacks_match_torch(torch_reference, stack):
    why = torch_reference.mismatch(stack)
    assert why is None, f"{torch_reference.describe(stack)}\n{why}"


@CI
@given(stacks(types=SPATIAL, max_layers=8, max_size=32))
def test_random_conv_stacks_match_torch(torch_reference, stack):
    """Mostly-valid deep spatial stacks, so the comparison reaches far into them."""
    why = torch_reference.mismatch(stack)
    assert why is None, f"{torch_reference.describe(stack)}\n{why}"


@CI
@given(stacks(types=HEAD, max_layers=6, max_size=6))
def test_random_head_stacks_match_torch(torch_reference, stack):
    """Flatten, Linear and BatchNorm1d mixed with maps, so BatchNorm1d meets flat vectors, rows and maps."""
    why = torch_reference.mismatch(stack)
    assert why is None, f"{torch_reference.describe(stack)}\n{why}"


@CI
@given(stacks())
def test_report_invariants(stack):
    """One report per layer; after the first error nothing is reachable or has a shape."""
    report = infer(stack)
    assert len(report.layers) == len(stack.layers)
    bad = report.first_error
    for r in report.layers:
        if bad is None or r.index < bad.index:
            assert r.reachable and r.error is None and r.output_shape is not None
        elif r.index == bad.index:
            assert r.reachable and r.output_shape is None and r.error
            assert r.error[0].isalpha() and "{" not in r.error and "None" not in r.error, r.error
        else:
            assert not r.reachable and r.output_shape is None and r.error is None
    assert report.ok == (bad is None and report.loss.error is None)
    assert report.output_shape == (None if bad else report.layers[-1].output_shape)
    assert report.total_params == sum(r.params for r in report.layers)


@CI
@given(stacks())
def test_inference_is_a_pure_function_of_the_stack(stack):
    """Equal stacks (rebuilt from scratch) get equal reports: the cache keys on content only."""
    again = Stack(input=InputSpec(*stack.input.shape),
                  layers=tuple(Layer(l.type, dict(l.params), l.name) for l in stack.layers))
    assert again == stack and hash(again) == hash(stack)
    assert infer(again) == infer(stack)


# Names, labels and descriptions as a hostile file would write them: any text the reader accepts.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def named_stacks(draw):
    """Valid-looking stacks with arbitrary names, labels and descriptions, kept to what the reader accepts."""
    from cnnviz.core.model import files

    stack = draw(stacks(types=SPATIAL + ("Flatten", "Linear", "Softmax", "LogSoftmax", "Dropout", "GELU"),
                        max_layers=6, max_size=12))
    labelled = tuple(Layer(l.type, dict(l.params), draw(st.one_of(st.none(), _TEXT.filter(bool))))
                     for l in stack.layers)
    named = Stack(name=draw(_TEXT.filter(bool)), input=stack.input, layers=labelled,
                  description=draw(_TEXT))
    return files.loads(files.dumps(named))  # only what the reader accepts


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(named_stacks(), st.sampled_from(["module", "functional"]))
def test_every_stack_the_reader_accepts_exports_to_python_that_parses_and_runs(stack, style):
    """Any valid stack of at most 1 M parameters, whatever its text, exports to code that ``ast.parse``
    accepts and that builds a model of the stack's shape and parameter count."""
    import ast

    import torch

    from cnnviz.core import export

    report = infer(stack)
    assume(report.ok and report.total_params <= 1_000_000)
    code = export.to_python(stack, style)
    ast.parse(code)
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "<exported>", "exec"), namespace)  # noqa: S102  (the generator's own output)
    model = namespace["build_model"]()
    assert sum(p.numel() for p in model.parameters()) == report.total_params
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, *stack.input.shape))
    assert tuple(out.shape[1:]) == report.output_shape
