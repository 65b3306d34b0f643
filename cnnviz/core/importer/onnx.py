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

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core.model import files, outputs
from cnnviz.core.model.layers import CATALOGUE, MAX_BLOCK_DEPTH, MAX_LAYERS
from cnnviz.core.model.reading import Unreadable, read_bounded
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack, concat, residual

MAX_FILE_BYTES = 1 << 30
"""The largest ONNX file read: 1 GiB (ONNX itself keeps one file under 2 GiB)."""
MAX_NODES = 20_000
"""Nodes in the graph, constants and shape arithmetic included (a ResNet-152 from torch has about 1,500)."""
MAX_PARAMETERS = 200_000_000
"""Elements in all the initializers and constants together (800 MB of float32), and in any one of them."""
MAX_FOLDED = 1 << 24
"""Values one constant-arithmetic node that can grow its inputs (Concat, a broadcast) may make."""
MAX_BRANCHES = 256
"""Paths out of one fork (a stack holds at most 512 layers anyway)."""
MAX_OPSET = 25
MIN_OPSET = 7
MAX_NAME = 80

SUPPORTED_OPS = (
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean (over H and W)", "BatchNormalization",
    "Relu", "LeakyRelu", "Elu", "Gelu", "Sigmoid", "Tanh", "Clip (0, 6)", "HardSwish",
    "HardSigmoid (alpha 1/6, beta 0.5)", "Mul (x · sigmoid(x), x · hardsigmoid(x))", "Flatten",
    "Pad (of H and W, folded into the Conv, MaxPool or AveragePool that reads it)",
    "Reshape (a flatten)", "Squeeze (N×C×1×1 to N×C)", "Gemm", "MatMul (+ Add)", "Softmax", "LogSoftmax", "Dropout", "Identity",
    "Add (of two paths from one fork)", "Concat (on channels, of paths from one fork)",
)
_CONST_OPS = {"Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Concat", "Gather", "Reshape", "Shape",
              "Add", "Sub", "Mul", "Div", "Slice", "ConstantOfShape", "Flatten", "Transpose"}
_BATCH = np.int64(-(1 << 60))  # an element of a folded shape that is the (symbolic) batch size
_UNKNOWN = np.int64(-(1 << 61))  # an element of a folded shape that is not known
_FLOAT_TYPES = (1, 10, 11, 16)  # float32, float16, float64, bfloat16


class ImportRefused(ValueError):
    """A model that cannot be imported; the message says which node or part, and why."""


@dataclass
class Imported:
    """The stack, its weights by state-dict key (``"3.body.0.weight"``), and what the person should know."""

    stack: Stack
    weights: dict[str, np.ndarray]
    opset: int
    nodes: int
    parameters: int
    notes: list[str] = field(default_factory=list)


@dataclass
class _Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    data: list[str] = field(default_factory=list)  # the inputs that are data (not constants or shapes)
    fused: dict[str, Any] = field(default_factory=dict)
    proto: Any = field(default=None, repr=False)  # the NodeProto it was read from

    def described(self) -> str:
        return f"node {_quote(self.name)} ({self.fused.get('spelt', self.op)})"


def _quote(text: str) -> str:
    text = text or "(unnamed)"
    return repr(text if len(text) <= MAX_NAME else text[:MAX_NAME - 1] + "…")


def _supported() -> str:
    return "cnnviz imports " + ", ".join(SUPPORTED_OPS)


def _f32(value: float) -> float:
    """A float32 attribute as the decimal a person wrote (0.8999999761581421 → 0.9)."""
    return float(str(np.float32(value)))


def _pair(values) -> int | list[int]:
    values = [int(v) for v in values]
    return values[0] if len(values) == 2 and values[0] == values[1] else values


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
        return _Importer(model, input_shape, name, Path(folder) if folder is not None else None).run()
    except ImportRefused:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            MemoryError) as exc:  # a malformed field the checks above did not foresee: still the file's fault
        raise ImportRefused(f"the model is malformed and cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None


def _parse(data: bytes):
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise ImportRefused("the file is empty; an ONNX model is a protobuf ModelProto")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ImportRefused(f"not an ONNX model (not a protobuf ModelProto, or truncated: "
                            f"{str(exc)[:120] or type(exc).__name__})") from None
    if not model.HasField("graph") or not model.ir_version:
        raise ImportRefused("not an ONNX model (no graph or no IR version): is the file truncated or "
                            "something else?")
    return model


# ------------------------------------------------------------------ the graph
class _Importer:
    def __init__(self, model, input_shape, name: str, folder: Path | None) -> None:
        self.model = model
        self.graph = model.graph
        self.input_shape = input_shape
        self.name = name or "Imported"
        self.folder = folder
        self.consts: dict[str, np.ndarray] = {}
        self.meta: dict[str, np.ndarray] = {}  # folded shapes (may hold _BATCH / _UNKNOWN)
        self.shapes: dict[str, tuple] = {}
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        self.notes: list[str] = []
        self.parameters = 0
        self.folded = 0  # values made by constant arithmetic

    # ---------------------------------------------------------- checks
    def run(self) -> Imported:
        import onnx

        graph = self.graph
        self.opset = self._opset()
        if len(graph.node) > MAX_NODES:
            raise ImportRefused(f"the graph has {len(graph.node):,} nodes; cnnviz imports at most {MAX_NODES:,}")
        if len(graph.sparse_initializer):
            raise ImportRefused("the model holds sparse initializers, which cnnviz does not import")
        declared = 0
        for tensor in graph.initializer:
            _str(tensor.name, "a tensor name")
            declared += self._check_tensor(tensor, f"initializer {_quote(tensor.name)}")
            if declared > MAX_PARAMETERS:
                raise ImportRefused(f"the initializers hold more than {MAX_PARAMETERS:,} values; cnnviz imports "
                                    f"models of at most {MAX_PARAMETERS:,}")
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    declared += self._check_tensor(attr.t, f"the value of node {_quote(node.name)}")
                elif attr.type in (onnx.AttributeProto.TENSORS, onnx.AttributeProto.SPARSE_TENSOR,
                                   onnx.AttributeProto.SPARSE_TENSORS):
                    raise ImportRefused(f"node {_quote(node.name)} ({node.op_type}) holds tensors in "
                                        f"{attr.name!r}, which cnnviz does not import; {_supported()}")
            if declared > MAX_PARAMETERS:
                raise ImportRefused(f"the model declares more than {MAX_PARAMETERS:,} values; cnnviz imports "
                                    f"models of at most {MAX_PARAMETERS:,}")
        from onnx import numpy_helper

        for tensor in graph.initializer:
            try:
                self.consts[tensor.name] = numpy_helper.to_array(tensor)
            except Exception as exc:  # noqa: BLE001  (a broken tensor fails in numpy or onnx in many ways)
                raise ImportRefused(f"initializer {_quote(tensor.name)} cannot be read: "
                                    f"{str(exc)[:120] or type(exc).__name__}") from None
        self._io()
        self._infer_shapes()
        nodes = self._fold()
        self._refine_shapes(nodes)
        nodes = self._fuse(nodes)
        layers = self._layers(nodes)
        return self._finish(layers)

    def _opset(self) -> int:
        version = None
        for entry in self.model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                version = entry.version
        if version is None:
            raise ImportRefused("the model names no version of the standard ONNX operators (opset_import)")
        if not MIN_OPSET <= version <= MAX_OPSET:
            raise ImportRefused(f"the model uses ONNX opset {version}; cnnviz reads opsets {MIN_OPSET} to "
                                f"{MAX_OPSET}")
        return version

    def _check_tensor(self, tensor, what: str) -> int:
        """Refuse external data and declared sizes that are absurd or disagree with the bytes; the element count."""
        import onnx

        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if self.folder is not None and location:
                inside = Path(os.path.normpath(self.folder / location))
                outside = os.path.isabs(location) or not str(inside).startswith(str(self.folder) + os.sep)
            else:
                outside = True
            where = (f"a file outside the model's folder ({_quote(location)}), which cnnviz never reads"
                     if outside else f"the external file {_quote(location)}")
            raise ImportRefused(f"{what} keeps its data in {where}; cnnviz imports self-contained ONNX files "
                                f"only (save the model with onnx.save_model(..., save_as_external_data=False))")
        dims = list(tensor.dims)
        if any(d < 0 for d in dims):
            raise ImportRefused(f"{what} declares a negative dimension {dims[:8]}")
        count = 1
        for d in dims:
            count *= d
            if count > MAX_PARAMETERS:
                raise ImportRefused(f"{what} declares {math.prod(dims):,} values (shape {dims[:8]}); cnnviz imports "
                                    f"tensors of at most {MAX_PARAMETERS:,}")
        if tensor.data_type == onnx.TensorProto.STRING or tensor.data_type == onnx.TensorProto.UNDEFINED:
            raise ImportRefused(f"{what} is not a numeric tensor")
        if tensor.HasField("raw_data"):
            try:
                itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            except Exception:  # noqa: BLE001  (an unknown data type code)
                raise ImportRefused(f"{what} has an unknown data type ({tensor.data_type})") from None
            if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
                itemsize = 0.5
            if len(tensor.raw_data) != math.ceil(count * itemsize):
                raise ImportRefused(f"{what} declares {count:,} values (shape {dims[:8]}) but holds "
                                    f"{len(tensor.raw_data):,} bytes: the file is broken")
        else:
            held = max(len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data),
                       len(tensor.double_data), len(tensor.uint64_data))
            if held != count and not (tensor.data_type in (10, 16) and held == count):
                raise ImportRefused(f"{what} declares {count:,} values (shape {dims[:8]}) but holds {held:,}: "
                                    f"the file is broken")
        return count

    def _io(self) -> None:
        graph = self.graph
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(_quote(i.name) for i in inputs[:5])
            raise ImportRefused(f"the model has {len(inputs)} inputs ({names}); a stack has one image input")
        if len(graph.output) != 1:
            names = ", ".join(_quote(o.name) for o in graph.output[:5])
            raise ImportRefused(f"the model has {len(graph.output)} outputs ({names}); a stack has one output")
        self.input = inputs[0].name
        self.output = graph.output[0].name
        kind = inputs[0].type.WhichOneof("value")
        tensor_type = inputs[0].type.tensor_type
        if kind != "tensor_type" or tensor_type.elem_type not in _FLOAT_TYPES:
            raise ImportRefused(f"the input {_quote(self.input)} is not a floating-point tensor")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if tensor_type.HasField("shape") and len(dims) != 4:
            raise ImportRefused(f"the input {_quote(self.input)} has {len(dims)} dimensions; a stack's input is "
                                f"an image batch [N, C, H, W]")
        fixed = dims[1:] if dims else [None, None, None]
        given = self.input_shape
        if given is not None:
            for axis, (have, want) in enumerate(zip(fixed, given)):
                if have is not None and have != want:
                    shown = "×".join("?" if d is None else str(d) for d in fixed)
                    raise ImportRefused(f"the model's input is {shown} and --input says "
                                        f"{','.join(map(str, given))}: dimension {'CHW'[axis]} disagrees")
            chw = tuple(given)
        elif any(d is None or d <= 0 for d in fixed):
            shown = "×".join("?" if d is None else str(d) for d in fixed)
            raise ImportRefused(f"the model leaves its input size open ({shown}): give it with --input C,H,W")
        else:
            chw = tuple(fixed)
        self.chw = tuple(int(d) for d in chw)
        self.batch = dims[0] if dims else None

    def _infer_shapes(self) -> None:
        """Every tensor's shape from onnx's shape inference, run on a copy without the large weights."""
        import onnx
        from onnx import helper

        graph = self.graph
        small = [t for t in graph.initializer if math.prod(t.dims) <= 64]
        large = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                 for t in graph.initializer if math.prod(t.dims) > 64]
        data_input = helper.make_tensor_value_info(self.input, onnx.TensorProto.FLOAT, ["N", *self.chw])
        light = helper.make_graph(list(graph.node), graph.name or "g", [data_input, *large], list(graph.output),
                                  initializer=small)
        light_model = helper.make_model(light, opset_imports=list(self.model.opset_import),
                                        ir_version=self.model.ir_version)
        try:
            inferred = onnx.shape_inference.infer_shapes(light_model, strict_mode=False, data_prop=False)
        except Exception:  # noqa: BLE001  (shape inference may give up; the shapes needed are then refused)
            inferred = light_model
        for vi in [*inferred.graph.value_info, *inferred.graph.output, data_input]:
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                continue
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        self.shapes[self.input] = (None, *self.chw)

    def _refine_shapes(self, nodes: list[_Node]) -> None:
        """The shapes the first inference left open because they follow from folded constants (a Pad whose pads
        TorchScript computes): inference again on the data nodes alone, the folded constants as initializers."""

        def open_(shape) -> bool:
            return shape is None or any(d is None for d in shape[1:])

        if not any(open_(self.shapes.get(o)) for n in nodes for o in n.outputs[:1] if o):
            return
        try:  # inference may give up, or a constant not fit a TensorProto: the shapes it had stay
            inferred = self._inferred(nodes)
        except Exception:  # noqa: BLE001
            return
        for vi in inferred.graph.value_info:
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                continue
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            before = self.shapes.get(vi.name)
            if before is None or (open_(before) and len(before) == len(shape) and not open_(shape)):
                self.shapes[vi.name] = shape

    def _inferred(self, nodes: list[_Node]):
        """onnx's shape inference of the data nodes, the small folded constants given as initializers."""
        import onnx
        from onnx import helper, numpy_helper

        inits, declared = [], []
        for name in sorted({i for n in nodes for i in n.inputs if i and i != self.input}):
            value = self.consts.get(name)
            if value is None and name in self.meta:
                value = self.meta[name]
                declared.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, list(value.shape)))
            elif value is not None and value.size <= 64 and value.dtype != object:
                inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            elif value is not None:
                declared.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                              list(value.shape)))
        data_input = helper.make_tensor_value_info(self.input, onnx.TensorProto.FLOAT, ["N", *self.chw])
        graph = helper.make_graph([n.proto for n in nodes], "refined", [data_input, *declared],
                                  list(self.graph.output), initializer=inits)
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import), ir_version=self.model.ir_version)
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=False)

    def _shape(self, name: str, node: _Node) -> tuple:
        shape = self.shapes.get(name)
        if shape is None:
            raise ImportRefused(f"{node.described()}: the shape of its input {_quote(name)} cannot be inferred")
        return shape

    # ---------------------------------------------------------- folding constants and shapes
    def _fold(self) -> list[_Node]:
        """Evaluate constant and shape arithmetic; the nodes left are the data nodes, in graph order."""
        from onnx import helper

        known = {self.input}
        data_nodes = []
        for proto in self.graph.node:
            try:
                attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
            except Exception:  # noqa: BLE001  (a malformed attribute)
                raise ImportRefused(f"node {_quote(proto.name)} ({proto.op_type}) has an attribute that cannot be "
                                    f"read") from None
            node = _Node(_str(proto.op_type, "an op type"), _str(proto.name, "a node name"),
                         [_str(i, "a tensor name") for i in proto.input],
                         [_str(o, "a tensor name") for o in proto.output], attrs, proto=proto)
            _check_attributes(node)
            if proto.domain not in ("", "ai.onnx"):
                raise ImportRefused(f"{node.described()} is from the operator set {_quote(proto.domain)}, "
                                    f"which cnnviz does not read; {_supported()}")
            present = [i for i in node.inputs if i]
            for name in present:
                if name not in known and name not in self.consts and name not in self.meta:
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
        if self.output not in known:
            raise ImportRefused(f"the output {_quote(self.output)} does not depend on the input")
        return data_nodes

    def _value(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in self.consts:
            return self.consts[name]
        return self.meta.get(name)

    def _fold_shape(self, node: _Node, data: str) -> None:
        shape = self.shapes.get(data)
        if shape is None:
            value = np.array([_UNKNOWN], dtype=np.int64)
        else:
            items = [(_BATCH if k == 0 else _UNKNOWN) if d is None else d for k, d in enumerate(shape)]
            if self.batch is not None and self.batch > 0 and shape:
                items[0] = _BATCH
            value = np.array(items, dtype=np.int64)
            start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
            value = value[start:end]
        self.meta[node.outputs[0]] = value

    def _fold_const(self, node: _Node) -> None:
        inputs = [self._value(i) for i in node.inputs]
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
            values = _evaluate(node, inputs, self.opset)
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
            target = self.meta if _is_shape_like(value, node, self) else self.consts
            target[name] = value

    # ---------------------------------------------------------- patterns
    def _fuse(self, nodes: list[_Node]) -> list[_Node]:
        """x · sigmoid(x) → SiLU, x · hardsigmoid(x) → Hardswish, MatMul + Add → Linear, a Pad into the Conv or
        pool that reads it."""
        nodes = self._circular_pads(nodes)
        uses: dict[str, list[_Node]] = {}
        for node in nodes:
            for name in node.inputs:
                if name:
                    uses.setdefault(name, []).append(node)
        producer = {o: n for n in nodes for o in n.outputs if o}
        drop: set[int] = set()
        for node in nodes:
            if node.op == "Mul" and len(node.data) == 2 and len(node.inputs) == 2:
                a, b = node.data
                for x, s in ((a, b), (b, a)):
                    gate = producer.get(s)
                    if gate is None or len(uses.get(s, ())) != 1 or gate.data != [x]:
                        continue
                    if gate.op == "Sigmoid":
                        fused = "SiLU"
                    elif gate.op == "HardSigmoid" and _hard_sigmoid(gate):
                        fused = "Hardswish"
                    else:
                        continue
                    if s == self.output:
                        continue
                    node.op, node.inputs, node.data = fused, [x], [x]
                    node.fused = {"from": f"{gate.op} and Mul"}
                    drop.add(id(gate))
                    break
            elif node.op == "Squeeze" and len(node.data) == 1 and node.outputs[0] != self.output:
                after = uses.get(node.outputs[0], [])
                if len(after) == 1 and after[0].op == "Squeeze" and after[0].data == node.outputs[:1]:
                    # x.squeeze(-1).squeeze(-1): one squeeze of both axes, judged by the shapes around it
                    second = after[0]
                    second.inputs, second.data = [node.data[0]], [node.data[0]]
                    second.attrs = {k: v for k, v in second.attrs.items() if k != "axes"}
                    second.fused = {"squeezes": 2}
                    drop.add(id(node))
            elif node.op == "Pad" and len(node.data) == 1 and node.inputs[0] == node.data[0] \
                    and node.outputs[0] != self.output:
                after = uses.get(node.outputs[0], [])
                reader = after[0] if len(after) == 1 else None
                if reader is not None and reader.op in _PADDED and reader.data == node.outputs[:1] \
                        and reader.inputs[0] == node.outputs[0]:
                    source = producer.get(node.data[0])
                    reader.fused = {"pad": node, "nonnegative": source is not None and self._nonnegative(source)}
                    reader.inputs, reader.data = [node.data[0], *reader.inputs[1:]], [node.data[0]]
                    drop.add(id(node))
            elif node.op == "MatMul" and len(node.data) == 1 and node.inputs[0] == node.data[0]:
                weight = self._value(node.inputs[1])
                if weight is None or weight.ndim != 2:
                    continue
                node.fused = {"weight": weight.T, "bias": None}
                out = node.outputs[0]
                after = uses.get(out, [])
                if out != self.output and len(after) == 1 and after[0].op == "Add" and len(after[0].data) == 1:
                    add = after[0]
                    other = next((i for i in add.inputs if i != out), None)
                    bias = self._value(other) if other else None
                    if bias is not None and bias.size in (1, weight.shape[1]) and bias.ndim <= 2:
                        node.fused["bias"] = np.broadcast_to(bias.reshape(-1), (weight.shape[1],))
                        node.outputs = list(add.outputs)
                        drop.add(id(add))
                node.op = "MatMul+Add" if node.fused["bias"] is not None else "MatMul"
                node.fused["linear"] = True
        return [n for n in nodes if id(n) not in drop]

    def _circular_pads(self, nodes: list[_Node]) -> list[_Node]:
        """TorchScript's circular pad, ``Concat([x[..., -p:], x, x[..., :q]])`` on H then on W, as one Pad of
        mode wrap (the Slices dropped); the Concat of one tensor it writes for an axis not padded is dropped."""
        alias: dict[str, str] = {}
        kept = []
        for node in nodes:
            node.inputs = [alias.get(name, name) for name in node.inputs]
            node.data = [alias.get(name, name) for name in node.data]
            if node.op == "Concat" and len(node.inputs) == 1 and node.data == node.inputs \
                    and node.outputs[0] != self.output:
                alias[node.outputs[0]] = node.inputs[0]
                continue
            kept.append(node)
        nodes = kept

        def readers(of: list[_Node]) -> dict[str, list[_Node]]:
            out: dict[str, list[_Node]] = {}
            for n in of:
                for name in n.inputs:
                    if name:
                        out.setdefault(name, []).append(n)
            return out

        uses = readers(nodes)
        producer = {o: n for n in nodes for o in n.outputs if o}
        drop: set[int] = set()
        for node in nodes:
            if node.op != "Concat" or len(node.inputs) != 3 or len(node.data) != 3:
                continue
            tail, x, head = node.inputs
            shape = self.shapes.get(x)
            axis = node.attrs.get("axis", 1)
            if shape is None or len(shape) != 4 or not isinstance(axis, int) or axis % 4 not in (2, 3):
                continue
            axis %= 4
            size = shape[axis]
            slices = [producer.get(tail), producer.get(head)]
            if not isinstance(size, int) or any(n is None or n.op != "Slice" or n.data != [x] or n.inputs[0] != x
                                                or len(uses.get(n.outputs[0], ())) != 1 for n in slices):
                continue
            ranges = [self._slice_range(n, axis, size) for n in slices]
            if None in ranges or ranges[0][1] != size or ranges[1][0] != 0:
                continue
            pads = [0] * 8
            pads[axis], pads[4 + axis] = size - ranges[0][0], ranges[1][1]
            node.op, node.inputs, node.data = "Pad", [x], [x]
            node.attrs = {"mode": "wrap", "pads": pads}
            node.fused = {"spelt": "Slices and Concat, a circular pad"}
            drop.update(id(n) for n in slices)
        nodes = [n for n in nodes if id(n) not in drop]
        uses = readers(nodes)
        producer = {o: n for n in nodes for o in n.outputs if o}
        for node in nodes:  # the pad of W after the pad of H: one Pad
            first = producer.get(node.inputs[0]) if node.inputs else None
            if node.fused.get("spelt") and first is not None and first.fused.get("spelt") \
                    and len(uses.get(first.outputs[0], ())) == 1 and first.outputs[0] != self.output:
                node.attrs = {"mode": "wrap", "pads": [a + b for a, b in zip(first.attrs["pads"], node.attrs["pads"])]}
                node.inputs, node.data = list(first.inputs), list(first.data)
                drop.add(id(first))
        return [n for n in nodes if id(n) not in drop]

    def _slice_range(self, node: _Node, axis: int, size: int) -> tuple[int, int] | None:
        """[start, end) that a Slice of one axis of ``size`` takes, step 1; None for any other slice."""
        if "starts" in node.attrs:  # opsets before 10
            starts, ends, axes, steps = node.attrs["starts"], node.attrs.get("ends"), node.attrs.get("axes"), None
        else:
            values = [self._value(name) if name else None for name in node.inputs[1:5]]
            if len(values) < 2 or values[0] is None or values[1] is None or any(
                    v is None for k, v in enumerate(values) if node.inputs[1 + k]):
                return None
            starts, ends = _ints(values[0]), _ints(values[1])
            axes = _ints(values[2]) if len(values) > 2 and values[2] is not None else None
            steps = _ints(values[3]) if len(values) > 3 and values[3] is not None else None
        axes = list(range(len(starts))) if axes is None else [a % 4 for a in axes]
        if ends is None or len(starts) != 1 or len(ends) != 1 or axes != [axis] or (steps not in (None, [1])):
            return None
        start, end = (max(0, min(size, v + size if v < 0 else v)) for v in (starts[0], ends[0]))
        return (start, end) if start <= end else None

    def _nonnegative(self, node: _Node) -> bool:
        """Whether the output of ``node`` is never negative (a zero border then never wins a max)."""
        if node.op in ("Relu", "Sigmoid") or (node.op == "HardSigmoid" and _hard_sigmoid(node)):
            return True
        if node.op != "Clip":
            return False
        low = node.attrs.get("min")
        if len(node.inputs) > 1 and node.inputs[1]:
            value = self._value(node.inputs[1])
            low = float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None
        return low is not None and low >= 0

    # ---------------------------------------------------------- the structure
    def _layers(self, nodes: list[_Node]) -> list[Layer]:
        # Live nodes: those the output depends on (a Dropout's mask, a MaxPool's indices are not followed).
        producer = {}
        for k, node in enumerate(nodes):
            for o in node.outputs:
                if o:
                    producer[o] = k
        live = set()
        todo = [self.output]
        while todo:
            name = todo.pop()
            k = producer.get(name)
            if k is None or k in live:
                continue
            live.add(k)
            todo.extend(nodes[k].data)
        self.nodes = [n for k, n in enumerate(nodes) if k in live]
        self.uses: dict[str, list[int]] = {}
        for k, node in enumerate(self.nodes):
            for name in node.data:
                self.uses.setdefault(name, []).append(k)
        self.producer = {o: k for k, n in enumerate(self.nodes) for o in n.outputs if o}
        for k, node in enumerate(self.nodes):
            for extra in node.outputs[1:]:
                if extra and (self.uses.get(extra) or extra == self.output):
                    raise ImportRefused(f"{node.described()}: its output {_quote(extra)} is used, which a layer "
                                        f"cannot give; {_supported()}")
        self._post_dominators()
        layers, _end = self._walk(self.input, None, 0)
        return layers

    def _post_dominators(self) -> None:
        """``self.ipdom[k]``: the first node every path from node k to the output passes (CHK on the DAG)."""
        n = len(self.nodes)
        source, sink = n, n + 1  # order: nodes 0..n-1 (topological), source before them, sink after
        order = {source: -1, sink: n}
        for k in range(n):
            order[k] = k
        succ: dict[int, list[int]] = {k: [] for k in range(n + 2)}
        for k, node in enumerate(self.nodes):
            out = node.outputs[0]
            succ[k] = sorted(set(self.uses.get(out, [])))
            if out == self.output:
                succ[k].append(sink)
        succ[source] = sorted(set(self.uses.get(self.input, []))) + ([sink] if self.input == self.output else [])
        ipdom = {sink: sink}

        def meet(a: int, b: int) -> int:
            while a != b:
                while order[a] < order[b]:
                    a = ipdom[a]
                while order[b] < order[a]:
                    b = ipdom[b]
            return a

        for k in [*range(n - 1, -1, -1), source]:
            following = succ[k]
            if not following:
                raise ImportRefused(f"{self.nodes[k].described()}: its output leads nowhere")
            d = following[0]
            for s in following[1:]:
                d = meet(d, s)
            ipdom[k] = d
        self.ipdom = ipdom
        self.source, self.sink = source, sink

    def _walk(self, t: str, merge: int | None, depth: int, first: int | None = None) -> tuple[list[Layer], str]:
        layers: list[Layer] = []
        if first is not None:
            node = self.nodes[first]
            if len(node.data) > 1:
                raise self._cannot_join(first)
            mapped, t = self._map(node)
            layers += mapped
        while True:
            uses = self.uses.get(t, [])
            if merge is None and t == self.output:
                return layers, t
            if merge is not None and t in self.nodes[merge].data:
                if any(u != merge for u in uses):
                    raise ImportRefused(f"the tensor {_quote(t)} feeds {self.nodes[merge].described()} and other "
                                        f"nodes too, which blocks cannot express")
                return layers, t
            if len(uses) == 1:
                k = uses[0]
                if len(self.nodes[k].data) > 1:
                    raise self._cannot_join(k)
                mapped, t = self._map(self.nodes[k])
                layers += mapped
                continue
            start = self.producer.get(t, self.source)
            block, t = self._block(t, uses, self.ipdom[start], depth + 1, merge)
            layers.append(block)
            if len(layers) > MAX_LAYERS:
                break
        return layers, t

    def _cannot_join(self, k: int) -> ImportRefused:
        node = self.nodes[k]
        if node.op in ("Add", "Concat"):
            why = "joins paths that do not start from one fork"
        else:
            why = f"combines {len(node.data)} paths, which no layer or block does"
        return ImportRefused(f"{node.described()} {why}; cnnviz joins paths only with an Add of two paths "
                             f"(Residual) or a Concat on channels (Concat); {_supported()}")

    def _meet(self, a: int, b: int) -> int:
        """The first node that every path from node ``a`` and from node ``b`` to the output passes."""
        while a != b:
            while a < b:
                a = self.ipdom[a]
            while b < a:
                b = self.ipdom[b]
        return a

    def _block(self, t: str, uses: list[int], m: int, depth: int, outer: int | None) -> tuple[Layer, str]:
        """The block that starts where ``uses`` read ``t`` and ends at node ``m``, where their paths meet."""
        if depth > MAX_BLOCK_DEPTH:
            raise ImportRefused(f"blocks nest more than {MAX_BLOCK_DEPTH} deep at {_quote(t)}; stacks allow "
                                f"{MAX_BLOCK_DEPTH}")
        if m == self.sink:
            raise ImportRefused(f"the paths from {_quote(t)} do not meet again before the output")
        if len(uses) > MAX_BRANCHES:
            raise ImportRefused(f"the tensor {_quote(t)} is read by {len(uses):,} nodes; a block has at most "
                                f"{MAX_BRANCHES} paths")
        if outer is not None and m == outer:
            raise ImportRefused(f"the paths from {_quote(t)} meet at {self.nodes[m].described()} with paths from "
                                f"an earlier fork, which nested blocks cannot express")
        activation = self._activation(t, uses, m, outer)
        if activation is not None:
            return activation
        merge = self.nodes[m]
        kind = self._merge_kind(merge)
        if kind is None and merge.op == "Concat":
            raise ImportRefused(f"{merge.described()} joins paths from {_quote(t)} on axis "
                                f"{merge.attrs.get('axis', 1)}, and a Concat block joins channels only (axis 1); "
                                f"{_supported()}")
        if kind is None:
            raise self._cannot_join(m)
        # Uses whose paths meet before m make one path of this block, which starts with a block of its own.
        groups: list[list[int]] = []
        for u in uses:
            if u == m:
                continue
            for group in groups:
                if self._meet(group[0], u) != m:
                    group.append(u)
                    break
            else:
                groups.append([u])
        slots = list(merge.data)
        filled: list[list[Layer] | None] = [None] * len(slots)
        for group in groups:
            if len(group) == 1:
                layers, end = self._walk(t, m, depth, first=group[0])
            else:
                inner = group[0]
                for u in group[1:]:
                    inner = self._meet(inner, u)
                block, out = self._block(t, group, inner, depth + 1, m)
                layers, end = self._walk(out, m, depth)
                layers = [block, *layers]
            for j, slot in enumerate(slots):
                if slot == end and filled[j] is None:
                    filled[j] = layers
                    break
            else:
                raise ImportRefused(f"the paths from {_quote(t)} reach {merge.described()} in a way blocks cannot "
                                    f"express")
        for j, slot in enumerate(slots):
            if filled[j] is None and slot == t:
                filled[j] = []
        if any(f is None for f in filled):
            raise self._cannot_join(m)
        out = merge.outputs[0]
        if out not in self.shapes and self.shapes.get(slots[0]) is not None:
            self.shapes[out] = self.shapes[slots[0]] if kind == "Residual" else _concat_shape(
                [self.shapes.get(slot) for slot in slots])
            if self.shapes[out] is None:
                del self.shapes[out]
        paths = [f for f in filled if f is not None]
        if kind == "Residual":
            a, b = paths
            body, shortcut = (a, b) if len(a) >= len(b) else (b, a)
            block = residual(body, shortcut)
        else:
            block = concat(*paths)
        return block, merge.outputs[0]

    def _activation(self, t: str, uses: list[int], m: int, outer: int | None) -> tuple[Layer, str] | None:
        """An activation that an exporter wrote as arithmetic (GELU as Div, Erf, Add, Mul; its tanh form; x ·
        sigmoid(x)), recognised by evaluating the nodes from the fork to where they meet (and a constant factor
        after it) on sample values: the layer and the tensor it gives, or None."""
        region: set[int] = set()
        todo = list(uses)
        while todo:
            k = todo.pop()
            if k in region:
                continue
            node = self.nodes[k]
            if node.op not in _ELEMENTWISE or len(region) > 40:
                return None
            region.add(k)
            if k != m:
                todo.extend(self.uses.get(node.outputs[0], []))
        end = m
        xs = np.concatenate([np.linspace(-6.0, 6.0, 97), [-20.0, -9.5, 9.5, 20.0]])
        for _ in range(3):
            got = self._evaluate_region(t, sorted(region), end, xs)
            if got is None:
                return None
            for type_name, params, f in _ACTIVATIONS:
                if type_name in CATALOGUE and np.all(np.abs(got - f(xs)) <= 1e-5 * (1 + np.abs(xs))):
                    return self._layer(type_name, self.nodes[end], params), self.nodes[end].outputs[0]
            out = self.nodes[end].outputs[0]  # a constant factor after the meeting point (TorchScript's GELU)
            following = self.uses.get(out, [])
            if out == self.output or len(following) != 1 or following[0] == outer:
                return None
            nxt = self.nodes[following[0]]
            if nxt.op not in _ELEMENTWISE or len(nxt.data) != 1:
                return None
            region.add(following[0])
            end = following[0]
        return None

    def _evaluate_region(self, t: str, region: list[int], end: int, xs: np.ndarray) -> np.ndarray | None:
        values = {t: xs}
        for k in region:
            node = self.nodes[k]
            if k != end and any(u not in region for u in self.uses.get(node.outputs[0], [])):
                return None  # an inner value is used outside: not one activation
            args = []
            for name in node.inputs:
                if not name:
                    args.append(None)
                elif name in values:
                    args.append(values[name])
                else:
                    const = self._value(name)
                    if const is None or const.size != 1:
                        return None
                    args.append(float(const.reshape(-1)[0]))
            try:
                with np.errstate(all="ignore"):
                    values[node.outputs[0]] = _ELEMENTWISE[node.op](args, node.attrs)
            except Exception:  # noqa: BLE001  (an input missing or of the wrong kind: not an activation)
                return None
        return values.get(self.nodes[end].outputs[0])

    def _merge_kind(self, node: _Node) -> str | None:
        if node.op == "Add" and len(node.data) == 2 and len(node.inputs) == 2:
            return "Residual"
        if node.op == "Concat" and len(node.data) == len(node.inputs) >= 2:
            rank = len(self.shapes.get(node.outputs[0], ()) or ())
            axis = node.attrs.get("axis", 1)
            if rank and axis < 0:
                axis += rank
            return "Concat" if axis == 1 else None
        return None

    # ---------------------------------------------------------- one node, one layer (or two)
    def _layer(self, type_name: str, node: _Node, params: dict | None = None,
               weights: dict[str, np.ndarray] | None = None) -> Layer:
        if type_name not in CATALOGUE:
            raise ImportRefused(f"{node.described()} would be a {type_name}, which this cnnviz's catalogue lacks")
        layer = Layer(type_name, {k: v for k, v in (params or {}).items() if v is not None})
        if weights:
            out = {}
            for key, value in weights.items():
                if not np.issubdtype(value.dtype, np.floating):
                    raise ImportRefused(f"{node.described()}: its {key} is {value.dtype}, not floating-point")
                out[key] = np.ascontiguousarray(value, dtype=np.float32)
                if not key.startswith("running_"):
                    self.parameters += value.size
            self.weights[layer.uid] = out
        return layer

    def _const_input(self, node: _Node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.inputs[index] if index < len(node.inputs) else ""
        if not name:
            if required:
                raise ImportRefused(f"{node.described()} has no {what}")
            return None
        value = self._value(name)
        if value is None:
            raise ImportRefused(f"{node.described()}: its {what} is computed from the input, not a constant; "
                                f"a layer's {what} is a weight")
        return value

    def _refuse(self, node: _Node, why: str) -> ImportRefused:
        return ImportRefused(f"{node.described()} cannot be expressed: {why}; {_supported()}")

    def _map(self, node: _Node) -> tuple[list[Layer], str]:
        handler = getattr(self, "_op_" + node.op.replace("+", "_"), None)
        if handler is None:
            raise ImportRefused(f"{node.described()} cannot be expressed in a stack; {_supported()}")
        if node.data and node.inputs and node.inputs[0] != node.data[0] and node.op not in ("Add", "Mul"):
            raise self._refuse(node, "its data arrives on an input that holds a weight")
        result = handler(node)
        layers = result if isinstance(result, list) else [result]
        out = node.outputs[0]
        shape = self.shapes.get(node.data[0])
        if out not in self.shapes and shape is not None:  # where onnx's inference gave up (older opsets)
            for layer in layers:
                shape = _shape_after(layer, shape)
            if shape is not None:
                self.shapes[out] = shape
        return layers, out

    def _window(self, node: _Node, kernel_rank: int, kernel: list[int] | None = None) \
            -> tuple[list[int], list[int], list[int]]:
        """strides, pads [top, left, bottom, right] (``auto_pad`` spelt out) and dilations of a 2-D window."""
        strides = list(node.attrs.get("strides", [1] * kernel_rank))
        dilations = list(node.attrs.get("dilations", [1] * kernel_rank))
        pads = list(node.attrs.get("pads", [0] * 2 * kernel_rank))
        auto = node.attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if kernel_rank != 2 or len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
            raise self._refuse(node, f"a {kernel_rank}-D window (stacks hold 2-D layers)")
        if auto == "VALID":
            pads = [0] * 2 * kernel_rank
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            # torch's padding="same" (stride 1): d·(k−1) in all, the odd one at the bottom and right (SAME_UPPER)
            spans = [d * (k - 1) for d, k in zip(dilations, kernel or [0, 0])]
            if strides != [1, 1] or (auto == "SAME_LOWER" and any(s % 2 for s in spans)):
                raise self._refuse(node, f"auto_pad {auto} with strides {strides} (torch pads 'same' only at "
                                         f"stride 1, the odd pixel at the end)")
            if node.op != "Conv" and any(s % 2 for s in spans):
                raise self._refuse(node, f"auto_pad {auto} with an even window (uneven padding)")
            pads = [s // 2 for s in spans] + [s - s // 2 for s in spans]
        elif auto not in ("NOTSET", ""):
            raise self._refuse(node, f"auto_pad {auto}")
        if any(p < 0 for p in pads):
            raise self._refuse(node, f"negative pads {pads}")
        return strides, pads, dilations

    def _pad_spec(self, pad: _Node) -> tuple[list[int], str]:
        """The pads of a ``Pad`` node, [top, left, bottom, right], and its mode (constant, reflect, edge, wrap);
        refused where it pads the batch or the channels, crops, or fills with anything but zeros."""
        mode = pad.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if "pads" in pad.attrs:  # opsets 2 to 10: attributes
            pads, value, axes = list(pad.attrs["pads"]), pad.attrs.get("value", 0.0), None
            if not isinstance(value, (int, float)):
                raise self._refuse(pad, "a pad value that is not a number")
        else:
            if len(pad.inputs) > 1 and pad.inputs[1] and (self._value(pad.inputs[1]) is None
                                                          or pad.inputs[1] in self.meta):
                raise self._refuse(pad, "pads computed from the data (a layer's padding is a fixed number)")
            pads = [int(v) for v in self._const_input(pad, 1, "pads").reshape(-1)]
            value = self._const_input(pad, 2, "constant value", required=False)
            value = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
            axes = self._const_input(pad, 3, "axes", required=False)
            axes = None if axes is None else [int(a) for a in axes.reshape(-1)]
        rank = len(self._shape(pad.data[0], pad))
        if rank != 4:
            raise self._refuse(pad, f"a pad of a {rank}-D tensor (stacks pad N×C×H×W inside a Conv or pool)")
        axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
        if len(pads) != 2 * len(axes) or len(set(axes)) != len(axes) or any(not 0 <= a < rank for a in axes):
            raise self._refuse(pad, f"pads {pads[:16]} that do not fit axes {axes[:8]} of a {rank}-D tensor")
        full = [0] * (2 * rank)
        for k, axis in enumerate(axes):
            full[axis], full[rank + axis] = pads[k], pads[len(axes) + k]
        sides = [full[2], full[3], full[6], full[7]]
        if any(full[a] or full[rank + a] for a in (0, 1)):
            raise self._refuse(pad, f"pads {full} that pad the batch or the channels (a layer pads H and W only)")
        if any(p < 0 for p in sides):
            raise self._refuse(pad, f"negative pads ({_sides_text(sides)}), a crop, which no layer does")
        if mode not in _PAD_MODES:
            raise self._refuse(pad, f"mode {mode!r} (cnnviz reads constant, reflect, edge and wrap)")
        if mode == "constant" and value != 0 and any(sides):
            raise self._refuse(pad, f"a border of {value:g} (torch's layers pad with zeros, or copy the image)")
        return sides, mode if any(sides) else "constant"

    def _padding(self, node: _Node, pads: list[int], strides: list[int], dilations: list[int], kernel: list[int],
                 blame: _Node, what: str) -> Any:
        """torch's ``padding`` for ``pads`` [top, left, bottom, right]: [h, w], or "same" for a Conv at stride 1
        whose odd pixel is at the bottom and right; refused (naming ``blame``) otherwise."""
        if pads[0] == pads[2] and pads[1] == pads[3]:
            return pads[:2]
        spans = [d * (k - 1) for d, k in zip(dilations, kernel)]
        if node.op == "Conv" and strides == [1, 1] and all(
                pads[a] == s // 2 and pads[a + 2] == s - s // 2 for a, s in enumerate(spans)):
            return "same"
        fix = ("pad both sides alike, or, at stride 1, d·(k−1) in all with the odd pixel at the bottom and right "
               "(torch's padding='same')") if node.op == "Conv" else "pad both sides alike"
        raise self._refuse(blame, f"{what} ({_sides_text(pads)}) differ between the two sides, which torch's "
                                  f"{'Conv2d' if node.op == 'Conv' else 'pooling'} cannot do ({fix})")

    def _op_Conv(self, node: _Node) -> Layer:
        weight = self._const_input(node, 1, "weight")
        bias = self._const_input(node, 2, "bias", required=False)
        if weight.ndim != 4:
            raise self._refuse(node, f"a {weight.ndim - 2}-D convolution (stacks hold Conv2d)")
        kernel = list(node.attrs.get("kernel_shape", weight.shape[2:]))
        if kernel != list(weight.shape[2:]):
            raise self._refuse(node, f"kernel_shape {kernel} disagrees with its weight {list(weight.shape)}")
        strides, pads, dilations = self._window(node, 2, kernel)
        mode, blame, what = "zeros", node, "its pads"
        pad = node.fused.get("pad")
        if pad is not None:
            extra, pad_mode = self._pad_spec(pad)
            if any(extra):
                blame, what = pad, f"its pads and those of {node.described()} together"
                if pad_mode == "constant":
                    pads = [a + b for a, b in zip(pads, extra)]
                elif any(pads):
                    raise self._refuse(pad, f"{pad_mode} padding ({_sides_text(extra)}) before {node.described()}, "
                                            f"which pads zeros of its own ({_sides_text(pads)}): torch's Conv2d "
                                            f"fills its whole border one way (pad once, in one mode)")
                else:
                    pads, mode = extra, _PAD_MODES[pad_mode]
                    what = f"its {pad_mode} pads before {node.described()}"
        padding = self._padding(node, pads, strides, dilations, kernel, blame, what)
        groups = int(node.attrs.get("group", 1))
        params = {"out_channels": int(weight.shape[0]), "kernel_size": _pair(kernel)}
        if strides != [1, 1]:
            params["stride"] = _pair(strides)
        if padding == "same":
            params["padding"] = "same"
        elif padding != [0, 0]:
            params["padding"] = _pair(padding)
        if mode != "zeros":
            params["padding_mode"] = mode
        if dilations != [1, 1]:
            params["dilation"] = _pair(dilations)
        if groups != 1:
            params["groups"] = groups
        weights = {"weight": weight}
        if bias is None:
            params["bias"] = False
        else:
            weights["bias"] = bias.reshape(-1)
        return self._layer("Conv2d", node, params, weights)

    def _pool(self, node: _Node, type_name: str) -> Layer:
        kernel = list(node.attrs.get("kernel_shape", []))
        if len(kernel) != 2:
            raise self._refuse(node, f"a {len(kernel)}-D pooling window (stacks hold 2-D layers)")
        strides, pads, dilations = self._window(node, 2, kernel)
        include = bool(node.attrs.get("count_include_pad", 0))
        blame, what = node, "its pads"
        pad = node.fused.get("pad")
        if pad is not None:
            extra, pad_mode = self._pad_spec(pad)
            if any(extra):
                self._check_pool_pad(node, type_name, pad, extra, pad_mode, pads, include)
                pads, include = [a + b for a, b in zip(pads, extra)], True
                blame, what = pad, f"its pads and those of {node.described()} together"
        pads = self._padding(node, pads, strides, dilations, kernel, blame, what)
        if pad is not None and any(p > k // 2 for p, k in zip(pads, kernel)):
            raise self._refuse(pad, f"padding {pads} in all before {node.described()}, whose window is {kernel}: "
                                    f"torch's {type_name} pads at most half its window")
        params: dict[str, Any] = {"kernel_size": _pair(kernel)}
        if strides != kernel:
            params["stride"] = _pair(strides)
        if pads != [0, 0]:
            params["padding"] = _pair(pads)
        if node.attrs.get("ceil_mode", 0):
            params["ceil_mode"] = True
        if type_name == "MaxPool2d":
            if dilations != [1, 1]:
                params["dilation"] = _pair(dilations)
        else:
            if dilations != [1, 1]:
                raise self._refuse(node, "a dilated average pool (torch's AvgPool2d has no dilation)")
            if not include and (pads != [0, 0]):
                params["count_include_pad"] = False
        return self._layer(type_name, node, params)

    def _check_pool_pad(self, node: _Node, type_name: str, pad: _Node, extra: list[int], mode: str,
                        own: list[int], include: bool) -> None:
        """Refuse a Pad that a pool's own padding cannot stand for exactly."""
        before = f"({_sides_text(extra)}) before {node.described()}"
        if mode != "constant":
            fill = "−infinity" if type_name == "MaxPool2d" else "zeros"
            raise self._refuse(pad, f"{mode} padding {before}: torch's {type_name} pads only with {fill}")
        if node.attrs.get("ceil_mode", 0):
            raise self._refuse(pad, f"zero padding {before} with ceil_mode: torch keeps a last partial window by "
                                    f"another rule when the border is its own padding (export without ceil_mode, "
                                    f"or pad inside the pool)")
        if type_name == "MaxPool2d" and not node.fused.get("nonnegative"):
            raise self._refuse(pad, f"zero padding {before}, whose input may be negative: torch's MaxPool2d pads "
                                    f"with −infinity, so the zeros would win every window whose values are all "
                                    f"negative; a zero Pad folds into a MaxPool only after a ReLU, ReLU6, Sigmoid "
                                    f"or Hardsigmoid (or pad inside the pool: MaxPool2d(padding=...))")
        if type_name == "AvgPool2d" and any(own) and not include:
            raise self._refuse(pad, f"zero padding {before}, which pads {_sides_text(own)} of its own without "
                                    f"counting it (count_include_pad 0): torch's AvgPool2d counts the whole border "
                                    f"in its divisor or none of it")

    def _op_Pad(self, node: _Node) -> Layer:
        pads, mode = self._pad_spec(node)
        if not any(pads):
            return self._layer("Identity", node)
        readers = [self.nodes[k].described() for k in self.uses.get(node.outputs[0], [])]
        where = ("the model's output" if node.outputs[0] == self.output and not readers
                 else " and ".join(readers[:3]) + (" and others" if len(readers) > 3 else ""))
        raise self._refuse(node, f"{mode} padding ({_sides_text(pads)}) before {where}: this cnnviz's catalogue "
                                 f"has no padding layer, so a Pad imports only folded into the one Conv, MaxPool or "
                                 f"AveragePool that reads it (pad inside that layer instead: Conv2d(padding=..., "
                                 f"padding_mode=...), MaxPool2d(padding=...), AvgPool2d(padding=...))")

    def _op_MaxPool(self, node: _Node) -> Layer:
        return self._pool(node, "MaxPool2d")

    def _op_AveragePool(self, node: _Node) -> Layer:
        return self._pool(node, "AvgPool2d")

    def _op_GlobalAveragePool(self, node: _Node) -> Layer:
        if len(self._shape(node.data[0], node)) != 4:
            raise self._refuse(node, "a global pool of a tensor that is not C×H×W")
        return self._layer("AdaptiveAvgPool2d", node, {"output_size": 1})

    def _op_ReduceMean(self, node: _Node) -> list[Layer]:
        rank = len(self._shape(node.data[0], node))
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            axes = self._const_input(node, 1, "axes").reshape(-1).tolist()
        if axes is None or rank != 4 or sorted(a + rank if a < 0 else a for a in axes) != [2, 3]:
            raise self._refuse(node, f"a mean over axes {axes} (only the mean over H and W, a global average "
                                     f"pool, is a layer)")
        layers = [self._layer("AdaptiveAvgPool2d", node, {"output_size": 1})]
        if not node.attrs.get("keepdims", 1):
            layers.append(self._layer("Flatten", node))
        return layers

    def _op_BatchNormalization(self, node: _Node) -> Layer:
        scale, shift, mean, var = (self._const_input(node, k, what) for k, what in
                                   ((1, "scale"), (2, "bias"), (3, "running mean"), (4, "running variance")))
        rank = len(self._shape(node.data[0], node))
        type_name = {4: "BatchNorm2d", 2: "BatchNorm1d"}.get(rank)
        if type_name is None:
            raise self._refuse(node, f"a batch norm of {_shape_text(self._shape(node.data[0], node))}: stacks hold "
                                     f"BatchNorm2d of N×C×H×W and BatchNorm1d of N×C, and no 1-D maps (N×C×L)")
        if node.attrs.get("training_mode", 0):
            raise self._refuse(node, "a batch norm in training mode (export the model in eval mode)")
        params: dict[str, Any] = {}
        eps = _f32(node.attrs.get("epsilon", 1e-5))
        if eps != 1e-5:
            params["eps"] = eps
        momentum = _f32(1 - _f32(node.attrs.get("momentum", 0.9)))
        if momentum != 0.1:
            params["momentum"] = momentum
        return self._layer(type_name, node, params, {"weight": scale.reshape(-1), "bias": shift.reshape(-1),
                                                     "running_mean": mean.reshape(-1),
                                                     "running_var": var.reshape(-1)})

    def _op_Relu(self, node: _Node) -> Layer:
        return self._layer("ReLU", node)

    def _op_LeakyRelu(self, node: _Node) -> Layer:
        slope = _f32(node.attrs.get("alpha", 0.01))
        return self._layer("LeakyReLU", node, {"negative_slope": slope} if slope != 0.01 else {})

    def _op_Elu(self, node: _Node) -> Layer:
        alpha = _f32(node.attrs.get("alpha", 1.0))
        return self._layer("ELU", node, {"alpha": alpha} if alpha != 1.0 else {})

    def _op_Gelu(self, node: _Node) -> Layer:
        approximate = node.attrs.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
        if approximate not in ("none", "tanh"):
            raise self._refuse(node, f"approximate {approximate!r}")
        return self._layer("GELU", node, {"approximate": approximate} if approximate != "none" else {})

    def _op_Sigmoid(self, node: _Node) -> Layer:
        return self._layer("Sigmoid", node)

    def _op_Tanh(self, node: _Node) -> Layer:
        return self._layer("Tanh", node)

    def _op_SiLU(self, node: _Node) -> Layer:
        return self._layer("SiLU", node)

    def _op_Hardswish(self, node: _Node) -> Layer:
        return self._layer("Hardswish", node)

    def _op_HardSwish(self, node: _Node) -> Layer:
        return self._layer("Hardswish", node)

    def _op_HardSigmoid(self, node: _Node) -> Layer:
        if not _hard_sigmoid(node):
            raise self._refuse(node, f"alpha {node.attrs.get('alpha', 0.2)}, beta {node.attrs.get('beta', 0.5)} "
                                     f"(torch's Hardsigmoid is alpha 1/6, beta 0.5)")
        return self._layer("Hardsigmoid", node)

    def _op_Clip(self, node: _Node) -> Layer:
        low, high = node.attrs.get("min"), node.attrs.get("max")
        if len(node.inputs) > 1 and node.inputs[1]:
            low = float(self._const_input(node, 1, "minimum").reshape(-1)[0])
        if len(node.inputs) > 2 and node.inputs[2]:
            high = float(self._const_input(node, 2, "maximum").reshape(-1)[0])
        if low == 0 and high == 6:
            return self._layer("ReLU6", node)
        if low == 0 and (high is None or high == float("inf")):
            return self._layer("ReLU", node)
        raise self._refuse(node, f"a clip to [{low}, {high}] (only [0, 6] is a layer, ReLU6)")

    def _op_Softmax(self, node: _Node, type_name: str = "Softmax") -> Layer:
        rank = len(self._shape(node.data[0], node))
        axis = int(node.attrs.get("axis", -1 if self.opset >= 13 else 1))
        if self.opset < 13 and rank > 2 and axis % rank != rank - 1:
            raise self._refuse(node, f"a {node.op} over axes {axis}.. flattened together (opset {self.opset})")
        return self._layer(type_name, node, {"dim": axis})

    def _op_LogSoftmax(self, node: _Node) -> Layer:
        return self._op_Softmax(node, "LogSoftmax")

    def _op_Dropout(self, node: _Node) -> Layer:
        ratio = node.attrs.get("ratio", 0.5)
        if len(node.inputs) > 1 and node.inputs[1]:
            ratio = float(self._const_input(node, 1, "ratio").reshape(-1)[0])
        ratio = _f32(ratio)
        return self._layer("Dropout", node, {"p": ratio} if ratio != 0.5 else {})

    def _op_Identity(self, node: _Node) -> Layer:
        return self._layer("Identity", node)

    def _op_Flatten(self, node: _Node) -> Layer:
        rank = len(self._shape(node.data[0], node))
        axis = int(node.attrs.get("axis", 1))
        if axis < 0:
            axis += rank
        if axis != 1:
            raise self._refuse(node, f"a flatten at axis {axis} (a layer flattens everything after the batch)")
        return self._layer("Flatten", node)

    def _op_Reshape(self, node: _Node) -> Layer:
        shape = self._shape(node.data[0], node)
        target = self._value(node.inputs[1]) if len(node.inputs) > 1 else None
        if target is None:
            raise self._refuse(node, "a reshape to a size computed from the data")
        target = [int(v) for v in np.asarray(target).reshape(-1)]
        features = math.prod(shape[1:]) if all(isinstance(d, int) for d in shape[1:]) else None
        allowzero = node.attrs.get("allowzero", 0)
        if len(target) == 2 and len(shape) >= 2 and features is not None:
            first, second = target
            batch_ok = first == _BATCH or (first == 0 and not allowzero) or (first == -1 and second != -1) or (
                self.batch is not None and first == self.batch)
            if batch_ok and second in (-1, features) and not (first == -1 and second == -1):
                return self._layer("Flatten", node)
        shown = ", ".join("N" if v == _BATCH else "?" if v == _UNKNOWN else str(v) for v in target)
        raise self._refuse(node, f"a reshape of {_shape_text(shape)} to [{shown}], which is not a flatten")

    def _op_Squeeze(self, node: _Node) -> Layer:
        shape = self._shape(node.data[0], node)
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            axes = self._const_input(node, 1, "axes").reshape(-1).tolist()
        rank = len(shape)
        squeezed = sorted(a + rank if a < 0 else a for a in axes) if axes is not None else None
        if node.fused.get("squeezes"):
            after = self.shapes.get(node.outputs[0])
            squeezed = [2, 3] if after is not None and len(after) == 2 else []
        if rank == 4 and tuple(shape[2:]) == (1, 1) and (squeezed == [2, 3] or (squeezed is None and shape[1] != 1)):
            return self._layer("Flatten", node)  # N×C×1×1 → N×C, after a global pool
        raise self._refuse(node, f"a squeeze of {_shape_text(shape)} on axes {axes} (only N×C×1×1 to N×C, a "
                                 f"flatten)")

    def _op_Gemm(self, node: _Node) -> Layer:
        if node.attrs.get("transA", 0):
            raise self._refuse(node, "transA 1")
        alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
        if alpha != 1.0 or beta != 1.0:
            raise self._refuse(node, f"alpha {alpha}, beta {beta} (a Linear is alpha 1, beta 1)")
        weight = self._const_input(node, 1, "weight")
        if weight.ndim != 2:
            raise self._refuse(node, f"a weight of shape {list(weight.shape)}")
        weight = weight if node.attrs.get("transB", 0) else weight.T
        bias = self._const_input(node, 2, "bias", required=False)
        return self._linear(node, weight, bias)

    def _linear(self, node: _Node, weight: np.ndarray, bias: np.ndarray | None) -> Layer:
        out_features = int(weight.shape[0])
        weights = {"weight": weight}
        params: dict[str, Any] = {"out_features": out_features}
        if bias is None:
            params["bias"] = False
        else:
            if bias.size not in (1, out_features):
                raise self._refuse(node, f"a bias of shape {list(bias.shape)} for {out_features} outputs")
            weights["bias"] = np.broadcast_to(bias.reshape(-1), (out_features,))
        return self._layer("Linear", node, params, weights)

    def _op_MatMul(self, node: _Node) -> Layer:
        if not node.fused.get("linear"):
            raise self._refuse(node, "a product with something other than a 2-D constant weight")
        return self._linear(node, node.fused["weight"], node.fused.get("bias"))

    def _op_MatMul_Add(self, node: _Node) -> Layer:
        return self._op_MatMul(node)

    # ---------------------------------------------------------- the stack
    def _finish(self, layers: list[Layer]) -> Imported:
        from cnnviz.core.shapes import infer

        loss = Loss("NLLLoss") if layers and layers[-1].type == "LogSoftmax" else Loss()
        name = self.name if len(self.name) <= 200 else self.name[:200]
        stack = Stack(name=name, input=InputSpec(*self.chw), layers=tuple(layers), loss=loss,
                      description=f"Imported from an ONNX model (opset {self.opset}).")
        try:  # every limit and range of the file format, as if the stack were read from a file
            files.loads(files.dumps(stack))
        except files.StackFileError as exc:
            raise ImportRefused(f"the model maps onto a stack that cnnviz cannot use: {exc}") from None
        report = infer(stack)
        if report.problem:
            raise ImportRefused(f"the model maps onto a stack that cannot work: {report.problem}")
        declared = self.shapes.get(self.output)
        known = declared and all(isinstance(d, int) and d > 0 for d in declared[1:])
        if known and report.output_shape is not None and tuple(declared[1:]) != tuple(report.output_shape):
            raise ImportRefused(f"the model's output is {_shape_text(declared)} but the imported stack gives "
                                f"{_shape_text((None, *report.output_shape))}")
        weights: dict[str, np.ndarray] = {}
        reports = {str(r.path): r for r in report.walk()}
        for path, layer in stack.walk():
            tensors = self.weights.get(layer.uid)
            if not tensors:
                continue
            counted = sum(v.size for k, v in tensors.items() if not k.startswith("running_"))
            if reports[str(path)].params != counted:
                raise ImportRefused(f"{path.words()} ({layer.type}) would hold {reports[str(path)].params:,} "
                                    f"parameters but the model gives {counted:,}")
            for key, value in tensors.items():
                weights[f"{path}.{key}"] = value
        return Imported(stack, weights, self.opset, len(self.graph.node), self.parameters, self.notes)


_PADDED = ("Conv", "MaxPool", "AveragePool")
"""The nodes a ``Pad`` in front of them folds into."""
_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
"""ONNX's ``Pad`` modes and torch's Conv2d ``padding_mode`` for each."""


def _sides_text(pads: list[int]) -> str:
    top, left, bottom, right = pads
    return f"top {top}, bottom {bottom}, left {left}, right {right}"


def _shape_text(shape) -> str:
    return "×".join("N" if k == 0 and d is None else "?" if d is None else str(d) for k, d in enumerate(shape))


_SAME_SHAPE = {"ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "SiLU", "Hardswish", "Hardsigmoid",
               "BatchNorm2d", "BatchNorm1d", "Dropout", "Identity", "Softmax", "LogSoftmax"}


def _shape_after(layer: Layer, shape: tuple | None) -> tuple | None:
    """The shape after ``layer`` where it follows from the shape before (for the layers onnx's inference may
    not follow in older opsets); None where it does not."""
    if shape is None:
        return None
    if layer.type in _SAME_SHAPE:
        return shape
    if layer.type == "Flatten":
        rest = shape[1:]
        return (shape[0], math.prod(rest)) if all(isinstance(d, int) for d in rest) else None
    if layer.type == "Linear":
        return (*shape[:-1], layer.params["out_features"])
    return None


def _concat_shape(shapes: list) -> tuple | None:
    if any(s is None or len(s) < 2 or not isinstance(s[1], int) for s in shapes):
        return None
    first = shapes[0]
    return (first[0], sum(s[1] for s in shapes), *first[2:])


_ERF = np.vectorize(math.erf, otypes=[float])


def _clip(args, attrs):
    low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min", -np.inf)
    high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max", np.inf)
    return np.clip(args[0], low, high)


_ELEMENTWISE = {
    "Add": lambda a, k: np.add(a[0], a[1]), "Sub": lambda a, k: np.subtract(a[0], a[1]),
    "Mul": lambda a, k: np.multiply(a[0], a[1]), "Div": lambda a, k: np.divide(a[0], a[1]),
    "Pow": lambda a, k: np.power(a[0], a[1]), "Erf": lambda a, k: _ERF(a[0]), "Tanh": lambda a, k: np.tanh(a[0]),
    "Sigmoid": lambda a, k: 1 / (1 + np.exp(-a[0])), "Relu": lambda a, k: np.maximum(a[0], 0),
    "HardSigmoid": lambda a, k: np.clip(k.get("alpha", 0.2) * a[0] + k.get("beta", 0.5), 0, 1),
    "Clip": _clip, "Neg": lambda a, k: -a[0], "Exp": lambda a, k: np.exp(a[0]), "Sqrt": lambda a, k: np.sqrt(a[0]),
    "Identity": lambda a, k: a[0],
}
"""Elementwise ops an exporter may spell an activation with, evaluated on sample values (numpy, float64)."""

_ACTIVATIONS = (
    ("GELU", {}, lambda x: 0.5 * x * (1 + _ERF(x / math.sqrt(2)))),
    ("GELU", {"approximate": "tanh"},
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    ("SiLU", {}, lambda x: x / (1 + np.exp(-x))),
    ("Hardswish", {}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
)
"""The activations recognised in arithmetic: (catalogue type, keywords, the function)."""


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ImportRefused(f"the model holds {what} that is not UTF-8 text: is the file broken?")
    return value


_ATTRIBUTE_KINDS = {
    **dict.fromkeys(("kernel_shape", "strides", "pads", "dilations", "axes", "perm"), "ints"),
    **dict.fromkeys(("axis", "group", "ceil_mode", "count_include_pad", "keepdims", "transA", "transB",
                     "training_mode", "allowzero", "to", "start", "end", "noop_with_empty_axes"), "int"),
    **dict.fromkeys(("alpha", "beta", "epsilon", "momentum", "ratio", "min", "max"), "float"),
    **dict.fromkeys(("auto_pad", "approximate", "mode"), "text"),
}


def _check_attributes(node: _Node) -> None:
    """Refuse an attribute of the wrong kind or out of any sane range (a broken or hostile file)."""
    for key, value in list(node.attrs.items()):
        kind = _ATTRIBUTE_KINDS.get(key)
        if kind is None:
            continue
        if kind == "ints":
            ok = isinstance(value, list) and all(isinstance(v, int) and abs(v) < (1 << 31) for v in value) \
                and len(value) <= 16
        elif kind == "int":
            ok = isinstance(value, int) and abs(value) < (1 << 31)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and math.isfinite(value)
        else:
            ok = isinstance(value, bytes) and len(value) < 64
            if ok:
                try:
                    node.attrs[key] = value.decode("ascii")
                except UnicodeDecodeError:
                    ok = False
        if not ok:
            wanted = {"ints": "a list of integers", "int": "an integer", "float": "a finite number",
                      "text": "a short ASCII text"}[kind]
            raise ImportRefused(f"{node.described()}: its attribute {key!r} is not {wanted} in range")


def _hard_sigmoid(node: _Node) -> bool:
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    return abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-7


def _is_shape_like(value: np.ndarray, node: _Node, importer: _Importer) -> bool:
    """A folded value that came from a shape (it may hold the symbolic batch size)."""
    return any(i in importer.meta for i in node.inputs if i)


# ------------------------------------------------------------------ constant arithmetic
def _ints(value) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


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


# ------------------------------------------------------------------ writing
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
