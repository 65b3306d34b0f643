"""One shape rule per catalogue type: output shape, parameters, MACs, receptive field and formula,
or a :class:`LayerFail` with the sentence that explains the failure and proposes fixes that work.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from cnnviz.core.model.layers import CATALOGUE, MAX_KERNEL, as_pair
from cnnviz.core.model.stack import Layer
from cnnviz.core.shapes.formulas import conv_out, pool_out, same_padding
from cnnviz.core.shapes.formulas import rf_step as _rf_step
from cnnviz.core.shapes.reports import Fix, LayerFail, LayerReport, ReceptiveField, _or_list, fmt_shape

_AXES = ("height", "width")
_SYM = ("H", "W")


@dataclass
class Ctx:
    """What a rule gets: the incoming shape, resolved keywords, and its neighbours."""

    shape: tuple[int, ...]
    p: dict[str, Any]
    rf: ReceptiveField | None
    index: int
    layers: tuple[Layer, ...]
    reports: list[LayerReport]
    probing: bool = False  # set while trying out a fix: skip proposing fixes of its own
    container: tuple = ()  # the path of the block's list that holds the layer; () for the stack's own

    def source(self) -> str:
        """Where the incoming shape comes from, for messages."""
        if self.index == 0:
            return "the input" if not self.container else f"the input of {_list_words(self.container)}"
        prev = self.reports[self.index - 1]
        return f"{_layer_words(self.container, self.index - 1)} ({prev.label})"


def _layer_words(container: tuple, index: int) -> str:
    return "layer " + " → ".join(str(p) for p in (*container, index))


def _list_words(container: tuple) -> str:
    return "layer " + " → ".join(str(p) for p in container)


def _works(ctx: Ctx, **changes: Any) -> bool:
    """Whether this layer would work with some keywords changed; fixes are proposed only if they do."""
    trial = replace(ctx, p={**ctx.p, **changes}, probing=True, reports=list(ctx.reports))
    try:
        RULES[ctx.layers[ctx.index].type](trial)
    except LayerFail:
        return False
    return True


def _with_axis(value: Any, a: int, item: int) -> Any:
    """A pair keyword with one axis changed, kept an int when both axes end up equal."""
    pair = list(as_pair(value if not isinstance(value, str) else 0))
    pair[a] = item
    return pair[0] if pair[0] == pair[1] else pair


def _pair_or_int(value: Any, per_axis: list[int], pick: Callable[[list[int]], int]) -> Any:
    """A fixed pair keyword: [height, width] if it was given as a list, else one int for both axes."""
    if isinstance(value, list):
        return per_axis[0] if per_axis[0] == per_axis[1] else list(per_axis)
    return pick(per_axis)


def _axis_text(given: Any, fixed: Any, a: int) -> str:
    """How a fix reads: the value along axis ``a``, or [height, width] where a list changes on both axes."""
    new = as_pair(fixed)
    if isinstance(given, list) and new[1 - a] != given[1 - a]:
        return f"[{new[0]}, {new[1]}]"
    return str(new[a])


def _pair_text(value: Any) -> str:
    a, b = as_pair(value)
    return str(a) if a == b else f"[{a}, {b}]"


@dataclass
class Out:
    shape: tuple[int, ...]
    params: int = 0
    macs: int = 0
    rf: ReceptiveField | None = None
    formula: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    resolved: dict[str, Any] = field(default_factory=dict)


def _need_maps(ctx: Ctx, what: str) -> tuple[int, int, int]:
    if len(ctx.shape) == 3:
        return ctx.shape  # type: ignore[return-value]
    flat = next((i for i in range(ctx.index - 1, -1, -1) if ctx.layers[i].type == "Flatten"), None)
    hint = f"; Flatten at layer {flat} made it flat, so move this layer before it" if flat is not None else ""
    raise LayerFail("rank", f"{what} needs channel×height×width maps per sample but receives "
                            f"{fmt_shape(ctx.shape)} from {ctx.source()}{hint}")


_SINGULAR = {"channels": "channel", "features": "feature", "classes": "class"}


def _count(n: int, noun: str) -> str:
    """``1 channel``, ``3 channels``: ``noun`` is the plural."""
    return f"{n} {_SINGULAR.get(noun, noun) if n == 1 else noun}"


def _infer_count(ctx: Ctx, key: str, actual: int, noun: str) -> int:
    given = ctx.p.get(key)
    if given is None:
        ctx.p[key] = actual
        return actual
    if given != actual:
        raise LayerFail("channels" if noun == "channels" else "features",
                        f"{key} is {given} but {ctx.source()} gives {_count(actual, noun)}: "
                        f"set {key} to {actual}, or leave it out to take it from the previous layer", key,
                        offers=(Fix(f"set {key} to {actual}", {key: actual}),))
    return given


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _rule_conv2d(ctx: Ctx) -> Out:
    c, h, w = _need_maps(ctx, "Conv2d")
    p = ctx.p
    cin = _infer_count(ctx, "in_channels", c, "channels")
    cout, g = p["out_channels"], p["groups"]
    for key, n in (("in_channels", cin), ("out_channels", cout)):
        if n % g:
            common = [str(d) for d in _divisors(math.gcd(cin, cout))]
            raise LayerFail("groups", f"groups={g} must divide {key}={n} ({n} / {g} is not whole): "
                                      f"set groups to {_or_list(common)}", "groups")
    k, s, d = as_pair(p["kernel_size"]), as_pair(p["stride"]), as_pair(p["dilation"])
    pad = p["padding"]
    if pad == "same" and s != (1, 1):
        fixes = []
        half = [(d[a] * (k[a] - 1)) // 2 for a in range(2)]
        if not ctx.probing and _works(ctx, stride=1):
            fixes.append(Fix("stride 1", {"stride": 1}))
        if not ctx.probing and _works(ctx, padding=half):
            fixes.append(Fix(f"padding {_pair_text(half)} instead of 'same' (the stride still shrinks the maps)",
                             {"padding": half[0] if half[0] == half[1] else half}))
        if not ctx.probing and not fixes and _works(ctx, stride=1, padding_mode="zeros"):
            fixes.append(Fix("stride 1 with padding_mode 'zeros'", {"stride": 1, "padding_mode": "zeros"}))
        raise LayerFail("same_stride", f"padding='same' only works with stride 1 (torch refuses it for strided "
                                       f"convolutions) but stride is {_pair_text(list(s))}", "padding",
                        fixes=tuple(fixes))
    if pad == "same":
        pads = [same_padding(k[a], d[a]) for a in range(2)]
    elif pad == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [(v, v) for v in as_pair(pad)]
    size = (h, w)
    mode = p["padding_mode"]
    for a in range(2):
        worst = max(pads[a])
        top = _mode_pad_limit(mode, size[a])
        if worst > top:
            why = ("mirrors the image, so each side's padding must be smaller than the" if mode == "reflect" else
                   "wraps around at most once, so each side's padding must be at most the")
            fixes = () if ctx.probing else _pad_mode_fixes(ctx, a, k, d, size)
            raise LayerFail("pad_mode", f"padding_mode='{mode}' {why} {_AXES[a]} ({size[a]}), but the padding is "
                                        f"{worst}", "padding_mode", a, fixes)
    out, formula = [], []
    for a in range(2):
        eff = d[a] * (k[a] - 1) + 1
        padded = size[a] + sum(pads[a])
        if padded < eff:
            message, fixes = _window_message(ctx, a, k, d, size, pads, "kernel_size")
            raise LayerFail("kernel", message, "kernel_size", a, fixes)
        o = conv_out(size[a], k[a], s[a], sum(pads[a]), d[a])
        out.append(o)
        formula.append(_conv_formula(a, size[a], k[a], s[a], pads[a], d[a], pad, o))
    params = cout * (cin // g) * k[0] * k[1] + (cout if p["bias"] else 0)
    macs = cout * out[0] * out[1] * (cin // g) * k[0] * k[1]
    warnings = []
    for a in range(2):
        eff = d[a] * (k[a] - 1) + 1
        if s[a] > eff:
            warnings.append(f"stride {s[a]} is larger than the kernel's span {eff} in {_AXES[a]}: "
                            f"some input pixels are never seen")
    rf = _rf_step(ctx.rf, k, s, (pads[0][0], pads[1][0]), d)
    return Out((cout, out[0], out[1]), params, macs, rf, tuple(formula), tuple(warnings))


def _conv_formula(a, size, k, s, pads, d, pad, o) -> str:
    sym = _SYM[a]
    if pads[0] == pads[1]:
        body = f"⌊({size} + 2·{pads[0]} − {d}·({k}−1) − 1) / {s}⌋ + 1 = {o}"
    else:
        body = f"⌊({size} + {pads[0]} + {pads[1]} − {d}·({k}−1) − 1) / {s}⌋ + 1 = {o}"
    note = ""
    if pad == "same":
        note = f"  (padding='same': {pads[0]} before, {pads[1]} after)"
    return f"{sym}_out = ⌊({sym} + 2p − d·(k−1) − 1) / s⌋ + 1 = {body}{note}"


def _pad_mode_fixes(ctx: Ctx, a: int, k: tuple[int, int], d: tuple[int, int], size: tuple[int, int]
                    ) -> tuple[str, ...]:
    """Fixes for padding beyond what reflect/circular padding allows, each checked to work."""
    pad, mode = ctx.p["padding"], ctx.p["padding_mode"]
    fixes = []
    fixed = (_with_axis(pad, a, _mode_pad_limit(mode, size[a])) if isinstance(pad, list)
             else min(_mode_pad_limit(mode, n) for n in size))
    if min(as_pair(fixed)) >= 0 and _works(ctx, padding=fixed):
        fixes.append(Fix(f"padding ≤ {_axis_text(pad, fixed, a)}", {"padding": fixed}))
    modes = [m for m in ("replicate", "zeros") if _works(ctx, padding_mode=m)]
    if modes:
        fixes.append(Fix("padding_mode " + " or ".join(f"'{m}'" for m in modes), {"padding_mode": modes[0]}))
    else:
        need = max(0, *(math.ceil((d[b] * (k[b] - 1) + 1 - size[b]) / 2) for b in range(2)))
        if _works(ctx, padding_mode="zeros", padding=need):
            fixes.append(Fix(f"padding_mode 'zeros' with padding ≥ {need}", {"padding_mode": "zeros", "padding": need}))
    return tuple(fixes)


MAX_PADDING_HINT = 1 << 20  # above this a padding limit is no limit: say "padding ≥ n"


def _mode_pad_limit(mode: str, size: int) -> int:
    """The most padding per side that ``padding_mode`` allows on a side of ``size`` pixels (torch's F.pad)."""
    if mode == "reflect":
        return size - 1
    if mode == "circular":
        return size
    return 1 << 30


def _window_message(ctx: Ctx, a: int, k: tuple[int, int], d: tuple[int, int], sizes: tuple[int, int],
                    pads: list[tuple[int, int]], kernel_key: str) -> tuple[str, tuple[str, ...]]:
    """Why a kernel does not fit the padded input along axis ``a``, and the fixes that work.

    A fix for a keyword given as one int is one int that works for both axes; for a
    keyword given as [height, width] it changes axis ``a`` only.
    """
    eff = [d[b] * (k[b] - 1) + 1 for b in range(2)]
    padded = [sizes[b] + sum(pads[b]) for b in range(2)]
    what = f"kernel {k[a]}" + (f" with dilation {d[a]}" if d[a] > 1 else "")
    span = f"spans {eff[a]} pixels" if eff[a] > 1 else "spans 1 pixel"
    text = (f"{what} {span} but the padded input is {padded[a]} {'high' if a == 0 else 'wide'} "
            f"({sizes[a]} + {pads[a][0]} + {pads[a][1]}), so no window fits in the {_AXES[a]}")
    if ctx.probing:
        return text, ()
    p = ctx.p

    def first_working(key: str, per_axis: list[int], pick: Callable[..., int]) -> Any:
        """The fixed value of ``key`` that makes the layer work, or None: a list keyword changes
        axis ``a`` alone if that is enough, else both axes; an int keyword stays one int."""
        given = p[key]
        if isinstance(given, list):
            tries = [_with_axis(given, a, per_axis[a]), _pair_or_int(given, per_axis, pick)]
        else:
            tries = [pick(per_axis)]
        return next((t for t in tries if min(as_pair(t)) >= 0 and _works(ctx, **{key: t})), None)

    listed = isinstance(p["padding"], list)
    fixes = []
    if p["padding"] != "same":
        need = first_working("padding", [max(pads[b][0], math.ceil((eff[b] - sizes[b]) / 2)) for b in range(2)], max)
        if need is not None:
            lo = _axis_text(p["padding"], need, a)
            top = _mode_pad_limit(p.get("padding_mode", "zeros"), sizes[a] if listed else min(sizes))
            if ctx.layers[ctx.index].type != "Conv2d":
                top = min(top, k[a] // 2 if listed else min(k) // 2)
            fixes.append(Fix(f"padding ≥ {lo}" if top >= MAX_PADDING_HINT or lo.startswith("[") else
                             f"padding {lo}" if top <= int(lo) else f"padding from {lo} to {top}", {"padding": need}))
    if "dilation" in p and d[a] > 1 and k[a] > 1:
        dil = first_working("dilation", [(padded[b] - 1) // (k[b] - 1) if k[b] > 1 else d[b] for b in range(2)],
                            min)
        if dil is not None and min(as_pair(dil)) >= 1:
            fixes.append(Fix(f"dilation ≤ {_axis_text(p['dilation'], dil, a)}", {"dilation": dil}))
    small = first_working(kernel_key, [min(k[b], (padded[b] - 1) // d[b] + 1) for b in range(2)], min)
    if small is not None:
        fixes.append(Fix(f"kernel ≤ {_axis_text(p[kernel_key], small, a)}", {kernel_key: small}))
    if "ceil_mode" in p and not p["ceil_mode"] and _works(ctx, ceil_mode=True):
        fixes.append(Fix("ceil_mode=true", {"ceil_mode": True}))
    return text, tuple(fixes)


def _pool_common(ctx: Ctx, name: str, dilation: bool) -> Out:
    c, h, w = _need_maps(ctx, name)
    p = ctx.p
    k = as_pair(p["kernel_size"])
    s = as_pair(p["stride"]) if p["stride"] is not None else k
    pad = as_pair(p["padding"])
    d = as_pair(p["dilation"]) if dilation else (1, 1)
    ceil = p["ceil_mode"]
    size = (h, w)
    out, formula = [], []
    for a in range(2):
        if pad[a] > k[a] // 2:
            fixes = []
            if not ctx.probing:
                lower = _pair_or_int(p["padding"], [min(pad[b], k[b] // 2) for b in range(2)], min)
                if _works(ctx, padding=lower):
                    fixes.append(Fix(f"padding ≤ {_axis_text(p['padding'], lower, a)}", {"padding": lower}))
                wider = _pair_or_int(p["kernel_size"], [max(k[b], 2 * pad[b]) for b in range(2)], max)
                if max(as_pair(wider)) <= MAX_KERNEL and _works(ctx, kernel_size=wider):
                    fixes.append(Fix(f"a kernel of at least {_axis_text(p['kernel_size'], wider, a)}",
                                     {"kernel_size": wider}))
                if not fixes and "dilation" in p and _works(ctx, padding=lower, dilation=1):
                    fixes.append(Fix(f"padding ≤ {_axis_text(p['padding'], lower, a)} with dilation 1",
                                     {"padding": lower, "dilation": 1}))
                if not fixes:  # nothing alone makes the layer work: at least get past torch's padding limit
                    fixes.append(Fix(f"padding ≤ {_axis_text(p['padding'], lower, a)}", {"padding": lower}))
            raise LayerFail("pool_pad", f"padding {pad[a]} is more than half the kernel {k[a]} in the {_AXES[a]} "
                                        f"(torch allows at most {k[a] // 2})", "padding", a, tuple(fixes))
    for a in range(2):  # torch checks the padding limit on both axes before any output size
        o = pool_out(size[a], k[a], s[a], pad[a], d[a], ceil)
        if o < 1:
            message, fixes = _window_message(ctx, a, k, d, size, [(pad[b], pad[b]) for b in range(2)], "kernel_size")
            raise LayerFail("too_small", message, "kernel_size", a, fixes)
        out.append(o)
        formula.append(_pool_formula(a, size[a], k[a], s[a], pad[a], d[a], ceil, o))
    rf = _rf_step(ctx.rf, k, s, pad, d)
    warnings = []
    for a in range(2):
        eff = d[a] * (k[a] - 1) + 1
        if s[a] > eff:
            warnings.append(f"stride {s[a]} is larger than the window {eff} in {_AXES[a]}: some pixels are skipped")
    ctx.p["stride"] = p["stride"]
    return Out((c, out[0], out[1]), 0, 0, rf, tuple(formula), tuple(warnings))


def _pool_formula(a, size, k, s, p, d, ceil, o) -> str:
    sym = _SYM[a]
    span = f"{d}·({k}−1)" if d > 1 else f"({k}−1)"
    if not ceil:
        return f"{sym}_out = ⌊({size} + 2·{p} − {span} − 1) / {s}⌋ + 1 = {o}"
    raw = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1
    text = f"{sym}_out = ⌈({size} + 2·{p} − {span} − 1) / {s}⌉ + 1 = {raw}"
    if raw != o:
        text += (f"; the last window would start at {(raw - 1) * s} ≥ {size} + {p}, inside the right padding, "
                 f"so it is dropped: {o}")
    return text


def _rule_maxpool(ctx: Ctx) -> Out:
    out = _pool_common(ctx, "MaxPool2d", dilation=True)
    if ctx.p["return_indices"] and not ctx.probing:
        raise LayerFail("return_indices", "return_indices=True makes MaxPool2d return (values, indices), which no "
                                          "following layer or loss can take: set return_indices to false",
                        "return_indices")
    return out


def _rule_avgpool(ctx: Ctx) -> Out:
    return _pool_common(ctx, "AvgPool2d", dilation=False)


def _rule_adaptive(ctx: Ctx) -> Out:
    c, h, w = _need_maps(ctx, "AdaptiveAvgPool2d")
    target = as_pair(ctx.p["output_size"])
    size = (h, w)
    out = tuple(size[a] if target[a] is None else target[a] for a in range(2))
    k, s = [], []
    for a in range(2):
        windows = [math.ceil((i + 1) * size[a] / out[a]) - (i * size[a]) // out[a] for i in range(min(out[a], 4096))]
        k.append(max(windows))
        s.append(max(1, size[a] // out[a]))
    formula = tuple(f"{_SYM[a]}_out = {out[a]} (windows of up to {k[a]} pixels over {size[a]})" for a in range(2))
    rf = _rf_step(ctx.rf, tuple(k), tuple(s), (0, 0), (1, 1))
    warnings = []
    if out[0] > h or out[1] > w:
        warnings.append(f"output {out[0]}×{out[1]} is larger than the input {h}×{w}: values are repeated, not pooled")
    return Out((c, out[0], out[1]), 0, 0, rf, formula, tuple(warnings))


def _batchnorm_features(ctx: Ctx, c: int, what: str) -> tuple[int, list[str]]:
    """A batch norm's ``num_features`` against the ``c`` channels or features it receives, and its parameter
    count: (params, warnings)."""
    p = ctx.p
    warnings = []
    if not p["affine"] and not p["track_running_stats"] and p["num_features"] not in (None, c):
        # torch has no per-feature tensor to check num_features against here, so it runs.
        warnings.append(f"num_features is {p['num_features']} but {ctx.source()} gives {_count(c, what)}; "
                        f"torch ignores it without affine or running statistics, but turning either on "
                        f"would fail: set num_features to {c}, or leave it out")
    else:
        _infer_count(ctx, "num_features", c, what)
    return ((c * (2 if p["bias"] else 1)) if p["affine"] else 0), warnings


def _rule_batchnorm(ctx: Ctx) -> Out:
    c, h, w = _need_maps(ctx, "BatchNorm2d")
    params, warnings = _batchnorm_features(ctx, c, "channels")
    if h * w == 1:
        warnings.append("maps are 1×1 here, so each channel has one value per sample: training fails "
                        "with a batch of 1")
    return Out(ctx.shape, params, 0, ctx.rf, (), tuple(warnings))


def _rule_batchnorm1d(ctx: Ctx) -> Out:
    """BatchNorm1d on N×C. torch also takes N×C×L, but a stack has no 1-D maps, so only a flat vector is
    accepted; C×H×W maps are BatchNorm2d's."""
    if len(ctx.shape) != 1:
        if len(ctx.shape) == 3:
            fix = "use BatchNorm2d for maps, or add Flatten before it"
        else:
            fix = "cnnviz stacks have no 1-D maps (N×C×L), so add Flatten before it"
        raise LayerFail("rank", f"BatchNorm1d needs a flat vector of features per sample (N×C) but receives "
                                f"{fmt_shape(ctx.shape)} from {ctx.source()}: {fix}")
    (c,) = ctx.shape
    params, warnings = _batchnorm_features(ctx, c, "features")
    return Out(ctx.shape, params, 0, None, (), tuple(warnings))


def _rule_identity(ctx: Ctx) -> Out:
    return Out(ctx.shape, rf=ctx.rf)


def _rule_dropout(ctx: Ctx) -> Out:
    warnings = ["p=1 zeroes every value in training"] if ctx.p["p"] == 1 else []
    return Out(ctx.shape, rf=ctx.rf, warnings=tuple(warnings))


def _rule_dropout2d(ctx: Ctx) -> Out:
    out = _rule_dropout(ctx)
    if len(ctx.shape) != 3:
        out.warnings += (f"Dropout2d drops whole channels of C×H×W maps but receives {fmt_shape(ctx.shape)}; "
                         f"torch warns and treats it differently: use Dropout here",)
    return out


def _norm_dim(ctx: Ctx, key: str, value: int, rank: int) -> int:
    if not -rank <= value < rank:
        raise LayerFail("dim_range", f"{key}={value} is outside {-rank}..{rank - 1} for the {rank}-D input "
                                     f"N×{fmt_shape(ctx.shape)} (dimension 0 is the batch)", key)
    return value % rank


def _rule_flatten(ctx: Ctx) -> Out:
    rank = len(ctx.shape) + 1
    start = _norm_dim(ctx, "start_dim", ctx.p["start_dim"], rank)
    end = _norm_dim(ctx, "end_dim", ctx.p["end_dim"], rank)
    if start > end:
        def dim(key: str, at: int) -> str:
            given = ctx.p[key]
            return f"{key}={given}" + (f" (dimension {at})" if given != at else "")

        raise LayerFail("flatten_order", f"{dim('start_dim', start)} comes after {dim('end_dim', end)} for the "
                                         f"{rank}-D input N×{fmt_shape(ctx.shape)}: use start_dim ≤ end_dim",
                        "start_dim")
    if start == 0:
        raise LayerFail("batch_merge", "start_dim=0 merges the batch dimension into the features, so the stack "
                                       "would only work for one batch size: use start_dim=1", "start_dim")
    full = ("N",) + ctx.shape
    merged = math.prod(full[start:end + 1])  # type: ignore[arg-type]
    out = ctx.shape[:start - 1] + (merged,) + ctx.shape[end:]
    formula = ()
    if end > start:
        formula = (f"{' × '.join(str(x) for x in full[start:end + 1])} = {merged}",)
    return Out(out, rf=None if len(out) < 3 else ctx.rf, formula=formula)


def _rule_linear(ctx: Ctx) -> Out:
    if not ctx.shape:
        raise LayerFail("rank", "Linear needs at least one dimension per sample but receives a scalar")
    n = ctx.shape[-1]
    if ctx.p.get("in_features") is not None and ctx.p["in_features"] != n:
        origin = ""
        if ctx.index > 0 and ctx.layers[ctx.index - 1].type == "Flatten":
            before = ctx.reports[ctx.index - 1].input_shape
            origin = f" (Flatten turns {fmt_shape(before)} into {n})"
        raise LayerFail("features", f"in_features is {ctx.p['in_features']} but {ctx.source()} gives "
                                    f"{_count(n, 'features')}{origin}: set in_features to {n}, or leave it out "
                                    f"to take it from the previous layer", "in_features",
                        offers=(Fix(f"set in_features to {n}", {"in_features": n}),))
    _infer_count(ctx, "in_features", n, "features")
    out_f = ctx.p["out_features"]
    params = n * out_f + (out_f if ctx.p["bias"] else 0)
    rows = math.prod(ctx.shape[:-1])
    warnings = []
    if len(ctx.shape) > 1:
        warnings.append(f"Linear acts on the last dimension only ({n} of {fmt_shape(ctx.shape)}); "
                        f"add Flatten before it to connect all {math.prod(ctx.shape)} values")
    return Out(ctx.shape[:-1] + (out_f,), params, rows * n * out_f, None if len(ctx.shape) < 3 else ctx.rf,
               (f"{n} × {out_f} weights + {out_f if ctx.p['bias'] else 0} biases = {params}",), tuple(warnings))


def _rule_softmax(ctx: Ctx) -> Out:
    rank = len(ctx.shape) + 1
    warnings = []
    if ctx.p["dim"] is None:
        implicit = 0 if rank in (0, 1, 3) else 1
        warnings.append(Fix(f"dim is not set: torch picks dim={implicit} implicitly (and warns); set dim=1",
                            {"dim": 1}))
        dim = implicit
    else:
        dim = _norm_dim(ctx, "dim", ctx.p["dim"], rank)
    if dim == 0:
        warnings.append("normalises across the batch (dimension 0), not across the classes: use dim=1")
    return Out(ctx.shape, rf=ctx.rf, warnings=tuple(warnings))


RULES: dict[str, Callable[[Ctx], Out]] = {
    "Conv2d": _rule_conv2d,
    "MaxPool2d": _rule_maxpool,
    "AvgPool2d": _rule_avgpool,
    "AdaptiveAvgPool2d": _rule_adaptive,
    "BatchNorm2d": _rule_batchnorm,
    "BatchNorm1d": _rule_batchnorm1d,
    "ReLU": _rule_identity,
    "ReLU6": _rule_identity,
    "LeakyReLU": _rule_identity,
    "ELU": _rule_identity,
    "GELU": _rule_identity,
    "SiLU": _rule_identity,
    "Hardswish": _rule_identity,
    "Sigmoid": _rule_identity,
    "Hardsigmoid": _rule_identity,
    "Tanh": _rule_identity,
    "Dropout": _rule_dropout,
    "Dropout2d": _rule_dropout2d,
    "Flatten": _rule_flatten,
    "Linear": _rule_linear,
    "Identity": _rule_identity,
    "Softmax": _rule_softmax,
    "LogSoftmax": _rule_softmax,
}
assert set(RULES) == set(CATALOGUE), "every catalogue entry needs a shape rule"
