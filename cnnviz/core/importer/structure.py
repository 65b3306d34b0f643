"""The structure: the live data nodes as a chain of layers and blocks. A tensor used by several nodes is a
fork; the node where its paths meet again (its immediate post-dominator) must be an ``Add`` of two paths (a
``Residual``: the body is the longer path, the shortcut the other, empty for the identity) or a ``Concat`` on
the channel axis (a ``Concat`` block, its branches in the node's input order)."""
from __future__ import annotations

from cnnviz.core.importer.base import MAX_BRANCHES, ImportRefused, _Node, _quote, _supported
from cnnviz.core.importer.graph import _Graph
from cnnviz.core.importer.layers import _Mapper
from cnnviz.core.importer.patterns import arithmetic_activation
from cnnviz.core.model.layers import MAX_BLOCK_DEPTH, MAX_LAYERS
from cnnviz.core.model.stack import Layer, concat, residual


class _Structure:
    """The data nodes of one graph that the output depends on, how they read each other, and the layers they
    make (each node mapped by a :class:`~cnnviz.core.importer.layers._Mapper`)."""

    def __init__(self, graph: _Graph, nodes: list[_Node]) -> None:
        self.graph = graph
        # Live nodes: those the output depends on (a Dropout's mask, a MaxPool's indices are not followed).
        producer = {}
        for k, node in enumerate(nodes):
            for o in node.outputs:
                if o:
                    producer[o] = k
        live = set()
        todo = [self.graph.output]
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
        self.mapper = _Mapper(graph, self.nodes, self.uses)

    def layers(self) -> list[Layer]:
        """The stack's layers, from the input to the output."""
        for k, node in enumerate(self.nodes):
            for extra in node.outputs[1:]:
                if extra and (self.uses.get(extra) or extra == self.graph.output):
                    raise ImportRefused(f"{node.described()}: its output {_quote(extra)} is used, which a layer "
                                        f"cannot give; {_supported()}")
        self._post_dominators()
        layers, _end = self._walk(self.graph.input, None, 0)
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
            if out == self.graph.output:
                succ[k].append(sink)
        data_input = self.graph.input
        succ[source] = sorted(set(self.uses.get(data_input, []))) + ([sink] if data_input == self.graph.output else [])
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
            mapped, t = self.mapper.map(node)
            layers += mapped
        while True:
            uses = self.uses.get(t, [])
            if merge is None and t == self.graph.output:
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
                mapped, t = self.mapper.map(self.nodes[k])
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
        activation = arithmetic_activation(self, t, uses, m, outer)
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
        if out not in self.graph.shapes and self.graph.shapes.get(slots[0]) is not None:
            self.graph.shapes[out] = self.graph.shapes[slots[0]] if kind == "Residual" else _concat_shape(
                [self.graph.shapes.get(slot) for slot in slots])
            if self.graph.shapes[out] is None:
                del self.graph.shapes[out]
        paths = [f for f in filled if f is not None]
        if kind == "Residual":
            a, b = paths
            body, shortcut = (a, b) if len(a) >= len(b) else (b, a)
            block = residual(body, shortcut)
        else:
            block = concat(*paths)
        return block, merge.outputs[0]

    def _merge_kind(self, node: _Node) -> str | None:
        if node.op == "Add" and len(node.data) == 2 and len(node.inputs) == 2:
            return "Residual"
        if node.op == "Concat" and len(node.data) == len(node.inputs) >= 2:
            rank = len(self.graph.shapes.get(node.outputs[0], ()) or ())
            axis = node.attrs.get("axis", 1)
            if rank and axis < 0:
                axis += rank
            return "Concat" if axis == 1 else None
        return None


def _concat_shape(shapes: list) -> tuple | None:
    if any(s is None or len(s) < 2 or not isinstance(s[1], int) for s in shapes):
        return None
    first = shapes[0]
    return (first[0], sum(s[1] for s in shapes), *first[2:])
