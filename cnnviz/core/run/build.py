"""Stack → torch: the same ``nn.Sequential`` a person would write by hand.

Module ``i`` of the Sequential is layer ``i`` of the stack, so hooks, state-dict
keys (``"3.weight"``) and error messages line up with the sidebar's rows.
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


def build_model(stack: Stack, seed: int | None = None) -> nn.Sequential:
    """The stack as ``nn.Sequential``; weights initialised from ``seed`` when given."""
    report = check_buildable(stack)
    generator_state = None
    if seed is not None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    try:
        modules = [build_layer(r.type, _concrete(r)) for r in report.layers]
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
