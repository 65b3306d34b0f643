"""Shape inference through blocks (SPEC §3.1) against torch, layer by layer, at every depth.

Hypothesis draws stacks of spatial layers with Residual and Concat blocks (nested, identity and
projection shortcuts, empty branches, merges that break). A runner written here with plain ``torch.nn``
modules walks the same tree in torch's order (a Residual's body, then its shortcut; a Concat's branches
in order) and records every output shape, every parameter count and the first path that fails. cnnviz
must agree on all of them; a Residual whose body and shortcut differ counts as failing in torch too
(cnnviz does not rely on broadcasting, SPEC §3.1).
"""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import InputSpec, Layer, Stack, concat, residual
from cnnviz.core.run.build import build_model
from cnnviz.core.shapes import fmt_shape, infer
from tests.core.shapes.stacks import CI

torch = pytest.importorskip("torch")
nn = torch.nn


class Failed(Exception):
    def __init__(self, path: LayerPath, why: str) -> None:
        super().__init__(why)
        self.path = path


def torch_tree(layers, x, container=(), shapes=None, params=None):
    """Run ``layers`` on ``x`` with torch; fills ``shapes``/``params`` by path; raises Failed at the first."""
    for i, layer in enumerate(layers):
        path = LayerPath(*container, i)
        if layer.type == "Residual":
            body = torch_tree(layer.body, x, (*path, "body"), shapes, params)
            short = torch_tree(layer.shortcut, x, (*path, "shortcut"), shapes, params)
            if body.shape != short.shape:
                raise Failed(path, f"body {tuple(body.shape)} vs shortcut {tuple(short.shape)}")
            x = body + short
            params[str(path)] = sum(params[str(p)] for p in _inside(layer, path))
        elif layer.type == "Concat":
            outs = [torch_tree(b, x, (*path, "branches", k), shapes, params) for k, b in enumerate(layer.branches)]
            try:
                x = torch.cat(outs, dim=1)
            except RuntimeError as exc:
                raise Failed(path, str(exc)) from None
            params[str(path)] = sum(params[str(p)] for p in _inside(layer, path))
        else:
            kwargs = dict(layer.params)
            if layer.type == "Conv2d":
                kwargs["in_channels"] = x.shape[1]
            if layer.type == "BatchNorm2d":
                kwargs["num_features"] = x.shape[1]
            if layer.type == "Linear":
                kwargs["in_features"] = x.shape[-1]
            try:
                module = getattr(nn, layer.type)(**{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in kwargs.items()})
                x = module(x)
            except Exception as exc:  # noqa: BLE001 - any torch failure is the answer
                raise Failed(path, f"{type(exc).__name__}: {exc}") from None
            params[str(path)] = sum(p.numel() for p in module.parameters())
        shapes[str(path)] = tuple(x.shape[1:])
    return x


def _inside(layer, path):
    """The paths of the layers directly in ``layer``'s lists."""
    for key, layers in layer.lists():
        for j in range(len(layers)):
            yield path.child(key, j)


CHANNELS = st.sampled_from([2, 3, 4])


@st.composite
def plain(draw):
    kind = draw(st.sampled_from(["Conv2d", "Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d"]))
    if kind == "Conv2d":
        return Layer(kind, {"out_channels": draw(CHANNELS), "kernel_size": draw(st.sampled_from([1, 3, 5])),
                            "stride": draw(st.sampled_from([1, 1, 2])), "padding": draw(st.sampled_from([0, 1, 2]))})
    if kind == "MaxPool2d":
        return Layer(kind, {"kernel_size": draw(st.sampled_from([2, 3]))})
    return Layer(kind)


def layer_lists(depth):
    item = plain() if depth >= 3 else st.one_of(plain(), plain(), block(depth + 1))
    return st.lists(item, min_size=0, max_size=3)


@st.composite
def block(draw, depth=1):
    if draw(st.booleans()):
        body = draw(layer_lists(depth))
        shortcut = draw(st.one_of(st.just([]), st.lists(plain(), min_size=1, max_size=1)))
        return residual(body, shortcut)
    return concat(*draw(st.lists(layer_lists(depth), min_size=1, max_size=3)))


@st.composite
def block_stacks(draw):
    layers = draw(st.lists(st.one_of(plain(), block()), min_size=1, max_size=4))
    c, hw = draw(CHANNELS), draw(st.sampled_from([4, 6, 8]))
    return Stack("drawn", InputSpec(c, hw, hw), tuple(layers))


def compare(stack: Stack) -> str | None:
    report = infer(stack)
    shapes, params = {}, {}
    failed = None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch_tree(stack.layers, torch.zeros(2, *stack.input.shape), (), shapes, params)
        except Failed as f:
            failed = f
    bad = report.first_error
    ours = (bad.inner_error or bad).path if bad is not None else None
    theirs = failed.path if failed is not None else None
    if ours != theirs:
        return f"first failure: cnnviz {ours} ({bad.error if bad else ''}), torch {theirs} ({failed})"
    for r in report.walk():
        key = str(r.path)
        if key in shapes and (r.output_shape != shapes[key] or r.params != params[key]):
            return (f"{key} {r.type}: cnnviz {fmt_shape(r.output_shape)} with {r.params} params, torch "
                    f"{fmt_shape(shapes[key])} with {params[key]} params")
        if key not in shapes and r.output_shape is not None and bad is None:
            return f"{key} {r.type}: cnnviz gives {fmt_shape(r.output_shape)} where torch never got"
    if bad is None and report.total_params != sum(params[str(LayerPath(i))] for i in range(len(stack.layers))):
        return "total parameters differ"
    return None


@CI
@given(block_stacks())
def test_blocks_agree_with_torch_at_every_depth(stack):
    problem = compare(stack)
    assert problem is None, f"{problem}\n{stack.key()}"


def test_the_drawn_stacks_cover_what_matters():
    """The strategy reaches nesting, both kinds of shortcut, empty branches and broken merges."""
    from hypothesis import find

    find(block_stacks(), lambda s: any(p.depth >= 2 for p, _ in s.walk()), settings=CI)
    find(block_stacks(), lambda s: any(x.type == "Residual" and x.shortcut for _p, x in s.walk())
         and any(x.type == "Residual" and not x.shortcut for _p, x in s.walk()), settings=CI)
    find(block_stacks(), lambda s: any(x.type == "Concat" and () in x.branches for _p, x in s.walk()), settings=CI)
    find(block_stacks(), lambda s: (infer(s).first_error is not None
                                    and infer(s).first_error.error_code in ("residual", "merge")), settings=CI)
    find(block_stacks(), lambda s: infer(s).ok and s.has_blocks, settings=CI)


def test_the_built_model_runs_every_valid_drawn_stack_as_torch_does():
    """build_model's Residual and Concat give what the runner above gives, for one fixed example."""
    conv = Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1})
    stack = Stack("b", InputSpec(2, 8, 8), (
        residual([conv, Layer("BatchNorm2d"), Layer("ReLU")],
                 [Layer("Conv2d", {"out_channels": 4, "kernel_size": 1})]),
        concat([conv.copy()], [], [Layer("MaxPool2d", {"kernel_size": 3, "stride": 1, "padding": 1})])))
    model = build_model(stack, seed=0).eval()
    x = torch.randn(3, 2, 8, 8)
    block0 = model[0]
    expected0 = block0.body(x) + block0.shortcut(x)
    expected = torch.cat([model[1].branches[0](expected0), expected0, model[1].branches[2](expected0)], dim=1)
    torch.testing.assert_close(model(x), expected)
    assert tuple(model(x).shape[1:]) == infer(stack).output_shape == (4 + 4 + 4, 8, 8)
    assert sum(p.numel() for p in model.parameters()) == infer(stack).total_params
    assert "0.shortcut.0.weight" in model.state_dict() and "1.branches.0.0.bias" in model.state_dict()
