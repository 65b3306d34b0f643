"""``cnnviz export FILE --to python|onnx [-o OUT] [--force]``: never over the stack it reads."""
from __future__ import annotations

from pathlib import Path
from typing import TextIO

from cnnviz.cli.exits import Exit, UsageError
from cnnviz.cli.output import write
from cnnviz.cli.summary import load_stack
from cnnviz.core.model import outputs


def cmd_export(args, out: TextIO, err: TextIO) -> int:
    from cnnviz.core import export, shapes
    from cnnviz.core.shapes import summary

    stack = load_stack(args.file)
    report = shapes.infer(stack)
    if not report.ok:
        write(summary.to_text(stack, report), err)
        bad = report.first_error
        where = f"layer {bad.index} ({bad.label})" if bad else "the loss"
        write(f"cnnviz: nothing exported: {where} cannot work (see above)\n", err)
        return Exit.INVALID
    if args.to == "python":
        if args.weights:
            raise UsageError("--weights applies to --to onnx only (Python code holds no weights)")
        to_stdout = not args.output or args.output == "-"
        target = None if to_stdout else _output_target(args)
        code = export.to_python(stack, args.style)
        if to_stdout:
            write(code, out)
            return Exit.OK
        _save_text(target, code)
        write(f"wrote {args.output}\n", err)
        return Exit.OK
    if not args.output:
        args.output = str(Path.cwd() / (Path(args.file).stem + ".onnx"))
    target = _output_target(args)
    model = None
    if args.weights:
        from cnnviz.core.run import build, memory, weights
        from cnnviz.core.run.faults import NotEnoughMemory

        try:
            memory.check_model_fits(report, copies=2)
        except NotEnoughMemory as exc:
            raise UsageError(f"cannot export: {exc}") from None
        model = build.build_model(stack, seed=0)
        try:
            weights.load_into(model, stack, args.weights)
        except weights.WeightsError as exc:
            raise UsageError(str(exc)) from None
    try:
        written = export.to_onnx(stack, target, model=model)
    except (export.ExportError, outputs.OutputRefused) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    write(f"wrote {written.path} (torch's {written.exporter} exporter)\n", err)
    return Exit.OK


def _output_target(args) -> Path:
    """``-o``'s path, checked before any work: never the stack being read, never an existing stack
    without ``--force``, never a device, FIFO or folder."""
    try:
        return outputs.check_target(args.output, inputs=(args.file,), force=args.force, what="the export")
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None


def _save_text(path: Path, text: str) -> None:
    try:
        outputs.atomic_write(path, text.encode("utf-8"))
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
