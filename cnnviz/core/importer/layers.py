"""One data node, one layer (or two): each op the catalogue can express mapped onto its layer, parameters
and weights; a ``Pad`` folded into a Conv or pool (by :mod:`.patterns`) becomes its padding (the modes
reflect, edge and wrap as a Conv2d's ``padding_mode``; uneven pads as ``padding="same"`` where torch's rule
gives them)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnviz.core.importer.base import (
    _BATCH,
    _UNKNOWN,
    ImportRefused,
    _f32,
    _hard_sigmoid,
    _Node,
    _pair,
    _shape_text,
    _sides_text,
    _supported,
)
from cnnviz.core.importer.graph import _Graph
from cnnviz.core.model.layers import CATALOGUE
from cnnviz.core.model.stack import Layer

_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
"""ONNX's ``Pad`` modes and torch's Conv2d ``padding_mode`` for each."""


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


class _Mapper:
    """Maps the nodes of one graph onto layers, and keeps their weights (by layer uid) and parameter count;
    ``nodes`` and ``uses`` are the live data nodes and which of them read each tensor."""

    def __init__(self, graph: _Graph, nodes: list[_Node], uses: dict[str, list[int]]) -> None:
        self.graph = graph
        self.nodes = nodes
        self.uses = uses
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        self.parameters = 0

    def layer(self, type_name: str, node: _Node, params: dict | None = None,
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
        value = self.graph.value(name)
        if value is None:
            raise ImportRefused(f"{node.described()}: its {what} is computed from the input, not a constant; "
                                f"a layer's {what} is a weight")
        return value

    def _refuse(self, node: _Node, why: str) -> ImportRefused:
        return ImportRefused(f"{node.described()} cannot be expressed: {why}; {_supported()}")

    def map(self, node: _Node) -> tuple[list[Layer], str]:
        handler = getattr(self, "_op_" + node.op.replace("+", "_"), None)
        if handler is None:
            raise ImportRefused(f"{node.described()} cannot be expressed in a stack; {_supported()}")
        if node.data and node.inputs and node.inputs[0] != node.data[0] and node.op not in ("Add", "Mul"):
            raise self._refuse(node, "its data arrives on an input that holds a weight")
        result = handler(node)
        layers = result if isinstance(result, list) else [result]
        out = node.outputs[0]
        shape = self.graph.shapes.get(node.data[0])
        if out not in self.graph.shapes and shape is not None:  # where onnx's inference gave up (older opsets)
            for layer in layers:
                shape = _shape_after(layer, shape)
            if shape is not None:
                self.graph.shapes[out] = shape
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
            if len(pad.inputs) > 1 and pad.inputs[1] and (self.graph.value(pad.inputs[1]) is None
                                                          or pad.inputs[1] in self.graph.meta):
                raise self._refuse(pad, "pads computed from the data (a layer's padding is a fixed number)")
            pads = [int(v) for v in self._const_input(pad, 1, "pads").reshape(-1)]
            value = self._const_input(pad, 2, "constant value", required=False)
            value = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
            axes = self._const_input(pad, 3, "axes", required=False)
            axes = None if axes is None else [int(a) for a in axes.reshape(-1)]
        rank = len(self.graph.shape(pad.data[0], pad))
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
        return self.layer("Conv2d", node, params, weights)

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
        return self.layer(type_name, node, params)

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
            return self.layer("Identity", node)
        readers = [self.nodes[k].described() for k in self.uses.get(node.outputs[0], [])]
        where = ("the model's output" if node.outputs[0] == self.graph.output and not readers
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
        if len(self.graph.shape(node.data[0], node)) != 4:
            raise self._refuse(node, "a global pool of a tensor that is not C×H×W")
        return self.layer("AdaptiveAvgPool2d", node, {"output_size": 1})

    def _op_ReduceMean(self, node: _Node) -> list[Layer]:
        rank = len(self.graph.shape(node.data[0], node))
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            axes = self._const_input(node, 1, "axes").reshape(-1).tolist()
        if axes is None or rank != 4 or sorted(a + rank if a < 0 else a for a in axes) != [2, 3]:
            raise self._refuse(node, f"a mean over axes {axes} (only the mean over H and W, a global average "
                                     f"pool, is a layer)")
        layers = [self.layer("AdaptiveAvgPool2d", node, {"output_size": 1})]
        if not node.attrs.get("keepdims", 1):
            layers.append(self.layer("Flatten", node))
        return layers

    def _op_BatchNormalization(self, node: _Node) -> Layer:
        scale, shift, mean, var = (self._const_input(node, k, what) for k, what in
                                   ((1, "scale"), (2, "bias"), (3, "running mean"), (4, "running variance")))
        rank = len(self.graph.shape(node.data[0], node))
        type_name = {4: "BatchNorm2d", 2: "BatchNorm1d"}.get(rank)
        if type_name is None:
            raise self._refuse(node, f"a batch norm of {_shape_text(self.graph.shape(node.data[0], node))}: "
                                     f"stacks hold BatchNorm2d of N×C×H×W and BatchNorm1d of N×C, and no 1-D "
                                     f"maps (N×C×L)")
        if node.attrs.get("training_mode", 0):
            raise self._refuse(node, "a batch norm in training mode (export the model in eval mode)")
        params: dict[str, Any] = {}
        eps = _f32(node.attrs.get("epsilon", 1e-5))
        if eps != 1e-5:
            params["eps"] = eps
        momentum = _f32(1 - _f32(node.attrs.get("momentum", 0.9)))
        if momentum != 0.1:
            params["momentum"] = momentum
        return self.layer(type_name, node, params, {"weight": scale.reshape(-1), "bias": shift.reshape(-1),
                                                     "running_mean": mean.reshape(-1),
                                                     "running_var": var.reshape(-1)})

    def _op_Relu(self, node: _Node) -> Layer:
        return self.layer("ReLU", node)

    def _op_LeakyRelu(self, node: _Node) -> Layer:
        slope = _f32(node.attrs.get("alpha", 0.01))
        return self.layer("LeakyReLU", node, {"negative_slope": slope} if slope != 0.01 else {})

    def _op_Elu(self, node: _Node) -> Layer:
        alpha = _f32(node.attrs.get("alpha", 1.0))
        return self.layer("ELU", node, {"alpha": alpha} if alpha != 1.0 else {})

    def _op_Gelu(self, node: _Node) -> Layer:
        approximate = node.attrs.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
        if approximate not in ("none", "tanh"):
            raise self._refuse(node, f"approximate {approximate!r}")
        return self.layer("GELU", node, {"approximate": approximate} if approximate != "none" else {})

    def _op_Sigmoid(self, node: _Node) -> Layer:
        return self.layer("Sigmoid", node)

    def _op_Tanh(self, node: _Node) -> Layer:
        return self.layer("Tanh", node)

    def _op_SiLU(self, node: _Node) -> Layer:
        return self.layer("SiLU", node)

    def _op_Hardswish(self, node: _Node) -> Layer:
        return self.layer("Hardswish", node)

    def _op_HardSwish(self, node: _Node) -> Layer:
        return self.layer("Hardswish", node)

    def _op_HardSigmoid(self, node: _Node) -> Layer:
        if not _hard_sigmoid(node):
            raise self._refuse(node, f"alpha {node.attrs.get('alpha', 0.2)}, beta {node.attrs.get('beta', 0.5)} "
                                     f"(torch's Hardsigmoid is alpha 1/6, beta 0.5)")
        return self.layer("Hardsigmoid", node)

    def _op_Clip(self, node: _Node) -> Layer:
        low, high = node.attrs.get("min"), node.attrs.get("max")
        if len(node.inputs) > 1 and node.inputs[1]:
            low = float(self._const_input(node, 1, "minimum").reshape(-1)[0])
        if len(node.inputs) > 2 and node.inputs[2]:
            high = float(self._const_input(node, 2, "maximum").reshape(-1)[0])
        if low == 0 and high == 6:
            return self.layer("ReLU6", node)
        if low == 0 and (high is None or high == float("inf")):
            return self.layer("ReLU", node)
        raise self._refuse(node, f"a clip to [{low}, {high}] (only [0, 6] is a layer, ReLU6)")

    def _op_Softmax(self, node: _Node, type_name: str = "Softmax") -> Layer:
        rank = len(self.graph.shape(node.data[0], node))
        axis = int(node.attrs.get("axis", -1 if self.graph.opset >= 13 else 1))
        if self.graph.opset < 13 and rank > 2 and axis % rank != rank - 1:
            raise self._refuse(node, f"a {node.op} over axes {axis}.. flattened together (opset {self.graph.opset})")
        return self.layer(type_name, node, {"dim": axis})

    def _op_LogSoftmax(self, node: _Node) -> Layer:
        return self._op_Softmax(node, "LogSoftmax")

    def _op_Dropout(self, node: _Node) -> Layer:
        ratio = node.attrs.get("ratio", 0.5)
        if len(node.inputs) > 1 and node.inputs[1]:
            ratio = float(self._const_input(node, 1, "ratio").reshape(-1)[0])
        ratio = _f32(ratio)
        return self.layer("Dropout", node, {"p": ratio} if ratio != 0.5 else {})

    def _op_Identity(self, node: _Node) -> Layer:
        return self.layer("Identity", node)

    def _op_Flatten(self, node: _Node) -> Layer:
        rank = len(self.graph.shape(node.data[0], node))
        axis = int(node.attrs.get("axis", 1))
        if axis < 0:
            axis += rank
        if axis != 1:
            raise self._refuse(node, f"a flatten at axis {axis} (a layer flattens everything after the batch)")
        return self.layer("Flatten", node)

    def _op_Reshape(self, node: _Node) -> Layer:
        shape = self.graph.shape(node.data[0], node)
        target = self.graph.value(node.inputs[1]) if len(node.inputs) > 1 else None
        if target is None:
            raise self._refuse(node, "a reshape to a size computed from the data")
        target = [int(v) for v in np.asarray(target).reshape(-1)]
        features = math.prod(shape[1:]) if all(isinstance(d, int) for d in shape[1:]) else None
        allowzero = node.attrs.get("allowzero", 0)
        if len(target) == 2 and len(shape) >= 2 and features is not None:
            first, second = target
            batch_ok = first == _BATCH or (first == 0 and not allowzero) or (first == -1 and second != -1) or (
                self.graph.batch is not None and first == self.graph.batch)
            if batch_ok and second in (-1, features) and not (first == -1 and second == -1):
                return self.layer("Flatten", node)
        shown = ", ".join("N" if v == _BATCH else "?" if v == _UNKNOWN else str(v) for v in target)
        raise self._refuse(node, f"a reshape of {_shape_text(shape)} to [{shown}], which is not a flatten")

    def _op_Squeeze(self, node: _Node) -> Layer:
        shape = self.graph.shape(node.data[0], node)
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            axes = self._const_input(node, 1, "axes").reshape(-1).tolist()
        rank = len(shape)
        squeezed = sorted(a + rank if a < 0 else a for a in axes) if axes is not None else None
        if node.fused.get("squeezes"):
            after = self.graph.shapes.get(node.outputs[0])
            squeezed = [2, 3] if after is not None and len(after) == 2 else []
        if rank == 4 and tuple(shape[2:]) == (1, 1) and (squeezed == [2, 3] or (squeezed is None and shape[1] != 1)):
            return self.layer("Flatten", node)  # N×C×1×1 → N×C, after a global pool
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
        return self.layer("Linear", node, params, weights)

    def _op_MatMul(self, node: _Node) -> Layer:
        if not node.fused.get("linear"):
            raise self._refuse(node, "a product with something other than a 2-D constant weight")
        return self._linear(node, node.fused["weight"], node.fused.get("bias"))

    def _op_MatMul_Add(self, node: _Node) -> Layer:
        return self._op_MatMul(node)
