"""Checks one keyword value against its catalogue entry.

Used by the file reader (to refuse a file with a located message) and by the
shape engine (so that a value typed into the sidebar can never crash it).
"""
from __future__ import annotations

import math
from typing import Any

from cnnviz.core.model.layers import (
    BOOL,
    CHOICE,
    FLOAT,
    INT,
    MAX_CLASSES,
    OPT_FLOAT,
    OPT_INT,
    OPT_PAIR,
    PADDING,
    PAIR,
    SIZE,
    WEIGHTS,
    LayerSpec,
    Param,
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _range_text(p: Param) -> str:
    lo, hi = p.min, p.max
    if p.kind in (FLOAT, OPT_FLOAT):
        lo_s = f"{lo:g}" if lo is not None else None
        hi_s = f"{hi:g}" if hi is not None else None
        if lo_s is not None and not p.min_inclusive:
            return f"a number above {lo_s} and at most {hi_s}"
        return f"a number from {lo_s} to {hi_s}"
    return f"an integer from {int(lo):,} to {int(hi):,}".replace(",", "")


def _in_range(p: Param, v: float) -> bool:
    if p.min is not None:
        if p.min_inclusive and v < p.min:
            return False
        if not p.min_inclusive and v <= p.min:
            return False
    return p.max is None or v <= p.max


def _check_int(p: Param, v: Any, what: str = "") -> str | None:
    if not _is_int(v):
        return f"expected {_range_text(p)}{what}, got {_show(v)}"
    if not _in_range(p, v):
        return f"{v} is out of range: expected {_range_text(p)}{what}"
    return None


def _check_pair(p: Param, v: Any) -> str | None:
    if isinstance(v, list):
        if len(v) != 2:
            return f"expected an integer or a list of two integers, got a list of {len(v)}"
        for item in v:
            err = _check_int(p, item, " for each of height and width")
            if err:
                return err
        return None
    if _is_int(v):
        return _check_int(p, v)
    return f"expected an integer or a list of two integers (height, width), got {_show(v)}"


def _show(v: Any) -> str:
    """A value as a message quotes it, cut short."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _accepted(p: Param) -> str:
    """What a value of ``p`` may be, in words."""
    if p.kind in (PAIR, OPT_PAIR, PADDING):
        text = f"{_range_text(p)}, or a list of two (height, width)"
        return text + (", 'same' or 'valid'" if p.kind == PADDING else "")
    if p.kind == SIZE:
        return f"{_range_text(p)}, or a list of two (height, width) where null keeps that dimension"
    if p.kind == CHOICE:
        return "one of " + ", ".join(repr(c) for c in p.choices)
    if p.kind == BOOL:
        return "true or false"
    return _range_text(p)


def check_value(p: Param, v: Any) -> str | None:
    """None if ``v`` is a valid value for ``p``; else what is wrong and what would be accepted."""
    k = p.kind
    if k == INT:
        return _check_int(p, v)
    if k == OPT_INT:
        return None if v is None else _check_int(p, v)
    if k == FLOAT or (k == OPT_FLOAT and v is not None):
        if not _is_num(v):
            return f"expected {_range_text(p)}, got {_show(v)}"
        if not _in_range(p, v):
            return f"{v:g} is out of range: expected {_range_text(p)}"
        return None
    if k == OPT_FLOAT:
        return None
    if k == BOOL:
        return None if isinstance(v, bool) else f"expected true or false, got {_show(v)}"
    if k == CHOICE:
        if v in p.choices:
            return None
        return f"expected one of {', '.join(repr(c) for c in p.choices)}, got {_show(v)}"
    if k == PAIR:
        return _check_pair(p, v)
    if k == OPT_PAIR:
        return None if v is None else _check_pair(p, v)
    if k == PADDING:
        if isinstance(v, str):
            if v in p.choices:
                return None
            return f"expected an integer, a list of two integers, 'same' or 'valid', got {_show(v)}"
        return _check_pair(p, v)
    if k == SIZE:
        if isinstance(v, list):
            if len(v) != 2:
                return f"expected an integer or a list of two integers or nulls, got a list of {len(v)}"
            for item in v:
                if item is not None:
                    err = _check_int(p, item, " (or null to keep that dimension)")
                    if err:
                        return err
            return None
        return _check_int(p, v)
    if k == WEIGHTS:
        if v is None:
            return None
        if not isinstance(v, list) or not v:
            return f"expected null or a non-empty list of numbers, one per class, got {_show(v)}"
        if len(v) > MAX_CLASSES:
            return f"expected at most {MAX_CLASSES} class weights, got {len(v)}"
        for i, item in enumerate(v):
            if not _is_num(item) or item < 0:
                return f"item {i}: expected a finite number ≥ 0, got {_show(item)}"
        return None
    raise AssertionError(f"unknown parameter kind {k}")  # a catalogue bug, not a user's mistake


def check_params(spec: LayerSpec, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(keyword, problem) for every unknown, missing or invalid keyword of a layer."""
    problems: list[tuple[str, str]] = []
    for key in params:
        if key not in spec.param_index:
            known = ", ".join(p.name for p in spec.params) or "none"
            problems.append((key, f"{spec.type} has no keyword {_show(key)} (it takes: {known})"))
    for p in spec.params:
        if p.name in params:
            value = params[p.name]
            if value is None and p.inferred:
                continue
            err = check_value(p, value)
            if err:
                problems.append((p.name, err))
        elif p.required:
            problems.append((p.name, f"{spec.type} needs {p.name}: {_accepted(p)}"))
    return problems
