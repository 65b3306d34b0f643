"""Reading an ONNX file: the protobuf parsed (never ``onnx.load``), its limits and tensors checked before
anything is allocated for them, the initializers read into numpy, the one input and one output, every
tensor's shape (onnx's shape inference), and each node with its attributes checked."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from cnnviz.core.importer.base import (
    MAX_OPSET,
    MAX_PARAMETERS,
    MIN_OPSET,
    ImportRefused,
    _Node,
    _quote,
    _str,
    _supported,
)

_FLOAT_TYPES = (1, 10, 11, 16)  # float32, float16, float64, bfloat16


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


def _read_node(proto) -> _Node:
    """The node of ``proto``, its attributes read and checked; refused where it is from another operator set."""
    from onnx import helper

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
    return node


class _Graph:
    """The model as read: its constants (``consts``), folded shapes (``meta``), every tensor's shape, the input
    and output, the input's C×H×W and batch size; what the later steps read and add to."""

    def __init__(self, model, input_shape, name: str, folder: Path | None) -> None:
        self.model = model
        self.graph = model.graph
        self.input_shape = input_shape
        self.name = name or "Imported"
        self.folder = folder
        self.consts: dict[str, np.ndarray] = {}
        self.meta: dict[str, np.ndarray] = {}  # folded shapes (may hold _BATCH / _UNKNOWN)
        self.shapes: dict[str, tuple] = {}
        self.notes: list[str] = []

    def read(self, max_nodes: int) -> None:
        """Check the model against the limits (``max_nodes``: :data:`~cnnviz.core.importer.onnx.MAX_NODES`, read
        there at each import), read its initializers, its input and output, and every tensor's shape."""
        import onnx

        graph = self.graph
        self.opset = self._opset()
        if len(graph.node) > max_nodes:
            raise ImportRefused(f"the graph has {len(graph.node):,} nodes; cnnviz imports at most {max_nodes:,}")
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

    def refine_shapes(self, nodes: list[_Node]) -> None:
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

    def shape(self, name: str, node: _Node) -> tuple:
        shape = self.shapes.get(name)
        if shape is None:
            raise ImportRefused(f"{node.described()}: the shape of its input {_quote(name)} cannot be inferred")
        return shape

    def value(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in self.consts:
            return self.consts[name]
        return self.meta.get(name)
