"""The mosaic of feature maps, as numpy: where each map goes, which map a point falls in.

No Qt: the layout is tested (and used) without a display. A mosaic is one
float32 image of C maps in a grid with ``gap`` pixels of NaN between them, so
one ``ImageItem`` draws a whole layer.
"""
from __future__ import annotations

import math

import numpy as np


def as_maps(values: np.ndarray) -> np.ndarray:
    """An activation as float32 (C, H, W): maps stay maps, a vector becomes C maps of 1×1.

    A 2-D array is one map; higher ranks fold their leading dimensions into channels.
    """
    a = np.asarray(values, dtype=np.float32)
    if a.ndim == 0:
        a = a.reshape(1, 1, 1)
    elif a.ndim == 1:
        a = a.reshape(-1, 1, 1)
    elif a.ndim == 2:
        a = a[None]
    elif a.ndim > 3:
        a = a.reshape(-1, *a.shape[-2:])
    return np.ascontiguousarray(a)


def mosaic_size(shape: tuple[int, int], grid: tuple[int, int], gap: int) -> tuple[int, int]:
    """(height, width) in pixels of a ``grid`` of tiles of ``shape``."""
    (h, w), (rows, cols) = shape, grid
    return rows * (h + gap) - gap, cols * (w + gap) - gap


def best_columns(n: int, tile: tuple[int, int], area: tuple[float, float], gap: int = 1) -> int:
    """The number of columns that shows ``n`` tiles of ``tile`` = (h, w) largest in ``area`` = (height, width).

    Only columns near the continuous optimum are tried, so a vector of a
    million units costs no more than a handful of maps.
    """
    if n <= 0:
        return 1
    ah, aw = max(area[0], 1.0), max(area[1], 1.0)
    h, w = tile
    ideal = math.sqrt(n * (aw / (w + gap)) / (ah / (h + gap)))
    candidates = {1, n}
    for c in range(int(ideal) - 2, int(ideal) + 4):
        candidates.add(c)
    ideal_rows = n / max(ideal, 1e-9)
    for r in range(int(ideal_rows) - 2, int(ideal_rows) + 4):
        if r >= 1:
            candidates.add(math.ceil(n / r))
    best, best_scale = 1, -1.0
    for cols in sorted(c for c in candidates if 1 <= c <= n):
        rows = math.ceil(n / cols)
        if (rows - 1) * cols >= n:
            continue  # a shorter grid holds the same tiles
        mh, mw = mosaic_size(tile, (rows, cols), gap)
        scale = min(ah / mh, aw / mw)
        if scale > best_scale * (1 + 1e-9):
            best, best_scale = cols, scale
    return best


def mosaic(maps: np.ndarray, gap: int = 1, cols: int | None = None, fill: float = np.nan,
           out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Tile (C, H, W) maps row by row into one float32 image with ``gap`` pixels between tiles.

    Returns ``(image, (rows, cols))``; tile ``c`` sits at row ``c // cols``,
    column ``c % cols``, its top-left pixel at ``(row·(H+gap), col·(W+gap))``.
    Gaps and unused tiles hold ``fill`` (NaN draws as transparent). Pass the
    previous image as ``out`` to reuse its memory when the layout is unchanged:
    then only the tiles are written.
    """
    maps = as_maps(maps)
    c, h, w = maps.shape
    if cols is None:
        cols = max(1, math.ceil(math.sqrt(c)))
    cols = max(1, min(cols, c)) if c else 1
    rows = max(1, math.ceil(c / cols))
    size = mosaic_size((h, w), (rows, cols), gap)
    if out is None or out.shape != size or out.dtype != np.float32:
        out = np.full(size, fill, dtype=np.float32)
        fresh = True
    else:
        fresh = False
    # One strided copy fills every full row of tiles; the last, partial row goes tile by tile.
    full_rows = c // cols
    if full_rows:
        _tiles_view(out, full_rows, cols, h, w, gap)[...] = maps[: full_rows * cols].reshape(full_rows, cols, h, w)
    rest = c - full_rows * cols
    if rest:
        y = full_rows * (h + gap)
        for k in range(rest):
            x = k * (w + gap)
            out[y:y + h, x:x + w] = maps[full_rows * cols + k]
        if not fresh:
            for k in range(rest, cols):
                x = k * (w + gap)
                out[y:y + h, x:x + w] = fill
    return out, (rows, cols)


def _tiles_view(image: np.ndarray, rows: int, cols: int, h: int, w: int, gap: int) -> np.ndarray:
    """A (rows, cols, h, w) writable view of the first ``rows`` rows of tiles of a mosaic (no copy)."""
    assert image.flags.c_contiguous and (rows - 1) * (h + gap) + h <= image.shape[0]
    assert (cols - 1) * (w + gap) + w <= image.shape[1]
    s0, s1 = image.strides
    return np.ndarray((rows, cols, h, w), image.dtype, buffer=image,
                      strides=((h + gap) * s0, (w + gap) * s1, s0, s1))


def tile_at(x: float, y: float, shape: tuple[int, int], grid: tuple[int, int], gap: int, n: int
            ) -> tuple[int, int, int] | None:
    """(channel, y, x) under the image point (x, y) of a mosaic, or None over a gap or outside."""
    h, w = shape
    rows, cols = grid
    if x < 0 or y < 0:
        return None
    xi, yi = int(x), int(y)
    col, tx = divmod(xi, w + gap)
    row, ty = divmod(yi, h + gap)
    if col >= cols or row >= rows or tx >= w or ty >= h:
        return None
    channel = row * cols + col
    if channel >= n:
        return None
    return channel, ty, tx


def tile_origin(channel: int, shape: tuple[int, int], cols: int, gap: int) -> tuple[int, int]:
    """(x, y) of a tile's top-left pixel in the mosaic."""
    row, col = divmod(channel, cols)
    return col * (shape[1] + gap), row * (shape[0] + gap)
