"""What the parts of the ONNX importer share: the limits, the ops it reads, :class:`ImportRefused`,
:class:`Imported`, a graph node (:class:`_Node`), and the small helpers that word refusals."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.model.stack import Stack

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

_BATCH = np.int64(-(1 << 60))  # an element of a folded shape that is the (symbolic) batch size
_UNKNOWN = np.int64(-(1 << 61))  # an element of a folded shape that is not known


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


def _sides_text(pads: list[int]) -> str:
    top, left, bottom, right = pads
    return f"top {top}, bottom {bottom}, left {left}, right {right}"


def _shape_text(shape) -> str:
    return "×".join("N" if k == 0 and d is None else "?" if d is None else str(d) for k, d in enumerate(shape))


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ImportRefused(f"the model holds {what} that is not UTF-8 text: is the file broken?")
    return value


def _hard_sigmoid(node: _Node) -> bool:
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    return abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-7


def _ints(value) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]
