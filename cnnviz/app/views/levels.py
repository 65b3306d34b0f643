"""Colour levels shared by a layer's maps, and the readings printed beside them, as numpy.

No Qt: levels are computed once per layer (never pyqtgraph's per-frame
``autoLevels``) and rounded so that colours hold still while training.
"""
from __future__ import annotations

import math

import numpy as np


def compute_levels(values: np.ndarray, mode: str | tuple[float, float]) -> tuple[tuple[float, float], bool]:
    """Colour levels ``(low, high)`` shared by all maps, and whether they are symmetric about 0.

    ``mode``: ``"symmetric"`` (±max|v|), ``"minmax"``, ``"auto"`` (symmetric when
    the values take both signs) or an explicit ``(low, high)``. NaN and ±inf are
    ignored; empty, constant or all-NaN data still give a usable range.
    """
    if not isinstance(mode, str):
        lo, hi = float(mode[0]), float(mode[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"levels must be two finite numbers, low < high; got {mode!r}")
        return (lo, hi), math.isclose(lo, -hi)
    if mode not in ("auto", "symmetric", "minmax"):
        raise ValueError(f"levels must be 'auto', 'symmetric', 'minmax' or (low, high); got {mode!r}")
    lo, hi = _finite_min_max(values)
    symmetric = mode == "symmetric" or (mode == "auto" and lo < 0 < hi)
    if symmetric:
        m = max(abs(lo), abs(hi))
        m = m if m > 0 else 1.0
        return (-m, m), True
    if hi <= lo:
        pad = abs(lo) * 0.5 if lo else 1.0
        lo, hi = lo - pad, hi + pad
    return (lo, hi), False


def _finite_min_max(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    lo, hi = float(values.min()), float(values.max())
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def nice_ceil(x: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 (times a power of ten) that is ≥ x > 0."""
    exp = math.floor(math.log10(x))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * 10.0 ** exp >= x * (1 - 1e-9):
            return m * 10.0 ** exp
    return 10.0 ** (exp + 1)


def round_levels(levels: tuple[float, float], symmetric: bool) -> tuple[float, float]:
    """Widen levels outward to a step of a tenth of their (rounded) span.

    Colours then stay the same while the data's extremes wobble from step to
    step, and the colour bar keeps round numbers.
    """
    lo, hi = levels
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return levels
    step = nice_ceil(span) / 10
    if symmetric:
        m = math.ceil(hi / step - 1e-6) * step
        return -m, m
    return math.floor(lo / step + 1e-6) * step, math.ceil(hi / step - 1e-6) * step



def fmt_value(v: float) -> str:
    """A reading for a status line: 4 significant digits, scientific when tiny or huge."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3e}"
