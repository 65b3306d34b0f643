"""Text for the sidebar's rows and panels, from a layer and its shape report. No Qt."""
from __future__ import annotations

import enum
from typing import Any

from cnnviz.core.model.layers import CATALOGUE, as_pair, resolved_params
from cnnviz.core.model.stack import Layer
from cnnviz.core.shapes import LayerReport, fmt_shape


class Status(str, enum.Enum):
    """How a row of the stack stands: it works, it warns, it fails, or an earlier layer fails."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    UNREACHABLE = "unreachable"


OK, WARNING, ERROR, UNREACHABLE = Status.OK, Status.WARNING, Status.ERROR, Status.UNREACHABLE


def pair_text(value: Any) -> str:
    """5 -> "5"; [3, 5] -> "3×5"; [4, 4] -> "4"; None inside a pair -> "·"."""
    a, b = as_pair(value)
    a_s = "·" if a is None else str(a)
    b_s = "·" if b is None else str(b)
    return a_s if a_s == b_s else f"{a_s}×{b_s}"


def _is(value: Any, default: Any) -> bool:
    return value == default or (isinstance(value, (list, tuple)) and all(v == default for v in value))


def param_summary(layer: Layer, report: LayerReport | None = None) -> str:
    """The few keywords that say what a layer does: "6, k5, p2", "k2 ceil", "p=0.5"."""
    spec = CATALOGUE.get(layer.type)
    if spec is None:
        return ""
    p = dict(report.resolved) if report is not None and report.resolved else resolved_params(spec, layer.params)
    p = {k: ("?" if v is None and spec.param(k).required else v) for k, v in p.items()}
    t = layer.type
    parts: list[str] = []
    if t == "Conv2d":
        parts.append(str(p["out_channels"]))
        parts.append(f"k{pair_text(p['kernel_size'])}")
        if not _is(p["stride"], 1):
            parts.append(f"s{pair_text(p['stride'])}")
        pad = p["padding"]
        if isinstance(pad, str):
            parts.append(pad)
        elif not _is(pad, 0):
            parts.append(f"p{pair_text(pad)}")
        if not _is(p["dilation"], 1):
            parts.append(f"d{pair_text(p['dilation'])}")
        if p["groups"] != 1:
            parts.append(f"g{p['groups']}")
        if p["padding_mode"] != "zeros":
            parts.append(p["padding_mode"])
        if p["bias"] is False:
            parts.append("no bias")
    elif t in ("MaxPool2d", "AvgPool2d"):
        parts.append(f"k{pair_text(p['kernel_size'])}")
        if p.get("stride") is not None:
            parts.append(f"s{pair_text(p['stride'])}")
        if not _is(p["padding"], 0):
            parts.append(f"p{pair_text(p['padding'])}")
        if "dilation" in p and not _is(p["dilation"], 1):
            parts.append(f"d{pair_text(p['dilation'])}")
        if p["ceil_mode"]:
            parts.append("ceil")
        if p.get("return_indices"):
            parts.append("indices")
        if t == "AvgPool2d" and p.get("divisor_override") is not None:
            parts.append(f"÷{p['divisor_override']}")
    elif t == "AdaptiveAvgPool2d":
        parts.append(f"to {pair_text(p['output_size'])}")
    elif t in ("BatchNorm2d", "BatchNorm1d"):
        if p.get("num_features") is not None:
            parts.append(str(p["num_features"]))
        if not p["affine"]:
            parts.append("no affine")
    elif t == "LeakyReLU":
        parts.append(f"{p['negative_slope']:g}")
    elif t == "ELU":
        parts.append(f"α={p['alpha']:g}")
    elif t == "GELU":
        if p["approximate"] != "none":
            parts.append(p["approximate"])
    elif t in ("Dropout", "Dropout2d"):
        parts.append(f"p={p['p']:g}")
    elif t == "Flatten":
        if p["start_dim"] != 1 or p["end_dim"] != -1:
            parts.append(f"dims {p['start_dim']}..{p['end_dim']}")
    elif t == "Linear":
        parts.append(str(p["out_features"]))
        if p["bias"] is False:
            parts.append("no bias")
    elif t in ("Softmax", "LogSoftmax"):
        dim = layer.params.get("dim")
        parts.append("dim unset" if dim is None else f"dim={dim}")
    return ", ".join(parts)


def status(report: LayerReport | None) -> str:
    if report is None or not report.reachable:
        return UNREACHABLE
    if report.error:
        return ERROR
    if report.warnings:
        return WARNING
    return OK


def shape_flow(report: LayerReport | None) -> str:
    """"1×28×28 → 6×28×28", or what stands in for it on a failing or unreachable row."""
    if report is None or not report.reachable:
        return "not reachable"
    if report.error:
        return f"{fmt_shape(report.input_shape)} → ✗"
    return f"{fmt_shape(report.input_shape)} → {fmt_shape(report.output_shape)}"


