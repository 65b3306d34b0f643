"""Training health per layer, taken around one training step: weight and gradient histograms, the
update-to-weight ratio ‖Δw‖/‖w‖, and the share of each rectifier's units that are dead on the batch.

A :class:`HealthMonitor` watches one model. ``with monitor.watching(): session.step()`` wraps the step a
probe follows (the trainer does it only on those steps; every other step runs as before, with no hook and
no copy): on entering, the weights of every parameterised leaf are copied into one flat device buffer
and a forward hook is put on every rectifier; on leaving, the hooks are removed, whatever happened. Then
:meth:`HealthMonitor.read` computes everything on the device and copies it to the host once.

**The update ratio.** ``‖w_after − w_before‖ / ‖w_before‖`` of each layer's ``weight`` for the step just
taken, from the copy made before the step (before the forward pass; nothing else moves the weights
until ``optimizer.step()``) and the weights after it. Inferring Δw from the gradient (``lr·g``) is exact
only for plain SGD; Adam, momentum and weight decay make the update differ from it, so the weights are
read, which costs one copy of the layers' weights on the device per probe, nothing per step.

**The histograms.** ``BINS`` equal bins over ``[−r, r]``, ``r`` the smallest power of two at least the
layer's largest |value| (at least ``2**-40``): the range moves only when that maximum crosses a power of
two, so rows of a heat map line up from probe to probe, and with a power-of-two number of bins every
value's bin is ``floor(v · BINS / 2r)`` computed exactly in float32 (a multiplication by a power of two),
the same bin as ``numpy.histogram`` with the edges of :meth:`Health.edges` gives (the last bin includes
``r``). Two rows with ranges ``r`` and ``2**k · r`` can be brought to one range exactly by adding bins
(:func:`rebin`, what the view does). All layers are binned at once: the values of every layer in one
flat tensor, a per-value scale and bin offset, one ``index_add_`` of int32 counts.

**Dead units.** For ReLU, ReLU6 and a LeakyReLU of slope 0 (the catalogue's rectifiers whose negative
side is exactly 0, with a zero gradient; ELU, GELU, SiLU and a leaking LeakyReLU are never stuck at 0),
the share of the output's units (C×H×W positions, or features) that are 0 for every sample of the
training batch, counted in the forward hook as the batch passes, on the device.

**Its own time.** :attr:`HealthMonitor.spent` is the monitor's own work for the step last watched, by its
``clock`` (the trainer sets the one its budgets count in): the copy and the hooks' set-up on entering, the
hooks as the batch passes, their removal, and :meth:`~HealthMonitor.read`. The trainer takes health only
while that stays within a share of the loop of its own (:data:`~cnnviz.core.run.training.HEALTH_BUDGET`).

No Qt. Everything :meth:`~HealthMonitor.read` returns is plain numpy in a frozen :class:`Health`, and
importing this module imports no torch (the window's views use :class:`Health`, :func:`rebin` and
:func:`update_warning`); the monitor imports it.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

BINS = 64
"""Bins of every histogram (a power of two: see the module docstring)."""
BAND = (10 ** -3.5, 10 ** -2.5)
"""The usual update-to-weight ratio, about 1e-3 (half a decade either side): what the view shades."""
VANISHING = 1e-5
"""Below this ratio a layer hardly learns: its updates vanish (or its learning rate is far too low)."""
EXPLODING = 1e-1
"""Above this ratio a step rewrites a tenth of the layer: the updates explode (or the rate is too high)."""
_SMALLEST = 2.0 ** -40
"""The least histogram range (an all-zero tensor still gets bins around 0)."""


@dataclass(frozen=True)
class Health:
    """One probe's health of a model; arrays are plain numpy, row ``i`` for ``layers[i]``.

    ``weight_hist[i, b]`` counts the weights of layer ``i`` in bin ``b`` of ``BINS`` equal bins over
    ``[−weight_range[i], weight_range[i]]`` (:meth:`edges`); ``grad_*`` the same for the last batch's
    gradient of those weights. ``update_ratio[i]`` is ``‖Δw‖/‖w‖`` of the step just taken (NaN where
    ‖w‖ was 0). ``dead[j]`` is the share of ``rectifiers[j]``'s units that were 0 for the whole batch.
    """

    step: int
    layers: tuple[str, ...]
    """The parameterised leaf layers, by path ("0", "3.body.1")."""
    kinds: tuple[str, ...]
    """Their torch class names ("Conv2d")."""
    weight_hist: np.ndarray
    weight_range: np.ndarray
    grad_hist: np.ndarray
    grad_range: np.ndarray
    update_ratio: np.ndarray
    rectifiers: tuple[str, ...]
    dead: np.ndarray
    batch: int = 0
    """The batch size the dead units were counted over."""
    rectifier_kinds: tuple[str, ...] = ()
    """The rectifiers' torch class names ("ReLU"), as ``kinds`` for ``layers`` (empty when not known)."""

    @property
    def bins(self) -> int:
        return int(self.weight_hist.shape[1]) if self.weight_hist.ndim == 2 else BINS

    def edges(self, i: int, of: str = "weight") -> np.ndarray:
        """The ``bins + 1`` bin edges of layer ``i``'s histogram (``of``: "weight" or "grad"), float64."""
        r = float((self.weight_range if of == "weight" else self.grad_range)[i])
        return np.linspace(-r, r, self.bins + 1)

    @property
    def warning(self) -> str:
        """:func:`update_warning` of this probe's ratios ("" when every layer is inside the limits)."""
        return update_warning(self.layers, self.update_ratio, self.kinds)


def update_warning(layers: Sequence[str], ratios: Sequence[float], kinds: Sequence[str] | None = None, *,
                   low: float = VANISHING, high: float = EXPLODING) -> str:
    """A sentence naming the layers whose ‖Δw‖/‖w‖ is below ``low`` (vanishing) or above ``high``
    (exploding), with their ratios; "" when none is (a NaN ratio, a layer of zero weights, says nothing)."""
    def name(i: int) -> str:
        kind = f" ({kinds[i]})" if kinds is not None and i < len(kinds) and kinds[i] else ""
        return f"{layers[i]}{kind} at {float(ratios[i]):.2g}"

    values = [float(r) for r in ratios]
    slow = [i for i, r in enumerate(values) if r < low]
    fast = [i for i, r in enumerate(values) if r > high]
    parts = []
    if fast:
        parts.append(f"exploding updates in {_layers(fast, name)} (‖Δw‖/‖w‖ above {high:g}: lower the "
                     f"learning rate)")
    if slow:
        parts.append(f"vanishing updates in {_layers(slow, name)} (‖Δw‖/‖w‖ below {low:g}: the layer "
                     f"hardly learns)")
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _layers(indices: list[int], name) -> str:
    return ("layer " if len(indices) == 1 else "layers ") + ", ".join(name(i) for i in indices)


def is_rectifier(module: nn.Module) -> bool:
    """Whether ``module``'s negative side is exactly 0 (ReLU, ReLU6, LeakyReLU of slope 0)."""
    from torch import nn

    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return True
    return isinstance(module, nn.LeakyReLU) and module.negative_slope == 0


def rebin(counts: np.ndarray, ranges: np.ndarray, to: float) -> np.ndarray:
    """Histogram rows ``counts`` (n, bins), row ``k`` over ``[−ranges[k], ranges[k]]``, as counts over
    ``[−to, to]``: exact when every ``to / ranges[k]`` is a power of two at least 1 (see the module
    docstring); float64 (n, bins)."""
    counts = np.asarray(counts, dtype=np.float64)
    n, bins = counts.shape
    if n == 0:
        return counts.copy()
    factor = np.maximum(1, np.rint(to / np.asarray(ranges, np.float64))).astype(np.int64)
    half = bins // 2
    j = np.arange(bins, dtype=np.int64)
    target = half + np.floor_divide(j[None, :] - half, factor[:, None]) + (np.arange(n) * bins)[:, None]
    return np.bincount(target.reshape(-1), weights=counts.reshape(-1), minlength=n * bins).reshape(n, bins)


class HealthMonitor:
    """Health of ``model``'s parameterised leaves and rectifiers, around the steps it is asked to watch."""

    def __init__(self, model: nn.Module, bins: int = BINS) -> None:
        from torch import nn

        if bins < 2 or bins & (bins - 1):
            raise ValueError(f"bins must be a power of two, got {bins}")
        self.model = model
        self.bins = bins
        self.layers: list[tuple[str, str, nn.Parameter]] = []
        self.rectifiers: list[tuple[str, nn.Module]] = []
        for path, module in model.named_modules():
            if next(module.children(), None) is not None:
                continue
            weight = getattr(module, "weight", None)
            if isinstance(weight, nn.Parameter):
                self.layers.append((path, type(module).__name__, weight))
            if is_rectifier(module):
                self.rectifiers.append((path, module))
        self._sizes = [int(w.numel()) for _, _, w in self.layers]
        self._total = sum(self._sizes)
        self._before: torch.Tensor | None = None
        self._offsets: torch.Tensor | None = None
        self._dead: list[torch.Tensor | None] = []
        self._units: list[int] = []
        self._batch = 0
        self._watched = False
        self.clock: Callable[[], float] = time.perf_counter
        """What :attr:`spent` is counted in (the trainer's budget clock)."""
        self.spent = 0.0
        """Seconds (by ``clock``) of the monitor's own work since the last :meth:`watching` began: the copy,
        the hooks, their removal, and :meth:`read` once it has run."""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(path for path, _, _ in self.layers)

    def _weights(self) -> list[torch.Tensor]:
        return [w.detach().reshape(-1) for _, _, w in self.layers]

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Around one training step: the weights copied before it, the rectifiers' dead units counted in it."""
        import torch

        clock = self.clock
        start = clock()
        self._watched = False
        self._dead = [None] * len(self.rectifiers)
        self._units = [1] * len(self.rectifiers)
        handles = []
        with torch.no_grad():
            if self.layers:
                weights = self._weights()
                if self._before is None or self._before.device != weights[0].device:
                    self._before = torch.empty(self._total, dtype=torch.float32, device=weights[0].device)
                torch.cat([w.float() for w in weights], out=self._before)
        try:
            for j, (_, module) in enumerate(self.rectifiers):
                handles.append(module.register_forward_hook(self._counter(j)))
            self.spent = clock() - start
            yield
            self._watched = True
        finally:
            start = clock()
            for handle in handles:
                handle.remove()
            self.spent += clock() - start

    def _counter(self, j: int):
        import torch

        def hook(_module, _inputs, output) -> None:
            start = self.clock()
            out = output.detach()
            with torch.no_grad():
                # A rectifier's output is never below 0: a unit is 0 for the whole batch where its maximum is.
                # Kept as the count of live units (one reduction); read() turns it into the dead share.
                peak = out.amax(0) if out.dim() else out
                self._dead[j] = torch.count_nonzero(peak)
                self._units[j] = max(1, int(peak.numel()))
                self._batch = int(out.shape[0]) if out.dim() else 1
            self.spent += self.clock() - start
        return hook

    def read(self, step: int = 0) -> Health:
        """The health of the step last watched (update ratio NaN when none was), in one host copy."""
        import torch

        start = self.clock()
        L, nb = len(self.layers), self.bins
        with torch.no_grad():
            ints: list[torch.Tensor] = []
            floats: list[torch.Tensor] = []
            device = None
            if L:
                weights = self._weights()
                device = weights[0].device
                grads = [(w.grad.detach().reshape(-1) if w.grad is not None else torch.zeros_like(v))
                         for (_, _, w), v in zip(self.layers, weights)]
                counts, ranges = self._histograms(weights + grads)
                if self._watched and self._before is not None:
                    before = list(torch.split(self._before, self._sizes))
                    norms = _norms(before)
                    ratio = _norms(torch._foreach_sub(weights, before)) / norms
                    ratio = torch.where(norms > 0, ratio, torch.full_like(ratio, math.nan))
                else:
                    ratio = torch.full((L,), math.nan, device=device)
                ints.append(counts)
                floats += [ranges, ratio]
            if any(d is not None for d in self._dead):
                device = device or next(d for d in self._dead if d is not None).device
                nan = torch.full((), math.nan, device=device)
                live = torch.stack([nan if d is None else d.float() for d in self._dead])
                units = torch.tensor(self._units, dtype=torch.float32, device=device)
                floats.append((units - live) / units)
            if device is None:
                host = np.zeros(0, np.int32)
            else:
                # Counts and readings travel together: the floats' bits as int32, read back as float32 below.
                ints.append(torch.cat(floats).view(torch.int32))
                host = torch.cat(ints).cpu().numpy()  # the one device-to-host copy
        pos = 0

        def take(n: int) -> np.ndarray:
            nonlocal pos
            part = host[pos:pos + n]
            pos += n
            return part

        if L:
            w_hist, g_hist = take(L * nb).reshape(L, nb), take(L * nb).reshape(L, nb)
            w_r, g_r, ratio_np = (take(L).view(np.float32) for _ in range(3))
        else:
            w_hist = g_hist = np.zeros((0, nb), np.int32)
            w_r = g_r = ratio_np = np.zeros(0, np.float32)
        n_dead = len(self.rectifiers)
        dead_np = take(n_dead).view(np.float32) if any(d is not None for d in self._dead) \
            else np.full(n_dead, np.nan, np.float32)
        result = Health(step=int(step), layers=self.paths, kinds=tuple(k for _, k, _ in self.layers),
                        weight_hist=w_hist, weight_range=w_r, grad_hist=g_hist, grad_range=g_r,
                        update_ratio=ratio_np, rectifiers=tuple(p for p, _ in self.rectifiers), dead=dead_np,
                        batch=self._batch, rectifier_kinds=tuple(type(m).__name__ for _, m in self.rectifiers))
        self.spent += self.clock() - start
        return result

    def _histograms(self, parts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(len(parts)·bins int32 counts, one range per part) of the flat tensors ``parts``, all binned at once."""
        import torch

        n, nb = len(parts), self.bins
        device = parts[0].device
        sizes = [int(p.numel()) for p in parts]
        total = sum(sizes)
        extremes = torch.stack([torch.stack(torch.aminmax(p)) for p in parts])  # faster than abs().max()
        peak = torch.maximum(-extremes[:, 0], extremes[:, 1]).float().clamp_min(_SMALLEST)
        r = torch.exp2(torch.ceil(torch.log2(peak)))
        r = torch.where(r < peak, r * 2, r)   # log2 rounded down just above a power of two
        scale = (nb // 2) / r                  # a power of two: v · scale is exact
        scaled = torch.empty(total, dtype=torch.float32, device=device)
        start = 0
        for k, (p, size) in enumerate(zip(parts, sizes)):
            torch.mul(p, scale[k], out=scaled[start:start + size])
            start += size
        index = scaled.floor_().clamp_(-(nb // 2), nb // 2 - 1).to(torch.int32)
        if self._offsets is None or self._offsets.device != device or self._offsets.numel() != total:
            starts = torch.arange(n, device=device, dtype=torch.int32) * nb + nb // 2
            self._offsets = torch.repeat_interleave(starts, torch.tensor(sizes, device=device), output_size=total)
        index += self._offsets
        counts = torch.zeros(n * nb, dtype=torch.int32, device=device)
        counts.index_add_(0, index, torch.ones(1, dtype=torch.int32, device=device).expand(total))
        return counts, r


def _norms(parts: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each tensor, as one device vector (one fused call where torch has it)."""
    import torch

    if hasattr(torch, "_foreach_norm"):
        return torch.stack(list(torch._foreach_norm(parts, 2))).float()
    return torch.stack([torch.linalg.vector_norm(p) for p in parts]).float()
