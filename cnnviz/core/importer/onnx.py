"""An ONNX model as a stack and its weights (SPEC §3.2): data only, no code runs.

The file is parsed with the ``onnx`` package's protobuf classes (never
``onnx.load``, which would follow external-data paths), its initializers are
read with :mod:`onnx.numpy_helper` into numpy arrays, and its graph is mapped
onto the catalogue:

- one input ``[N, C, H, W]`` and one output; every node is either arithmetic on
  constants and shapes (folded here: the ``Shape → Gather → Unsqueeze → Concat``
  that torch's exporters write in front of a flattening ``Reshape``, the
  ``Identity`` that shares equal initializers) or a layer;
- a tensor used by several nodes is a fork; the node where its paths meet again
  (its immediate post-dominator) must be an ``Add`` of two paths (a ``Residual``:
  the body is the longer path, the shortcut the other, empty for the identity)
  or a ``Concat`` on the channel axis (a ``Concat`` block, its branches in the
  node's input order);
- patterns are matched before anything is refused: ``x · sigmoid(x)`` is SiLU,
  ``x · hardsigmoid(x)`` Hardswish, ``MatMul`` + ``Add`` a Linear, a
  ``ReduceMean`` over the spatial axes a global average pool;
- a ``Pad`` read by one Conv, MaxPool or AveragePool folds into that layer's
  padding (the modes reflect, edge and wrap as a Conv2d's ``padding_mode``;
  uneven pads as ``padding="same"`` where torch's rule gives them), and only
  where torch computes the same: zeros before a MaxPool (which pads with
  −infinity) only after an activation that is never negative. The catalogue
  has no padding layer, so any other Pad is refused.

What cannot be expressed is refused with an :class:`ImportRefused` naming the
node, its op type and the supported ops; a hostile or broken file (truncated,
not protobuf, external data, a huge declared tensor, over the limits below) is
refused before anything is allocated for it. :func:`write` writes the stack and
its weights (torch imported only then, through :mod:`cnnviz.core.run.weights`).
"""
from __future__ import annotations

import os
from pathlib import Path

from cnnviz.core.importer.base import (
    MAX_BRANCHES,
    MAX_FILE_BYTES,
    MAX_FOLDED,
    MAX_NAME,
    MAX_NODES,
    MAX_OPSET,
    MAX_PARAMETERS,
    MIN_OPSET,
    SUPPORTED_OPS,
    Imported,
    ImportRefused,
)
from cnnviz.core.importer.folding import _Folder
from cnnviz.core.importer.graph import _Graph, _parse
from cnnviz.core.importer.patterns import fuse
from cnnviz.core.importer.structure import _Structure
from cnnviz.core.importer.writing import check_targets, finish, write
from cnnviz.core.model.reading import Unreadable, read_bounded
from cnnviz.core.model.stack import Stack

__all__ = ["MAX_BRANCHES", "MAX_FILE_BYTES", "MAX_FOLDED", "MAX_NAME", "MAX_NODES", "MAX_OPSET", "MAX_PARAMETERS",
           "MIN_OPSET", "SUPPORTED_OPS", "ImportRefused", "Imported", "check_targets", "read", "read_bytes", "write"]


# ------------------------------------------------------------------ the file
def read(path: str | os.PathLike, input_shape: tuple[int, int, int] | None = None) -> Imported:
    """Read the ONNX model at ``path``; ImportRefused (never another exception) if it cannot be used."""
    p = Path(path)
    try:
        data = read_bounded(p, MAX_FILE_BYTES, "ONNX model", "the ONNX files cnnviz imports")
    except Unreadable as exc:
        raise ImportRefused(f"{p}: {exc.reason}") from None
    try:
        imported = read_bytes(data, input_shape, name=p.stem, folder=p.resolve().parent)
    except ImportRefused as exc:
        raise ImportRefused(f"{p}: {exc}") from None
    stack = imported.stack
    imported.stack = Stack(stack.name, stack.input, stack.layers, stack.loss,
                           f"Imported from {p.name} (ONNX opset {imported.opset}).", stack.training)
    return imported


def read_bytes(data: bytes, input_shape: tuple[int, int, int] | None = None, name: str = "Imported",
               folder: str | os.PathLike | None = None) -> Imported:
    """The stack and weights of the ONNX model ``data`` (the file's bytes)."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(f"the model is {len(data):,} bytes; cnnviz imports ONNX files of at most "
                            f"{MAX_FILE_BYTES:,} bytes")
    model = _parse(data)
    try:
        return _run(model, input_shape, name, Path(folder) if folder is not None else None)
    except ImportRefused:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            MemoryError) as exc:  # a malformed field the checks above did not foresee: still the file's fault
        raise ImportRefused(f"the model is malformed and cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None


def _run(model, input_shape, name: str, folder: Path | None) -> Imported:
    """The import, step by step: read the graph (within the limits), fold its constants, match its patterns,
    find its structure, and check the stack and its weights."""
    graph = _Graph(model, input_shape, name, folder)
    graph.read(MAX_NODES)  # MAX_NODES read here at each import, where it may be changed
    nodes = _Folder(graph).fold()
    graph.refine_shapes(nodes)
    nodes = fuse(graph, nodes)
    structure = _Structure(graph, nodes)
    layers = structure.layers()
    return finish(graph, structure.mapper, layers)
