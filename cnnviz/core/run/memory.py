"""What a training run will need in memory, estimated from shape inference before anything is allocated.

A stack of 2·10⁹ parameters, a batch of ten million or a 3×2048×2048 input
would otherwise climb to gigabytes of RAM before torch fails with "out of
memory" (or the operating system kills the process). The engine asks
:func:`estimate` first and :func:`check_training_fits` refuses, with the
numbers and the change that makes it fit, a run that cannot fit in what the
device has free. The figures come from :func:`cnnviz.core.shapes.infer`'s
report, so this costs microseconds and imports neither torch nor Qt.

**The model** (float32 throughout; bytes per element: 4):

* *parameters* (4 bytes each, plus BatchNorm's running statistics), their
  *gradients* (the same again) and the *optimizer state*: Adam keeps two
  more copies (``exp_avg``, ``exp_avg_sq``), SGD with momentum one, plain SGD
  none. The optimizer step's own temporaries (Adam's ``sqrt(v)``; weight
  decay's ``grad + λθ``) are one parameter tensor at a time on the CPU and
  every parameter at once on an accelerator, where torch runs the fused
  ``_foreach`` kernels.
* *activations per sample*, for a training step: the tensors autograd keeps
  for backward, followed storage by storage (the input batch, a copy made by
  ``index_select``; a layer's input where its backward needs it — Conv2d,
  Linear, pooling, BatchNorm2d/1d, GELU — its output where that is what it needs —
  ReLU, Sigmoid, Tanh, Softmax; Flatten's view and an ``inplace`` layer's
  output share their input's storage), MaxPool2d's int64 indices (8 bytes
  per output) and Dropout's mask (float32 on the CPU, one byte on an
  accelerator); on top, the widest pair of neighbouring activations, which a
  layer holds while it runs forward and whose gradients backward holds at
  once, counted twice at a convolution (its kernels' reordered copies or
  workspace). Evaluation, without gradients, holds only the widest pair (plus
  MaxPool2d's indices, which CUDA computes anyway).
* *data*: the images as the loader will hold them (its own budget,
  :data:`~cnnviz.core.data.dataset.MAX_BYTES`, included) — the float32 arrays it
  returns, unless they are already loaded, plus the normalised copy the
  session keeps on the device. A ``folder:`` set is not counted until it has
  been read (the loader's budget bounds it).

A training step needs ``parameters + gradients + optimizer state + data +
batch × activations per sample``; that is what is compared with the free
memory. Measured against torch: the parameter, gradient and Adam bytes are
exact, the bytes kept for backward match what autograd saves
(``tests/core/run/test_memory_budget.py``), and the peak of a training step's RSS
on the CPU (torch 2.13, the examples at batches of 1,024–16,384) was 0.65–1.14
times the activation estimate (the estimate 0.88–1.54 times the measurement).

**Free memory** on the CPU is the smaller of ``MemAvailable`` in
``/proc/meminfo`` and what the tightest cgroup (v2 ``memory.max`` minus
``memory.current``, v1 ``memory.limit_in_bytes`` minus
``memory.usage_in_bytes``, page cache that can be dropped not counted as used)
still allows; where neither exists, the machine's physical memory, an upper
bound that still catches a bomb. :func:`cpu_free_bytes` is the one place that
reads it (tests replace it). On CUDA and MPS the engine asks the device
(``devices.free_memory``). No torch and no Qt: the standard library and the
data set's constants.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from cnnviz.core.data import dataset
from cnnviz.core.data.dataset import FOLDER_PREFIX
from cnnviz.core.data.synthetic import SHAPES_TEST, SHAPES_TRAIN
from cnnviz.core.model.units import format_bytes
from cnnviz.core.run.faults import NotEnoughMemory
from cnnviz.core.shapes.reports import StackReport

F32 = 4
"""Bytes of one float32."""

BUNDLED_IMAGES = {"digits": 1_797, "fashion-mnist": 10_000, "shapes": SHAPES_TRAIN + SHAPES_TEST}
"""Images (training and held-out together) each built-in set has before the loader's budget trims it."""

DEVICE_DATA_FRACTION = 0.25
"""Data is kept on an accelerator when it takes at most this share of its free memory (device_data.py)."""

EVAL_CHUNK = 1_024
"""The most samples evaluation runs at once; fewer when the samples are large (:func:`eval_chunk`)."""

_UNLIMITED = 1 << 60
"""A cgroup limit at or above this means no limit (v1 writes 2⁶³ rounded down to a page)."""


# ------------------------------------------------------------------ formatting
def _round_down(n: int) -> int:
    """Two significant figures, rounded down (3,787 → 3,700), so a suggested batch reads as a choice."""
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit


# ------------------------------------------------------------------ the estimate
@dataclass(frozen=True)
class Estimate:
    """Bytes a training run needs, by what holds them; see the module docstring for the model."""

    batch_size: int
    weight_bytes: int
    """Parameters and BatchNorm's running statistics."""
    grad_bytes: int
    optimizer_bytes: int
    """The optimizer's state: Adam's two moments, SGD's momentum buffer."""
    step_bytes: int
    """The optimizer step's temporaries."""
    data_bytes: int
    sample_bytes: int
    """Activations of one sample in a training step (forward outputs kept and backward's gradients)."""
    saved_sample_bytes: int
    """Of those, what autograd keeps for backward (the input batch included)."""
    eval_sample_bytes: int
    """Activations of one sample in evaluation (no gradients)."""
    optimizer: str = "adam"
    momentum: float = 0.0
    input_shape: tuple[int, int, int] = (1, 1, 1)
    largest_params: tuple[int, str, int] = (-1, "", 0)
    """(index, label, parameters) of the layer holding most parameters."""
    largest_output: tuple[int, str, int] = (-1, "", 0)
    """(index, label, values per sample) of the largest activation."""

    @property
    def model_bytes(self) -> int:
        """Parameters, gradients, optimizer state and the step's temporaries."""
        return self.weight_bytes + self.grad_bytes + self.optimizer_bytes + self.step_bytes

    @property
    def fixed_bytes(self) -> int:
        """What does not grow with the batch: the model's bytes and the data."""
        return self.model_bytes + self.data_bytes

    @property
    def activation_bytes(self) -> int:
        return self.batch_size * self.sample_bytes

    @property
    def total_bytes(self) -> int:
        return self.fixed_bytes + self.activation_bytes

    @property
    def model_label(self) -> str:
        """``parameters, gradients and Adam state``: what :attr:`model_bytes` holds, in words."""
        if self.optimizer == "sgd" and not self.momentum:
            return "parameters and gradients"
        state = "momentum" if self.optimizer == "sgd" else "Adam state"
        return f"parameters, gradients and {state}"

    def max_batch(self, free: int) -> int:
        """The largest batch whose training step fits in ``free`` bytes (0: not even one sample)."""
        room = free - self.fixed_bytes
        return max(0, room // max(1, self.sample_bytes))


def _optimizer_copies(optimizer: str, momentum: float) -> int:
    if optimizer == "sgd":
        return 1 if momentum else 0
    return 2  # adam, and anything unknown (refused by the session when it makes the optimizer)


def estimate(report: StackReport, *, batch_size: int, optimizer: str = "adam", momentum: float = 0.9,
             weight_decay: float = 0.0, data_bytes: int = 0, device: str = "cpu") -> Estimate:
    """What training the stack of ``report`` at ``batch_size`` needs on a device of type ``device``.

    ``report`` must be one without errors (:func:`cnnviz.core.run.build.check_buildable`);
    ``data_bytes`` is what the data set adds there (:func:`dataset_bytes`).
    """
    params = trainable = buffers = 0
    largest_params = (-1, "", 0)
    for r in report.layers:
        params += r.params
        trainable += r.trainable
    for r in report.walk():  # a block's BatchNorm keeps its statistics too; a block is not one big layer
        if r.is_block:
            continue
        if r.type in ("BatchNorm2d", "BatchNorm1d") and r.resolved.get("track_running_stats", True):
            channels = r.output_shape[0] if r.output_shape else 0
            buffers += 2 * F32 * channels + 8  # running_mean, running_var, num_batches_tracked (int64)
        if r.params > largest_params[2]:
            largest_params = (r.index, r.label, r.params)
    copies = _optimizer_copies(optimizer, momentum)
    # The step's temporaries: Adam's sqrt of the second moment, weight decay's grad + λθ. One tensor at a
    # time on the CPU (torch's per-parameter loop), every parameter at once with the _foreach kernels.
    scratch = (1 if copies == 2 else 0) + (1 if weight_decay else 0)
    step = scratch * F32 * (largest_params[2] if device == "cpu" else trainable)

    c, h, w = report.input_shape
    sample, saved, eval_sample, largest_output = _activations(report, F32 if device == "cpu" else 1)
    return Estimate(batch_size=max(1, int(batch_size)), weight_bytes=F32 * params + buffers,
                    grad_bytes=F32 * trainable, optimizer_bytes=copies * F32 * trainable, step_bytes=step,
                    data_bytes=int(data_bytes), sample_bytes=sample, saved_sample_bytes=saved,
                    eval_sample_bytes=eval_sample,
                    optimizer=optimizer, momentum=momentum, input_shape=(c, h, w),
                    largest_params=largest_params, largest_output=largest_output)


SAVES_INPUT = frozenset({"Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
                         "BatchNorm1d", "LeakyReLU", "GELU", "ReLU6", "ELU", "SiLU", "Hardswish", "Hardsigmoid"})
"""Layers whose backward needs their input (torch's derivatives.yaml); the others below need their output."""
SAVES_OUTPUT = frozenset({"ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"})
INPLACE_SAVES_OUTPUT = frozenset({"LeakyReLU", "ReLU6", "ELU"})
"""Layers that save their input, but their output when they work in place."""
_VIEWS = frozenset({"Flatten", "Identity"})


def _activations(report: StackReport, mask_bytes: int) -> tuple[int, int, int, tuple[int, str, int]]:
    """Bytes per sample in a training step, of those the ones kept for backward, in evaluation, and the
    largest activation as (index, label, values).

    Follows the storage each layer writes to: Flatten's output is a view and
    an inplace layer's is its input, so they share one. A storage stays alive
    until backward when a layer saves it (its input or its output); the batch
    itself is held by the step. The widest pair of neighbouring activations
    is added on top: the forward pass holds both while a layer runs, and
    backward holds the gradient of a layer's output and the gradient of its
    input it produces; a convolution's pair counts twice, for the reordered
    copies or workspace its kernels use (measured on the CPU: without that,
    a network of convolutions needs 1.2–1.6 times the estimate).
    """
    c, h, w = report.input_shape
    first = c * h * w
    sizes = [first]  # the storages, by number
    kept = {0}  # the batch
    extra = indices = 0  # MaxPool2d's indices, Dropout's mask
    current = 0
    previous = first
    widest_pair = first
    largest = (-1, "input", first)
    for r in report.walk():  # a block's layers one after the other (a shortcut reads the block's input,
        n = r.activation_elements  # near enough), then its merge (the sum or the concatenation: a new storage)
        inplace = bool(r.resolved.get("inplace"))
        inp = current
        if r.type not in _VIEWS and not inplace:
            sizes.append(n)
            current = len(sizes) - 1
        if r.is_block:
            previous = n
            continue
        saves_input = r.type in SAVES_INPUT and not (r.type in INPLACE_SAVES_OUTPUT and inplace) \
            and not (r.type == "AdaptiveAvgPool2d" and tuple(r.output_shape[1:]) == (1, 1))  # a mean
        if saves_input:
            kept.add(inp)
        if r.type in SAVES_OUTPUT or (r.type in INPLACE_SAVES_OUTPUT and inplace):
            kept.add(current)
        if r.type == "MaxPool2d":
            indices += 8 * n
        elif r.type == "Dropout":
            extra += mask_bytes * n
        # A convolution works on reordered copies of both (mkldnn's blocked layouts) or a cuDNN workspace.
        widest_pair = max(widest_pair, (previous + n) * (2 if r.type == "Conv2d" else 1))
        if n > largest[2]:
            largest = (r.index, r.label, n)
        previous = n
    # The loss: log-probabilities kept and their gradient, one label.
    loss = 2 * F32 * previous + 8
    saved = F32 * sum(sizes[i] for i in kept) + indices + extra
    train = saved + F32 * widest_pair + loss
    evaluation = F32 * widest_pair + indices + loss
    return train, saved, evaluation, largest


def images_loaded(name: str, shape: tuple[int, int, int]) -> int | None:
    """How many images (training and held-out) ``data.load(name, shape)`` will hold; None when unknown.

    The loader keeps a set under :data:`~cnnviz.core.data.dataset.MAX_BYTES` of
    float32, trimming it to as many images as fit; at a size where not even two
    fit it refuses before allocating, so nothing is counted for it here.
    """
    total = BUNDLED_IMAGES.get(name)
    if total is None:
        return None
    per_image = F32 * math.prod(shape)
    room = dataset.MAX_BYTES // per_image
    return 0 if room < 2 else min(total, room)


def dataset_bytes(name: str, shape: tuple[int, int, int], seed: int = 0) -> tuple[int, bool]:
    """(bytes of float32 images and int64 labels ``data.load`` will return, whether they are loaded already).

    0 for a ``folder:`` set (not known before it is read) or an unknown name (the loader refuses it).
    """
    if not isinstance(name, str) or name.startswith(FOLDER_PREFIX):
        return 0, False
    n = images_loaded(name, shape)
    if not n:
        return 0, False
    try:
        cached = dataset._cache_get((name, tuple(int(v) for v in shape), int(seed))) is not None
    except (TypeError, ValueError):
        cached = False
    return n * (F32 * math.prod(shape) + 8), cached


def split_bytes(split) -> int:
    """Bytes of a loaded ``DataSplit``'s images and labels as the session will hold them (float32, int64)."""
    total = 0
    for part in (split.train, split.test):
        images, labels = part.images, part.labels
        total += F32 * math.prod(getattr(images, "shape", ())) + 8 * len(labels)
    return total


# ------------------------------------------------------------------ refusing
def check_training_fits(est: Estimate, free: int | None, *, name: str, where: str = "the CPU",
                        device: str = "cpu") -> None:
    """Raise :class:`NotEnoughMemory` when ``est`` needs more than ``free`` bytes (None: unknown, no check).

    The message is a sentence with the estimate, what holds it, the free
    memory and the change that makes the run fit: the largest batch that does,
    or else what to make smaller.
    """
    if free is None or est.total_bytes <= free:
        return
    batch = est.batch_size
    parts = [f"activations {format_bytes(est.activation_bytes)} at batch {batch:,}",
             f"{est.model_label} {format_bytes(est.model_bytes)}"]
    if est.data_bytes:
        parts.append(f"data {format_bytes(est.data_bytes)}")
    head = (f"training {name} at batch {batch:,} needs about {format_bytes(est.total_bytes)} ({', '.join(parts)}) "
            f"but {where} has {format_bytes(free)} free")
    fits = est.max_batch(free)
    suggested = _round_down(fits)
    fix = f"use a batch of at most {suggested:,}" if suggested >= 1 else _what_to_shrink(est, int(free))
    raise NotEnoughMemory(f"{head}: {fix}", device=device, batch_size=batch, suggested_batch=suggested,
                          needed_bytes=est.total_bytes, free_bytes=int(free))


def check_run(report: StackReport, config, *, device_type: str, free: int | None, name: str,
              where: str = "the CPU", device: str = "cpu", data=None) -> Estimate:
    """The estimate of training ``report`` with ``config`` (a ``TrainingConfig``) on a device of
    ``device_type`` with ``free`` bytes free, having refused with :class:`NotEnoughMemory` a run that
    cannot fit. Nothing is loaded or built, and torch is not needed: ``cnnviz train --device cpu``
    refuses a bomb before it imports torch.

    ``data`` is a loaded split when there is one (its arrays are counted as
    they are); otherwise the set ``config.data`` will be, at the stack's input
    size and within the loader's budget.
    """
    if data is not None:
        images, loaded = split_bytes(data), True
    else:
        images, loaded = dataset_bytes(config.data, report.input_shape, config.seed)
    if device_type == "cpu":
        # The loader's arrays (unless already in memory) and the session's normalised copy.
        data_bytes = images * (1 if loaded else 2)
    else:
        # The normalised copy lives on the device only when it is small beside the free memory (device_data).
        data_bytes = images if free is None or images <= DEVICE_DATA_FRACTION * free else 0
    est = estimate(report, batch_size=config.batch_size, optimizer=config.optimizer, momentum=config.momentum,
                   weight_decay=config.weight_decay, data_bytes=data_bytes, device=device_type)
    check_training_fits(est, free, name=name, where=where, device=device)
    return est


def _what_to_shrink(est: Estimate, free: int) -> str:
    """The fix when not even a batch of one fits: make smaller whichever of model, data or sample is largest."""
    terms = {"model": est.model_bytes, "data": est.data_bytes, "sample": est.sample_bytes}
    biggest = max(terms, key=terms.get)
    size = terms[biggest]

    def share(verb: str) -> str:
        if size > free:
            return f"alone {verb} {format_bytes(size)}"
        return f"{verb} {format_bytes(size)} of the {format_bytes(est.total_bytes)}"

    if biggest == "model":
        index, label, n = est.largest_params
        return (f"the {est.model_label} {share('need')}; use fewer channels or features "
                f"(layer {index} ({label}) holds {n:,} parameters)")
    c, h, w = est.input_shape
    if biggest == "data":
        return (f"the data set at {c}×{h}×{w} {share('takes')}; use a smaller input "
                f"(the loader keeps at most {format_bytes(dataset.MAX_BYTES)} of images, and a copy is normalised)")
    index, label, n = est.largest_output
    where = "the input" if index < 0 else f"layer {index} ({label})"
    return (f"one sample's activations {share('need')}; use a smaller input, a stride or pooling, "
            f"or fewer channels ({where} holds {n:,} values per sample)")


def check_model_fits(report: StackReport, free_bytes: int | None = None, *, where: str = "the CPU",
                     device: str = "cpu", copies: int = 1) -> int:
    """Bytes that building the model of ``report`` takes (its parameters and buffers, ``copies`` times over);
    :class:`NotEnoughMemory` if that is more than ``free_bytes`` (None: :func:`cpu_free_bytes`).

    For a caller that builds the model without training it (``export --to
    onnx``): an exporter that writes the weights into a file of its own holds
    them twice, ``copies=2``.
    """
    est = estimate(report, batch_size=1, optimizer="sgd", momentum=0.0)
    need = max(1, int(copies)) * est.weight_bytes
    free = cpu_free_bytes() if free_bytes is None else free_bytes
    if free is not None and need > free:
        index, label, n = est.largest_params
        raise NotEnoughMemory(
            f"building the model needs about {format_bytes(need)} for its {report.total_params:,} parameters but "
            f"{where} has {format_bytes(free)} free: use fewer channels or features (layer {index} ({label}) holds "
            f"{n:,} parameters)", device=device, batch_size=0, suggested_batch=0, needed_bytes=need,
            free_bytes=int(free))
    return need


def eval_chunk(est: Estimate, free: int | None, limit: int = EVAL_CHUNK) -> int:
    """How many samples evaluation runs at once: ``limit``, fewer when that would not fit.

    Half of what is left once the model and the data are in place, so that a
    run whose samples are so large that it trains at batch 2 also evaluates.
    """
    if free is None:
        return limit
    room = free - est.fixed_bytes
    return int(max(1, min(limit, room // 2 // max(1, est.eval_sample_bytes))))


# ------------------------------------------------------------------ free memory on the CPU
def accelerator_possible() -> bool:
    """Whether ``--device auto`` could pick a GPU here, answered without importing torch: False only on
    Linux with no GPU driver's device node (NVIDIA, ROCm, WSL's), where ``auto`` can only be the CPU."""
    import sys

    if not sys.platform.startswith("linux"):
        return True
    nodes = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
    return any(os.path.exists(node) for node in nodes) or os.path.isdir("/proc/driver/nvidia")


def cpu_free_bytes() -> int | None:
    """Bytes this process may still allocate on the host: min(MemAvailable, the cgroups' room).

    Tests replace this function to pretend a machine is small.
    """
    found = [v for v in (_mem_available(), _cgroup_room()) if v is not None]
    if found:
        return max(0, min(found))
    return _physical_bytes()


def _mem_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _physical_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return 0


def _cgroup_room(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The least (limit − usage) over this process's memory cgroup and its ancestors; None without a limit.

    Reclaimable page cache (``inactive_file``) is not counted as used, as the
    kernel drops it before it kills anything.
    """
    try:
        lines = Path(proc).read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    base = Path(root)
    rooms = []
    for line in lines:
        _hid, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: 0::/path
            top, files = base, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1: N:memory:/path
            top, files = base / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        rooms += _rooms_up(top, path.strip().lstrip("/"), *files)
    return min(rooms) if rooms else None


def _rooms_up(top: Path, relative: str, limit_file: str, usage_file: str, inactive_key: str) -> list[int]:
    """limit − usage for the cgroup at ``top/relative`` and each folder above it that has a limit."""
    rooms = []
    here = top / relative if relative else top
    if not here.is_dir():  # a cgroup namespace: the process's own group is mounted at the top
        here = top
    while True:
        limit = _read_int(here / limit_file)
        usage = _read_int(here / usage_file)
        if limit is not None and limit < _UNLIMITED and usage is not None:
            usage -= min(usage, _stat(here / "memory.stat", inactive_key))
            rooms.append(max(0, limit - usage))
        if here == top or top not in here.parents:
            break
        here = here.parent
    return rooms
