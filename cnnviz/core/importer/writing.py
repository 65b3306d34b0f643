"""The stack and its weights: the layers checked as a stack (the file format's limits, shape inference, the
parameter counts), and written as ``STACK.cnnviz`` and ``STACK.safetensors`` (torch imported only then,
through :mod:`cnnviz.core.run.weights`)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cnnviz.core.importer.base import Imported, ImportRefused, _shape_text
from cnnviz.core.importer.graph import _Graph
from cnnviz.core.importer.layers import _Mapper
from cnnviz.core.model import files, outputs
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack


def finish(graph: _Graph, mapper: _Mapper, layers: list[Layer]) -> Imported:
    """The imported stack of ``layers`` and its weights by state-dict key, checked as if the stack were read
    from a file, by shape inference, and against the graph's declared output and the weights' sizes."""
    from cnnviz.core.shapes import infer

    loss = Loss("NLLLoss") if layers and layers[-1].type == "LogSoftmax" else Loss()
    name = graph.name if len(graph.name) <= 200 else graph.name[:200]
    stack = Stack(name=name, input=InputSpec(*graph.chw), layers=tuple(layers), loss=loss,
                  description=f"Imported from an ONNX model (opset {graph.opset}).")
    try:  # every limit and range of the file format, as if the stack were read from a file
        files.loads(files.dumps(stack))
    except files.StackFileError as exc:
        raise ImportRefused(f"the model maps onto a stack that cnnviz cannot use: {exc}") from None
    report = infer(stack)
    if report.problem:
        raise ImportRefused(f"the model maps onto a stack that cannot work: {report.problem}")
    declared = graph.shapes.get(graph.output)
    known = declared and all(isinstance(d, int) and d > 0 for d in declared[1:])
    if known and report.output_shape is not None and tuple(declared[1:]) != tuple(report.output_shape):
        raise ImportRefused(f"the model's output is {_shape_text(declared)} but the imported stack gives "
                            f"{_shape_text((None, *report.output_shape))}")
    weights: dict[str, np.ndarray] = {}
    reports = {str(r.path): r for r in report.walk()}
    for path, layer in stack.walk():
        tensors = mapper.weights.get(layer.uid)
        if not tensors:
            continue
        counted = sum(v.size for k, v in tensors.items() if not k.startswith("running_"))
        if reports[str(path)].params != counted:
            raise ImportRefused(f"{path.words()} ({layer.type}) would hold {reports[str(path)].params:,} "
                                f"parameters but the model gives {counted:,}")
        for key, value in tensors.items():
            weights[f"{path}.{key}"] = value
    return Imported(stack, weights, graph.opset, len(graph.graph.node), mapper.parameters, graph.notes)


def check_targets(stack_path: str | os.PathLike, model_path: str | os.PathLike | None = None,
                  force: bool = False) -> tuple[Path, Path]:
    """The stack's path and the weights' path beside it (``.safetensors``), checked before any work;
    :class:`~cnnviz.core.model.outputs.OutputRefused` if either may not be written."""
    inputs = (model_path,) if model_path is not None else ()
    weights_path = Path(stack_path).with_suffix(".safetensors")
    if Path(stack_path).name == weights_path.name or os.path.abspath(weights_path) == os.path.abspath(stack_path):
        raise outputs.OutputRefused(f"{stack_path}: the weights go beside the stack as NAME.safetensors, which is "
                                    f"-o itself; name the stack NAME.cnnviz")
    stack_target = outputs.check_target(stack_path, inputs=inputs, force=force, what="the imported stack")
    weights_target = outputs.check_target(weights_path, inputs=(*inputs, stack_path), force=force,
                                          what="the imported weights")
    return stack_target, weights_target


def write(imported: Imported, stack_path: str | os.PathLike, model_path: str | os.PathLike | None = None,
          force: bool = False) -> tuple[Path, Path | None]:
    """Write the stack, and its weights beside it when the model carries any; the paths written.

    Imports torch (through :mod:`cnnviz.core.run.weights`) only when there are weights.
    """
    stack_target, weights_target = check_targets(stack_path, model_path, force)
    written = None
    if imported.weights:
        import torch

        from cnnviz.core.run import build, memory, weights
        from cnnviz.core.shapes import infer

        memory.check_model_fits(infer(imported.stack), copies=2)
        with torch.device("meta"):  # the modules without allocating or initialising anything: the model's
            model = build.build_model(imported.stack)  # weights are assigned below
        state = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only numpy arrays: the tensors are only read
            for key, target in model.state_dict().items():
                value = imported.weights.get(key)
                if value is None:  # BatchNorm's num_batches_tracked: a fresh count
                    state[key] = torch.zeros(target.shape, dtype=target.dtype)
                    continue
                if tuple(target.shape) != value.shape:
                    raise ImportRefused(f"{key} is {list(value.shape)} in the model and {list(target.shape)} "
                                        f"in the stack")
                state[key] = torch.from_numpy(value)
        extra = sorted(set(imported.weights) - set(state))
        if extra:
            raise ImportRefused(f"the stack has no tensor {extra[0]!r}")
        model.load_state_dict(state, assign=True)
        existed = weights_target.exists()
        written = weights.save(model, imported.stack, weights_target)
        try:
            files.save(imported.stack, stack_target)
        except BaseException:
            if not existed:
                weights_target.unlink(missing_ok=True)
            raise
        return stack_target, written
    files.save(imported.stack, stack_target)
    return stack_target, written
