"""Folding constants and shapes: the arithmetic on constants and shapes that exporters write (the ``Shape →
Gather → Unsqueeze → Concat`` in front of a flattening ``Reshape``, the ``Identity`` that shares equal
initializers) evaluated with numpy, leaving the data nodes."""
from __future__ import annotations

import math

import numpy as np

from cnnviz.core.importer.base import (
    _BATCH,
    _UNKNOWN,
    MAX_FOLDED,
    MAX_PARAMETERS,
    ImportRefused,
    _ints,
    _Node,
    _quote,
    _supported,
)
from cnnviz.core.importer.graph import _Graph, _read_node

_CONST_OPS = {"Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Concat", "Gather", "Reshape", "Shape",
              "Add", "Sub", "Mul", "Div", "Slice", "ConstantOfShape", "Flatten", "Transpose"}


class _Folder:
    """The folding of one graph: the constants and folded shapes go into the graph's ``consts`` and ``meta``."""

    def __init__(self, graph: _Graph) -> None:
        self.graph = graph
        self.folded = 0  # values made by constant arithmetic

    def fold(self) -> list[_Node]:
        """Evaluate constant and shape arithmetic; the nodes left are the data nodes, in graph order."""
        known = {self.graph.input}
        data_nodes = []
        for proto in self.graph.graph.node:
            node = _read_node(proto)
            present = [i for i in node.inputs if i]
            for name in present:
                if name not in known and name not in self.graph.consts and name not in self.graph.meta:
                    raise ImportRefused(f"{node.described()} reads {_quote(name)}, which no earlier node writes "
                                        f"(the graph is not in order, or broken)")
            data = [i for i in present if i in known]
            if node.op == "Shape" and data:
                self._fold_shape(node, data[0])
                continue
            if not data and node.op in _CONST_OPS:
                self._fold_const(node)
                continue
            if not data:
                raise ImportRefused(f"{node.described()} makes a tensor from nothing, which cnnviz cannot express; "
                                    f"{_supported()}")
            node.data = data
            data_nodes.append(node)
            known.update(o for o in node.outputs if o)
        if self.graph.output not in known:
            raise ImportRefused(f"the output {_quote(self.graph.output)} does not depend on the input")
        return data_nodes

    def _fold_shape(self, node: _Node, data: str) -> None:
        shape = self.graph.shapes.get(data)
        if shape is None:
            value = np.array([_UNKNOWN], dtype=np.int64)
        else:
            items = [(_BATCH if k == 0 else _UNKNOWN) if d is None else d for k, d in enumerate(shape)]
            if self.graph.batch is not None and self.graph.batch > 0 and shape:
                items[0] = _BATCH
            value = np.array(items, dtype=np.int64)
            start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
            value = value[start:end]
        self.graph.meta[node.outputs[0]] = value

    def _fold_const(self, node: _Node) -> None:
        inputs = [self.graph.value(i) for i in node.inputs]
        if node.op in ("Concat", "Add", "Sub", "Mul", "Div"):  # the ops whose result can outgrow their inputs
            present = [v for v in inputs if v is not None]
            try:
                size = (sum(v.size for v in present) if node.op == "Concat"
                        else math.prod(np.broadcast_shapes(*(v.shape for v in present))))
            except ValueError:
                raise ImportRefused(f"{node.described()}: its constants' shapes do not fit together") from None
            if size > MAX_FOLDED:
                raise ImportRefused(f"{node.described()} makes a tensor of {size:,} values from constants; cnnviz "
                                    f"folds at most {MAX_FOLDED:,}")
        try:
            values = _evaluate(node, inputs, self.graph.opset)
        except ImportRefused:
            raise
        except Exception as exc:  # noqa: BLE001  (numpy refuses a malformed constant in many ways)
            raise ImportRefused(f"{node.described()} cannot be evaluated on its constants: "
                                f"{str(exc)[:120] or type(exc).__name__}") from None
        for name, value in zip(node.outputs, values):
            if value.size > MAX_PARAMETERS:
                raise ImportRefused(f"{node.described()} makes a tensor of {value.size:,} values")
            if node.op != "Identity":  # a copy: all the copies together within the parameter limit
                self.folded += value.size
                if self.folded > MAX_PARAMETERS:
                    raise ImportRefused(f"the model's constant arithmetic makes more than {MAX_PARAMETERS:,} "
                                        f"values; cnnviz folds at most that")
            target = self.graph.meta if _is_shape_like(value, node, self.graph) else self.graph.consts
            target[name] = value


def _is_shape_like(value: np.ndarray, node: _Node, graph: _Graph) -> bool:
    """A folded value that came from a shape (it may hold the symbolic batch size)."""
    return any(i in graph.meta for i in node.inputs if i)


def _evaluate(node: _Node, values: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """The outputs of a node whose inputs are all constants (or folded shapes)."""
    from onnx import helper, numpy_helper

    op, attrs = node.op, node.attrs
    x = values[0] if values else None
    if op == "Constant":
        if "value" in attrs:
            return [numpy_helper.to_array(attrs["value"]) if not isinstance(attrs["value"], np.ndarray)
                    else attrs["value"]]
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                           ("value_ints", np.int64)):
            if key in attrs:
                return [np.array(attrs[key], dtype=dtype)]
        raise ImportRefused(f"{node.described()} holds a kind of constant cnnviz does not read")
    if x is None:
        raise ImportRefused(f"{node.described()} has no input")
    if op == "Identity":
        return [x]
    if op == "Cast":
        return [x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))]
    if op in ("Unsqueeze", "Squeeze"):
        axes = attrs.get("axes")
        if axes is None and len(values) > 1 and values[1] is not None:
            axes = _ints(values[1])
        if op == "Squeeze":
            return [np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)]
        rank = x.ndim + len(axes)
        out = x
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            out = np.expand_dims(out, axis)
        return [out]
    if op == "Concat":
        return [np.concatenate([v for v in values if v is not None], axis=attrs.get("axis", 0))]
    if op == "Gather":
        return [np.take(x, values[1].astype(np.int64), axis=attrs.get("axis", 0))]
    if op == "Reshape":
        shape = _ints(values[1])
        shape = [x.shape[k] if s == 0 and not attrs.get("allowzero", 0) else s for k, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Flatten":
        axis = attrs.get("axis", 1)
        return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
    if op == "Shape":
        return [np.array(x.shape, dtype=np.int64)[attrs.get("start", 0):attrs.get("end", None)]]
    if op == "ConstantOfShape":
        fill = attrs.get("value")
        fill = numpy_helper.to_array(fill) if fill is not None else np.zeros(1, np.float32)
        shape = _ints(x)
        if any(s < 0 for s in shape) or math.prod(shape) > MAX_PARAMETERS:
            raise ImportRefused(f"{node.described()} makes a tensor of shape {shape[:8]}")
        return [np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)]
    if op == "Slice":
        if opset < 10:
            starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
        else:
            starts, ends = _ints(values[1]), _ints(values[2])
            axes = _ints(values[3]) if len(values) > 3 and values[3] is not None else None
            steps = _ints(values[4]) if len(values) > 4 and values[4] is not None else None
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps or [1] * len(starts)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[a] = slice(s, e, st)
        return [x[tuple(index)]]
    if op == "Transpose":  # TorchScript's Pad turns its list of pads round with one
        perm = attrs.get("perm")
        return [np.transpose(x, perm if perm is None else [int(a) for a in perm])]
    if op in ("Add", "Sub", "Mul", "Div"):
        y = values[1]
        with np.errstate(all="ignore"):
            if op == "Div" and np.issubdtype(x.dtype, np.integer):
                return [np.trunc(x / y).astype(x.dtype)]
            return [{"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](x, y)]
    raise ImportRefused(f"{node.described()} cannot be evaluated on constants")
