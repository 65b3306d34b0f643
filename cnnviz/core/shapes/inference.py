"""Shape inference by PyTorch's own formulas, without tensors.

:func:`infer` walks a :class:`~cnnviz.core.model.stack.Stack` and returns, for every
layer, its output shape (batch dimension left out), parameter count,
multiply-accumulates, activation size and receptive field, or the sentence
explaining why it cannot work and how to fix it. It imports neither torch nor
Qt and takes microseconds per layer, so it runs on every keystroke.

Internally a shape is the per-sample tuple; torch's dimension numbers (Flatten,
Softmax) count the batch as dimension 0.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Callable

from cnnviz.core.model.layers import CATALOGUE, LOSSES, resolved_params
from cnnviz.core.model.stack import Batch, Edit, Layer, Loss, SetInput, Stack, set_param
from cnnviz.core.model.validate import check_params
from cnnviz.core.shapes import lints
from cnnviz.core.shapes.formulas import conv_out, pool_out, same_padding  # noqa: F401  (part of this module's API)
from cnnviz.core.shapes.reports import (
    Fix,
    LayerFail,
    LayerReport,
    LossReport,
    ReceptiveField,
    StackReport,
    _with_fixes,
    fmt_shape,
)
from cnnviz.core.shapes.rules import RULES, Ctx, Out, _count

MAX_LAYER_PARAMS = 1 << 30      # 4 GiB of float32 weights in one layer
MAX_ACTIVATION = 1 << 30        # elements per sample

# Failures where cnnviz is deliberately stricter than torch (torch would accept
# the layer, then fail later or silently do something else).
STRICTER = frozenset({"rank", "batch_merge", "return_indices", "too_large"})


def _walk(input_shape: tuple[int, int, int], layers: tuple[Layer, ...], stop_at: int | None = None
          ) -> list[LayerReport]:
    reports: list[LayerReport] = []
    shape: tuple[int, ...] | None = input_shape
    rf: ReceptiveField | None = ReceptiveField()
    for i, layer in enumerate(layers):
        if stop_at is not None and i > stop_at:
            break
        spec = CATALOGUE.get(layer.type)
        label = layer.label
        if shape is None:
            reports.append(LayerReport(i, layer.type, label, None, reachable=False))
            continue
        if spec is None:
            reports.append(LayerReport(i, layer.type, label, shape, error=f"{layer.type} is not a supported layer",
                                       error_code="type"))
            shape = None
            continue
        problems = check_params(spec, dict(layer.params))
        resolved = resolved_params(spec, layer.params)
        if problems:
            key, msg = problems[0]
            reports.append(LayerReport(i, layer.type, label, shape, resolved=resolved,
                                       error=f"{key}: {msg}", error_code="param", error_param=key))
            shape = None
            continue
        ctx = Ctx(shape, resolved, rf, i, layers, reports)
        try:
            out = RULES[layer.type](ctx)
            _check_size(out)
        except LayerFail as fail:
            reports.append(LayerReport(i, layer.type, label, shape, resolved=ctx.p, error=fail.text,
                                       error_code=fail.code, error_param=fail.param, error_axis=fail.axis,
                                       error_fixes=fail.fixes, error_offers=fail.offers))
            shape = None
            continue
        trainable = out.params
        reports.append(LayerReport(i, layer.type, label, shape, out.shape, out.params, trainable, out.macs, out.rf,
                                   ctx.p, out.formula, warnings=out.warnings))
        shape, rf = out.shape, out.rf
    return reports


def _check_size(out: Out) -> None:
    if out.params > MAX_LAYER_PARAMS:
        raise LayerFail("too_large", f"this layer would hold {out.params:,} parameters "
                                     f"({out.params * 4 / 2**30:.1f} GiB of float32), more than cnnviz builds "
                                     f"({MAX_LAYER_PARAMS:,}): use fewer channels or features")
    n = math.prod(out.shape)
    if n > MAX_ACTIVATION:
        raise LayerFail("too_large", f"the output {fmt_shape(out.shape)} holds {n:,} values per sample "
                                     f"({n * 4 / 2**30:.1f} GiB of float32): use a stride, pooling or fewer channels")


def _minimum_input(stack: Stack, index: int) -> tuple[int, int] | None:
    """The smallest input for which layers 0..index all work: both sides grown to the same n first,
    then each side shrunk back as far as it goes (height, then width), so neither can lose a pixel."""
    from cnnviz.core.model.layers import MAX_INPUT_SIZE

    c, h, w = stack.input.shape

    def works(hh: int, ww: int) -> bool:
        reports = _walk((c, hh, ww), stack.layers, stop_at=index)
        return len(reports) > index and all(r.error is None for r in reports)

    def smallest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
        """The least n in lo..hi with ok(n), given ok(hi) (ok is taken as monotone)."""
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid + 1
        return hi

    def square(n: int) -> tuple[int, int]:
        return max(h, n), max(w, n)

    lo = min(h, w) + 1
    hi = lo
    while hi < MAX_INPUT_SIZE and not works(*square(hi)):  # doubling: far too big can fail again (too_large)
        lo, hi = hi + 1, min(2 * hi, MAX_INPUT_SIZE)
    if not works(*square(hi)):
        return None
    top_h, top_w = square(smallest(lo, hi, lambda n: works(*square(n))))
    best_h = smallest(h, top_h, lambda hh: works(hh, top_w))
    return best_h, smallest(w, top_w, lambda ww: works(best_h, ww))


def _with_input_fix(stack: Stack, reports: list[LayerReport]) -> list[LayerReport]:
    """Add 'or an input of at least H×W' to a spatial failure, found by searching input sizes."""
    bad = next((r for r in reports if r.error), None)
    if bad is None or bad.error_code not in ("kernel", "too_small", "pad_mode"):
        return reports
    need = _minimum_input(stack, bad.index)
    if need is not None:
        base = bad.error[:len(bad.error) - len(_with_fixes("", bad.error_fixes))]
        fixes = bad.error_fixes + (Fix(f"an input of at least {need[0]}×{need[1]}", input=need),)
        reports[bad.index] = replace(bad, error=_with_fixes(base, fixes), error_fixes=fixes)
    return reports


@lru_cache(maxsize=256)
def infer(stack: Stack) -> StackReport:
    """Every layer's shape, size and error for ``stack``; cached by the stack's content."""
    reports = _walk(stack.input.shape, stack.layers)
    reports = _with_input_fix(stack, reports)
    loss = _loss_report(stack.loss, reports, stack.input.shape)
    layer_warnings, loss_warnings = lints.lint(stack, reports)
    reports = [replace(r, warnings=r.warnings + tuple(layer_warnings.get(r.index, ()))) for r in reports]
    loss = replace(loss, warnings=loss.warnings + tuple(loss_warnings))
    return StackReport(stack.input.shape, tuple(reports), loss)


def _loss_report(loss: Loss, reports: list[LayerReport], input_shape) -> LossReport:
    spec = LOSSES.get(loss.type)
    if spec is None:
        return LossReport(loss.type, error=f"{loss.type} is not a supported loss (use CrossEntropyLoss or NLLLoss)")
    problems = check_params(spec, dict(loss.params))
    resolved = resolved_params(spec, loss.params)
    if problems:
        key, msg = problems[0]
        return LossReport(loss.type, resolved, error=f"{key}: {msg}")
    if any(r.error for r in reports):
        return LossReport(loss.type, resolved)
    out = reports[-1].output_shape if reports else input_shape
    weight = resolved.get("weight")
    if weight is not None and out is not None and len(out) >= 1 and len(weight) != out[0]:
        return LossReport(loss.type, resolved, error=f"weight has {len(weight)} entries but the stack scores "
                                                     f"{_count(out[0], 'classes')}: give one weight per class")
    return LossReport(loss.type, resolved)


def fix_edit(stack: Stack, index: int, fix: Fix) -> Edit:
    """The undoable edit that applies ``fix``, proposed for layer ``index`` of ``stack``."""
    edits: list[Edit] = []
    current = stack
    for key, value in fix.params:
        edit = set_param(current, index, key, value)
        current, _ = edit.apply(current)
        edits.append(edit)
    if fix.input is not None:
        edits.append(SetInput(replace(stack.input, height=fix.input[0], width=fix.input[1])))
    return Batch(tuple(edits), f"Apply fix: {fix.label}")  # one undo step, named after the fix
