"""Findings that do not stop a stack but are probably not what was meant.

Each lint looks at the whole stack and its shape reports and returns warnings
for layers (by index) and for the loss. No torch, no Qt.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cnnviz.core.model.layers import CATALOGUE

if TYPE_CHECKING:
    from cnnviz.core.model.stack import Stack
    from cnnviz.core.shapes.inference import LayerReport

_PASSTHROUGH = {"Dropout", "Dropout2d", "Identity"}  # nothing changes the values in evaluation
_ACTIVATIONS = {spec.type for spec in CATALOGUE.values() if spec.group == "activation"}


def _last_effective(stack: "Stack") -> tuple[int, str] | None:
    """Index and type of the last layer that is not Dropout or Identity."""
    for i in range(len(stack.layers) - 1, -1, -1):
        if stack.layers[i].type not in _PASSTHROUGH:
            return i, stack.layers[i].type
    return None


def lint(stack: "Stack", reports: list["LayerReport"]) -> tuple[dict[int, list[str]], list[str]]:
    layer_w: dict[int, list[str]] = {}
    loss_w: list[str] = []

    def add(i: int, text: str) -> None:
        layer_w.setdefault(i, []).append(text)

    last = _last_effective(stack)
    loss = stack.loss.type
    if last is not None:
        i, kind = last
        if loss == "CrossEntropyLoss" and kind == "Softmax":
            text = ("Softmax before CrossEntropyLoss applies softmax twice: CrossEntropyLoss takes raw scores "
                    "(logits) and applies log_softmax itself, so probabilities get squashed again and the "
                    "gradients shrink. Remove Softmax, or switch to LogSoftmax + NLLLoss")
            add(i, text)
            loss_w.append(text)
        elif loss == "CrossEntropyLoss" and kind == "LogSoftmax":
            text = ("LogSoftmax before CrossEntropyLoss is redundant (log_softmax of log-probabilities changes "
                    "nothing): remove it, or use NLLLoss")
            add(i, text)
            loss_w.append(text)
        elif loss == "NLLLoss" and kind == "Softmax":
            text = ("NLLLoss expects log-probabilities but Softmax gives probabilities: use LogSoftmax(dim=1) "
                    "instead of Softmax")
            add(i, text)
            loss_w.append(text)
        elif loss == "NLLLoss" and kind != "LogSoftmax":
            loss_w.append(f"NLLLoss expects log-probabilities but the stack ends with {kind}, so the loss is "
                          f"-score[y] and can fall without bound: end with LogSoftmax(dim=1), or use "
                          f"CrossEntropyLoss")
    elif loss == "NLLLoss":
        loss_w.append("NLLLoss expects log-probabilities: end the stack with LogSoftmax(dim=1)")

    ok = all(r.error is None for r in reports)
    if ok:
        out = reports[-1].output_shape if reports else stack.input.shape
        if out is not None and len(out) != 1:
            shape = "×".join(map(str, out))
            loss_w.append(f"{loss} compares one score per class with a class label, but the stack ends with "
                          f"{shape} per sample: add Flatten and a Linear with one output per class")
        elif out is not None and out[0] < 2:
            loss_w.append(f"the stack scores {out[0]} class; a classifier needs at least 2 outputs")

    _lint_collapse(stack, reports, add)
    _lint_stacked_linear(stack, add)
    return layer_w, loss_w


def _lint_collapse(stack, reports, add) -> None:
    """Spatial size reaching 1×1 while a convolution with a bigger kernel still follows."""
    for r in reports:
        shape = r.output_shape
        if shape is None or len(shape) != 3 or shape[1:] != (1, 1):
            continue
        for j in range(r.index + 1, len(stack.layers)):
            later = stack.layers[j]
            if later.type == "Flatten":
                return
            if later.type == "Conv2d":
                k = later.params.get("kernel_size", 1)
                k = max(k) if isinstance(k, list) else k
                if k > 1:
                    add(r.index, f"the maps are 1×1 here but Conv2d at layer {j} follows: its {k}×{k} kernel "
                                 f"sees one real pixel and the rest padding")
                    return
        return


_AFFINE = {"BatchNorm1d"}
"""Per-feature scale and shift: between two Linear layers, no more non-linear than nothing."""


def _lint_stacked_linear(stack, add) -> None:
    """Two Linear layers with nothing non-linear between them (a BatchNorm1d is affine) collapse into one."""
    prev_linear = None
    for i, layer in enumerate(stack.layers):
        if layer.type == "Linear":
            if prev_linear is not None:
                add(i, f"no activation between Linear at layer {prev_linear} and this one: two linear maps "
                       f"compose to one, so add ReLU (or another activation) between them")
            prev_linear = i
        elif layer.type in _ACTIVATIONS or layer.type not in _PASSTHROUGH | _AFFINE:
            prev_linear = None


_NORMS = {"BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm2d"}
_WEIGHTED = {"Conv2d", "Linear"}


def block_warnings(layer, shape, out) -> tuple[str, ...]:
    """What is probably not meant in a block that works: a residual body without a normalisation, a
    shortcut that could be the identity, a Concat of a single branch."""
    from cnnviz.core.model.paths import LayerPath
    from cnnviz.core.shapes.reports import Fix

    found: list[str] = []
    if layer.type == "Residual":
        inside = {x.type for b in layer.body for _p, x in b.walk(LayerPath(0))}
        if inside & _WEIGHTED and not inside & _NORMS:
            found.append("the body has no normalisation: a BatchNorm2d after each Conv2d keeps the sum of body "
                         "and shortcut on one scale, and deep residual stacks train much better with it")
        if layer.shortcut and tuple(shape) == tuple(out):
            found.append(Fix(f"the shortcut keeps the shape ({'×'.join(map(str, out))}), so the identity would "
                             f"do: an empty shortcut adds x itself, with no parameters", shortcut=()))
    elif layer.type == "Concat" and len(layer.branches) == 1:
        found.append("a Concat of one branch is just that branch: add a branch, or take the layers out of the "
                     "block")
    return tuple(found)
