"""Export a stack as an ONNX model (torch and its exporters imported only when it runs).

The model is written into a private scratch folder beside the target and moved
into place only when ``onnx.checker`` accepts it, so a failed export leaves
nothing behind (not even the external-data files torch's exporter may drop).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from cnnviz.core.export.python import ExportError, checked_report
from cnnviz.core.model import outputs
from cnnviz.core.model.stack import Stack


class WrittenModel(NamedTuple):
    """Where the model went, and which of torch's exporters wrote it (``torchscript`` or ``dynamo``)."""

    path: Path
    exporter: str


def to_onnx(stack: Stack, path: str | Path, model=None, opset: int | None = None) -> WrittenModel:
    """Write an ONNX model with one input ``input`` [N, C, H, W] (N symbolic) and one output ``output``.

    ``model`` is the live ``nn.Sequential`` (trained weights); by default a
    freshly built one (seed 0). torch's TorchScript exporter is tried first
    (fast, needs only torch), then the dynamo exporter (needs onnxscript); the
    result is checked with ``onnx.checker`` when onnx is installed, and only a
    model that passes is written to ``path``.
    """
    report = checked_report(stack)
    import warnings

    import torch

    from cnnviz.core.run.build import build_model

    if model is None:
        from cnnviz.core.run.faults import NotEnoughMemory
        from cnnviz.core.run.memory import check_model_fits

        try:  # the parameters, and torch's copy of them in the exported file
            check_model_fits(report, copies=2)
        except NotEnoughMemory as exc:
            raise ExportError(f"cannot export: {exc}") from None
    net = model if model is not None else build_model(stack, seed=0)
    was_training = net.training
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    device = next(iter(net.parameters()), torch.zeros(1)).device
    names = dict(input_names=["input"], output_names=["output"])
    attempts = {
        "torchscript": lambda f: torch.onnx.export(
            net, (torch.zeros(1, *report.input_shape, device=device),), f, dynamo=False,
            dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
            do_constant_folding=False,  # BatchNorm stays its own node: export then import gives the stack back
            **({"opset_version": opset} if opset else {}), **names),
        "dynamo": lambda f: torch.onnx.export(
            net, (torch.zeros(2, *report.input_shape, device=device),), f, dynamo=True, verbose=False, external_data=False,
            dynamic_shapes=({0: torch.export.Dim("N")},), **({"opset_version": opset} if opset else {}), **names),
    }
    problems = []
    net.eval()
    try:
        with outputs.scratch_folder(target) as scratch:
            tmp = str(scratch / target.name)
            for exporter, run in attempts.items():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        run(tmp)
                    _check_onnx(tmp)
                except ModuleNotFoundError as exc:
                    problems.append(f"{exporter} exporter needs the package {exc.name!r} (pip install 'cnnviz[onnx]')")
                    _empty(scratch)
                    continue
                except Exception as exc:  # noqa: BLE001  (torch's exporters fail in many ways; each is reported)
                    problems.append(f"{exporter} exporter: {_first_line(exc)}")
                    _empty(scratch)
                    continue
                extra = sorted(p.name for p in scratch.iterdir() if p.name != target.name)
                if extra:
                    raise ExportError(f"the model needs {len(extra)} external data file(s) beside the .onnx file "
                                      f"(ONNX keeps models over 2 GiB outside the file); cnnviz writes one "
                                      f"self-contained file: make the stack smaller")
                outputs.ensure_replaceable(target)
                os.chmod(tmp, outputs.final_mode(target))
                os.replace(tmp, target)
                return WrittenModel(target, exporter)
    finally:
        net.train(was_training)
    raise ExportError("torch could not export this stack to ONNX: " + "; ".join(problems))


def _empty(folder: Path) -> None:
    """Remove what a failed exporter left in the scratch folder before the next one tries."""
    import shutil

    for item in folder.iterdir():
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _check_onnx(path: str) -> None:
    try:
        import onnx
    except ModuleNotFoundError:
        return
    onnx.checker.check_model(onnx.load(path), full_check=True)
