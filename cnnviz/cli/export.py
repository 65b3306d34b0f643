"""``cnnviz export FILE --to python|onnx|train-script [-o OUT] [--force]``: never over the stack it reads."""
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
    if args.to == "train-script":
        return _train_script(args, stack, out, err)
    if args.to == "python":
        if args.weights:
            return _python_with_weights(args, stack, report, err)
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


def _train_script(args, stack, out: TextIO, err: TextIO) -> int:
    """``--to train-script``: the standalone training script (core/export/train_script.py)."""
    from cnnviz.core.export.python import ExportError
    from cnnviz.core.export.train_script import to_train_script

    if args.weights:
        raise UsageError("--to train-script takes no --weights: the script trains from the stack's seed "
                         "(and resumes from its own checkpoints)")
    to_stdout = not args.output or args.output == "-"
    target = None if to_stdout else _output_target(args)
    try:
        code = to_train_script(stack)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    if to_stdout:
        write(code, out)
        return Exit.OK
    _save_text(target, code)
    write(f"wrote {args.output}\n", err)
    return Exit.OK


def _python_with_weights(args, stack, report, err: TextIO) -> int:
    """``--to python --weights W -o net.py``: the code, and the weights beside it as ``net.safetensors``."""
    from cnnviz.core import export

    if not args.output or args.output == "-":
        raise UsageError("--to python --weights needs -o NAME.py: the weights are written beside it "
                         "as NAME.safetensors")
    try:
        export.check_targets(args.output, inputs=(args.file,), force=args.force)
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None
    model = _load_weights(args, stack, report, err)
    classes = mean = std = None
    if stack.training is not None:  # the file names its training data: its class names and normalisation
        from cnnviz.core import data

        try:
            split = data.load(stack.training.data, stack.input.shape, stack.training.seed)
        except data.DataError as exc:
            write(f"cnnviz: note: no class names or normalisation in the export: {exc}\n", err)
        else:
            classes, mean, std = split.classes, split.mean, split.std
    weights_target = export.weights_beside(args.output)
    same = _same_file(weights_target, args.weights)
    try:
        if same:  # the weights already lie where the code will look for them
            code = export.to_python(stack, args.style, weights=weights_target.name, classes=classes, mean=mean,
                                    std=std)
            target = _output_target(args)
            _save_text(target, code)
        else:
            export.write_python_with_weights(stack, args.output, model, args.style, classes=classes, mean=mean,
                                             std=std, inputs=(args.file, args.weights), force=args.force)
    except (export.ExportError, outputs.OutputRefused) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    write(f"wrote {args.output} and {weights_target}\n" if not same else f"wrote {args.output}\n", err)
    return Exit.OK


def _same_file(a: Path, b: str) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _load_weights(args, stack, report, err: TextIO):
    """The model built from ``stack`` with ``--weights`` loaded into it; UsageError if they do not fit."""
    from cnnviz.core.run import build, memory, weights
    from cnnviz.core.run.faults import NotEnoughMemory

    try:
        memory.check_model_fits(report, copies=2)
    except NotEnoughMemory as exc:
        raise UsageError(f"cannot export: {exc}") from None
    model = build.build_model(stack, seed=0)
    try:
        for warning in weights.load_into(model, stack, args.weights):
            write(f"cnnviz: warning: {warning}\n", err)
    except weights.WeightsError as exc:
        raise UsageError(str(exc)) from None
    return model


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
