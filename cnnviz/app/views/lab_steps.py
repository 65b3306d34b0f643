"""The labs' arithmetic that is not a layer's taps, in numpy (no Qt, no torch): the softmax step by step,
the loss with the stack's own keywords, the input cells a lab draws and who reads them.

The taps of one output element come from :mod:`cnnviz.core.lab.taps`; this module adds what the
window draws around them:

- :func:`softmax_steps`: z, z − max z, exp, the sum, the normalisation, log_softmax, both the naive and
  the shifted way, in float32 as torch computes, with where the naive exp overflows;
- :func:`loss_steps`: CrossEntropyLoss of one sample with ``weight``, ``label_smoothing``,
  ``ignore_index`` and ``reduction``, −log s_y, NLLLoss on log_softmax, dL/dz and the formula in words;
- :func:`padded_channel`: one input channel with the padding around it as the layer sees it (zeros, the
  values ``reflect``/``replicate``/``circular`` copy, −inf for MaxPool2d) and which positions are taps;
- :func:`readers`: every output cell that reads a given input position, from :class:`Window`'s reads.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.core.lab.taps import MAX_PADDING, Window

EXP_LIMIT = float(np.log(np.finfo(np.float32).max))
"""≈ 88.72: exp(z) of a float32 z above this is +inf."""


# ------------------------------------------------------------------ softmax
@dataclass(frozen=True)
class SoftmaxSteps:
    """softmax(scale·z) computed step by step, float32 like torch."""

    z: np.ndarray            # the scaled logits
    shift: float             # max z
    shifted: np.ndarray      # z − max z
    exp_shifted: np.ndarray  # exp(z − max z), every value in (0, 1]
    sum_shifted: float
    softmax: np.ndarray      # exp(z − max z) / Σ
    log_softmax: np.ndarray  # (z − max z) − log Σ
    exp_naive: np.ndarray    # exp(z): +inf above EXP_LIMIT
    sum_naive: float
    naive: np.ndarray        # exp(z) / Σ exp(z): NaN once a value overflowed

    @property
    def overflow(self) -> bool:
        """True when the naive exp overflowed float32 (some z above ≈ 88.72)."""
        return bool(np.isinf(self.exp_naive).any())

    @property
    def underflow(self) -> bool:
        """True when every naive exp became 0 (all z below ≈ −103): the naive sum is 0, the division 0/0."""
        return bool(self.exp_naive.size) and not bool((self.exp_naive > 0).any())

    @property
    def naive_fails(self) -> bool:
        return not bool(np.isfinite(self.naive).all())


def softmax_steps(logits: Sequence[float] | np.ndarray, scale: float = 1.0) -> SoftmaxSteps:
    """The steps of softmax(scale·z), naive and shifted; float32 throughout, as a float32 layer computes."""
    z = (np.asarray(logits, dtype=np.float32).reshape(-1) * np.float32(scale)).astype(np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if z.size == 0:
            empty = np.zeros(0, np.float32)
            return SoftmaxSteps(z, 0.0, empty, empty, 0.0, empty, empty, empty, 0.0, empty)
        shift = np.float32(np.max(z))
        shifted = (z - shift).astype(np.float32)
        e = np.exp(shifted).astype(np.float32)
        total = np.float32(e.sum(dtype=np.float32))
        soft = (e / total).astype(np.float32)
        log_soft = (shifted - np.float32(np.log(total))).astype(np.float32)
        e_naive = np.exp(z).astype(np.float32)
        total_naive = np.float32(e_naive.sum(dtype=np.float32))
        naive = (e_naive / total_naive).astype(np.float32)
    return SoftmaxSteps(z, float(shift), shifted, e, float(total), soft, log_soft, e_naive, float(total_naive), naive)


# ------------------------------------------------------------------ the loss
@dataclass(frozen=True)
class LossSteps:
    """CrossEntropyLoss of one sample (label ``y``) with the stack's keywords."""

    y: int
    ignored: bool
    nll: float               # −log s_y (NLLLoss on log_softmax, before the class weight)
    loss: float              # what CrossEntropyLoss returns for this one sample
    nll_loss: float          # NLLLoss(log_softmax(z), y) with the same weight/ignore_index/reduction
    grad: np.ndarray         # dL/dz, per class
    target: np.ndarray       # the distribution the loss pulls s towards
    formula: str             # the loss in words, with the keywords' numbers
    grad_formula: str        # dL/dz in words


def loss_settings(resolved: Mapping[str, Any] | None, loss_type: str = "CrossEntropyLoss") -> dict[str, Any]:
    """The keywords a :class:`~cnnviz.core.shapes.LossReport`'s ``resolved`` gives, with torch's defaults."""
    r = dict(resolved or {})
    weight = r.get("weight")
    return {"weight": None if weight is None else np.asarray(weight, dtype=np.float64),
            "ignore_index": int(r.get("ignore_index", -100)),
            "reduction": str(r.get("reduction", "mean")),
            "label_smoothing": float(r.get("label_smoothing", 0.0) or 0.0) if loss_type == "CrossEntropyLoss" else 0.0}


def loss_steps(log_softmax: np.ndarray, y: int, settings: Mapping[str, Any]) -> LossSteps:
    """CrossEntropyLoss(z, y) of one sample from its log_softmax(z), by torch's formula (float64)."""
    log_p = np.asarray(log_softmax, dtype=np.float64).reshape(-1)
    k = log_p.size
    eps = float(settings.get("label_smoothing", 0.0))
    w = settings.get("weight")
    weighted = w is not None and len(w) == k
    weight = np.asarray(w, dtype=np.float64) if weighted else np.ones(k)
    reduction = settings.get("reduction", "mean")
    ignore = int(settings.get("ignore_index", -100))
    ignored = y == ignore or not 0 <= y < k
    s = np.exp(log_p)
    if ignored:
        nan = float("nan") if reduction == "mean" else 0.0
        return LossSteps(y, True, float("nan"), nan, nan, np.zeros(k), np.zeros(k),
                         f"y = {y} is ignore_index: this sample adds nothing to the loss"
                         + (" (alone, the mean is 0/0 = nan)" if reduction == "mean" else ""),
                         "dL/dz = 0 (the sample is ignored)")
    nll = -float(log_p[y])
    wy = float(weight[y])
    smooth = -float((weight * log_p).sum())
    onehot = np.zeros(k)
    onehot[y] = 1.0
    if reduction == "mean":  # one sample: the weighted mean divides by w_y
        nll_loss = nll
        loss = (1 - eps) * nll + (eps / k) * smooth / wy
        q = ((1 - eps) * wy * onehot + (eps / k) * weight) / wy
    else:
        nll_loss = wy * nll
        loss = (1 - eps) * wy * nll + (eps / k) * smooth
        q = (1 - eps) * wy * onehot + (eps / k) * weight
    grad = q.sum() * s - q
    if not weighted and not eps:
        formula = f"L = −log s_y = −log s_{y} = {nll:.6g}"
        grad_formula = "dL/dz = s − onehot(y)"
    else:
        parts = []
        if eps:
            parts.append(f"ε = label_smoothing = {eps:g}: L = (1−ε)·(−{'w_y·' if weighted else ''}log s_y) + "
                         f"ε/K·(−Σ_c {'w_c·' if weighted else ''}log s_c){' / w_y' if weighted and reduction == 'mean' else ''}")
        if weighted:
            parts.append(f"w_y = weight[{y}] = {wy:g}" + (" (the mean divides by Σ w_y, here w_y)"
                                                          if reduction == "mean" else ""))
        formula = "; ".join(parts) + f" = {loss:.6g}"
        grad_formula = "dL/dz = (Σq)·s − q, q = the smoothed, weighted one-hot target"
    formula += f"  (reduction='{reduction}', ignore_index={ignore})"
    return LossSteps(y, False, nll, float(loss), float(nll_loss), grad, q, formula, grad_formula)


# ------------------------------------------------------------------ what the conv lab draws
@dataclass(frozen=True)
class Grid:
    """One input channel as the layer sees it: ``values[i, j]`` is position (``y0 + i``, ``x0 + j``) in input
    coordinates (negative, or ≥ the size, where padding is). ``kind``: 0 a real pixel, 1 padding, 2 beyond
    the padding (a ceil_mode window reaches it, but it is not a tap)."""

    values: np.ndarray
    kind: np.ndarray
    y0: int
    x0: int


def grid_extent(win: Window, axis: int) -> tuple[int, int]:
    """(first, last + 1) input coordinate along ``axis`` that the drawing covers: the padding and any
    position a window reaches beyond it."""
    size = win.in_shape[1 + axis]
    lo, hi = -win.pad_before[axis], size + win.pad_after[axis]
    pos = win.axis_positions(axis)
    if pos.size:
        lo, hi = min(lo, int(pos.min())), max(hi, int(pos.max()) + 1)
    return lo, hi


def padded_channel(win: Window, channel: np.ndarray) -> Grid:
    """``channel`` (H, W) with the padding the layer puts around it (zeros, reflect/replicate/circular copies,
    −inf for MaxPool2d), over :func:`grid_extent`."""
    channel = np.asarray(channel, dtype=np.float32)
    (y0, y1), (x0, x1) = grid_extent(win, 0), grid_extent(win, 1)
    ys, xs = np.arange(y0, y1), np.arange(x0, x1)
    h, w = win.in_shape[1:]
    fill = -np.inf if win.padding_mode == MAX_PADDING else 0.0
    sy, sx = win.axis_source(0, ys), win.axis_source(1, xs)
    ok = (sy >= 0)[:, None] & (sx >= 0)[None, :]
    values = np.where(ok, channel[np.clip(sy, 0, h - 1)[:, None], np.clip(sx, 0, w - 1)[None, :]], fill)
    inside = ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
    padded = ((ys >= -win.pad_before[0]) & (ys < h + win.pad_after[0]))[:, None] & \
             ((xs >= -win.pad_before[1]) & (xs < w + win.pad_after[1]))[None, :]
    kind = np.where(inside, 0, np.where(padded, 1, 2)).astype(np.int8)
    values = np.where(kind == 2, np.nan, values).astype(np.float32)
    return Grid(values, kind, y0, x0)


def axis_readers(win: Window, axis: int, position: int) -> np.ndarray:
    """(outputs along ``axis``,) bool: which outputs read input coordinate ``position`` along it: a real
    pixel directly or through the padding that copies it, a padding position only where it lies."""
    pos = win.axis_positions(axis)
    taps = win.axis_taps(axis)
    size = win.in_shape[1 + axis]
    if 0 <= position < size:
        hit = win.axis_source(axis, pos) == position
    else:
        hit = pos == position
    return (hit & taps).any(axis=1)


def readers(win: Window, y: int, x: int) -> np.ndarray:
    """(H_out, W_out) bool: the output cells whose window reads input position (y, x) (reading is separable:
    a window's taps are its rows' taps times its columns')."""
    return axis_readers(win, 0, y)[:, None] & axis_readers(win, 1, x)[None, :]


def cell_of(win: Window, step: int) -> tuple[int, int]:
    """The output cell the animation shows at ``step`` (row by row, as the window slides)."""
    wo = win.out_shape[2]
    return divmod(int(step), wo) if wo else (0, 0)


def steps_of(win: Window) -> int:
    """How many output cells one channel has: the animation's steps."""
    return int(win.out_shape[1] * win.out_shape[2])


def fmt(value: float | None, digits: int = 6) -> str:
    """A number for the labs' tables: fixed width-friendly, −inf and nan in words."""
    if value is None:
        return "−inf"
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "−inf"
    if v == 0:
        return "0"
    if 1e-4 <= abs(v) < 1e6:
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if abs(v) >= 1 else f"{v:.{digits}f}"
    return f"{v:.{digits - 2}e}"
