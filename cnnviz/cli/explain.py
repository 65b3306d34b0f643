"""``cnnviz explain FILE --layer PATH --at C,Y,X [--data NAME] [--sample N] [--weights W] [--json]`` (SPEC §3.3).

The arithmetic of one output element of a Conv2d, MaxPool2d, AvgPool2d or Linear
layer on a real sample: a table with one row per tap (channel, y, x, input,
weight, product), then the sum, the bias, the value and what torch's own forward
pass gave; or SPEC's ``cnnviz.explain`` object with ``--json``.

Exit status: 0 explained; 1 the stack is invalid (the summary is printed first);
2 the file cannot be read, or the command line names a layer without arithmetic,
an element outside the output, a sample outside the data set, an unknown data
set or unusable weights. The path and coordinate are checked before torch is
imported. No Qt.
"""
from __future__ import annotations

import json
import math
from typing import TextIO

from cnnviz.cli.exits import Exit, UsageError
from cnnviz.cli.output import write
from cnnviz.cli.summary import load_stack
from cnnviz.core.model.text import one_line

AGREE = 1e-5
"""Relative to the size of the terms: torch's float32 sum and cnnviz's float64 sum agree within this."""


def cmd_explain(args, out: TextIO, err: TextIO) -> int:
    from cnnviz.cli.train import EXIT_FOR_KIND
    from cnnviz.core import shapes
    from cnnviz.core.lab import taps
    from cnnviz.core.shapes import summary

    stack = load_stack(args.file)
    report = shapes.infer(stack)
    if not report.ok:
        write(summary.to_text(stack, report), err)
        bad = report.first_error
        where = f"layer {bad.index} ({one_line(bad.label)})" if bad else "the loss"
        write(f"cnnviz explain: nothing explained: {where} cannot work (see above)\n", err)
        return Exit.INVALID
    try:
        taps.locate(stack, report, args.layer, args.at)  # before torch: a wrong path costs nothing
    except taps.LabError as exc:
        raise UsageError(str(exc)) from None

    try:
        from cnnviz.core.lab import explain as lab
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        write("cnnviz explain: running the sample needs PyTorch, which is not installed: pip install torch\n", err)
        return Exit.USAGE
    from cnnviz.core.run.faults import EngineError

    try:
        result = lab.explain(stack, args.layer, args.at, data=args.data, sample=args.sample, weights=args.weights)
    except EngineError as exc:
        write(f"cnnviz explain: {one_line(str(exc))}\n", err)
        return EXIT_FOR_KIND.get(exc.kind, Exit.USAGE)
    for note in result.notes:
        write(f"cnnviz explain: note: {one_line(note)}\n", err)
    if args.json:
        write(json.dumps(result.to_json(), ensure_ascii=False, allow_nan=False) + "\n", out, json_text=True)
    else:
        write(to_text(stack, result), out)
    return Exit.OK


def _n(value: float | None) -> str:
    if value is None:
        return "-inf"
    if value == 0:
        return "0"  # no "-0.000000" in a handout
    return f"{value:.6f}" if abs(value) < 1e6 else f"{value:.6g}"


def _table(head: list[str], rows: list[list[str]], marks: list[str]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths))

    out = [line(head), "  " + "  ".join("-" * w for w in widths)]
    out += [(line(r) + (f"  {m}" if m else "")).rstrip() for r, m in zip(rows, marks)]
    return out


def _geometry(target, arithmetic) -> str | None:
    from cnnviz.core.lab import taps

    if target.type not in taps.SPATIAL:
        return None
    win = taps.window_of(target.type, target.resolved, target.input_shape)
    p = win.padding
    pad = (f"padding {p['top']}" if len(set(p.values())) == 1 else
           f"padding top {p['top']}, bottom {p['bottom']}, left {p['left']}, right {p['right']}")
    parts = [f"kernel {win.kernel[0]}×{win.kernel[1]}", f"stride {_pair(win.stride)}", pad]
    if target.type != "AvgPool2d":
        parts.append(f"dilation {_pair(win.dilation)}")
    if target.type == "Conv2d":
        chans = win.in_channels_of(arithmetic.at[0])
        feed = f"input channel {chans[0]}" if len(chans) == 1 else f"input channels {chans[0]}..{chans[-1]}"
        parts += [f"padding_mode {win.padding_mode}", f"groups {win.groups} ({feed})"]
    if target.type in ("MaxPool2d", "AvgPool2d") and win.ceil_mode:
        parts.append("ceil_mode")
    return ", ".join(parts)


def _pair(value: tuple[int, int]) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}×{value[1]}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def to_text(stack, result) -> str:
    """The explanation as a table a teacher can paste into a handout."""
    t, a = result.target, result.arithmetic
    shape = ("×".join(str(v) for v in t.output_shape) + " output" if len(t.output_shape) != 1
             else f"{t.output_shape[0]}-feature output")
    label = t.type if t.label == t.type else f"{one_line(t.label)}, {t.type}"
    lines = [(f"{one_line(stack.name)}: layer {t.path} ({label}), element [{', '.join(str(v) for v in a.at)}] of "
              f"its {shape}"),
             (f"input: sample {result.sample} of the {result.data} held-out split (class {one_line(result.label)}), "
              f"as layer {t.path} receives it ({'×'.join(str(v) for v in t.input_shape)})"),
             "weights: " + (f"from {one_line(result.weights)}" if result.weights
                            else "initialised from the stack's seed")]
    geometry = _geometry(t, a)
    if geometry:
        lines.append(geometry)
    lines.append("")
    marks = ["(padding)" if tap.padding else "" for tap in a.taps]
    if a.type == "Linear":
        spatial = any(tap.channel is not None for tap in a.taps)
        head = ["index"] + (["channel", "y", "x"] if spatial else []) + ["input", "weight", "product"]
        rows = [[str(tap.index)] + ([str(tap.channel), str(tap.y), str(tap.x)] if spatial else [])
                + [_n(tap.input), _n(tap.weight), _n(tap.product)] for tap in a.taps]
        marks = [""] * len(rows)
    elif a.type == "Conv2d":
        head = ["channel", "y", "x", "input", "weight", "product"]
        rows = [[str(tap.channel), str(tap.y), str(tap.x), _n(tap.input), _n(tap.weight), _n(tap.product)]
                for tap in a.taps]
    else:
        head = ["channel", "y", "x", "input"]
        rows = [[str(tap.channel), str(tap.y), str(tap.x), _n(tap.input)] for tap in a.taps]
        if a.type == "MaxPool2d" and a.argmax is not None:
            marks[a.argmax] = (marks[a.argmax] + " ← max").strip()
    lines += _table(head, rows, marks)
    lines.append("")
    summary: list[tuple[str, str]] = []
    if a.type in ("Conv2d", "Linear"):
        summary.append((f"sum of {_count(len(a.taps), 'product')}", _n(a.total)))
        summary.append(("bias", _n(a.bias) if a.has_bias else "none (bias=false)"))
        summary.append(("value = sum + bias", _n(a.value)))
    elif a.type == "AvgPool2d":
        summary.append((f"sum of {_count(len(a.taps), 'input')}", _n(a.total)))
        summary.append(("divisor", f"{a.divisor}{_divisor_note(t, a)}"))
        summary.append(("value = sum / divisor", _n(a.value)))
    elif a.argmax is None:  # a dilated window over padding only
        summary.append((f"max of {_count(len(a.taps), 'input')}", "-inf (the window covers padding only)"))
        summary.append(("at", f"no input pixel (return_indices gives {a.return_index})"))
    else:
        chosen = a.taps[a.argmax]
        summary.append((f"max of {_count(len(a.taps), 'input')}", _n(a.value)))
        where = f"channel {chosen.channel}, y {chosen.y}, x {chosen.x}"
        summary.append(("at", f"{where} (return_indices gives {a.return_index})"))
    summary.append(("torch's value", _n(result.torch_value)))
    summary.append(("difference", _difference(result)))
    width = max(len(k) for k, _ in summary)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in summary]
    return "\n".join(lines) + "\n"


def _divisor_note(target, a) -> str:
    p = target.resolved
    if p.get("divisor_override") is not None:
        return " (divisor_override)"
    padded = sum(tap.padding for tap in a.taps)
    if not padded:
        return ""
    return " (count_include_pad: padding counts)" if p.get("count_include_pad", True) else \
        " (count_include_pad=false: padding does not count)"


def _difference(result) -> str:
    """torch's value minus cnnviz's, in words: within float32 rounding, or the number."""
    a = result.arithmetic
    scale = max([1.0] + [abs(tap.product if tap.product is not None else tap.input or 0.0) for tap in a.taps])
    diff = result.difference
    if result.torch_value == a.value or (math.isfinite(diff) and abs(diff) <= AGREE * scale):
        return f"within float32 rounding (|torch − cnnviz| ≤ {AGREE * scale:.0e})"
    return f"{diff:+.6g}: torch computed something else"
