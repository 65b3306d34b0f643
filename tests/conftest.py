"""Shared test helpers.

``torch_reference`` runs a stack through real ``torch.nn`` modules, built
straight from each layer's keywords (not through cnnviz's own builder), so
tests can hold the shape engine to what torch actually does.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import pytest


def pytest_addoption(parser):
    parser.addoption("--overwrite-golden", action="store_true", default=False,
                     help="rewrite the golden outputs (tests/cli/golden) from what cnnviz prints now; review the "
                          "diff before committing")


@pytest.fixture
def overwrite_golden(request) -> bool:
    """``--overwrite-golden`` was given: golden files are written, not compared (torchinfo's ``--overwrite``)."""
    return bool(request.config.getoption("--overwrite-golden"))


@dataclass
class TorchRun:
    """What torch did with a stack: per-layer output shapes (batch left out) and parameter counts.

    ``fail_index`` is the first layer torch could not build or run (None if all ran);
    ``fail_message`` its exception text.
    """

    shapes: list[tuple[int, ...]]
    params: list[int]
    fail_index: int | None = None
    fail_message: str = ""


def torch_layer(layer, in_shape: tuple[int, ...]):
    """``getattr(torch.nn, type)(**keywords)``, inferred counts filled from the batched input shape."""
    import torch.nn as nn

    from cnnviz.core.model.layers import CATALOGUE, resolved_params

    kwargs = resolved_params(CATALOGUE[layer.type], layer.params)
    for key in ("in_channels", "num_features"):
        if key in kwargs and kwargs[key] is None:
            kwargs[key] = in_shape[1]
    if "in_features" in kwargs and kwargs["in_features"] is None:
        kwargs["in_features"] = in_shape[-1]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return getattr(nn, layer.type)(**kwargs)


@contextmanager
def _one_thread():
    """Tiny tensors: thread start-up costs more than the work, and far more on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """Small models on a shared machine: OpenMP threads only spin against each other.

    Modules that train use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    with _one_thread():
        yield


def run_torch(stack, batch: int = 2) -> TorchRun:
    """Build and run every layer of ``stack`` on ``torch.zeros(batch, C, H, W)``, stopping at the first failure."""
    import torch

    x = torch.zeros(batch, *stack.input.shape)
    run = TorchRun([], [])
    with warnings.catch_warnings(), torch.no_grad(), _one_thread():
        warnings.simplefilter("ignore")
        for i, layer in enumerate(stack.layers):
            try:
                module = torch_layer(layer, tuple(x.shape))
                x = module(x)
                if not isinstance(x, torch.Tensor):
                    raise TypeError(f"{layer.type} returned {type(x).__name__}, not a tensor")
            except Exception as exc:  # noqa: BLE001 - any torch failure is the answer
                run.fail_index, run.fail_message = i, f"{type(exc).__name__}: {exc}"
                return run
            run.shapes.append(tuple(x.shape[1:]))
            run.params.append(sum(p.numel() for p in module.parameters()))
    return run


def torch_mismatch(stack) -> str | None:
    """None if cnnviz's report agrees with torch on ``stack``; else what differs.

    Agreement: the first layer torch fails at is cnnviz's first error (cnnviz
    may fail earlier, never later, where its error code is in
    ``shapes.STRICTER``), and every layer both run has the same output shape
    and parameter count.
    """
    from cnnviz.core.shapes import STRICTER, fmt_shape, infer

    report = infer(stack)
    run = run_torch(stack)
    bad = report.first_error
    ours = bad.index if bad is not None else None
    theirs = run.fail_index
    for i in range(min(x for x in (ours, theirs, len(stack.layers)) if x is not None)):
        r = report.layers[i]
        if r.output_shape != run.shapes[i] or r.params != run.params[i]:
            return (f"layer {i} {r.type}: cnnviz {fmt_shape(r.output_shape)} with {r.params} params, "
                    f"torch {fmt_shape(run.shapes[i])} with {run.params[i]} params")
    if ours == theirs:
        return None
    if bad is not None and bad.error_code in STRICTER and (theirs is None or theirs >= ours):
        return None
    said = f"cnnviz fails at {ours} [{bad.error_code}] {bad.error!r}" if bad else "cnnviz: no error"
    did = f"torch fails at {theirs}: {run.fail_message[:300]}" if theirs is not None else "torch runs it all"
    return f"{said}; {did}"


def describe(stack) -> str:
    """A stack in one line, for failure lists."""
    layers = ", ".join(f"{l.type}({', '.join(f'{k}={v!r}' for k, v in l.params.items())})" for l in stack.layers)
    return f"input {stack.input.channels}×{stack.input.height}×{stack.input.width}: {layers}"


@pytest.fixture(scope="session")
def torch_reference():
    """The helpers above (``.mismatch``, ``.run``, ``.layer``, ``.describe``, ``.one_thread``); skipped without
    torch."""
    pytest.importorskip("torch")
    return SimpleNamespace(mismatch=torch_mismatch, run=run_torch, layer=torch_layer, describe=describe,
                           one_thread=_one_thread)
