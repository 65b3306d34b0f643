"""The arithmetic of one output element, by torch's own rules, in numpy (no torch, no Qt).

The convolution lab animates a window sliding over a layer's input on the GUI
thread, and ``cnnviz explain`` prints the sum behind one output element; both
read this module.

- :class:`Window`: a Conv2d, MaxPool2d or AvgPool2d layer's geometry for one input
  shape: the padding on each side (``padding='same'`` with an even span pads
  ``total // 2`` before and the rest after, as torch does), the input rows and
  columns every output cell reads (vectorised per axis), the input cells no
  window reaches, the channels a group connects, AvgPool2d's divisors.
- :func:`taps_of`: for one output element, every :class:`Tap` (input channel, y, x
  in input coordinates, the value there, the weight, the product) and the
  :class:`Arithmetic` that adds them up: the sum and bias for Conv2d and Linear,
  the max (with the tap it came from and the flat index ``return_indices``
  would give) for MaxPool2d, the divisor for AvgPool2d.
- :func:`locate`: which layer and element a path and coordinate name, checked
  against shape inference, with a sentence naming what can be explained.

Window positions follow torch's kernels: a tap's input row is
``out_row * stride - pad_top + k * dilation``. A convolution pads explicitly
(zeros, or ``F.pad`` with ``reflect``/``replicate``/``circular``), so every tap
lies inside the padded input; a pool pads implicitly (−inf for MaxPool2d, 0 for
AvgPool2d) and clips a ``ceil_mode`` window at the end of the padding: positions
beyond it are not taps.

The output sizes and the 'same' padding come from :mod:`cnnviz.core.shapes.formulas`,
the resolved keywords from shape inference (:func:`resolve`), so there is one
copy of that arithmetic.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.core.model.layers import as_pair
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import StackReport, fmt_shape, infer
from cnnviz.core.shapes.formulas import conv_out, pool_out, same_padding

SPATIAL = ("Conv2d", "MaxPool2d", "AvgPool2d")
EXPLAINABLE = SPATIAL + ("Linear",)
"""The layer types with arithmetic to show, one output element at a time."""

MAX_PADDING = "-inf"
"""``Window.padding_mode`` of MaxPool2d: its implicit padding is −infinity (never the maximum)."""


class LabError(ValueError):
    """A path, coordinate or layer that cannot be explained; ``str()`` is a sentence for the user."""


# --------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Reads:
    """Every tap of every output cell, as (H_out, W_out, kh, kw) read-only views: output cell (oy, ox)'s tap
    (ky, kx) reads input row ``ys[oy, ox, ky, kx]`` and column ``xs[...]``; it is a tap where both ``row_taps``
    and ``col_taps`` hold (a pool's ceil_mode window is clipped at the end of the padding)."""

    ys: np.ndarray
    xs: np.ndarray
    row_taps: np.ndarray
    col_taps: np.ndarray

    @property
    def taps(self) -> np.ndarray:
        """The full (H_out, W_out, kh, kw) mask (allocated: index a region of ``row_taps``/``col_taps`` for
        a large map)."""
        return self.row_taps & self.col_taps


@dataclass(frozen=True)
class Window:
    """Where each output cell of a Conv2d, MaxPool2d or AvgPool2d layer reads its input.

    Axis 0 is the height (rows, y), axis 1 the width (columns, x). ``pad_before`` is
    (top, left), ``pad_after`` (bottom, right). ``padding_mode`` is Conv2d's keyword,
    ``"zeros"`` for AvgPool2d and :data:`MAX_PADDING` for MaxPool2d.
    """

    type: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_before: tuple[int, int]
    pad_after: tuple[int, int]
    padding_mode: str = "zeros"
    groups: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    @property
    def padding(self) -> dict[str, int]:
        """The padding on each side, by name."""
        return {"top": self.pad_before[0], "bottom": self.pad_after[0],
                "left": self.pad_before[1], "right": self.pad_after[1]}

    def _size(self, axis: int) -> int:
        return self.in_shape[1 + axis]

    def axis_positions(self, axis: int) -> np.ndarray:
        """(outputs along ``axis``, kernel taps along it): the input coordinate of each tap (may be < 0 or ≥ size)."""
        n = self.out_shape[1 + axis]
        k = self.kernel[axis]
        return (np.arange(n)[:, None] * self.stride[axis] - self.pad_before[axis]
                + np.arange(k)[None, :] * self.dilation[axis])

    def axis_taps(self, axis: int) -> np.ndarray:
        """Same shape as :meth:`axis_positions`: whether each position is a tap (inside the padded input; a
        pool's ``ceil_mode`` window is clipped at the end of the padding, as torch clips it)."""
        return self.axis_positions(axis) < self._size(axis) + self.pad_after[axis]

    def axis_inside(self, axis: int) -> np.ndarray:
        """Whether each tap position is a real input pixel (not padding)."""
        pos = self.axis_positions(axis)
        return (pos >= 0) & (pos < self._size(axis))

    def axis_source(self, axis: int, positions: np.ndarray) -> np.ndarray:
        """The input coordinate whose value sits at ``positions`` along ``axis``: itself inside the input;
        where padding is, the pixel ``reflect``, ``replicate`` or ``circular`` copies, or -1 (zeros, −inf)."""
        n = self._size(axis)
        pos = np.asarray(positions)
        inside = (pos >= 0) & (pos < n)
        mode = self.padding_mode
        if mode == "reflect":
            period = 2 * (n - 1) if n > 1 else 1
            r = np.mod(pos, period)
            src = np.where(r < n, r, period - r)
        elif mode == "replicate":
            src = np.clip(pos, 0, n - 1)
        elif mode == "circular":
            src = np.mod(pos, n)
        else:
            src = np.where(inside, pos, -1)
        return np.where(inside, pos, src)

    def positions(self) -> Reads:
        """Where every output cell reads: (H_out, W_out, kh, kw) arrays that are broadcast views of the
        per-axis ones, so a 4096×4096 map costs no more memory than its two axes."""
        ho, wo = self.out_shape[1:]
        kh, kw = self.kernel
        full = (ho, wo, kh, kw)
        return Reads(np.broadcast_to(self.axis_positions(0)[:, None, :, None], full),
                     np.broadcast_to(self.axis_positions(1)[None, :, None, :], full),
                     np.broadcast_to(self.axis_taps(0)[:, None, :, None], full),
                     np.broadcast_to(self.axis_taps(1)[None, :, None, :], full))

    def window(self, y: int, x: int) -> list[tuple[int, int]]:
        """The (input y, input x) of every tap of output cell (y, x), row by row."""
        self._check_cell(y, x)
        rows = self.axis_positions(0)[y][self.axis_taps(0)[y]]
        cols = self.axis_positions(1)[x][self.axis_taps(1)[x]]
        return [(int(r), int(c)) for r in rows for c in cols]

    def _check_cell(self, y: int, x: int) -> None:
        ho, wo = self.out_shape[1:]
        if not (0 <= y < ho and 0 <= x < wo):
            raise LabError(f"output cell ({y}, {x}) is outside the {ho}×{wo} output")

    def axis_read(self, axis: int) -> np.ndarray:
        """(size,) bool: the input coordinates along ``axis`` that some window reads, directly or through the
        padding that copies them."""
        pos = self.axis_positions(axis)[self.axis_taps(axis)]
        src = self.axis_source(axis, pos)
        read = np.zeros(self._size(axis), dtype=bool)
        read[src[src >= 0]] = True
        return read

    def unread(self) -> np.ndarray:
        """(H, W) bool: the input cells no output depends on (a stride larger than the window's span skips
        them, or the last ones a floor-rounded output size leaves over)."""
        return ~(self.axis_read(0)[:, None] & self.axis_read(1)[None, :])

    def in_channels_of(self, out_channel: int) -> range:
        """The input channels that feed ``out_channel``: its group's for Conv2d, the same channel for a pool."""
        cin, cout = self.in_shape[0], self.out_shape[0]
        if not 0 <= out_channel < cout:
            raise LabError(f"output channel {out_channel} is outside 0..{cout - 1}")
        if self.type != "Conv2d":
            return range(out_channel, out_channel + 1)
        group = out_channel // (cout // self.groups)
        per = cin // self.groups
        return range(group * per, (group + 1) * per)

    def out_channels_of(self, in_channel: int) -> range:
        """The output channels that ``in_channel`` feeds."""
        cin, cout = self.in_shape[0], self.out_shape[0]
        if not 0 <= in_channel < cin:
            raise LabError(f"input channel {in_channel} is outside 0..{cin - 1}")
        if self.type != "Conv2d":
            return range(in_channel, in_channel + 1)
        group = in_channel // (cin // self.groups)
        per = cout // self.groups
        return range(group * per, (group + 1) * per)

    def axis_divisor_parts(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Per output along ``axis``: (taps inside the padded window, taps on real pixels): AvgPool2d's
        divisor is their product over the two axes (``count_include_pad`` picks which)."""
        return self.axis_taps(axis).sum(axis=1), (self.axis_taps(axis) & self.axis_inside(axis)).sum(axis=1)

    def divisors(self) -> np.ndarray:
        """(H_out, W_out) int: what AvgPool2d divides each window's sum by."""
        ho, wo = self.out_shape[1:]
        if self.divisor_override is not None:
            return np.full((ho, wo), int(self.divisor_override), dtype=np.int64)
        (rows_all, rows_real), (cols_all, cols_real) = self.axis_divisor_parts(0), self.axis_divisor_parts(1)
        if self.count_include_pad:
            return rows_all[:, None] * cols_all[None, :]
        return rows_real[:, None] * cols_real[None, :]


def resolve(layer: Layer, in_shape: Sequence[int]) -> dict[str, Any]:
    """``layer``'s keywords as shape inference resolves them for a C×H×W input (defaults filled, counts
    inferred); :class:`LabError` with inference's sentence if the layer cannot take that input."""
    c, h, w = (int(v) for v in in_shape)
    report = infer(Stack(input=InputSpec(c, h, w), layers=(layer,)))
    r = report.layers[0]
    if r.error:
        raise LabError(r.error)
    return dict(r.resolved)


def window_of(layer_type: str, params: Mapping[str, Any], in_shape: Sequence[int]) -> Window:
    """The :class:`Window` of a Conv2d, MaxPool2d or AvgPool2d layer with resolved keywords ``params``
    (a :class:`~cnnviz.core.shapes.LayerReport`'s ``resolved``, or :func:`resolve`'s) on a C×H×W input."""
    if layer_type not in SPATIAL:
        raise LabError(f"{layer_type} has no sliding window: only {', '.join(SPATIAL)} have one")
    c, h, w = (int(v) for v in in_shape)
    size = (h, w)
    k = as_pair(params["kernel_size"])
    if layer_type == "Conv2d":
        s, d = as_pair(params["stride"]), as_pair(params["dilation"])
        pad = params["padding"]
        if pad == "same":
            pads = [same_padding(k[a], d[a]) for a in range(2)]
        elif pad == "valid":
            pads = [(0, 0), (0, 0)]
        else:
            pads = [(p, p) for p in as_pair(pad)]
        out = tuple(conv_out(size[a], k[a], s[a], sum(pads[a]), d[a]) for a in range(2))
        return Window("Conv2d", (c, h, w), (int(params["out_channels"]), *out), k, s, d,
                      (pads[0][0], pads[1][0]), (pads[0][1], pads[1][1]), params["padding_mode"],
                      int(params["groups"]))
    s = as_pair(params["stride"]) if params.get("stride") is not None else k
    d = as_pair(params["dilation"]) if layer_type == "MaxPool2d" else (1, 1)
    p = as_pair(params["padding"])
    ceil = bool(params["ceil_mode"])
    out = tuple(pool_out(size[a], k[a], s[a], p[a], d[a], ceil) for a in range(2))
    if layer_type == "MaxPool2d":
        return Window("MaxPool2d", (c, h, w), (c, *out), k, s, d, p, p, MAX_PADDING, 1, ceil)
    return Window("AvgPool2d", (c, h, w), (c, *out), k, s, d, p, p, "zeros", 1, ceil,
                  bool(params["count_include_pad"]), params.get("divisor_override"))


# --------------------------------------------------------------------- taps
@dataclass(frozen=True)
class Tap:
    """One term of an output element's arithmetic.

    ``channel``, ``y``, ``x``: where it reads, in the layer's input coordinates (``y``/``x``
    outside the input where ``padding``). ``input``: the value there (the value padding put
    there; None for MaxPool2d's −infinity). ``weight`` and ``product``: Conv2d and Linear
    only. ``index``: Linear's position in its input vector (``channel``, ``y``, ``x`` are then
    where a Flatten took it from, or None).
    """

    channel: int | None
    y: int | None
    x: int | None
    padding: bool
    input: float | None
    weight: float | None = None
    product: float | None = None
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        if self.index is not None:
            out: dict[str, Any] = {"index": self.index}
            if self.channel is not None:
                out.update(channel=self.channel, y=self.y, x=self.x)
            out.update(input=json_number(self.input), weight=json_number(self.weight), product=json_number(self.product))
            return out
        out = {"channel": self.channel, "y": self.y, "x": self.x, "padding": self.padding,
               "input": json_number(self.input)}
        if self.weight is not None:
            out.update(weight=json_number(self.weight), product=json_number(self.product))
        return out


@dataclass(frozen=True)
class Arithmetic:
    """How one output element comes about: its taps and what they add up to.

    ``value``: the sum of the products plus ``bias`` (Conv2d, Linear), the largest
    input (MaxPool2d: ``argmax`` is the position of that tap in ``taps``,
    ``return_index`` the flat index ``y * W + x`` that ``return_indices=True`` gives; a dilated
    window that covers padding only has the value −inf and no ``argmax``),
    or the sum of the inputs over ``divisor`` (AvgPool2d).
    """

    type: str
    at: tuple[int, ...]
    taps: tuple[Tap, ...]
    value: float
    bias: float | None = None
    has_bias: bool = False
    argmax: int | None = None
    return_index: int | None = None
    divisor: int | None = None

    @property
    def total(self) -> float:
        """The sum of the products (Conv2d, Linear) or of the inputs (AvgPool2d), before bias or divisor."""
        if self.type == "MaxPool2d":
            return self.value
        terms = [t.product if t.weight is not None else t.input for t in self.taps]
        return float(np.sum(np.array([0.0 if v is None else v for v in terms], dtype=np.float64)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "at": list(self.at), "taps": [t.to_json() for t in self.taps]}
        if self.type in ("Conv2d", "Linear"):
            out["bias"] = json_number(self.bias) if self.has_bias else None
        out["value"] = json_number(self.value)
        if self.type == "MaxPool2d":
            out["argmax"] = self.argmax
            out["return_index"] = self.return_index
        if self.type == "AvgPool2d":
            out["divisor"] = self.divisor
        return out


def json_number(value: float | None) -> float | None:
    """A number for JSON: None stays None; the shortest decimal that reads back as the same float32
    (the layer computes in float32, so more digits would be noise)."""
    if value is None:
        return None
    v = float(value)
    if not np.isfinite(v):
        return None
    if v == 0:
        return 0.0  # no -0.0 in a handout
    return float(str(np.float32(v)))


def _check_at(at: Sequence[int], shape: Sequence[int], what: str = "element") -> tuple[int, ...]:
    at = tuple(int(v) for v in at)
    if len(at) != len(shape) or any(not 0 <= a < n for a, n in zip(at, shape)):
        raise LabError(f"{what} {','.join(str(a) for a in at)} is not an element of the {fmt_shape(tuple(shape))} "
                       f"output: give {len(shape)} coordinate{'s' if len(shape) != 1 else ''}, "
                       f"{at_range(shape)}")
    return at


def at_range(shape: Sequence[int]) -> str:
    """The valid coordinates of an output of ``shape``, in words: ``C 0..5, Y 0..27, X 0..27``."""
    names = ("C", "Y", "X") if len(shape) == 3 else ("J",) if len(shape) == 1 else \
        tuple(f"d{i}" for i in range(len(shape)))
    return ", ".join(f"{n} 0..{s - 1}" for n, s in zip(names, shape))


def conv_taps(win: Window, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
              at: Sequence[int]) -> Arithmetic:
    """Conv2d's output element ``at`` = (c, y, x) of input ``x`` (C, H, W), ``weight`` (C_out, C_in/groups, kh, kw)."""
    x = np.asarray(x)
    co, oy, ox = _check_at(at, win.out_shape)
    rows, cols = win.axis_positions(0)[oy], win.axis_positions(1)[ox]
    src_r, src_c = win.axis_source(0, rows), win.axis_source(1, cols)
    channels = win.in_channels_of(co)
    taps, products = [], []
    for j, ci in enumerate(channels):
        for a, r in enumerate(rows):
            for b, c in enumerate(cols):
                pad = not (0 <= r < win.in_shape[1] and 0 <= c < win.in_shape[2])
                value = 0.0 if src_r[a] < 0 or src_c[b] < 0 else float(x[ci, src_r[a], src_c[b]])
                w = float(weight[co, j, a, b])
                products.append(value * w)
                taps.append(Tap(ci, int(r), int(c), bool(pad), value, w, value * w))
    b = float(bias[co]) if bias is not None else 0.0
    total = float(np.sum(np.array(products, dtype=np.float64))) + b
    return Arithmetic("Conv2d", (co, oy, ox), tuple(taps), total, b if bias is not None else None, bias is not None)


def pool_taps(win: Window, x: np.ndarray, at: Sequence[int]) -> Arithmetic:
    """MaxPool2d's or AvgPool2d's output element ``at`` = (c, y, x) of input ``x`` (C, H, W)."""
    x = np.asarray(x)
    c, oy, ox = _check_at(at, win.out_shape)
    h, w = win.in_shape[1:]
    rows = win.axis_positions(0)[oy][win.axis_taps(0)[oy]]
    cols = win.axis_positions(1)[ox][win.axis_taps(1)[ox]]
    taps: list[Tap] = []
    if win.type == "MaxPool2d":
        best, argmax = -np.inf, None
        for r in rows:
            for col in cols:
                inside = 0 <= r < h and 0 <= col < w
                value = float(x[c, r, col]) if inside else None
                if value is not None and (argmax is None or value > best or np.isnan(value)):
                    best, argmax = value, len(taps)  # torch's rule: the first largest, a NaN wins
                taps.append(Tap(c, int(r), int(col), not inside, value))
        if argmax is not None:
            index = taps[argmax].y * w + taps[argmax].x
        else:  # a dilated window over padding only: −inf, at the index torch's kernel starts from
            starts = (int(win.axis_positions(0)[oy][0]), int(win.axis_positions(1)[ox][0]))
            first = [s0 + max(0, (-s0 + d - 1) // d) * d for s0, d in zip(starts, win.dilation)]
            index = first[0] * w + first[1]
        return Arithmetic("MaxPool2d", (c, oy, ox), tuple(taps), float(best), argmax=argmax,
                          return_index=int(index))
    values = []
    for r in rows:
        for col in cols:
            inside = 0 <= r < h and 0 <= col < w
            value = float(x[c, r, col]) if inside else 0.0
            values.append(value)
            taps.append(Tap(c, int(r), int(col), not inside, value))
    divisor = int(win.divisors()[oy, ox])
    total = float(np.sum(np.array(values, dtype=np.float64)))
    return Arithmetic("AvgPool2d", (c, oy, ox), tuple(taps), total / divisor, divisor=divisor)


def linear_taps(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, at: Sequence[int],
                origin: Sequence[int] | None = None) -> Arithmetic:
    """Linear's output element ``at`` (one coordinate per output dimension; the last is the feature j) of
    input ``x``; ``origin``: the C×H×W shape a Flatten made ``x`` from, so each tap says where its index came
    from."""
    x = np.asarray(x)
    out_shape = tuple(x.shape[:-1]) + (int(weight.shape[0]),)
    at = _check_at(at, out_shape)
    row = x[at[:-1]] if x.ndim > 1 else x
    j = at[-1]
    n = row.shape[-1]
    where = None
    if origin is not None and x.ndim == 1 and int(np.prod(origin)) == n:
        where = np.unravel_index(np.arange(n), tuple(int(v) for v in origin))
    taps, products = [], []
    for i in range(n):
        value, w = float(row[i]), float(weight[j, i])
        products.append(value * w)
        ch, y, xx = (int(where[0][i]), int(where[1][i]), int(where[2][i])) if where is not None else (None,) * 3
        taps.append(Tap(ch, y, xx, False, value, w, value * w, index=i))
    b = float(bias[j]) if bias is not None else 0.0
    total = float(np.sum(np.array(products, dtype=np.float64))) + b
    return Arithmetic("Linear", at, tuple(taps), total, b if bias is not None else None, bias is not None)


def taps_of(layer_type: str, params: Mapping[str, Any], x: np.ndarray, at: Sequence[int], *,
            weight: np.ndarray | None = None, bias: np.ndarray | None = None,
            origin: Sequence[int] | None = None) -> Arithmetic:
    """The arithmetic of output element ``at`` of a layer (resolved keywords ``params``) given its input
    ``x`` (batch left out) and, for Conv2d and Linear, its ``weight`` and ``bias`` (None without bias)."""
    if layer_type not in EXPLAINABLE:
        raise LabError(f"{layer_type} has no arithmetic to explain: only {', '.join(EXPLAINABLE)} have")
    x = np.asarray(x)
    if layer_type == "Linear":
        return linear_taps(x, np.asarray(weight), bias, at, origin)
    if x.ndim != 3:
        raise LabError(f"{layer_type} takes C×H×W maps, not {fmt_shape(x.shape)}")
    win = window_of(layer_type, params, x.shape)
    if layer_type == "Conv2d":
        return conv_taps(win, x, np.asarray(weight), None if bias is None else np.asarray(bias), at)
    return pool_taps(win, x, at)


# --------------------------------------------------------------------- which element
@dataclass(frozen=True)
class Target:
    """A checked request: the layer at ``path`` (index ``index`` of the stack's layers), its output element
    ``at``, and for a Linear after Flatten the C×H×W shape its input vector was flattened from."""

    path: LayerPath
    index: int
    type: str
    label: str
    resolved: dict[str, Any]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    at: tuple[int, ...]
    origin: tuple[int, ...] | None


def explainable(report: StackReport) -> list[tuple[str, str]]:
    """(path, type) of every layer with arithmetic to explain, in order."""
    return [(str(LayerPath(r.index)), r.type) for r in report.layers if r.type in EXPLAINABLE and r.ok]


def _choices(report: StackReport) -> str:
    items = explainable(report)
    if not items:
        return "this stack has no Conv2d, MaxPool2d, AvgPool2d or Linear layer to explain"
    return "the layers that can be explained are " + ", ".join(f"{p} ({t})" for p, t in items)


def flat_origin(report: StackReport, index: int) -> tuple[int, ...] | None:
    """The C×H×W shape that layer ``index``'s 1-D input was flattened from, when a Flatten made it (through
    layers that keep the shape, such as ReLU or Dropout); else None."""
    j = index - 1
    while j >= 0:
        r = report.layers[j]
        if r.type == "Flatten":
            inp, out = r.input_shape, r.output_shape
            return tuple(inp) if inp is not None and len(inp) == 3 and out is not None and len(out) == 1 else None
        if r.input_shape != r.output_shape:
            return None
        j -= 1
    return None


def locate(stack: Stack, report: StackReport, path: str, at: str | Sequence[int]) -> Target:
    """The layer ``path`` names and its output element ``at`` (``"2,5,7"`` or a sequence), checked against
    shape inference; :class:`LabError` naming the paths that can be explained or the valid range."""
    from cnnviz.core.model.text import one_line

    try:
        where = LayerPath.of(path.strip())
    except (ValueError, TypeError):
        raise LabError(f"--layer {one_line(path)!r} is not a layer path (\"0\", \"3\", or \"3.body.1\" inside "
                       f"a block): {_choices(report)}") from None
    if not where.top_level or not 0 <= where.index < len(report.layers):
        why = "this stack has no blocks" if not where.top_level else f"it has {len(report.layers)} layers"
        raise LabError(f"no layer at {where} ({why}): {_choices(report)}")
    r = report.layers[where.index]
    named = f"layer {where}" if r.label == r.type else f"layer {where} ({one_line(r.label)})"
    if r.type not in EXPLAINABLE:
        raise LabError(f"{named} is a {r.type}, which has no arithmetic to explain: {_choices(report)}")
    if not r.ok:
        raise LabError(f"{named} cannot work, so there is nothing to explain")
    if isinstance(at, str):
        try:
            coords = tuple(int(p) for p in at.replace(" ", "").split(","))
        except ValueError:
            raise LabError(f"--at {one_line(at)!r} is not a list of whole numbers: give "
                           f"{at_range(r.output_shape)} for layer {where}'s {fmt_shape(r.output_shape)} output") from None
    else:
        coords = tuple(int(v) for v in at)
    coords = _check_at(coords, r.output_shape, f"--at for layer {where}:")
    origin = flat_origin(report, where.index) if r.type == "Linear" else None
    return Target(where, where.index, r.type, r.label, dict(r.resolved), tuple(r.input_shape),
                  tuple(r.output_shape), coords, origin)
