"""``cnnviz profile FILE [--device D] [--batch-size B] [--json]``: per-layer time and memory (SPEC §3.4).

The measuring is :func:`cnnviz.core.run.profile.profile_stack`'s (its docstring and
``docs/profiling.md`` say what is measured and how). Without ``--json``: a table, one row per
layer (forward and backward milliseconds, parameter, activation and saved-for-backward bytes,
MACs per sample and the achieved GMAC/s, flags where a measured figure is more than twice its
analytic one), then the whole training step beside the sum of the layers. With ``--json``: one
JSON object (``format`` ``cnnviz.profile``) on standard output.

Exit status: 0 done; 1 the stack is invalid (its summary is printed on standard error) or does
not end in one score per class; 2 the file cannot be read, the command line is wrong or the
device is absent; 4 out of memory (refused before allocating, or run out of) or a layer failed;
130 interrupted. No traceback for any of these; torch is imported only once the stack is known
to be valid. No Qt.
"""
from __future__ import annotations

import json
from typing import TextIO

from cnnviz.cli.exits import Exit
from cnnviz.cli.output import write
from cnnviz.cli.train import EXIT_FOR_KIND


def cmd_profile(args, out: TextIO, err: TextIO) -> int:
    """``cnnviz profile FILE ...``."""
    from cnnviz.cli.summary import load_stack
    from cnnviz.core import shapes
    from cnnviz.core.model.stack import config_with
    from cnnviz.core.shapes import summary

    stack = load_stack(args.file)
    report = shapes.infer(stack)
    if not report.ok:
        write(summary.to_text(stack, report), err)
        write(f"cnnviz profile: {report.problem}\n", err)
        return Exit.INVALID
    config = config_with(stack.training, device=getattr(args, "device", None),
                         batch_size=getattr(args, "batch_size", None))

    from cnnviz.core.run import profile  # torch: only for a stack that can run
    from cnnviz.core.run.faults import EngineError

    as_json = bool(getattr(args, "json", False))
    tty = bool(getattr(err, "isatty", lambda: False)()) and not as_json

    def progress(done: int, total: int) -> None:
        if tty:
            err.write("\r")  # the one carriage return cnnviz writes itself: the writer escapes any other
            write(f"profiling {done}/{total}", err)
            err.flush()

    try:
        result = profile.profile_stack(stack, config, progress=progress)
    except EngineError as exc:
        if tty:
            write("\n", err)
        write(f"cnnviz profile: {exc}\n", err)
        return EXIT_FOR_KIND.get(exc.kind, Exit.FAILED)
    if tty:
        write("\n", err)
    if as_json:
        write(json.dumps(result.to_json(), ensure_ascii=False, allow_nan=False) + "\n", out, json_text=True)
    else:
        write(to_text(result), out)
    return Exit.OK


def _size(n: int) -> str:
    from cnnviz.core.model.units import format_bytes

    return format_bytes(n) if n else "0"


def to_text(result, width: int = 120) -> str:
    """The profile as a table: one row per layer, then the step beside the sum of the layers.

    The path column is as wide as the longest path (``4.branches.1.0``), so every row's columns line up;
    the rules are ``width`` wide, or the header's width when that is wider."""
    from cnnviz.core.model.text import one_line

    paths = max([len("path"), *(len(layer.path) for layer in result.layers)])   # "5.shortcut.0" and deeper
    head = (f"{'path':<{paths}} {'layer (type)':<24} {'fwd ms':>9} {'bwd ms':>9} {'params':>10} {'activations':>11} "
            f"{'saved':>10} {'MACs':>11} {'GMAC/s':>7}  flags")
    rule = "=" * max(width, len(head))
    threads = f", {result.threads} thread{'s' if result.threads != 1 else ''}" if result.device == "cpu" else ""
    title = (f"{one_line(result.name)} on {result.device} ({one_line(result.device_name)}{threads}), batch "
             f"{result.batch_size}, {result.optimizer}: median of {result.repeats} runs after {result.warmup} "
             "warm-up, device synchronised")
    lines = [title, rule, head, rule]
    for layer in result.layers:
        name = layer.type if layer.label == layer.type else f"{one_line(layer.label)} ({layer.type})"
        if len(name) > 24:
            name = name[:23] + "…"
        rate = layer.gmacs_per_s
        bwd = f"{layer.backward_ms:.3f}" if layer.backward_ms or layer.input_grad else "—"
        lines.append(f"{layer.path:<{paths}} {name:<24} {layer.forward_ms:>9.3f} {bwd:>9} {_size(layer.param_bytes):>10} "
                     f"{_size(layer.activation_bytes):>11} {_size(layer.saved_bytes):>10} {layer.macs:>11,} "
                     f"{(f'{rate:.2f}' if rate is not None else ''):>7}  {'; '.join(layer.flags)}".rstrip())
    lines.append(rule)
    parts = result.step_parts
    ratio = result.overhead_ratio
    lines.append(f"training step (zero_grad, forward, loss, backward, optimizer): {result.step_ms:.3f} ms median")
    lines.append(f"  the same parts timed one by one: forward {parts['forward']:.3f}, loss {parts['loss']:.3f}, "
                 f"backward {parts['backward']:.3f}, optimizer {parts['optimizer']:.3f} ms")
    lines.append(f"sum of the layers' forward + backward, each measured alone: {result.layers_sum_ms:.3f} ms"
                 + (f" ({ratio:.2f}× the step)" if ratio is not None else ""))
    lines.append(f"saved for backward in one step (each storage once, parameters apart): "
                 f"{_size(result.saved_bytes_total)} measured, {_size(result.analytic_saved_bytes_total)} estimated")
    if result.peak_allocated_bytes is not None:
        lines.append(f"peak allocated during one step: {_size(result.peak_allocated_bytes)}")
    else:
        lines.append(f"peak allocated: not measured on {result.device} (torch counts allocations on CUDA only)")
    flagged = sum(1 for layer in result.layers if layer.flags)
    lines.append(f"{flagged} layer{'s' if flagged != 1 else ''} where a measured size is more than twice the "
                 "analytic one" if flagged else "every measured size within 2× of the analytic one")
    lines.append(rule)
    return "\n".join(lines) + "\n"
