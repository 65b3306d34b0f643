"""The per-layer summary: a torchinfo-like table and SPEC's ``summary --json`` object.

No torch, no Qt: ``cnnviz summary`` answers in a fraction of a second.
"""
from __future__ import annotations

from typing import Any

from cnnviz.core.model.stack import Stack
from cnnviz.core.model.text import one_line
from cnnviz.core.model.units import format_bytes, format_si
from cnnviz.core.shapes.inference import LayerReport, StackReport, fmt_shape, infer

FORMAT = "cnnviz.summary"
VERSION = 1


def _rf_dict(r: LayerReport) -> dict[str, Any] | None:
    rf = r.receptive_field
    if rf is None or r.output_shape is None:
        return None
    return {"size": list(rf.size), "jump": [_num(j) for j in rf.jump], "start": [_num(s) for s in rf.start]}


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _entry(r: LayerReport) -> dict[str, Any]:
    """One layer's object; a block's holds its lists (``body``/``shortcut`` or ``branches``) of the same."""
    entry = {
        "index": r.index,
        "path": str(r.path),
        "type": r.type,
        "output_shape": list(r.output_shape) if r.output_shape is not None else None,
        "params": r.params,
        "error": r.error,
        "warnings": list(r.warnings),
        "name": r.label if r.label != r.type else None,
        "input_shape": list(r.input_shape) if r.input_shape is not None else None,
        "reachable": r.reachable,
        "macs": r.macs,
        "activation_elements": r.activation_elements,
        "receptive_field": _rf_dict(r),
        "formula": list(r.formula),
    }
    if r.type == "Residual":
        lists = dict(r.inner)
        entry["body"] = [_entry(x) for x in lists.get(("body",), ())]
        entry["shortcut"] = [_entry(x) for x in lists.get(("shortcut",), ())]
    elif r.type == "Concat":
        entry["branches"] = [[_entry(x) for x in reports] for _key, reports in r.inner]
    return entry


def to_json(stack: Stack, report: StackReport | None = None) -> dict[str, Any]:
    """SPEC §2's summary object, with extra keys (MACs, receptive field, loss) after the contract's."""
    report = report or infer(stack)
    layers = [_entry(r) for r in report.layers]
    out_shape = report.output_shape
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": stack.name,
        "input_shape": list(report.input_shape),
        "ok": report.ok,
        "layers": layers,
        "total_params": report.total_params,
        "trainable_params": report.trainable_params,
        "total_macs": report.total_macs,
        "output_shape": list(out_shape) if out_shape is not None else None,
        "loss": {"type": report.loss.type, "error": report.loss.error, "warnings": list(report.loss.warnings)},
    }


def to_text(stack: Stack, report: StackReport | None = None, width: int = 96) -> str:
    """A table like torchinfo's, with each layer's error and warnings inline under its row."""
    report = report or infer(stack)
    rule = "=" * width
    head = f"{'#':>3}  {'Layer (type)':<30} {'Output shape':<16} {'Param #':>11} {'MACs':>13} {'RF':>8}"
    lines = [f"{one_line(stack.name)}: input {fmt_shape(report.input_shape)}, loss {report.loss.type}", rule, head, rule]
    rows = list(report.walk())
    col = max([3] + [len(str(r.path)) for r in rows])
    if col > 3:
        head = f"{'#':>{col}}  {'Layer (type)':<30} {'Output shape':<16} {'Param #':>11} {'MACs':>13} {'RF':>8}"
        lines[2] = head
    for r in rows:
        depth = r.path.depth
        name = r.type if r.label == r.type else f"{one_line(r.label)} ({r.type})"
        name = "  " * depth + name
        if len(name) > 30:
            name = name[:29] + "…"
        if not r.reachable:
            shape = "not reachable"
        elif r.output_shape is None:
            shape = "ERROR"
        else:
            shape = fmt_shape(r.output_shape)
        rf = r.receptive_field
        rf_text = f"{rf.size[0]}×{rf.size[1]}" if rf is not None and r.output_shape is not None else ""
        params = f"{r.params:,}" if r.output_shape is not None else ""
        macs = f"{r.macs:,}" if r.output_shape is not None else ""
        where = str(r.path) if col > 3 else str(r.index)
        lines.append(f"{where:>{col}}  {name:<30} {shape:<16} {params:>11} {macs:>13} {rf_text:>8}")
        if r.error and not (r.is_block and r.error_code == "inner"):
            lines.extend(_indent("✗ " + r.error, width, 5 + 2 * depth))
        elif r.error:
            lines.extend(_indent(f"✗ {r.inner_error.path.words()} cannot work (below)", width, 5 + 2 * depth))
        for w in r.warnings:
            lines.extend(_indent("⚠ " + w, width, 5 + 2 * depth))
    lines.append(rule)
    if report.loss.error:
        lines.extend(_indent(f"✗ loss {report.loss.type}: {report.loss.error}", width, 0))
    for w in report.loss.warnings:
        lines.extend(_indent(f"⚠ loss {report.loss.type}: {w}", width, 0))
    total_act = sum(r.activation_elements for r in report.walk())
    lines += [
        f"Total params: {report.total_params:,}",
        f"Trainable params: {report.trainable_params:,}",
        f"MACs per sample: {report.total_macs:,} ({format_si(report.total_macs)})",
        f"Input size per sample: {format_bytes(4 * report.input_shape[0] * report.input_shape[1] * report.input_shape[2])}",
        f"Activations per sample (forward): {format_bytes(4 * total_act)}",
        f"Parameters size: {format_bytes(4 * report.total_params)}",
    ]
    bad = report.first_error
    if bad is not None:
        inner = bad.inner_error
        where = f"{inner.path.words()} ({inner.label})" if inner is not None else f"layer {bad.index} ({bad.label})"
        lines.append(f"INVALID: {where} cannot work; layers after it are not reachable")
    elif report.loss.error:
        lines.append("INVALID: the loss cannot take this stack's output")
    else:
        lines.append(f"OK: output {fmt_shape(report.output_shape)}")
    lines.append(rule)
    return "\n".join(lines) + "\n"


def _indent(text: str, width: int, indent: int = 5) -> list[str]:
    pad = " " * indent
    out, line = [], pad
    for word in text.split():
        if len(line) + len(word) + 1 > width and line.strip():
            out.append(line.rstrip())
            line = pad + "  "
        line += word + " "
    if line.strip():
        out.append(line.rstrip())
    return out
