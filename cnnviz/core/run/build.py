"""Stack → torch: the same ``nn.Sequential`` a person would write by hand.

Module ``i`` of the Sequential is layer ``i`` of the stack, so hooks, state-dict
keys (``"3.weight"``) and error messages line up with the sidebar's rows. A block
is a :class:`Residual` (``body`` and ``shortcut``, ``nn.Sequential`` each) or a
:class:`Concat` (``branches``, an ``nn.ModuleList`` of ``nn.Sequential``), so a
layer inside one has the state-dict keys SPEC §3.1 names (``"3.body.0.weight"``,
``"4.branches.1.0.bias"``): the module at a layer's path is
``model.get_submodule(str(path))``.
A stack with a shape error is refused before anything is built, with the
core's message. Imports torch; no Qt.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from cnnviz.core.model.layers import CATALOGUE, LOSSES, REQUIRED
from cnnviz.core.model.stack import Loss, Stack
from cnnviz.core.shapes import StackReport, infer


class StackInvalid(ValueError):
    """The stack cannot be built; the message is the core's sentence, with the layer named."""


def check_buildable(stack: Stack) -> StackReport:
    report = infer(stack)
    if report.problem:
        raise StackInvalid(report.problem)
    return report


def torch_kwargs(type_name: str, resolved: dict[str, Any]) -> dict[str, Any]:
    """Constructor keywords for torch: JSON pairs as tuples; keywords at torch's default left out,
    so that a keyword newer than the installed torch matters only when it is used."""
    spec = CATALOGUE.get(type_name) or LOSSES[type_name]
    out = {}
    for key, value in resolved.items():
        default = spec.param(key).default
        if default is not REQUIRED and value == default and type(value) is type(default):
            continue
        if isinstance(value, list):
            value = tuple(value)
        out[key] = value
    if type_name in LOSSES and out.get("weight") is not None:
        out["weight"] = torch.tensor(out["weight"], dtype=torch.float32)
    return out


def build_layer(type_name: str, resolved: dict[str, Any]) -> nn.Module:
    if type_name not in CATALOGUE:  # never build anything outside the catalogue
        raise StackInvalid(f"{type_name} is not in the layer catalogue")
    kwargs = torch_kwargs(type_name, resolved)
    cls = getattr(nn, type_name)
    accepted = inspect.signature(cls.__init__).parameters
    for key in kwargs:
        if key not in accepted:
            raise StackInvalid(f"{type_name}({key}=...) needs a newer torch than {torch.__version__}: "
                               f"leave {key} at its default")
    return cls(**kwargs)


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; an empty shortcut is the identity."""

    def __init__(self, body: list[nn.Module], shortcut: list[nn.Module]) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Concat(nn.Module):
    """``torch.cat([branch(x) for branch in branches], dim=1)``; an empty branch is the identity."""

    def __init__(self, branches: list[list[nn.Module]]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def _build(r) -> nn.Module:
    if r.type == "Residual":
        lists = dict(r.inner)
        return Residual([_build(x) for x in lists[("body",)]], [_build(x) for x in lists[("shortcut",)]])
    if r.type == "Concat":
        return Concat([[_build(x) for x in reports] for _key, reports in r.inner])
    return build_layer(r.type, _concrete(r))


def leaves(stack: Stack, model: nn.Module):
    """(path, layer, module) of every layer with no layers inside it, at every depth, in file order."""
    for path, layer in stack.walk():
        if not layer.is_block:
            yield path, layer, model.get_submodule(str(path))


def build_model(stack: Stack, seed: int | None = None) -> nn.Sequential:
    """The stack as ``nn.Sequential``; weights initialised from ``seed`` when given."""
    report = check_buildable(stack)
    generator_state = None
    if seed is not None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    try:
        modules = [_build(r) for r in report.layers]
    finally:
        if generator_state is not None:
            torch.random.set_rng_state(generator_state)
    return nn.Sequential(*modules)


def _concrete(r) -> dict[str, Any]:
    """Keywords with AdaptiveAvgPool2d's ``None`` sizes made explicit (the same for this input size,
    and constant for the ONNX exporter)."""
    if r.type == "AdaptiveAvgPool2d" and r.output_shape is not None:
        return {**r.resolved, "output_size": list(r.output_shape[1:])}
    return r.resolved


def build_loss(loss: Loss) -> nn.Module:
    spec = LOSSES.get(loss.type)
    if spec is None:
        raise StackInvalid(f"{loss.type} is not a supported loss")
    resolved = {p.name: loss.params.get(p.name, p.default) for p in spec.params}
    return getattr(nn, loss.type)(**torch_kwargs(loss.type, resolved))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
