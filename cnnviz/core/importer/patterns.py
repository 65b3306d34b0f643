"""Patterns matched before anything is refused: ``x · sigmoid(x)`` is SiLU, ``x · hardsigmoid(x)``
Hardswish, ``MatMul`` + ``Add`` a Linear, two Squeezes one, TorchScript's circular pad (Slices and a Concat)
one Pad, and a ``Pad`` read by one Conv, MaxPool or AveragePool folded into it; and, where the paths from a
fork meet, an activation that an exporter wrote as arithmetic (GELU as Div, Erf, Add, Mul)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cnnviz.core.importer.base import _hard_sigmoid, _ints, _Node
from cnnviz.core.importer.graph import _Graph
from cnnviz.core.model.layers import CATALOGUE
from cnnviz.core.model.stack import Layer

if TYPE_CHECKING:
    from cnnviz.core.importer.structure import _Structure

_PADDED = ("Conv", "MaxPool", "AveragePool")
"""The nodes a ``Pad`` in front of them folds into."""


def fuse(graph: _Graph, nodes: list[_Node]) -> list[_Node]:
    """x · sigmoid(x) → SiLU, x · hardsigmoid(x) → Hardswish, MatMul + Add → Linear, a Pad into the Conv or
    pool that reads it."""
    nodes = _circular_pads(graph, nodes)
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
                if s == graph.output:
                    continue
                node.op, node.inputs, node.data = fused, [x], [x]
                node.fused = {"from": f"{gate.op} and Mul"}
                drop.add(id(gate))
                break
        elif node.op == "Squeeze" and len(node.data) == 1 and node.outputs[0] != graph.output:
            after = uses.get(node.outputs[0], [])
            if len(after) == 1 and after[0].op == "Squeeze" and after[0].data == node.outputs[:1]:
                # x.squeeze(-1).squeeze(-1): one squeeze of both axes, judged by the shapes around it
                second = after[0]
                second.inputs, second.data = [node.data[0]], [node.data[0]]
                second.attrs = {k: v for k, v in second.attrs.items() if k != "axes"}
                second.fused = {"squeezes": 2}
                drop.add(id(node))
        elif node.op == "Pad" and len(node.data) == 1 and node.inputs[0] == node.data[0] \
                and node.outputs[0] != graph.output:
            after = uses.get(node.outputs[0], [])
            reader = after[0] if len(after) == 1 else None
            if reader is not None and reader.op in _PADDED and reader.data == node.outputs[:1] \
                    and reader.inputs[0] == node.outputs[0]:
                source = producer.get(node.data[0])
                reader.fused = {"pad": node, "nonnegative": source is not None and _nonnegative(graph, source)}
                reader.inputs, reader.data = [node.data[0], *reader.inputs[1:]], [node.data[0]]
                drop.add(id(node))
        elif node.op == "MatMul" and len(node.data) == 1 and node.inputs[0] == node.data[0]:
            weight = graph.value(node.inputs[1])
            if weight is None or weight.ndim != 2:
                continue
            node.fused = {"weight": weight.T, "bias": None}
            out = node.outputs[0]
            after = uses.get(out, [])
            if out != graph.output and len(after) == 1 and after[0].op == "Add" and len(after[0].data) == 1:
                add = after[0]
                other = next((i for i in add.inputs if i != out), None)
                bias = graph.value(other) if other else None
                if bias is not None and bias.size in (1, weight.shape[1]) and bias.ndim <= 2:
                    node.fused["bias"] = np.broadcast_to(bias.reshape(-1), (weight.shape[1],))
                    node.outputs = list(add.outputs)
                    drop.add(id(add))
            node.op = "MatMul+Add" if node.fused["bias"] is not None else "MatMul"
            node.fused["linear"] = True
    return [n for n in nodes if id(n) not in drop]


def _circular_pads(graph: _Graph, nodes: list[_Node]) -> list[_Node]:
    """TorchScript's circular pad, ``Concat([x[..., -p:], x, x[..., :q]])`` on H then on W, as one Pad of
    mode wrap (the Slices dropped); the Concat of one tensor it writes for an axis not padded is dropped."""
    alias: dict[str, str] = {}
    kept = []
    for node in nodes:
        node.inputs = [alias.get(name, name) for name in node.inputs]
        node.data = [alias.get(name, name) for name in node.data]
        if node.op == "Concat" and len(node.inputs) == 1 and node.data == node.inputs \
                and node.outputs[0] != graph.output:
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
        shape = graph.shapes.get(x)
        axis = node.attrs.get("axis", 1)
        if shape is None or len(shape) != 4 or not isinstance(axis, int) or axis % 4 not in (2, 3):
            continue
        axis %= 4
        size = shape[axis]
        slices = [producer.get(tail), producer.get(head)]
        if not isinstance(size, int) or any(n is None or n.op != "Slice" or n.data != [x] or n.inputs[0] != x
                                            or len(uses.get(n.outputs[0], ())) != 1 for n in slices):
            continue
        ranges = [_slice_range(graph, n, axis, size) for n in slices]
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
                and len(uses.get(first.outputs[0], ())) == 1 and first.outputs[0] != graph.output:
            node.attrs = {"mode": "wrap", "pads": [a + b for a, b in zip(first.attrs["pads"], node.attrs["pads"])]}
            node.inputs, node.data = list(first.inputs), list(first.data)
            drop.add(id(first))
    return [n for n in nodes if id(n) not in drop]


def _slice_range(graph: _Graph, node: _Node, axis: int, size: int) -> tuple[int, int] | None:
    """[start, end) that a Slice of one axis of ``size`` takes, step 1; None for any other slice."""
    if "starts" in node.attrs:  # opsets before 10
        starts, ends, axes, steps = node.attrs["starts"], node.attrs.get("ends"), node.attrs.get("axes"), None
    else:
        values = [graph.value(name) if name else None for name in node.inputs[1:5]]
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


def _nonnegative(graph: _Graph, node: _Node) -> bool:
    """Whether the output of ``node`` is never negative (a zero border then never wins a max)."""
    if node.op in ("Relu", "Sigmoid") or (node.op == "HardSigmoid" and _hard_sigmoid(node)):
        return True
    if node.op != "Clip":
        return False
    low = node.attrs.get("min")
    if len(node.inputs) > 1 and node.inputs[1]:
        value = graph.value(node.inputs[1])
        low = float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None
    return low is not None and low >= 0


# ---------------------------------------------------------- activations spelt as arithmetic
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


def arithmetic_activation(structure: _Structure, t: str, uses: list[int], m: int,
                          outer: int | None) -> tuple[Layer, str] | None:
    """An activation that an exporter wrote as arithmetic (GELU as Div, Erf, Add, Mul; its tanh form; x ·
    sigmoid(x)), recognised by evaluating the nodes from the fork to where they meet (and a constant factor
    after it) on sample values: the layer and the tensor it gives, or None."""
    region: set[int] = set()
    todo = list(uses)
    while todo:
        k = todo.pop()
        if k in region:
            continue
        node = structure.nodes[k]
        if node.op not in _ELEMENTWISE or len(region) > 40:
            return None
        region.add(k)
        if k != m:
            todo.extend(structure.uses.get(node.outputs[0], []))
    end = m
    xs = np.concatenate([np.linspace(-6.0, 6.0, 97), [-20.0, -9.5, 9.5, 20.0]])
    for _ in range(3):
        got = _evaluate_region(structure, t, sorted(region), end, xs)
        if got is None:
            return None
        for type_name, params, f in _ACTIVATIONS:
            if type_name in CATALOGUE and np.all(np.abs(got - f(xs)) <= 1e-5 * (1 + np.abs(xs))):
                return structure.mapper.layer(type_name, structure.nodes[end], params), structure.nodes[end].outputs[0]
        out = structure.nodes[end].outputs[0]  # a constant factor after the meeting point (TorchScript's GELU)
        following = structure.uses.get(out, [])
        if out == structure.graph.output or len(following) != 1 or following[0] == outer:
            return None
        nxt = structure.nodes[following[0]]
        if nxt.op not in _ELEMENTWISE or len(nxt.data) != 1:
            return None
        region.add(following[0])
        end = following[0]
    return None


def _evaluate_region(structure: _Structure, t: str, region: list[int], end: int, xs: np.ndarray) -> np.ndarray | None:
    values = {t: xs}
    for k in region:
        node = structure.nodes[k]
        if k != end and any(u not in region for u in structure.uses.get(node.outputs[0], [])):
            return None  # an inner value is used outside: not one activation
        args = []
        for name in node.inputs:
            if not name:
                args.append(None)
            elif name in values:
                args.append(values[name])
            else:
                const = structure.graph.value(name)
                if const is None or const.size != 1:
                    return None
                args.append(float(const.reshape(-1)[0]))
        try:
            with np.errstate(all="ignore"):
                values[node.outputs[0]] = _ELEMENTWISE[node.op](args, node.attrs)
        except Exception:  # noqa: BLE001  (an input missing or of the wrong kind: not an activation)
            return None
    return values.get(structure.nodes[end].outputs[0])
