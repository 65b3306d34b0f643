"""Numbers as a person reads them: the one definition of byte sizes and counts, for the terminal and the window."""
from __future__ import annotations

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


def format_bytes(n: float) -> str:
    """``45.2 GiB``, ``31 MiB``, ``0.9 MiB``, ``12 KiB``, ``500 bytes``: binary units, two or three significant
    figures (memory is counted in powers of two, as ``free`` and the device drivers report it)."""
    if n >= TIB:
        return f"{n / TIB:,.1f} TiB"
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= 10 * MIB:
        return f"{n / MIB:.0f} MiB"
    if n >= MIB // 10:
        return f"{n / MIB:.1f} MiB"
    if n >= KIB:
        return f"{n / KIB:.0f} KiB"
    return f"{int(n)} bytes"


def format_count(n: int) -> str:
    """``61,706``: every digit, grouped."""
    return f"{int(n):,}"


def format_si(n: float) -> str:
    """``61.7 k``, ``4.20 M``, ``1.23 G``: a large count in three significant figures (MACs, parameters)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:g}"
