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
from cnnviz.core.model.paths import LayerPath, inside, top
from cnnviz.core.model.stack import Batch, Edit, InsertLayer, Layer, Loss, RemoveLayer, SetInput, Stack, set_param
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


def _walk(input_shape: tuple[int, ...], layers: tuple[Layer, ...], stop_at: int | None = None,
          container: tuple = (), rf: ReceptiveField | None = None) -> list[LayerReport]:
    """The reports of ``layers`` (a list at ``container``: () for the stack's own) given their input."""
    reports: list[LayerReport] = []
    shape: tuple[int, ...] | None = input_shape
    rf = rf if rf is not None or container else ReceptiveField()
    for i, layer in enumerate(layers):
        if stop_at is not None and i > stop_at:
            break
        path = inside(container, i) if container else top(i)
        spec = CATALOGUE.get(layer.type)
        label = layer.label
        if shape is None:
            reports.append(LayerReport(i, layer.type, label, None, reachable=False, path=path,
                                       inner=_unreachable_inside(layer, path)))
            continue
        if layer.is_block:
            report = _block(layer, path, shape, rf)
            reports.append(report)
            shape, rf = report.output_shape, report.receptive_field
            continue
        if spec is None:
            reports.append(LayerReport(i, layer.type, label, shape, error=f"{layer.type} is not a supported layer",
                                       error_code="type", path=path))
            shape = None
            continue
        problems = check_params(spec, dict(layer.params))
        resolved = resolved_params(spec, layer.params)
        if problems:
            key, msg = problems[0]
            reports.append(LayerReport(i, layer.type, label, shape, resolved=resolved,
                                       error=f"{key}: {msg}", error_code="param", error_param=key, path=path))
            shape = None
            continue
        ctx = Ctx(shape, resolved, rf, i, layers, reports, container=container)
        try:
            out = RULES[layer.type](ctx)
            _check_size(out)
        except LayerFail as fail:
            reports.append(LayerReport(i, layer.type, label, shape, resolved=ctx.p, error=fail.text,
                                       error_code=fail.code, error_param=fail.param, error_axis=fail.axis,
                                       error_fixes=fail.fixes, error_offers=fail.offers, path=path))
            shape = None
            continue
        trainable = out.params
        reports.append(LayerReport(i, layer.type, label, shape, out.shape, out.params, trainable, out.macs, out.rf,
                                   ctx.p, out.formula, warnings=out.warnings, path=path))
        shape, rf = out.shape, out.rf
    return reports


def _unreachable_inside(layer: Layer, path: LayerPath) -> tuple:
    return tuple((key, tuple(LayerReport(j, x.type, x.label, None, reachable=False, path=path.child(key, j),
                                         inner=_unreachable_inside(x, path.child(key, j)))
                             for j, x in enumerate(layers)))
                 for key, layers in layer.lists())


def _list_words(path: LayerPath, key: tuple) -> str:
    return " → ".join(str(p) for p in key) if key[0] != "branches" else f"branch {key[1]}"


def _block(layer: Layer, path: LayerPath, shape: tuple[int, ...], rf: ReceptiveField | None) -> LayerReport:
    """A Residual or Concat: its lists inferred from the block's input, then the merge checked."""
    inner, outs, rfs = [], [], []
    for key, layers in layer.lists():
        sub = _walk(shape, layers, container=(*path, *key), rf=rf)
        if key == ("shortcut",):  # a strided 1×1 projection skips pixels by design: the body reads them
            sub = [replace(r, warnings=tuple(w for w in r.warnings if "larger than the kernel's span" not in w))
                   for r in sub]
        inner.append((key, tuple(sub)))
        outs.append(shape if not sub else sub[-1].output_shape if all(r.ok for r in sub) else None)
        rfs.append(rf if not sub else sub[-1].receptive_field)
    inner = tuple(inner)
    params = sum(r.params for _key, sub in inner for r in sub)
    trainable = sum(r.trainable for _key, sub in inner for r in sub)
    macs = sum(r.macs for _key, sub in inner for r in sub)
    base = dict(index=path.index, type=layer.type, label=layer.label, input_shape=shape, params=params,
                trainable=trainable, macs=macs, path=path, inner=inner)
    bad = next((r for _key, sub in inner for r in sub if r.error), None)
    if bad is not None:
        deepest = bad.inner_error or bad
        return LayerReport(**base, error=f"{deepest.path.words()} ({deepest.label}) cannot work: {deepest.error}",
                           error_code="inner")
    if layer.type == "Residual":
        body, shortcut = outs
        if body != shortcut:
            return LayerReport(**base, **_residual_mismatch(layer, shape, body, shortcut))
        out = body
        formula = (f"body(x) + shortcut(x): {fmt_shape(body)} + {fmt_shape(shortcut)} = {fmt_shape(out)}",)
    else:
        fail = _concat_mismatch(inner, outs)
        if fail:
            return LayerReport(**base, error=fail, error_code="merge")
        out = (sum(o[0] for o in outs), *outs[0][1:])
        formula = (f"cat(dim=1): {' + '.join(str(o[0]) for o in outs)} = {out[0]} "
                   f"{'channels' if len(out) == 3 else 'features'}",)
    n = math.prod(out)
    if n > MAX_ACTIVATION:
        return LayerReport(**base, error=f"the output {fmt_shape(out)} holds {n:,} values per sample: use fewer "
                                         f"channels", error_code="too_large")
    return LayerReport(**base, output_shape=out, receptive_field=_widest(rfs), formula=formula,
                       warnings=lints.block_warnings(layer, shape, out))


def _widest(rfs: list[ReceptiveField | None]) -> ReceptiveField | None:
    """A merge sees what its widest branch sees, per axis."""
    known = [r for r in rfs if r is not None]
    if not known or len(known) < len(rfs):
        return None
    pick = [max(known, key=lambda r: r.size[a]) for a in (0, 1)]
    return ReceptiveField((pick[0].size[0], pick[1].size[1]), (pick[0].jump[0], pick[1].jump[1]),
                          (pick[0].start[0], pick[1].start[1]))


def _residual_mismatch(layer: Layer, shape, body, shortcut) -> dict:
    """The error of a Residual whose body and shortcut disagree, with the shortcut that makes them agree."""
    what = "the identity shortcut" if not layer.shortcut else "the shortcut"
    text = (f"the body gives {fmt_shape(body)} but {what} gives {fmt_shape(shortcut)}; a Residual adds "
            f"them, so they must be equal")
    fix = _projection(shape, body)
    fixes = ()
    if fix is not None:
        fixes = (fix,)
        text += f": use {fix}"
    return dict(error=text, error_code="residual", error_fixes=fixes)


def _projection(shape, body) -> Fix | None:
    """A shortcut that turns the block's input into the body's output shape, tried before it is offered:
    a 1×1 Conv2d with the stride that fits (C×H×W), or a Linear (features)."""
    if len(shape) == 3 and len(body) == 3:
        strides = []
        for a in (1, 2):
            s = next((s for s in range(1, shape[a] + 1) if conv_out(shape[a], 1, s, 0, 1) == body[a]), None)
            if s is None:
                return None
            strides.append(s)
        stride = strides[0] if strides[0] == strides[1] else strides
        layer = Layer("Conv2d", {"out_channels": body[0], "kernel_size": 1, "stride": stride, "bias": False})
        words = f"a shortcut Conv2d(out_channels={body[0]}, kernel_size=1, stride={stride}, bias=False)"
    elif len(shape) == 1 and len(body) == 1:
        layer = Layer("Linear", {"out_features": body[0]})
        words = f"a shortcut Linear(out_features={body[0]})"
    else:
        return None
    tried = _walk(shape, (layer,), container=(0, "shortcut"), rf=ReceptiveField())
    if not tried[0].ok or tried[0].output_shape != body:
        return None
    return Fix(words, shortcut=(layer,))


def _concat_mismatch(inner, outs) -> str | None:
    ranks = {len(o) for o in outs}
    rest = {tuple(o[1:]) for o in outs}
    if len(ranks) == 1 and len(rest) == 1:
        return None
    shown = ", ".join(f"branch {key[1]} gives {fmt_shape(o)}" for (key, _sub), o in zip(inner, outs))
    dim = "channels" if max(ranks) == 3 else "the first dimension"
    return (f"{shown}; Concat joins them on dimension 1 ({dim}), so every branch must agree on all the "
            f"others")


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
    reports = [replace(r, warnings=r.warnings + tuple(layer_warnings[r.index])) if r.index in layer_warnings else r
               for r in reports]  # a copy only for the few layers a lint speaks of
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


def fix_edit(stack: Stack, index, fix: Fix) -> Edit:
    """The undoable edit that applies ``fix``, proposed for the layer at ``index`` (an index or a path)."""
    path = LayerPath.of(index)
    edits: list[Edit] = []
    current = stack
    for key, value in fix.params:
        edit = set_param(current, path, key, value)
        current, _ = edit.apply(current)
        edits.append(edit)
    if fix.shortcut is not None:
        block = current.layer_at(path)
        edits.extend(RemoveLayer(path.child(("shortcut",), 0)) for _ in block.shortcut)
        edits.extend(InsertLayer(path.child(("shortcut",), j), layer.copy()) for j, layer in enumerate(fix.shortcut))
    if fix.input is not None:
        edits.append(SetInput(replace(stack.input, height=fix.input[0], width=fix.input[1])))
    return Batch(tuple(edits), f"Apply fix: {fix.label}")  # one undo step, named after the fix
