"""The network overview's layout and pixels, as numpy: which columns, what each shows, where it goes.

No Qt (the import-linter contract says so): the Qt view (:mod:`.overview`) asks
this module what to draw and draws it. The flow is a tree: a :class:`Flow` is a
sequence of :class:`Column` and :class:`Branches` (flows side by side, one above
the other): a block's lists sit in parallel inside the block's region (a
Residual's body above its shortcut, a Concat's branches one above the other),
and the block's own column, the merge, closes it (:func:`block_regions`).

- :func:`build_flow`: the columns of one sample's pass, from the input to the
  softmax: C×H×W layers as columns of thumbnails, a Flatten (and what keeps its
  length after it) as a strip of C segments, vectors as units, the softmax as
  bars, an error column where the stack breaks.
- :func:`layout`: where each column goes for a viewport, how many thumbnails it
  shows ("+k more"), and the selected column shown large.
- :class:`SteadyLevels`, :func:`quantize`, :class:`Raster`: shared colour levels
  per layer, and one RGBA image per column drawn from the maps with one gather.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cnnviz.app.views.levels import compute_levels, round_levels
from cnnviz.app.views.mosaic import best_columns

GAP = 2              # display pixels between thumbnails
THUMB_MAX = 64       # a thumbnail's height at most, in a normal column
THUMB_MIN = 18       # below this a column shows its first maps and "+k more"
THUMB_WIDTH_MAX = 96
MORE_HEIGHT = 18     # the "+k more" item
STRIP_WIDTH = 14     # a Flatten's strip
UNIT_MAX = 18        # a unit's cell, at most
BAR_WIDTH = 110      # the softmax bars' longest bar
ERROR_WIDTH = 220
PENDING_SIDE = 40    # a column's box before it has values
SPACING = 16         # between columns
PAD = 6              # inside a column, left and right
KEEP_LEVELS_SHARE = 0.6
COLOURS = 255        # levels map to indices 0..254; 255 is "no value" (gaps, NaN)
NO_VALUE = 255

KINDS = ("image", "maps", "flat", "units", "bars", "error", "pending")


# ================================================================ the flow
@dataclass(frozen=True)
class Column:
    """One column of the overview.

    ``key`` names it across snapshots ("input", "layer 3", "softmax", "error") so
    the view reuses its items; ``index`` is the layer (-1 for the others).
    ``kind``: "image" (the input), "maps" (C×H×W thumbnails), "flat" (a vector
    that keeps the (C, H, W) ``origin`` it was flattened from: a strip of C
    segments), "units" (a vector: one cell per unit, named by ``classes`` when it
    scores them), "bars" (the softmax), "error" (``text`` where the stack
    breaks), "pending" (a shape known from the report, no values yet).
    """

    key: str
    kind: str
    index: int
    title: str
    shape: tuple[int, ...] | None
    count: int = 1                        # maps, units or classes
    tile: tuple[int, int] = (1, 1)        # (h, w) of one map
    origin: tuple[int, int, int] | None = None
    classes: tuple[str, ...] | None = None
    text: str = ""
    path: str = ""
    """A layer inside a block: its path ("3.body.1"; ``index`` is then the outermost block's); "" otherwise."""


@dataclass(frozen=True)
class Branches:
    """Flows side by side (drawn one above the other, sharing the height), then joined.

    ``block``: the path of the block whose lists they are ("3"), its own column (the merge) after them;
    ``identity``: a Residual whose shortcut is the identity (no flow of its own: a line beneath)."""

    flows: tuple[Flow, ...]
    block: str = ""
    identity: bool = False


@dataclass(frozen=True)
class Flow:
    items: tuple[Column | Branches, ...] = ()

    def columns(self) -> list[Column]:
        """Every column, depth first, in drawing order."""
        out: list[Column] = []
        for item in self.items:
            if isinstance(item, Column):
                out.append(item)
            else:
                for flow in item.flows:
                    out.extend(flow.columns())
        return out


@dataclass(frozen=True)
class LayerInfo:
    """What the flow needs of one layer (from the shape report and the probe)."""

    index: int
    type: str
    label: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    values_shape: tuple[int, ...] | None = None   # the probe's activation, None without a probe
    error: str | None = None
    path: str = ""     # inside a block: the layer's path ("3.body.1"); ``index`` is its place in its list
    lists: tuple = ()  # a block's lists: ((key, (LayerInfo, ...)), ...), the keys as LayerReport.inner's


def vector_origin(layers: Sequence[LayerInfo], index: int) -> tuple[int, int, int] | None:
    """The (C, H, W) a vector was flattened from: a Flatten's input, or a Flatten's before a run of
    layers that keep its length (Dropout, ReLU); None for anything else (Linear mixes the origin)."""
    i = index
    size = _size(layers[index].output_shape)
    while 0 <= i < len(layers):
        r = layers[i]
        if r.type == "Flatten":
            shape = r.input_shape
            if shape is not None and len(shape) == 3 and math.prod(shape) == size:
                return (int(shape[0]), int(shape[1]), int(shape[2]))
            return None
        if r.type == "Linear" or r.input_shape != r.output_shape:
            return None
        i -= 1
    return None


def scores_classes(layers: Sequence[LayerInfo], index: int, k: int) -> bool:
    """True when layer ``index`` and every layer after it give one value per class (the logits and on)."""
    if k <= 0:
        return False
    return all(r.output_shape is not None and len(r.output_shape) == 1 and r.output_shape[0] == k
               for r in layers[index:])


def _size(shape) -> int:
    return math.prod(shape) if shape is not None else 0


def build_flow(input_shape: tuple[int, ...], layers: Sequence[LayerInfo], classes: Sequence[str] = (),
               softmax: bool = True, error: str = "", error_at: int | None = None) -> Flow:
    """The overview's columns: the input, one per layer up to the first that has no output, the
    softmax bars (``softmax``) and an error column (``error``) where the stack breaks.

    A layer whose ``values_shape`` is None has no values to draw (no probe yet, or
    the stack cannot run): it is a "pending" column of its report's shape.
    ``error_at`` is where the error column goes (the failing layer's index);
    without it the error closes the flow.
    """
    k = len(classes)
    items: list[Column | Branches] = [Column("input", "image", -1, "input", tuple(input_shape),
                                              count=1, tile=_tile(input_shape))]
    broken = False
    failing = None
    for r in layers:
        if (error_at is not None and r.index >= error_at) or r.error or r.output_shape is None:
            broken = True
            failing = r
            break
        if r.lists:
            items.extend(_block_items(layers, r, k, classes, r.index))
        else:
            items.append(_layer_column(layers, r, k, classes))
    if error:
        at = error_at if error_at is not None else -1
        title = f"{failing.index} · {failing.label}: cannot run" if failing is not None else "cannot run"
        items.append(Column("error", "error", at, title, None, text=error))
    elif softmax and k and not broken:
        items.append(Column("softmax", "bars", -1, "softmax", (k,), count=k, classes=tuple(classes)))
    return Flow(tuple(items))


def _tile(shape) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) >= 2:
        return int(shape[-2]), int(shape[-1])
    return 1, 1


def _block_items(layers: Sequence[LayerInfo], r: LayerInfo, k: int, classes: Sequence[str],
                 top: int) -> list[Column | Branches]:
    """A block: its lists in parallel (the layers of each as columns, nested blocks likewise), then its own
    column, the merge of the lists (the sum, the concatenation)."""
    flows = []
    identity = False
    for key, inner in r.lists:
        if not inner and key == ("shortcut",):
            identity = True
            continue
        items: list[Column | Branches] = []
        for q in inner:
            if q.output_shape is None:
                break
            if q.lists:
                items.extend(_block_items(inner, q, k, classes, top))
            else:
                items.append(_layer_column(inner, q, k, classes, top))
        flows.append(Flow(tuple(items)))
    merge = _layer_column(layers, r, k, classes, top if r.path else None)
    return [Branches(tuple(flows), block=r.path or str(r.index), identity=identity), merge]


def _short(path: str) -> str:
    """An inner layer's name in its column's title, within its block's frame: "body.1", "b2.0" (branch 2)."""
    return path.split(".", 1)[-1].replace("branches.", "b")


def _layer_column(layers: Sequence[LayerInfo], r: LayerInfo, k: int, classes: Sequence[str],
                  top: int | None = None) -> Column:
    key = f"layer {r.path or r.index}"
    title = f"{_short(r.path)} · {r.label}" if r.path else f"{r.index} · {r.label}"
    at = top if r.path and top is not None else r.index
    shape = tuple(r.output_shape) if r.output_shape is not None else None
    values = r.values_shape
    extra = {"path": r.path} if r.path else {}
    if values is None:
        return Column(key, "pending", at, title, shape, tile=_tile(shape or ()), **extra)
    if len(values) == 1:
        origin = vector_origin(layers, r.index)
        if origin is not None:
            return Column(key, "flat", at, title, shape, count=int(values[0]), tile=origin[1:], origin=origin,
                          **extra)
        names = tuple(str(c) for c in classes) if scores_classes(layers, r.index, k) and values[0] == k else None
        return Column(key, "units", at, title, shape, count=int(values[0]), classes=names, **extra)
    if len(values) == 0:
        return Column(key, "units", at, title, shape, count=1, **extra)
    channels = math.prod(values[:-2]) if len(values) > 2 else 1
    return Column(key, "maps", at, title, shape, count=int(channels), tile=(int(values[-2]), int(values[-1])),
                  **extra)


@dataclass(frozen=True)
class Region:
    """A block's frame in the scene: its lists and its merge column (x, y, w, h); ``identity``: a line for
    the identity shortcut runs along its bottom, at ``line_y``."""

    block: str
    x: float
    y: float
    width: float
    height: float
    identity: bool = False
    line_y: float = 0.0


def block_regions(flow: Flow, placed: Sequence[Placed]) -> list[Region]:
    """The frame of every block of ``flow`` (nested ones too, outer first), from where its columns were placed."""
    by_key = {q.key: q for q in placed}
    out: list[Region] = []

    def visit(f: Flow) -> None:
        for item in f.items:
            if not isinstance(item, Branches):
                continue
            mine = [by_key[c.key] for sub in item.flows for c in sub.columns() if c.key in by_key]
            merge = by_key.get(f"layer {item.block}")
            if merge is not None:
                mine.append(merge)
            if mine:
                x0 = min(q.x for q in mine) - SPACING / 4
                x1 = max(q.x + q.width for q in mine) + SPACING / 4
                y0 = min(q.y for q in mine)
                y1 = max(q.y + q.height for q in mine)
                out.append(Region(item.block, x0, y0, x1 - x0, y1 - y0, item.identity, y1 - 4))
            for sub in item.flows:
                visit(sub)

    visit(flow)
    return out


# ================================================================ geometry
@dataclass(frozen=True)
class Grid:
    """Thumbnails (or cells) placed in a column: ``n`` shown of ``rows``×``cols`` tiles of
    ``th``×``tw`` display pixels, ``gap`` apart, the grid's top-left at (x, y)."""

    x: float
    y: float
    rows: int
    cols: int
    th: int
    tw: int
    gap: int
    n: int

    @property
    def width(self) -> int:
        return self.cols * self.tw + (self.cols - 1) * self.gap

    @property
    def height(self) -> int:
        return self.rows * self.th + (self.rows - 1) * self.gap

    def rect(self, i: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) of tile ``i`` (row-major), in scene pixels."""
        r, c = divmod(i, self.cols)
        return (self.x + c * (self.tw + self.gap), self.y + r * (self.th + self.gap), self.tw, self.th)

    def at(self, x: float, y: float) -> int | None:
        """The tile under scene point (x, y), or None over a gap or outside."""
        dx, dy = x - self.x, y - self.y
        if dx < 0 or dy < 0:
            return None
        c, ox = divmod(int(dx), self.tw + self.gap)
        r, oy = divmod(int(dy), self.th + self.gap)
        if c >= self.cols or r >= self.rows or ox >= self.tw or oy >= self.th:
            return None
        i = r * self.cols + c
        return i if i < self.n else None


@dataclass(frozen=True)
class Placed:
    """A column placed in the scene: its box, its header and footer lines, its grid and "+k more"."""

    column: Column
    x: float
    y: float
    width: float
    height: float
    body_y: float
    body_height: float
    grid: Grid | None = None
    more: int = 0                 # maps not shown ("+k more")
    expanded: bool = False        # every map shown, in several sub-columns ("show fewer")
    more_rect: tuple[float, float, float, float] | None = None
    large: bool = False
    strip: tuple[float, float, float, float] | None = None   # a flat or long vector's strip: (x, y, w, h)
    label_width: float = 0.0      # class names beside units, or the bars' names

    @property
    def key(self) -> str:
        return self.column.key


@dataclass(frozen=True)
class Metrics:
    """The text the layout makes room for: line height and a width function (the view's font)."""

    line: float = 16.0
    text_width: Callable[[str], float] = field(default=lambda s: 7.0 * len(s))


def layout(flow: Flow, width: float, height: float, metrics: Metrics, selected: str | None = None,
           expanded: frozenset[str] | set[str] = frozenset(), footer_lines: int = 2,
           ranges: dict[str, str] | None = None) -> tuple[list[Placed], float]:
    """Place ``flow`` in a viewport of ``width``×``height``: (columns placed, the scene's width).

    Every column gets the full height (branches share it); the selected column
    (its key) is drawn large, in an area of about half the viewport; the others
    are as tall as their thumbnails allow, a wide layer showing its first maps and
    "+k more" unless its key is in ``expanded``. ``ranges`` holds each column's
    range label (it needs room too).
    """
    placed: list[Placed] = []
    large_area = (max(120.0, height), max(220.0, min(0.5 * width, 1.25 * height)))
    x = _place_flow(flow, SPACING / 2, 0.0, height, metrics, selected, expanded, footer_lines, ranges or {},
                    large_area, placed)
    return placed, x + SPACING / 2


def _place_flow(flow, x, y, height, metrics, selected, expanded, footer_lines, ranges, large_area, out) -> float:
    for item in flow.items:
        if isinstance(item, Column):
            p = _place_column(item, x, y, height, metrics, item.key == selected, item.key in expanded,
                              footer_lines, ranges.get(item.key, ""), large_area)
            out.append(p)
            x += p.width + SPACING
        else:
            n = max(1, len(item.flows))
            share = height / n
            right = x
            for i, sub in enumerate(item.flows):
                right = max(right, _place_flow(sub, x, y + i * share, share, metrics, selected, expanded,
                                               footer_lines, ranges, large_area, out))
            x = right + SPACING
    return x - SPACING if flow.items else x


def _place_column(col: Column, x, y, height, m: Metrics, large: bool, expanded: bool, footer_lines: int,
                  range_text: str, large_area) -> Placed:
    header = m.line + 4
    footer = footer_lines * m.line + 16   # the shape, the colour bar, the range
    body_y = y + header
    body = max(8.0, height - header - footer)
    texts = [m.text_width(fmt(col.shape)), m.text_width(range_text), 48.0]
    min_w = max(texts) + 2 * PAD
    kind = col.kind
    if kind in ("maps", "image") or (kind == "flat" and large):
        n = col.count if kind != "flat" else col.origin[0]
        tile = col.tile
        if large:
            grid, more = _large_grid(n, tile, (body, large_area[1] - 2 * PAD)), 0
        else:
            grid, more = _column_grid(n, tile, body, expanded)
        w = max(min_w, grid.width + 2 * PAD)
        gx = x + (w - grid.width) / 2
        grid = Grid(gx, body_y, grid.rows, grid.cols, grid.th, grid.tw, grid.gap, grid.n)
        more_rect = None
        if more or expanded:
            top = body_y + grid.height + GAP
            more_rect = (x + PAD, top, w - 2 * PAD, float(MORE_HEIGHT))
        return Placed(col, x, y, w, height, body_y, body, grid=grid, more=more, expanded=expanded and not more,
                      more_rect=more_rect, large=large)
    if kind == "flat":
        sw = STRIP_WIDTH
        w = max(min_w, sw + 2 * PAD)
        return Placed(col, x, y, w, height, body_y, body, strip=(x + (w - sw) / 2, body_y, sw, body), large=large)
    if kind == "units":
        k = max(1, col.count)
        cell_max = 2 * UNIT_MAX if large else UNIT_MAX
        cell = int(min(cell_max, (body + 1) // k - 1))
        label_w = max((m.text_width(c) for c in col.classes), default=0.0) + 6 if col.classes else 0.0
        if cell < 4:  # too many units for cells with gaps: one strip, the column's height
            sw = STRIP_WIDTH * (2 if large else 1)
            w = max(min_w, sw + 2 * PAD)
            return Placed(col, x, y, w, height, body_y, body, strip=(x + (w - sw) / 2, body_y, sw, body), large=large)
        gap = 1 if cell >= 4 else 0
        grid = Grid(0, 0, k, 1, cell, cell_max, gap, k)
        if cell < m.line * 0.8:
            label_w = 0.0   # names do not fit beside the cells: the tooltip names them
        w = max(min_w, grid.width + label_w + 2 * PAD)
        gx = x + (w - grid.width - label_w) / 2
        return Placed(col, x, y, w, height, body_y, body, grid=Grid(gx, body_y, k, 1, cell, cell_max, gap, k),
                      large=large, label_width=label_w)
    if kind == "bars":
        k = max(1, col.count)
        label_w = max((m.text_width(c) for c in col.classes or ()), default=0.0) + m.text_width("✓ ") + 8
        value_w = m.text_width("0.000") + 6
        w = max(min_w, label_w + BAR_WIDTH + value_w + 2 * PAD)
        bar = int(min(m.line + 6, (body + 1) // k - 1))
        gap = 1 if bar >= 4 else 0
        grid = Grid(x + PAD + label_w, body_y, k, 1, max(bar, 1), BAR_WIDTH, gap, k)
        return Placed(col, x, y, w, height, body_y, body, grid=grid, label_width=label_w)
    if kind == "error":
        return Placed(col, x, y, max(min_w, ERROR_WIDTH), height, body_y, body)
    # pending: a box of the shape's aspect, no values yet
    h, w_ = col.tile
    side = min(PENDING_SIDE, body)
    bw = int(max(8, min(THUMB_WIDTH_MAX, side * w_ / max(h, 1))))
    w = max(min_w, bw + 2 * PAD)
    grid = Grid(x + (w - bw) / 2, body_y, 1, 1, int(side), bw, 0, 1)
    return Placed(col, x, y, w, height, body_y, body, grid=grid)


def _column_grid(n: int, tile: tuple[int, int], body: float, expanded: bool) -> tuple[Grid, int]:
    """A normal column: n thumbnails down, as tall as fits (THUMB_MIN..THUMB_MAX); a wide layer
    shows its first maps and leaves room for "+k more" (or, ``expanded``, every map in sub-columns)."""
    h, w = tile
    aspect = w / max(h, 1)
    th = min(THUMB_MAX, (body + GAP) / max(n, 1) - GAP, THUMB_WIDTH_MAX / aspect)
    if th >= THUMB_MIN or n <= 1:
        th = max(1, int(th))
        return Grid(0, 0, n, 1, th, max(1, round(th * aspect)), GAP, n), 0
    room = body - MORE_HEIGHT - GAP
    th = int(min(THUMB_MIN, THUMB_WIDTH_MAX / aspect))
    fits = max(1, int((room + GAP) // (th + GAP)))
    tw = max(1, round(th * aspect))
    if expanded:
        cols = math.ceil(n / fits)
        rows = math.ceil(n / cols)
        return Grid(0, 0, rows, cols, th, tw, GAP, n), 0
    return Grid(0, 0, fits, 1, th, tw, GAP, fits), n - fits


def _large_grid(n: int, tile: tuple[int, int], area: tuple[float, float]) -> Grid:
    """The selected column: every map, as big as the area allows (as the feature-map view shows them)."""
    h, w = tile
    ah, aw = area
    cols = best_columns(n, (h, w), (ah, aw), gap=1)
    rows = math.ceil(n / cols)
    th = min((ah - (rows - 1) * GAP) / rows, ((aw - (cols - 1) * GAP) / cols) * h / max(w, 1))
    th = max(1, int(th))
    tw = max(1, int(th * w / max(h, 1)))
    return Grid(0, 0, rows, cols, th, tw, GAP, n)


def fmt(shape) -> str:
    if shape is None:
        return "—"
    return "×".join(str(s) for s in shape) if shape else "scalar"


# ================================================================ colours
class SteadyLevels:
    """A column's colour levels: shared by its maps, rounded, and kept while the data still fits them
    (as the feature-map view's), so colours hold still while training."""

    def __init__(self) -> None:
        self.levels: tuple[float, float] = (0.0, 1.0)
        self.symmetric = False
        self._set = False

    def update(self, values: np.ndarray, mode: str = "auto") -> tuple[tuple[float, float], bool]:
        data, symmetric = compute_levels(values, mode)
        lo, hi = self.levels
        if not (self._set and symmetric == self.symmetric and lo <= data[0] and data[1] <= hi
                and data[1] - data[0] >= KEEP_LEVELS_SHARE * (hi - lo)):
            self.levels = round_levels(data, symmetric)
            self.symmetric = symmetric
            self._set = True
        return self.levels, self.symmetric


def quantize(values: np.ndarray, levels: tuple[float, float], out: np.ndarray | None = None,
             scratch: np.ndarray | None = None) -> np.ndarray:
    """Colour indices 0..254 of ``values`` for ``levels`` (clipped; ±inf to the ends), NaN → NO_VALUE (255).

    ``out`` (uint8) and ``scratch`` (float32) of ``values``' shape are reused when given.
    """
    v = np.asarray(values, dtype=np.float32)
    lo, hi = float(levels[0]), float(levels[1])
    scale = (COLOURS - 1) / (hi - lo) if hi > lo else 0.0
    if scratch is None or scratch.shape != v.shape:
        scratch = np.empty(v.shape, np.float32)
    if out is None or out.shape != v.shape:
        out = np.empty(v.shape, np.uint8)
    # (v - lo)·scale + 0.5 in two passes, clipped in place; NaN survives both and is found by one
    # reduction (no boolean array unless there is one).
    np.multiply(v, np.float32(scale), out=scratch)
    np.add(scratch, np.float32(0.5 - lo * scale), out=scratch)
    np.maximum(scratch, np.float32(0), out=scratch)
    np.minimum(scratch, np.float32(COLOURS - 1), out=scratch)
    has_nan = bool(np.isnan(scratch.sum()))
    if has_nan:
        nan = np.isnan(scratch)
        scratch[nan] = 0
    out[...] = scratch   # float to uint8: truncates the +0.5-rounded value
    if has_nan:
        out[nan] = NO_VALUE
    return out


def _argb32(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 RGBA as uint32 pixels of QImage's ARGB32_Premultiplied (0xAARRGGBB, colour × alpha):
    the format the raster paint engine draws without converting."""
    c = np.asarray(rgba, dtype=np.uint32)
    a = c[..., 3]
    r, g, b = ((c[..., k] * a + 127) // 255 for k in range(3))
    return (a << 24) | (r << 16) | (g << 8) | b


def palette32(table: np.ndarray, none_rgba: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """A 256-entry uint32 table of ARGB32_Premultiplied pixels from an (N, 3|4) uint8 colour table:
    entries 0..254 resample it, 255 is ``none_rgba`` (transparent by default)."""
    t = np.asarray(table, dtype=np.uint8)
    if t.shape[1] == 3:
        t = np.concatenate([t, np.full((len(t), 1), 255, np.uint8)], axis=1)
    pick = np.round(np.linspace(0, len(t) - 1, COLOURS)).astype(int)
    rgba = np.empty((256, 4), np.uint8)
    rgba[:COLOURS] = t[pick]
    rgba[NO_VALUE] = none_rgba
    return np.ascontiguousarray(_argb32(rgba), dtype=np.uint32)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) values in [0, 1] as (H, W) uint32 opaque ARGB32 pixels; NaN draws black."""
    a = np.asarray(rgb, dtype=np.float32)
    if a.shape[0] == 3 and a.ndim == 3 and a.shape[-1] != 3:
        a = np.moveaxis(a, 0, -1)
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    u = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint32)
    return np.uint32(0xFF000000) | (u[..., 0] << 16) | (u[..., 1] << 8) | u[..., 2]


class Raster:
    """One column's image at display resolution from its maps at their own, with one gather.

    ``Raster(grid, (h, w))`` precomputes, for every display pixel, which map pixel
    it shows (nearest neighbour, up or down) or none (a gap, an unused tile);
    :meth:`draw` then fills the (height, width) uint32 RGBA image from the maps'
    packed colours (``(n, h, w)`` uint32 pixels) in place. A strip is a grid of one tile
    whose source is one (N, 1) map. Reuse a raster while the layout holds.
    """

    def __init__(self, grid: Grid, tile: tuple[int, int]) -> None:
        self.grid = grid
        self.tile = tile
        h, w = tile
        rows_idx, ys = _axis(grid.rows, grid.th, grid.gap, h)
        cols_idx, xs = _axis(grid.cols, grid.tw, grid.gap, w)
        n = grid.n
        t = rows_idx[:, None] * grid.cols + cols_idx[None, :]
        bad = (rows_idx[:, None] < 0) | (cols_idx[None, :] < 0) | (t >= n)
        flat = (t * (h * w) + ys[:, None] * w + xs[None, :]).astype(np.intp)
        flat[bad] = n * h * w   # one pixel past the maps: the "no value" colour
        self._index = flat
        self.image = np.zeros(flat.shape, np.uint32)
        self._source = np.zeros(n * h * w + 1, np.uint32)

    def draw(self, packed: np.ndarray, none: int = 0) -> np.ndarray:
        """Fill :attr:`image` from ``packed`` (n, h, w) uint32 colours; returns it."""
        src = self._source
        size = src.size - 1
        src[:size] = np.asarray(packed, dtype=np.uint32).reshape(-1)[:size]
        return self._gather(none)

    def draw_indices(self, indices: np.ndarray, palette: np.ndarray, none: int = 0) -> np.ndarray:
        """:meth:`draw` of ``palette[indices]`` (``indices``: (n, h, w) uint8 colour indices, ``palette``
        a 256-entry uint32 table), looked up straight into the gather's source (no colour array between)."""
        src = self._source
        size = src.size - 1
        np.take(palette, np.asarray(indices).reshape(-1)[:size], out=src[:size])
        return self._gather(none)

    def _gather(self, none: int) -> np.ndarray:
        src = self._source
        src[src.size - 1] = none
        np.take(src, self._index, out=self.image)
        return self.image


def _axis(count: int, t: int, gap: int, src: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis of a grid: for each display pixel, its tile (-1 in a gap) and source pixel."""
    length = count * t + (count - 1) * gap
    p = np.arange(max(length, 0))
    tile, off = np.divmod(p, t + gap)
    inside = off < t
    source = np.minimum((off * src) // max(t, 1), src - 1)
    tile = np.where(inside, tile, -1)
    return tile, np.where(inside, source, 0)
