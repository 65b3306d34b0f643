"""Per-layer profiling of a training step, measured honestly (SPEC §3.4): :func:`profile_stack`.

What is measured, for a random batch of the stack's input shape (targets random classes) on the
chosen device, with the model in training mode:

* **Each layer on its own.** One forward pass of the whole model (without gradients) records every
  layer's input. Then each layer is run by itself on its recorded input: one repetition is a fresh
  forward (``out = layer(x)``) and a fresh backward (``out.backward(g)``, ``g`` a random gradient of
  the output's shape), the parameters' ``.grad`` set to None before it as ``zero_grad`` leaves them.
  The input requires grad exactly when the real step would need its gradient (some earlier layer has
  trainable parameters), so the first layer computes only its weight gradients, as it does in a
  step, and a parameter-free layer before any parameters has no backward at all (``backward_ms`` 0).
  Each time is the median of ``repeats`` repetitions after ``warmup`` unmeasured ones, the device
  synchronised before and after every timed call (``torch.cuda.synchronize``, ``torch.mps.synchronize``).
  An ``inplace`` layer works on a copy of its recorded input made outside the timed region; its
  backward then also passes through that copy's (free) ``CloneBackward``.
* **Memory, per layer.** ``param_bytes``: the layer's parameters; ``activation_bytes``: its output
  tensor (numel × element size; a view such as Flatten's shares its input's storage, see
  ``shares_input``); ``saved_bytes``: what autograd keeps for that layer's backward, seen by
  ``torch.autograd.graph.saved_tensors_hooks`` around one extra, untimed forward of the layer, each
  storage counted once (by its data pointer). Parameters that autograd saves (Conv2d's and
  Linear's weights) are **not** counted in ``saved_bytes``: they are held anyway and already are
  ``param_bytes``; they are ``saved_param_bytes``. A storage two layers both save (a ReLU's output
  that the next Linear saves as its input) is in both layers' ``saved_bytes``; ``saved_bytes_total``
  counts it once, over a whole step's forward and loss.
* **The analytic figures beside them**, from shape inference (the summary's MACs and float32
  activation sizes) and from ``memory.py``'s model of what a layer keeps for backward
  (:func:`analytic_saved_bytes`); a measured figure more than :data:`DISAGREE` times off its
  analytic one (and more than :data:`FLOOR_BYTES` apart) gets a flag. Time has no analytic figure:
  ``macs`` (per sample, as the summary) and the achieved ``gmacs_per_s`` of the forward are shown.
* **The whole step.** ``step_ms`` is the median of whole training steps (``zero_grad``, forward,
  loss, backward, optimizer step), synchronised only around each step; ``step_parts`` times the
  same four parts with a synchronisation between them. ``layers_sum_ms`` (the sum of the layers'
  forward and backward times) is reported beside ``step_ms`` so that the cost of measuring layers
  one by one (launches, synchronisations, the Python between them) is visible, not hidden. On CUDA,
  ``peak_allocated_bytes`` is ``torch.cuda.max_memory_allocated`` over one whole step (model,
  optimizer state and batch included); elsewhere it is None (torch does not count the CPU's).

A profile that cannot fit is refused before anything is allocated (``memory.py``'s estimate of a
training step plus the recorded inputs, against the device's free memory), as ``cnnviz train``
refuses one; running out of memory anyway is an :class:`OutOfMemory` once the memory is handed
back. ``should_stop`` (checked between measurements) ends a profile with :class:`Cancelled`;
``progress(done, total)`` is called after each row and after the step.

**Rows, by path.** One row per layer at every depth, in file order, addressed by path: ``"0"``,
``"1"``, … for the stack's own layers, ``"3.body.0"``, ``"4.branches.1.0"`` for those inside a
block (:mod:`cnnviz.core.model.paths`). A block (Residual, Concat) has a row of its own, just before
its layers' rows (``block`` true): the block's module run on its own on its recorded input, as a
layer is, so its times include its merge (the sum, the concatenation) and what its layers cost
together; its analytic saved bytes follow the storages through its lists, each storage once.
``depth`` is how many blocks hold a row's layer; ``layers_sum_ms`` adds the rows of depth 0 only
(a block's row and not its layers', so nothing is counted twice). Imports torch; no Qt.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.core.model.stack import Stack, TrainingConfig, config_with
from cnnviz.core.model.text import one_line
from cnnviz.core.model.units import format_bytes
from cnnviz.core.run import build, devices, identities, memory
from cnnviz.core.run.faults import EngineError, LayerFailed, OutOfMemory, StackRefused
from cnnviz.core.shapes import StackReport, fmt_shape
from cnnviz.core.shapes.reports import LayerReport

FORMAT = "cnnviz.profile"
VERSION = 1

WARMUP = 3
"""Unmeasured repetitions before the measured ones (allocator, kernels' first calls, Adam's state)."""
REPEATS = 10
"""Measured repetitions of each layer and of the step; the median is reported."""
LAYER_SECONDS = 2.0
"""A layer (or the step) stops repeating once its repetitions took this long, after at least
:data:`MIN_REPEATS` measured ones: a huge layer is profiled in seconds, not minutes."""
MIN_REPEATS = 3
DISAGREE = 2.0
"""A measured figure more than this many times its analytic one (either way) is flagged."""
FLOOR_BYTES = 1024
"""…and only when the two differ by more than this (a few bytes of BatchNorm statistics are no news)."""

F32 = memory.F32


class Cancelled(EngineError):
    """``should_stop`` asked the profile to end; nothing was measured to completion."""

    kind = "cancelled"


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class LayerProfile:
    """One layer's measured and analytic figures (times in milliseconds, sizes in bytes for the batch)."""

    path: str
    type: str
    label: str
    forward_ms: float
    backward_ms: float
    param_bytes: int
    activation_bytes: int
    saved_bytes: int
    saved_param_bytes: int
    macs: int
    """Multiply-accumulates per sample (the summary's)."""
    analytic_activation_bytes: int
    analytic_saved_bytes: int
    analytic_param_bytes: int
    output_shape: tuple[int, ...]
    shares_input: bool
    """The output is a view of (or the same storage as) the input: Flatten, an inplace layer."""
    input_grad: bool
    """Whether the layer's input needs a gradient in a real step (so its backward computes one)."""
    runs: int
    flags: tuple[str, ...] = ()
    depth: int = 0
    """How many blocks hold the layer (0: one of the stack's own layers)."""
    block: bool = False
    """The row of a whole block (Residual, Concat): the block's module run alone, its merge included."""

    @property
    def gmacs_per_s(self) -> float | None:
        """Achieved forward rate, in 10⁹ multiply-accumulates a second (None without MACs or time)."""
        if not self.macs or self.forward_ms <= 0:
            return None
        return self.macs * self.batch_size / (self.forward_ms / 1e3) / 1e9

    batch_size: int = 1

    def to_json(self) -> dict[str, Any]:
        rate = self.gmacs_per_s
        return {
            "path": self.path, "type": self.type, "forward_ms": _ms(self.forward_ms),
            "backward_ms": _ms(self.backward_ms), "param_bytes": self.param_bytes,
            "activation_bytes": self.activation_bytes, "saved_bytes": self.saved_bytes, "macs": self.macs,
            "analytic_activation_bytes": self.analytic_activation_bytes, "flags": list(self.flags),
            "name": self.label if self.label != self.type else None,
            "output_shape": list(self.output_shape),
            "saved_param_bytes": self.saved_param_bytes, "analytic_saved_bytes": self.analytic_saved_bytes,
            "analytic_param_bytes": self.analytic_param_bytes,
            "gmacs_per_s": round(rate, 3) if rate is not None else None,
            "shares_input": self.shares_input, "input_grad": self.input_grad, "runs": self.runs,
            "depth": self.depth, "block": self.block,
        }

    @property
    def top_index(self) -> int:
        """The index of the stack's own layer this row is (or is inside)."""
        return int(self.path.split(".", 1)[0])


@dataclass(frozen=True)
class Profile:
    """A whole profile; :meth:`to_json` is SPEC §3.4's object."""

    name: str
    device: str
    device_name: str
    batch_size: int
    layers: tuple[LayerProfile, ...]
    step_ms: float
    step_parts: dict[str, float]
    peak_allocated_bytes: int | None
    saved_bytes_total: int
    analytic_saved_bytes_total: int
    optimizer: str
    warmup: int
    repeats: int
    seconds: float
    threads: int
    torch_version: str = field(default_factory=lambda: torch.__version__)

    @property
    def layers_sum_ms(self) -> float:
        """The rows of depth 0 (a block once, by its own row), forward plus backward."""
        return sum(layer.forward_ms + layer.backward_ms for layer in self.layers if layer.depth == 0)

    @property
    def overhead_ratio(self) -> float | None:
        """``layers_sum_ms / step_ms``: above 1, measuring layers one by one costs more than they do together."""
        return self.layers_sum_ms / self.step_ms if self.step_ms > 0 else None

    def to_json(self) -> dict[str, Any]:
        ratio = self.overhead_ratio
        return {
            "format": FORMAT, "version": VERSION, "device": self.device, "batch_size": self.batch_size,
            "layers": [layer.to_json() for layer in self.layers],
            "step_ms": _ms(self.step_ms), "layers_sum_ms": _ms(self.layers_sum_ms),
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "name": self.name, "device_name": self.device_name,
            "step_parts_ms": {k: _ms(v) for k, v in self.step_parts.items()},
            "layers_sum_over_step": round(ratio, 3) if ratio is not None else None,
            "saved_bytes_total": self.saved_bytes_total,
            "analytic_saved_bytes_total": self.analytic_saved_bytes_total,
            "optimizer": self.optimizer, "warmup": self.warmup, "repeats": self.repeats,
            "seconds": round(self.seconds, 3), "threads": self.threads, "torch": self.torch_version,
        }

    def json_text(self) -> str:
        """:meth:`to_json` as the one line ``cnnviz profile --json`` prints (without its line break)."""
        return json.dumps(self.to_json(), ensure_ascii=False, allow_nan=False)


def _ms(x: float) -> float:
    return round(float(x), 4)


# ------------------------------------------------------------------ analytic figures
def analytic_saved_bytes(r: LayerReport, *, input_grad: bool, has_params: bool, mask_bytes: int = F32) -> int:
    """Bytes per sample autograd keeps for ``r``'s backward by ``memory.py``'s model (parameters left out):
    the input where the backward needs it (``memory.SAVES_INPUT``), the output where that is what it
    needs (``memory.SAVES_OUTPUT``), MaxPool2d's int64 indices, Dropout's mask; nothing when the layer
    has no backward (no parameters and an input that needs no gradient)."""
    if r.is_block:
        return _block_saved_bytes(r, input_grad=input_grad, mask_bytes=mask_bytes)
    if not input_grad and not has_params:
        return 0
    n_in = math.prod(r.input_shape) if r.input_shape else 0
    saves_input, saves_output, extra = _saves(r, mask_bytes)
    return F32 * n_in * saves_input + F32 * r.activation_elements * saves_output + extra


def _saves(r: LayerReport, mask_bytes: int) -> tuple[bool, bool, int]:
    """(saves its input, saves its output, bytes per sample of what else it saves) by ``memory.py``'s model."""
    n_out = r.activation_elements
    inplace = bool(r.resolved.get("inplace"))
    saves_input = r.type in memory.SAVES_INPUT and not (r.type in memory.INPLACE_SAVES_OUTPUT and inplace) \
        and not (r.type == "AdaptiveAvgPool2d" and tuple(r.output_shape[1:]) == (1, 1))
    saves_output = r.type in memory.SAVES_OUTPUT or (r.type in memory.INPLACE_SAVES_OUTPUT and inplace)
    extra = 8 * n_out if r.type == "MaxPool2d" else mask_bytes * n_out if r.type == "Dropout" else 0
    return saves_input, saves_output, extra


VIEWS = frozenset({"Flatten", "Identity"})
"""Layers whose output is a view of their input (``memory.py``'s rule): no new storage."""


def _block_saved_bytes(block: LayerReport, *, input_grad: bool, mask_bytes: int) -> int:
    """Bytes per sample a block's layers keep for backward, following the storages as ``memory.py`` does:
    every list reads the block's input, a view or an inplace layer writes into its input's storage, and
    a storage two layers save (a ReLU's output, the next Conv2d's input) counts once."""
    sizes = [math.prod(block.input_shape) if block.input_shape else 0]
    kept: set[int] = set()
    extra = 0

    def run(reports, current: int, grad: bool) -> None:
        nonlocal extra
        for r in reports:
            if r.is_block:
                for _key, inner in r.inner:
                    run(inner, current, grad)
                sizes.append(r.activation_elements)
                out = len(sizes) - 1
            else:
                out = current
                if r.type not in VIEWS and not r.resolved.get("inplace"):
                    sizes.append(r.activation_elements)
                    out = len(sizes) - 1
                if grad or r.trainable:
                    saves_input, saves_output, more = _saves(r, mask_bytes)
                    kept.update(k for k, yes in ((current, saves_input), (out, saves_output)) if yes)
                    extra += more
            grad = grad or bool(r.trainable)
            current = out

    for _key, reports in block.inner:
        run(reports, 0, input_grad)
    return F32 * sum(sizes[k] for k in kept) + extra


def _disagrees(measured: int, analytic: int) -> bool:
    lo, hi = sorted((measured, analytic))
    return hi - lo > FLOOR_BYTES and (lo == 0 or hi > DISAGREE * lo)


def _flags(act: int, act_a: int, saved: int, saved_a: int, params: int, params_a: int) -> tuple[str, ...]:
    flags = []
    for what, m, a in (("activation", act, act_a), ("saved", saved, saved_a), ("param", params, params_a)):
        if _disagrees(m, a):
            ratio = f"{m / a:.2g}×" if a else "∞×"
            flags.append(f"{what} bytes measured {format_bytes(m)} vs analytic {format_bytes(a)} ({ratio})")
    return tuple(flags)


# ------------------------------------------------------------------ the layers, by path
@dataclass(frozen=True)
class _Row:
    path: str
    module: nn.Module
    report: LayerReport
    input_grad: bool
    """Whether the row's input needs a gradient in a real step: some layer before it, on the way the
    data takes to it, has trainable parameters."""
    depth: int


def _rows(model: nn.Module, report: StackReport) -> list[_Row]:
    """Every row in file order: a block's own row, then its layers' (each list read from the block's input)."""
    rows: list[_Row] = []

    def walk(reports, grad: bool, depth: int) -> None:
        for r in reports:
            path = str(r.path)
            module = model.get_submodule(path)
            rows.append(_Row(path, module, r, grad, depth))
            for _key, inner in r.inner:
                walk(inner, grad, depth + 1)
            grad = grad or any(p.requires_grad for p in module.parameters())

    walk(report.layers, False, 0)
    return rows


def iter_layers(model: nn.Module, report: StackReport) -> Iterator[tuple[str, nn.Module, LayerReport]]:
    """(path, module, layer report) of every row in order: ``"0"``, ``"1"``, … for the stack's own layers;
    a block, then its layers as ``"3.body.0"``, ``"3.shortcut.0"``, ``"4.branches.1.0"``."""
    for row in _rows(model, report):
        yield row.path, row.module, row.report


def _writes_in_place(module: nn.Module) -> bool:
    """The module (or a layer inside it) overwrites a tensor it is given: it must be given a copy."""
    return any(getattr(m, "inplace", False) for m in module.modules())


# ------------------------------------------------------------------ measuring
class _Clock:
    """Synchronised wall-clock timing on one device, and the caller's cancellation."""

    def __init__(self, device: torch.device, should_stop: Callable[[], bool] | None) -> None:
        self.device = device
        self.should_stop = should_stop

    def sync(self) -> None:
        devices.synchronize(self.device)

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("profiling was cancelled")

    def enough(self, measured: int, repeats: int, started: float) -> bool:
        return measured >= repeats or (measured >= min(MIN_REPEATS, repeats)
                                       and time.perf_counter() - started > LAYER_SECONDS)


def _storage_key(t: torch.Tensor) -> tuple[int, int] | None:
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # a tensor without ordinary storage
        return None


class _SavedCounter:
    """``saved_tensors_hooks`` that count each storage autograd saves once, parameters apart."""

    def __init__(self, param_ptrs: set[int]) -> None:
        self.param_ptrs = param_ptrs
        self.seen: dict[int, int] = {}
        self.params: dict[int, int] = {}
        self.unknown = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key is None:
            self.unknown += t.numel() * t.element_size()
        else:
            ptr, nbytes = key
            (self.params if ptr in self.param_ptrs else self.seen)[ptr] = nbytes
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    @property
    def saved_bytes(self) -> int:
        return sum(self.seen.values()) + self.unknown

    @property
    def param_bytes(self) -> int:
        return sum(self.params.values())


def _param_ptrs(model: nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def _profile_layer(path: str, module: nn.Module, r: LayerReport, recorded: torch.Tensor, *, input_grad: bool,
                   batch: int, clock: _Clock, warmup: int, repeats: int, param_ptrs: set[int],
                   mask_bytes: int, depth: int = 0) -> LayerProfile:
    params = [p for p in module.parameters() if p.requires_grad]
    inplace = _writes_in_place(module)
    has_backward = input_grad or bool(params)

    def fresh_input() -> torch.Tensor:
        leaf = recorded.detach().requires_grad_(input_grad)
        return leaf.clone() if inplace else leaf

    # The untimed pass: what autograd saves, the output's size, and the gradient to send back.
    counter = _SavedCounter(param_ptrs)
    x = fresh_input()
    in_key = _storage_key(x)
    with counter.hooks():
        out = module(x)
    activation = out.numel() * out.element_size()
    shares = in_key is not None and _storage_key(out) == in_key
    grad_out = torch.randn_like(out) if has_backward and out.requires_grad else None
    del out, x

    forward, backward = [], []
    started = time.perf_counter()
    for i in range(warmup + repeats):
        clock.check()
        for p in params:
            p.grad = None
        x = fresh_input()
        clock.sync()
        t0 = time.perf_counter()
        out = module(x)
        clock.sync()
        t1 = time.perf_counter()
        if grad_out is not None:
            out.backward(grad_out)
            clock.sync()
        t2 = time.perf_counter()
        del out, x
        if i >= warmup:
            forward.append(t1 - t0)
            backward.append(t2 - t1 if grad_out is not None else 0.0)
            if clock.enough(len(forward), repeats, started):
                break
    for p in params:
        p.grad = None

    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    act_a = F32 * r.activation_elements * batch
    saved_a = batch * analytic_saved_bytes(r, input_grad=input_grad, has_params=bool(params), mask_bytes=mask_bytes)
    params_a = F32 * r.params
    flags = _flags(activation, act_a, counter.saved_bytes, saved_a, param_bytes, params_a)
    return LayerProfile(
        path=path, type=r.type, label=r.label, forward_ms=1e3 * statistics.median(forward),
        backward_ms=1e3 * statistics.median(backward), param_bytes=param_bytes, activation_bytes=activation,
        saved_bytes=counter.saved_bytes, saved_param_bytes=counter.param_bytes, macs=r.macs,
        analytic_activation_bytes=act_a, analytic_saved_bytes=saved_a, analytic_param_bytes=params_a,
        output_shape=tuple(r.output_shape), shares_input=shares, input_grad=input_grad, runs=len(forward),
        flags=flags, batch_size=batch, depth=depth, block=r.is_block)


def _make_optimizer(params, config: TrainingConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise EngineError(f"unknown optimizer {config.optimizer!r}: expected adam or sgd", kind="config")


def _time_step(model, loss_fn, optimizer, x, y, clock: _Clock, warmup: int, repeats: int
               ) -> tuple[float, dict[str, float], int | None]:
    """(median step ms, median ms of its parts, CUDA peak bytes of one step or None)."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = identities.backward_scalar(loss_fn(model(x), y))
        loss.backward()
        optimizer.step()

    # Whole steps and steps timed part by part alternate, so that what else the machine does at the time
    # weighs on both alike.
    whole: list[float] = []
    parts: dict[str, list[float]] = {"forward": [], "loss": [], "backward": [], "optimizer": []}
    started = time.perf_counter()
    for i in range(warmup + repeats):
        clock.check()
        clock.sync()
        t0 = time.perf_counter()
        step()
        clock.sync()
        dt = time.perf_counter() - t0
        clock.check()
        optimizer.zero_grad(set_to_none=True)
        clock.sync()
        t0 = time.perf_counter()
        out = model(x)
        clock.sync()
        t1 = time.perf_counter()
        loss = identities.backward_scalar(loss_fn(out, y))
        clock.sync()
        t2 = time.perf_counter()
        loss.backward()
        clock.sync()
        t3 = time.perf_counter()
        optimizer.step()
        clock.sync()
        t4 = time.perf_counter()
        del out, loss
        if i >= warmup:
            whole.append(dt)
            for key, part in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(part)
            if clock.enough(len(whole), repeats, started):
                break

    peak = None
    if clock.device.type == "cuda":
        clock.check()
        clock.sync()
        torch.cuda.reset_peak_memory_stats(clock.device)
        step()
        clock.sync()
        peak = int(torch.cuda.max_memory_allocated(clock.device))
    return (1e3 * statistics.median(whole), {k: 1e3 * statistics.median(v) for k, v in parts.items()}, peak)


def _saved_total(model, loss_fn, x, y, param_ptrs: set[int]) -> int:
    """Bytes autograd keeps over one whole step's forward and loss, each storage once, parameters apart."""
    counter = _SavedCounter(param_ptrs)
    with counter.hooks():
        loss = identities.backward_scalar(loss_fn(model(x), y))
    del loss
    return counter.saved_bytes


@contextlib.contextmanager
def _naming(path: str, r: LayerReport) -> Iterator[None]:
    """A torch error inside a layer (not out of memory) as :class:`LayerFailed`, naming the layer."""
    try:
        yield
    except RuntimeError as exc:
        if devices.is_out_of_memory(exc):
            raise
        raise LayerFailed(f"layer {path} ({one_line(r.label)}) failed while profiling: "
                          f"{str(exc).splitlines()[0][:300]}", layer=int(path.split(".", 1)[0])) from None


# ------------------------------------------------------------------ refusing before allocating
def check_fits(report: StackReport, config: TrainingConfig, device: torch.device, *, name: str) -> memory.Estimate:
    """Refuse (:class:`~cnnviz.core.run.faults.NotEnoughMemory`) a profile that cannot fit: ``memory.py``'s
    estimate of a training step, plus every layer's recorded input (held for the whole profile),
    against the device's free memory; and on an accelerator the model, which is built in this
    machine's memory first."""
    info = devices.describe(device)
    if device.type != "cpu":
        memory.check_model_fits(report, memory.cpu_free_bytes(), where="this machine's memory", device=info.id)
    est = memory.estimate(report, batch_size=config.batch_size, optimizer=config.optimizer,
                          momentum=config.momentum, weight_decay=config.weight_decay, device=device.type)
    recorded = F32 * (math.prod(report.input_shape)
                      + sum(r.activation_elements for top in report.layers for r in top.walk()))
    est = dataclasses.replace(est, sample_bytes=est.sample_bytes + recorded)
    where = "the CPU" if device.type == "cpu" else f"{info.id} ({info.name})"
    memory.check_training_fits(est, devices.free_memory(device), name=name, where=where, device=info.id)
    return est


# ------------------------------------------------------------------ the profile
def profile_stack(stack: Stack, config: TrainingConfig | None = None, *, batch_size: int | None = None,
                  device: str | None = None, warmup: int = WARMUP, repeats: int = REPEATS,
                  should_stop: Callable[[], bool] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Profile:
    """Profile one training step of ``stack`` layer by layer (see the module docstring).

    ``config`` defaults to the file's training block; ``batch_size`` and ``device`` override it
    (the batch then defaults to the block's, else 64; the device to the block's, else ``auto``).
    Raises :class:`StackRefused` (a shape error, an output that is not one score per class),
    :class:`~cnnviz.core.run.faults.DeviceError` (absent or malformed device),
    :class:`~cnnviz.core.run.faults.NotEnoughMemory` (refused before allocating),
    :class:`OutOfMemory`, :class:`LayerFailed` or :class:`Cancelled`.
    """
    begun = time.perf_counter()
    config = config_with(config or stack.training, batch_size=batch_size, device=device)
    batch = int(config.batch_size)
    if batch < 1:
        raise EngineError(f"batch size must be at least 1, got {batch}", kind="config")
    warmup, repeats = max(0, int(warmup)), max(1, int(repeats))
    try:
        report = build.check_buildable(stack)
    except build.StackInvalid as exc:
        raise StackRefused(str(exc)) from None
    classes = report.num_classes
    if classes is None:
        raise StackRefused(f"the stack's output is {fmt_shape(report.output_shape)}, not one score per class: "
                           "end it with Flatten and a Linear")
    dev = devices.resolve(config.device)
    info = devices.describe(dev)
    name = one_line(stack.name)
    est = check_fits(report, config, dev, name=name)
    clock = _Clock(dev, should_stop)
    total = sum(1 for r in report.layers for _ in r.walk()) + 1

    def run() -> Profile:
        gen = torch.Generator().manual_seed(int(config.seed))
        model = build.build_model(stack, seed=config.seed).to(dev)
        model.train()
        loss_fn = build.build_loss(stack.loss).to(dev)
        x = torch.randn(batch, *report.input_shape, generator=gen).to(dev)
        y = torch.randint(0, classes, (batch,), generator=gen).to(dev)
        param_ptrs = _param_ptrs(model)
        mask_bytes = F32 if dev.type == "cpu" else 1
        if progress is not None:
            progress(0, total)

        # Every row's input, recorded by one forward without gradients: a pre-hook on each row's module
        # keeps its input, and hands a module that writes in place a copy, so no recorded input is changed.
        rows = _rows(model, report)
        recorded: dict[str, torch.Tensor] = {}

        def recorder(path: str, copy: bool):
            def hook(_module, args):
                recorded[path] = args[0]
                return (args[0].clone(),) if copy else None
            return hook

        handles = [row.module.register_forward_pre_hook(recorder(row.path, _writes_in_place(row.module)))
                   for row in rows]
        try:
            with torch.no_grad():
                h = x
                for row in rows:
                    if row.depth == 0:
                        with _naming(row.path, row.report):
                            h = row.module(h)
                del h
        finally:
            for handle in handles:
                handle.remove()

        layers = []
        for i, row in enumerate(rows):
            clock.check()
            with _naming(row.path, row.report):
                layers.append(_profile_layer(row.path, row.module, row.report, recorded.pop(row.path),
                                             input_grad=row.input_grad, batch=batch, clock=clock, warmup=warmup,
                                             repeats=repeats, param_ptrs=param_ptrs, mask_bytes=mask_bytes,
                                             depth=row.depth))
            if progress is not None:
                progress(i + 1, total)
        recorded.clear()

        saved_total = _saved_total(model, loss_fn, x, y, param_ptrs)
        analytic_total = batch * est.saved_sample_bytes
        optimizer = _make_optimizer([p for p in model.parameters() if p.requires_grad], config)
        step_ms, parts, peak = _time_step(model, loss_fn, optimizer, x, y, clock, warmup, repeats)
        if progress is not None:
            progress(total, total)
        return Profile(name=name, device=info.id, device_name=info.name, batch_size=batch, layers=tuple(layers),
                       step_ms=step_ms, step_parts=parts, peak_allocated_bytes=peak, saved_bytes_total=saved_total,
                       analytic_saved_bytes_total=analytic_total, optimizer=config.optimizer, warmup=warmup,
                       repeats=repeats, seconds=time.perf_counter() - begun, threads=torch.get_num_threads())

    try:
        return run()
    except Exception as exc:  # only out of memory is handled here; the rest is re-raised as it is
        if not devices.is_out_of_memory(exc):
            raise
        detail = str(exc).splitlines()[0][:200]
    # Outside the except block: the traceback, and every tensor its frames held, is gone.
    gc.collect()
    devices.empty_cache(dev)
    smaller = max(1, batch // 2)
    fix = f"try a batch of {smaller}" if batch > 1 else "the model itself does not fit; try fewer channels"
    raise OutOfMemory(f"out of memory on {info.id} ({info.name}) while profiling at batch {batch}: {fix} ({detail})",
                      device=info.id, batch_size=batch, suggested_batch=smaller)
