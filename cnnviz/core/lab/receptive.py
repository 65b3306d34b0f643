"""The receptive field of one map pixel, measured: the theoretical field and the effective one, and their growth.

* **Theoretical**: shape inference's :class:`~cnnviz.core.shapes.reports.ReceptiveField` of the layer
  (size, jump, start per axis) placed at output pixel (y, x) and clipped to the input
  (:func:`theoretical_rect`): the arithmetic of the feature-map view's hover outline
  (``FeatureMapView.receptive_rect``).
* **Effective** (:func:`effective_field`): ``|∂ out[c, y, x] / ∂ input|`` summed over the input's channels,
  an (H, W) map, from one forward pass to the layer and one ``torch.autograd.grad`` on the given (normalised)
  sample, with the model in eval mode (every module's own mode put back) and no parameter's ``.grad``
  touched. Its extent is the side of the smallest square window holding :data:`MASS` (95 %) of the map's
  sum (:func:`smallest_square`); a map that is zero everywhere (the pixel does not depend on the input, e.g.
  behind a ReLU that is off) has none. The gradient's support lies inside the theoretical field, except with
  ``padding_mode="circular"``, which wraps a border pixel's field round to the opposite edge: the measurement
  shows what torch does, the rectangle what the size arithmetic says.
* **Growth with depth**: :func:`field_growth` reads the theoretical size of every layer of the stack from the
  report (no torch); :func:`effective_growth` adds, for each layer with a C×H×W output, the effective extent
  of its centre pixel, taken for the sum over channels (as Luo et al., 2016, *Understanding the Effective
  Receptive Field*, do, on one sample here rather than an average over many): one backward per layer.

Layers inside blocks: :func:`effective_field` takes a path (``"3.body.1"``) as well as an index, reads that
layer's output with a forward hook on ``model.get_submodule(path)`` (the forward stops there), and takes the
theoretical field from ``report.at(path)``. The growth is of the stack's own layers: a block is one point, at
its output (whose theoretical field is its widest list's, as shape inference says).

numpy on import; the functions that run the model import torch, so the GUI thread may use
:func:`field_growth`, :func:`theoretical_rect` and :func:`smallest_square` without loading it. No Qt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.core.model.paths import LayerPath
from cnnviz.core.run.faults import EngineError

__all__ = ["MASS", "EffectiveField", "GrowthPoint", "ReceptiveError", "Rect", "effective_field",
           "effective_growth", "field_growth", "smallest_square", "theoretical_rect"]

MASS = 0.95
"""The share of the gradient's sum the effective extent holds."""


class ReceptiveError(EngineError):
    """A layer, pixel or image whose receptive field cannot be measured; the sentence says which and why."""

    kind = "config"


@dataclass(frozen=True)
class Rect:
    """Input pixels rows ``top`` to ``bottom - 1``, columns ``left`` to ``right - 1``."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    def contains(self, other: Rect) -> bool:
        return (self.top <= other.top and self.left <= other.left and other.bottom <= self.bottom
                and other.right <= self.right)


@dataclass(frozen=True)
class EffectiveField:
    """What one output pixel's gradient says about the input pixels it depends on.

    ``map``: (H, W) float32, ``|∂ out[channel, y, x] / ∂ input|`` summed over the input channels;
    ``theoretical``: the theoretical field clipped to the input (None without a report or a field),
    ``theoretical_size`` its unclipped (height, width); ``support``: the bounding box of the map's nonzero
    pixels; ``square``: the smallest square holding ``share`` of the map's sum, ``extent`` its side
    (0 and None for a map that is zero everywhere).
    """

    layer: str
    channel: int
    y: int
    x: int
    value: float
    output_shape: tuple[int, int, int]
    map: np.ndarray
    theoretical: Rect | None
    theoretical_size: tuple[int, int] | None
    support: Rect | None
    square: Rect | None
    share: float = MASS

    @property
    def extent(self) -> int:
        return 0 if self.square is None else max(self.square.height, self.square.width)


@dataclass(frozen=True)
class GrowthPoint:
    """One layer's point of the growth plot: its theoretical (height, width) and effective side, in pixels."""

    index: int
    path: str
    label: str
    type: str
    theoretical: tuple[int, int] | None
    effective: int | None = None
    pixel: tuple[int, int] | None = None
    """The output pixel (y, x) the effective side is of: the centre of the layer's maps."""


# ------------------------------------------------------------------ numpy: rectangles and extents
def theoretical_rect(rf, y: int, x: int, input_hw: tuple[int, int]) -> Rect | None:
    """The input pixels output pixel (y, x) of a layer with field ``rf`` sees, clipped to the input
    ((height, width)); None without a field or when nothing of it lies inside the input."""
    if rf is None:
        return None
    h, w = input_hw
    (sh, sw), (jh, jw), (oh, ow) = rf.size, rf.jump, rf.start
    top, left = oh + y * jh - sh / 2, ow + x * jw - sw / 2
    t, b = max(0, round(top)), min(h, round(top + sh))
    lft, r = max(0, round(left)), min(w, round(left + sw))
    if b <= t or r <= lft:
        return None
    return Rect(t, lft, b - t, r - lft)


def support_rect(values: np.ndarray) -> Rect | None:
    """The bounding box of the nonzero pixels of an (H, W) map, or None when there are none."""
    rows, cols = np.nonzero(np.asarray(values))
    if rows.size == 0:
        return None
    return Rect(int(rows.min()), int(cols.min()), int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))


def smallest_square(values: np.ndarray, share: float = MASS) -> Rect | None:
    """The smallest square window of an (H, W) map of nonnegative values holding ``share`` of its sum.

    Its side is found by a binary search over window sums from a summed-area table (the best window of a side
    holds at least as much as the best of a smaller one); among the windows of that side holding the most,
    the one nearest the map's centre of mass. A side beyond the image's height or width is cut to it. None
    for a map whose sum is zero.
    """
    m = np.abs(np.asarray(values, dtype=np.float64))
    if m.ndim != 2:
        raise ValueError(f"a map must be (H, W), not {m.shape}")
    total = float(m.sum())
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], not {share}")
    if not total > 0.0 or not np.isfinite(total):
        return None
    need = share * total * (1.0 - 1e-9)   # rounding in the sums must not ask for one pixel more
    h, w = m.shape
    sat = np.zeros((h + 1, w + 1))
    sat[1:, 1:] = m.cumsum(0).cumsum(1)

    def sums(side: int) -> tuple[np.ndarray, int, int]:
        sh, sw = min(side, h), min(side, w)
        window = sat[sh:, sw:] - sat[:h + 1 - sh, sw:] - sat[sh:, :w + 1 - sw] + sat[:h + 1 - sh, :w + 1 - sw]
        return window, sh, sw

    lo, hi = 1, max(h, w)
    while lo < hi:
        mid = (lo + hi) // 2
        if sums(mid)[0].max() >= need:
            hi = mid
        else:
            lo = mid + 1
    window, sh, sw = sums(lo)
    best = window.max()
    tops, lefts = np.nonzero(window >= best * (1.0 - 1e-12))
    ys, xs = np.indices(m.shape)
    cy, cx = float((ys * m).sum() / total), float((xs * m).sum() / total)
    k = int(np.argmin((tops + sh / 2 - 0.5 - cy) ** 2 + (lefts + sw / 2 - 0.5 - cx) ** 2))
    return Rect(int(tops[k]), int(lefts[k]), sh, sw)


# ------------------------------------------------------------------ growth from the report (no torch)
def field_growth(report, nested: bool = False) -> tuple[GrowthPoint, ...]:
    """One point per layer of the stack (``nested``: per layer at every depth, a block before its inside, in
    file order): its index along the plot, path, label, type and theoretical (height, width); None where a
    layer has no field (after Flatten, or a layer that cannot work)."""
    reports = report.walk() if nested else report.layers
    out = []
    for i, r in enumerate(reports):
        rf = r.receptive_field if r.output_shape is not None and len(r.output_shape) == 3 else None
        out.append(GrowthPoint(i, str(r.path), r.label, r.type,
                               None if rf is None else (int(rf.size[0]), int(rf.size[1]))))
    return tuple(out)


# ------------------------------------------------------------------ torch
def _as_input(model, image):
    """One image as a (1, C, H, W) float tensor on the model's device (detached)."""
    import torch

    x = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[0] != 1:
        raise ReceptiveError(f"expected one image, (C, H, W) or (1, C, H, W), not {tuple(x.shape)}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else x.device
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.float32
    return x.detach().to(device=device, dtype=dtype)


class _Reached(Exception):
    """Raised by the forward hook once the layer's output is in hand: nothing after it needs to run."""


def _output_of(model, path: LayerPath, leaf):
    """The output of the layer at ``path`` for input ``leaf`` (the forward stopped right after it)."""
    try:
        module = model.get_submodule(str(path))
    except AttributeError:
        raise ReceptiveError(f"the model has no layer at {path}") from None
    seen: list = []

    def hook(_module, _inputs, output):
        seen.append(output)
        raise _Reached

    handle = module.register_forward_hook(hook)
    try:
        model(leaf.clone())   # a clone: an inplace first layer must not write into the leaf
    except _Reached:
        pass
    finally:
        handle.remove()
    if not seen:
        raise ReceptiveError(f"{path.words()} did not run in the forward pass")
    return seen[0]


def _describe(report, path: LayerPath) -> str:
    if report is None:
        return path.words()
    try:
        r = report.at(path)
    except IndexError:
        return path.words()
    return f"{path.words()} ({r.label})"


def effective_field(model, image, layer, channel: int, y: int, x: int, *, report=None,
                    share: float = MASS) -> EffectiveField:
    """The effective receptive field of ``out[channel, y, x]`` of ``layer`` (an index or a path such as
    ``"3.body.1"``) for one image as the model sees it (normalised), with the theoretical one of ``report``
    (the stack's :class:`~cnnviz.core.shapes.reports.StackReport`) for comparison."""
    import torch

    from cnnviz.core.run.hygiene import model_mode

    path = LayerPath.of(layer)
    x0 = _as_input(model, image)
    with model_mode(model, False), torch.enable_grad():
        leaf = x0.clone().requires_grad_(True)
        out = _output_of(model, path, leaf)
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            shape = "×".join(map(str, out.shape[1:])) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ReceptiveError(f"{_describe(report, path)} outputs {shape}, not C×H×W maps: a receptive field "
                                 f"is of a map pixel")
        c, h, w = (int(n) for n in out.shape[1:])
        for name, value, n in (("channel", channel, c), ("row", y, h), ("column", x, w)):
            if not 0 <= int(value) < n:
                raise ReceptiveError(f"{name} {value} is outside {_describe(report, path)}'s {c}×{h}×{w} maps "
                                     f"(0 to {n - 1})")
        target = out[0, int(channel), int(y), int(x)]
        (grad,) = torch.autograd.grad(target, leaf, allow_unused=True)
        value = float(target.detach())
    heat = np.zeros(tuple(leaf.shape[2:]), np.float32) if grad is None else \
        grad[0].abs().sum(0).detach().to("cpu", torch.float32).numpy().copy()
    rf = None
    if report is not None:
        try:
            rf = report.at(path).receptive_field
        except IndexError:
            rf = None
    return EffectiveField(str(path), int(channel), int(y), int(x), value, (c, h, w), heat,
                          theoretical_rect(rf, int(y), int(x), heat.shape),
                          None if rf is None else (int(rf.size[0]), int(rf.size[1])),
                          support_rect(heat), smallest_square(heat, share), share)


def effective_growth(model, image, report=None, share: float = MASS) -> tuple[GrowthPoint, ...]:
    """One point per layer of the stack (``model`` is ``build_model``'s Sequential, module ``i`` layer ``i``):
    the theoretical size from ``report`` (when given) and, for a C×H×W output, the effective side of its
    centre pixel's field, for the sum over channels: one forward pass and one backward per such layer."""
    import torch

    from cnnviz.core.run.hygiene import model_mode

    theory = field_growth(report) if report is not None else None
    if theory is not None and len(theory) != len(model):
        raise ReceptiveError(f"the report has {len(theory)} layers but the model {len(model)}")
    x0 = _as_input(model, image)
    points = []
    with model_mode(model, False), torch.enable_grad():
        leaf = x0.clone().requires_grad_(True)
        h = leaf
        outs = []
        for module in model:
            h = module(h.clone() if getattr(module, "inplace", False) or h is leaf else h)
            outs.append(h)
        spatial = [i for i, o in enumerate(outs) if o.dim() == 4]
        for i, out in enumerate(outs):
            t = theory[i] if theory is not None else GrowthPoint(i, str(i), type(model[i]).__name__,
                                                                 type(model[i]).__name__, None)
            if i not in spatial:
                points.append(t)
                continue
            cy, cx = out.shape[2] // 2, out.shape[3] // 2
            (grad,) = torch.autograd.grad(out[0, :, cy, cx].sum(), leaf, retain_graph=i != spatial[-1],
                                          allow_unused=True)
            if grad is None:
                square = None
            else:
                square = smallest_square(grad[0].abs().sum(0).detach().to("cpu", torch.float64).numpy(), share)
            points.append(GrowthPoint(t.index, t.path, t.label, t.type, t.theoretical,
                                      0 if square is None else max(square.height, square.width),
                                      (int(cy), int(cx))))
    return tuple(points)

