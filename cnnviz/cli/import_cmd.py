"""``cnnviz import MODEL.onnx -o STACK.cnnviz [--input C,H,W] [--force]`` (SPEC §3.2).

Reads the ONNX model (data only), writes the stack and, when the model carries
weights, ``STACK.safetensors`` beside it, then prints the summary table. A
model that cannot be expressed, a broken or hostile file, or a target that may
not be written is refused with exit 2 and nothing written.
"""
from __future__ import annotations

import argparse
from typing import TextIO

from cnnviz.cli.exits import Exit, UsageError
from cnnviz.cli.output import write
from cnnviz.core.model import outputs


def input_shape(text: str) -> tuple[int, int, int]:
    """``--input 3,224,224``: channels, height and width, within the file format's ranges."""
    from cnnviz.core.model.layers import MAX_INPUT_CHANNELS, MAX_INPUT_SIZE

    parts = text.replace("x", ",").replace("×", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three whole numbers), got {text[:40]!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three whole numbers), got {text[:40]!r}")
    c, h, w = values
    if not 1 <= c <= MAX_INPUT_CHANNELS or not 1 <= h <= MAX_INPUT_SIZE or not 1 <= w <= MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(f"C must be 1 to {MAX_INPUT_CHANNELS}, H and W 1 to {MAX_INPUT_SIZE}; "
                                         f"got {c},{h},{w}")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="read an ONNX model into a stack (and its weights beside it)")
    p.add_argument("file", help="an .onnx model (read as data: no code in it runs)")
    p.add_argument("-o", "--output", required=True,
                   help="the stack to write (.cnnviz); the weights go beside it as NAME.safetensors")
    p.add_argument("--input", type=input_shape, metavar="C,H,W",
                   help="the input's channels, height and width, where the model leaves them open")
    p.add_argument("--force", action="store_true", help="let -o (and its .safetensors) replace an existing stack")


def cmd_import(args, out: TextIO, err: TextIO) -> int:
    from cnnviz.core import importer, shapes
    from cnnviz.core.shapes import summary

    try:  # before the work: a target that may not be written is refused at once
        importer.check_targets(args.output, args.file, force=args.force)
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # a name the system cannot take (a NUL byte)
        raise UsageError(f"cannot write {args.output}: {exc}") from None
    try:
        imported = importer.read(args.file, args.input)
    except importer.ImportRefused as exc:
        raise UsageError(f"nothing imported: {exc}") from None
    try:
        stack_path, weights_path = importer.write(imported, args.output, args.file, force=args.force)
    except (importer.ImportRefused, outputs.OutputRefused) as exc:
        raise UsageError(f"nothing imported: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    except Exception as exc:
        from cnnviz.core.run.faults import EngineError  # the memory check and the weights writer

        if isinstance(exc, EngineError):
            raise UsageError(f"nothing imported: {exc}") from None
        raise
    stack = imported.stack
    write(summary.to_text(stack, shapes.infer(stack)), out)
    if weights_path is not None:
        write(f"wrote {stack_path} and {weights_path} ({imported.parameters:,} parameters, ONNX opset "
              f"{imported.opset})\n", err)
    else:
        write(f"wrote {stack_path} (the model carries no weights; ONNX opset {imported.opset})\n", err)
    for note in imported.notes:
        write(f"cnnviz: note: {note}\n", err)
    return Exit.OK
