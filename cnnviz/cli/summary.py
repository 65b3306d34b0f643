"""``cnnviz summary FILE [--json]``: the per-layer table or SPEC's JSON object, without torch."""
from __future__ import annotations

import json
from typing import TextIO

from cnnviz.cli.exits import Exit, UsageError
from cnnviz.cli.output import write
from cnnviz.core.model import files


def load_stack(path: str) -> files.Stack:
    try:
        return files.load(path)
    except files.StackFileError as exc:
        raise UsageError(f"cannot use {exc}") from None


def cmd_summary(args, out: TextIO, err: TextIO) -> int:
    from cnnviz.core import shapes
    from cnnviz.core.shapes import summary

    stack = load_stack(args.file)
    report = shapes.infer(stack)
    if args.json:
        write(json.dumps(summary.to_json(stack, report), ensure_ascii=False) + "\n", out, json_text=True)
    else:
        write(summary.to_text(stack, report), out)
    return Exit.OK if report.ok else Exit.INVALID
