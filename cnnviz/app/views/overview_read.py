"""What the network overview reads: a column's values in a probe, the column part under a point, its reading.

Functions of the columns placed (:class:`~.overview_layout.Placed`) and the
probe shown, for :class:`~.overview.OverviewView`'s hover, clicks and
tooltips; no scene items.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from cnnviz.app.views.levels import compute_levels, fmt_value
from cnnviz.app.views.mosaic import as_maps
from cnnviz.app.views.overview_draw import SPACING_HALF
from cnnviz.app.views.overview_layout import Placed, fmt
from cnnviz.core.model.paths import LayerPath


def column_values(c, p) -> np.ndarray | None:
    """What column ``c`` draws of probe ``p`` (float32), or None (no probe; a column without values)."""
    if p is None:
        return None
    if c.path:
        v = (getattr(p, "inner_activations", None) or {}).get(c.path)
        return np.asarray(v, dtype=np.float32) if v is not None and c.kind != "pending" else None
    if c.kind == "image":
        return np.asarray(p.image, dtype=np.float32)
    if c.kind in ("maps", "flat", "units") and 0 <= c.index < len(p.activations):
        return np.asarray(p.activations[c.index], dtype=np.float32)
    if c.kind == "bars":
        return np.asarray(p.softmax, dtype=np.float32)
    return None


def shape_of(values) -> tuple[int, ...] | None:
    """The shape of an array of values, or None for none."""
    return None if values is None else tuple(np.shape(values))


def hit_at(placed: list[Placed], pos: QtCore.QPointF | None) -> tuple | None:
    """What is under a scene point: (placed, "tile", i), (placed, "more", -1), (placed, "strip", i),
    (placed, "column", -1), or None; ``placed``: the columns drawn."""
    if pos is None:
        return None
    x, y = pos.x(), pos.y()
    for q in placed:
        if not (q.x - SPACING_HALF <= x < q.x + q.width + SPACING_HALF and q.y <= y < q.y + q.height):
            continue
        if q.more_rect is not None:
            mx, my, mw, mh = q.more_rect
            if mx <= x < mx + mw and my <= y < my + mh:
                return (q, "more", -1)
        if q.strip is not None:
            sx, sy, sw, sh = q.strip
            n = q.column.count
            if sx <= x < sx + sw and sy <= y < sy + sh and n:
                return (q, "strip", min(n - 1, int((y - sy) * n / sh)))
        elif q.grid is not None and q.column.kind not in ("pending",):
            i = q.grid.at(x, y)
            if i is not None:
                return (q, "tile", i)
        return (q, "column", -1)
    return None


def describe(hit: tuple, probe, true_class: int | None) -> str:
    """What a :func:`hit_at` reads in the status line and the tooltip, ``probe`` shown (or None)."""
    q, what, i = hit
    c = q.column
    p = probe
    where = "input" if c.index < 0 and c.kind == "image" else c.title.replace(" · ", " ", 1)
    where = f"layer {where}" if c.index >= 0 else where
    if c.path:
        where = f"{LayerPath.of(c.path).words()} {c.title.split(' · ', 1)[-1]}"
    if what == "more":
        return f"{where}: show all {c.count} maps" if q.more else f"{where}: show the first maps only"
    if c.kind == "error":
        return c.text
    if p is None or what == "column":
        return f"{where} · output {fmt(c.shape)}"
    v = column_values(c, p)
    if v is None:
        return f"{where} · output {fmt(c.shape)}"
    if c.kind == "bars":
        name = c.classes[i] if c.classes and i < len(c.classes) else str(i)
        mark = " · the true class" if i == true_class else ""
        return f"{name} · p = {fmt_value(float(v[i]))}{mark}"
    if c.kind == "units" or (c.kind == "flat" and what == "strip") or what == "strip":
        flat = v.reshape(-1)
        value = fmt_value(float(flat[i]))
        if c.kind == "flat" and c.origin is not None:
            _, h, w = c.origin
            ch, rest = divmod(i, h * w)
            return f"{where} · value {i} · from channel {ch}, y {rest // w}, x {rest % w} · {value}"
        name = c.classes[i] if c.classes and i < len(c.classes) else f"unit {i}"
        return f"{where} · {name} · {value}"
    if c.kind == "image" and v.ndim == 3 and v.shape[0] == 3:
        (lo, hi), _ = compute_levels(v, "minmax")
        return f"input · RGB · values {fmt_value(lo)} to {fmt_value(hi)}"
    maps = v.reshape(c.origin) if c.kind == "flat" and c.origin is not None else as_maps(v)
    if not 0 <= i < maps.shape[0]:
        return where
    (lo, hi), _ = compute_levels(maps[i], "minmax")
    finite = bool(np.isfinite(maps[i]).all())
    note = "" if finite else " (with NaN or inf)"
    return f"{where} · channel {i} · values {fmt_value(lo)} to {fmt_value(hi)}{note}"
