"""Real forward and backward passes of a stack on the chosen device: the :class:`Session`.

A session holds what a run needs: the model built from the stack (seeded), the
optimizer, the loss, the data set normalised and held on the device, the step
count and its own random state. :meth:`Session.step` is the training step the
loop (``training.py``) repeats; it carries no hooks, no ``.item()`` and no
``.cpu()``: loss and accuracy are summed on the device and read back only by
:meth:`Session.read_stats`, at the reporting interval.

**Faults.** Each step computes, on the device, one flag: the loss and the
L2 norm of every gradient are finite (one fused ``_foreach_norm`` on CUDA).
It is read *before* the optimizer step, so a bad step never reaches the
weights and training stops within that step; the first layer where the NaN or
Inf appeared is then found by re-running the batch module by module (forward:
the first non-finite activation; backward: the layer nearest the output whose
output- or weight-gradient is non-finite). On the CPU reading the flag is a
memory load; on CUDA and MPS it is one synchronisation per step (measured by
``benchmarks/train_overhead.py`` as ``engine`` vs ``engine-nocheck``). The
cheaper variants were rejected: reading it at the reporting interval lets NaN
weights train on for up to an interval, and a one-step-lagged read lets the
bad update through. Out of memory on CUDA/MPS is caught, every reference to
the step's tensors dropped, the allocator's cache emptied, and an
:class:`OutOfMemory` raised that suggests half the batch; the session stays
usable. Before any of that, :func:`check_memory` refuses a run that cannot fit
at all (``memory.py``'s estimate against the device's free memory), before
the data is loaded or the model built. Everything a user can cause is an
:class:`EngineError`. No Qt.
"""
from __future__ import annotations

import contextlib
import gc
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cnnviz.core.model.stack import (  # noqa: F401  (config_with: the engine's API too)
    SCHEDULES,
    Stack,
    TrainingConfig,
    config_with,
    scheduled_lr,
)
from cnnviz.core.model.text import one_line
from cnnviz.core.model.units import format_bytes
from cnnviz.core.run import build, devices, identities, memory
from cnnviz.core.run.device_data import Batches, DeviceSplit, fits_on_device, load_data
from cnnviz.core.run.faults import (
    DataUnavailable,
    DeviceError,
    EngineError,
    LayerFailed,
    NonFiniteError,
    NotEnoughMemory,
    OutOfMemory,
    StackRefused,
)
from cnnviz.core.run.hygiene import SessionRng, exactly_finite, finite_flag, first_nonfinite, model_mode
from cnnviz.core.shapes import StackReport, fmt_shape

__all__ = ["DataUnavailable", "DeviceError", "EngineError", "Evaluation", "LayerFailed", "NonFiniteError",
           "NotEnoughMemory", "OutOfMemory", "Session", "StackRefused", "check_memory", "load_data", "model_mode"]


@dataclass(frozen=True)
class Evaluation:
    """The model on a held-out split, in eval mode: mean per-sample loss, accuracy, the confusion matrix.

    ``n`` is the split's size and ``loss`` the mean over all ``n`` samples.
    ``counted`` is how many of them the accuracy counts: all but those whose
    target is the loss's ``ignore_index`` (when that is one of the classes).
    ``confusion[t][p]`` counts the counted samples of true class ``t``
    predicted as ``p`` (it sums to ``counted``; its trace is ``accuracy *
    counted``); ``per_class_accuracy[t]`` is ``confusion[t][t] / Σ_p
    confusion[t][p]``, None for a class with no counted sample. Both are None
    when the evaluation was asked for without the matrix. Plain tuples, so an
    evaluation compares and pickles like the rest.

    ``samples`` (only with ``evaluate(..., per_sample=True)``, for the window's
    mistakes gallery; never part of comparisons or the command line's output):
    float32 (2, n), row 0 each sample's predicted class, row 1 its confidence
    (the largest softmax(z) probability), in the split's order.
    """

    step: int
    split: str
    loss: float
    accuracy: float
    n: int
    counted: int | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None
    per_class_accuracy: tuple[float | None, ...] | None = None
    classes: tuple[str, ...] = ()
    samples: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def predictions(self) -> np.ndarray | None:
        """Each sample's predicted class, int64 (n,) (None without ``per_sample``)."""
        return None if self.samples is None else self.samples[0].astype(np.int64)

    @property
    def confidences(self) -> np.ndarray | None:
        """Each sample's largest class probability, float32 (n,) (None without ``per_sample``)."""
        return None if self.samples is None else self.samples[1]


class Session:
    """A stack ready to train and probe on one device.

    ``config`` defaults to the stack's ``training`` block, then
    :class:`TrainingConfig`'s defaults. ``data`` may be a ready
    ``data.DataSplit`` (or anything with ``train``/``test`` sets holding
    ``images``, ``labels``, ``classes`` and a ``mean``/``std``); by default
    ``config.data`` is loaded at the stack's input size. Raises
    :class:`StackRefused` (shape error, class count), :class:`DeviceError`,
    :class:`NotEnoughMemory` (the run cannot fit: before the data is loaded and
    the model built), :class:`DataUnavailable` or :class:`OutOfMemory` before
    training starts.

    **The learning rate.** :attr:`lr` is the base rate (:meth:`set_lr` changes
    it); the rate each optimizer step uses follows ``config.schedule`` from
    :attr:`step_count` (:func:`~cnnviz.core.model.stack.scheduled_lr`) and is
    set on the optimizer just before the step: :attr:`lr_now`. ``cosine``
    anneals it to 0 at :attr:`horizon` (the run's steps: ``config.steps``
    unless the caller sets another); a reset, which puts the step count back
    to 0, starts the schedule again, and a step refused for NaN or Inf moves
    nothing.
    """

    def __init__(self, stack: Stack, config: TrainingConfig | None = None, *, data: Any = None) -> None:
        self.stack = stack
        self.config = config or stack.training or TrainingConfig()
        if self.config.schedule not in SCHEDULES:
            raise EngineError(f"unknown schedule {self.config.schedule!r}: expected {' or '.join(SCHEDULES)}",
                              kind="config")
        try:
            self.report = build.check_buildable(stack)
        except build.StackInvalid as exc:
            raise StackRefused(str(exc)) from None
        self.device = devices.resolve(self.config.device)
        self.device_info = devices.describe(self.device)
        self.memory, free = check_memory(stack, self.config, self.device, data=data, report=self.report)
        self.eval_chunk = memory.eval_chunk(self.memory, free)
        self.data = data if data is not None else load_data(self.config.data, stack.input.shape, self.config.seed)
        self.data_name = getattr(self.data, "name", self.config.data)
        self.classes = tuple(self.data.train.classes)
        self._check_classes()
        self.labels = tuple(r.label for r in self.report.layers)
        self.head, self.z_index = self._find_head()
        self.batch_size = int(self.config.batch_size)
        self.lr = float(self.config.lr)
        self.horizon = int(self.config.steps)  # where a cosine schedule reaches 0: the run's steps
        self.step_count = 0
        self.check_finite = True  # the per-step NaN/Inf check; off only to measure what it costs
        self._rng = SessionRng(self.device, self.config.seed)
        self._closed = False
        self._guard_oom(self._build, "setting up")

    # ----------------------------------------------------------- building
    def _check_classes(self) -> None:
        k = self.report.num_classes
        have = len(self.classes)
        if k is None:
            out = self.report.output_shape
            raise StackRefused(f"the stack's output is {fmt_shape(out)}, not one score per class: end it with "
                               f"Flatten and a Linear with out_features={have} for {self.data_name}")
        if k != have:
            linears = [r.index for r in self.report.layers if r.type == "Linear"]
            fix = (f"set the last Linear's out_features to {have}" if linears
                   else f"end the stack with a Linear of {have} outputs")
            raise StackRefused(f"the stack scores {k} classes but {self.data_name} has {have}: {fix}")
        ignore = self.stack.loss.params.get("ignore_index", -100)
        if 0 <= ignore < have and self.data_name:
            self.notes = (f"ignore_index={ignore}: the class {self.classes[ignore]!r} adds nothing to the loss",)
        else:
            self.notes = ()

    def _find_head(self) -> tuple[str | None, int]:
        """The trailing Softmax/LogSoftmax over the classes, and the index of z's activation (-1: the input)."""
        layers = self.report.layers
        types = [r.type for r in layers]
        dims = [r.resolved.get("dim") for r in layers]
        head = identities.stack_head(types, dims)
        z_index = len(layers) - (2 if head else 1)
        return head, z_index

    def _build(self) -> None:
        seed = self.config.seed
        self.model = build.build_model(self.stack, seed=seed).to(self.device)
        self.loss_fn = build.build_loss(self.stack.loss).to(self.device)
        self._loss_settings = identities.loss_settings(self.stack.loss, len(self.classes), device=self.device)
        self._sum_reduction = self._loss_settings["reduction"] == "sum"
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._optimizer = None
        on_device = fits_on_device(self.data, self.device)
        mean = getattr(self.data, "mean", None) or (0.0,) * self.stack.input.channels
        std = getattr(self.data, "std", None) or (1.0,) * self.stack.input.channels
        self.train_split = DeviceSplit(self.data.train, mean, std, self.device, on_device)
        self.test_split = DeviceSplit(self.data.test, mean, std, self.device, on_device)
        self._batches = Batches(self.train_split, self.batch_size, seed)
        self._zero_stats()

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Made at the first step, not at build: the first optimizer costs about a second of imports
        (torch._dynamo), which a session that only probes need not wait for."""
        if self._optimizer is None:
            self._optimizer = self._make_optimizer()
        return self._optimizer

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(self._params, lr=self.lr_now, momentum=c.momentum, weight_decay=c.weight_decay)
        if c.optimizer == "adam":
            return torch.optim.Adam(self._params, lr=self.lr_now, weight_decay=c.weight_decay)
        raise EngineError(f"unknown optimizer {c.optimizer!r}: expected adam or sgd", kind="config")

    @property
    def lr_now(self) -> float:
        """The learning rate the next optimizer step uses: :attr:`lr` on the schedule at :attr:`step_count`."""
        return scheduled_lr(self.lr, self.config.schedule, self.step_count, self.horizon)

    @property
    def schedule_ended(self) -> bool:
        """A cosine schedule has reached its horizon: its rate is 0 from here on (never for ``constant``)."""
        return self.config.schedule != "constant" and self.step_count >= self.horizon

    def _follow_schedule(self, optimizer: torch.optim.Optimizer) -> None:
        """Give ``optimizer`` the rate of the step about to be taken (nothing to do for a constant rate:
        :meth:`set_lr` keeps its groups at :attr:`lr`)."""
        if self.config.schedule == "constant":
            return
        lr = self.lr_now
        for group in optimizer.param_groups:
            if group["lr"] != lr:
                group["lr"] = lr

    def _zero_stats(self) -> None:
        self._sum_loss = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0
        self._window_steps = 0

    # ----------------------------------------------------------- controls
    def reset(self) -> None:
        """Weights back to the seed's, a fresh optimizer, the data order and random state restarted."""
        fresh = build.build_model(self.stack, seed=self.config.seed)
        with torch.no_grad():
            self.model.load_state_dict(fresh.state_dict())
        self._optimizer = None
        self._batches = Batches(self.train_split, self.batch_size, self.config.seed)
        self._rng.reseed(self.config.seed)
        self.step_count = 0
        self._zero_stats()

    def set_batch_size(self, batch_size: int) -> None:
        if batch_size < 1:
            raise EngineError(f"batch size must be at least 1, got {batch_size}", kind="config")
        self.batch_size = int(batch_size)
        self._batches.batch_size = self.batch_size
        self._batches.perm = None

    def set_lr(self, lr: float) -> None:
        if not (0 < lr < math.inf):
            raise EngineError(f"learning rate must be a positive number, got {lr}", kind="config")
        self.lr = float(lr)
        for group in self._optimizer.param_groups if self._optimizer is not None else ():
            group["lr"] = self.lr_now

    def load_weights(self, path) -> list[str]:
        """Start from the weights in ``path`` (checked against the stack), with a fresh optimizer; warnings."""
        from cnnviz.core.run import weights

        warnings = weights.load_into(self.model, self.stack, path)
        self._optimizer = None
        return warnings

    def save_weights(self, path):
        from cnnviz.core.run import weights

        return weights.save(self.model, self.stack, path)

    def close(self) -> None:
        """Drop every device tensor this session holds (the memory goes back to the device)."""
        for name in ("model", "_optimizer", "loss_fn", "train_split", "test_split", "_batches", "_params",
                     "_sum_loss", "_correct", "_loss_settings"):
            self.__dict__.pop(name, None)
        self._closed = True
        gc.collect()
        devices.empty_cache(self.device)

    def rng_scope(self) -> contextlib.AbstractContextManager:
        """Use the session's random stream for a run of steps (the loop holds it for a whole run).

        :meth:`step` enters it by itself when called outside; holding it saves
        swapping the generators' states in and out at every step.
        """
        return self._rng.active()

    def forked_rng(self) -> contextlib.AbstractContextManager:
        """Draw freely inside (a probe in train mode, a profile at a step boundary) without moving the
        session's random stream: the training run goes on as if nothing had drawn."""
        return self._rng.forked()

    # ----------------------------------------------------------- training
    def step(self) -> None:
        """One optimizer step on the next batch. Raises NonFiniteError (weights untouched) or OutOfMemory."""
        if self._rng.depth:
            failed = self._guard_oom(self._step, "training")
        else:
            with self._rng.active():
                failed = self._guard_oom(self._step, "training")
        if failed is not None:
            self._raise_nonfinite(*failed)

    def _step(self):
        x, y = self._batches.next()
        out = self.model(x)
        loss = identities.backward_scalar(self.loss_fn(out, y))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.check_finite:
            grads = [p.grad for p in self._params if p.grad is not None]
            # The one read per step (see the module docstring).
            if not bool(finite_flag(loss, grads)) and not exactly_finite(loss, grads):
                self.optimizer.zero_grad(set_to_none=True)
                return x, y
        self._follow_schedule(self.optimizer)
        self.optimizer.step()
        self.step_count += 1
        with torch.no_grad():
            self._sum_loss += loss.detach()
            self._correct += (out.argmax(1) == y).sum()
        self._seen += len(y)
        self._window_steps += 1
        return None

    def read_stats(self) -> tuple[float, float, int] | None:
        """(mean loss per sample, training accuracy, steps) since the last read; one device read."""
        if self._window_steps == 0:
            return None
        values = torch.stack([self._sum_loss, self._correct.to(self._sum_loss.dtype)]).tolist()
        steps, seen = self._window_steps, self._seen
        per_step = values[0] / steps
        loss = per_step / (seen / steps) if self._sum_reduction else per_step
        self._zero_stats()
        return loss, values[1] / seen, steps

    # ----------------------------------------------------------- evaluation
    def _per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = dict(self._loss_settings, reduction="none")
        return identities.apply_loss(out, y, self.stack.loss.type, s)

    def evaluate(self, split: str = "test", chunk: int | None = None, *, confusion: bool = True,
                 per_sample: bool = False) -> Evaluation:
        """Loss, accuracy and the confusion matrix on a whole split in eval mode, without gradients.

        ``chunk`` samples at a time: by default :attr:`eval_chunk`, up to 1,024 and fewer when the samples
        are so large that 1,024 would not fit beside the model (see :func:`memory.eval_chunk`).
        The matrix is counted on the device: each chunk's ``target * K + prediction`` (``K * K``, an extra
        bin that is dropped, for a sample whose target is ``ignore_index``) is kept in one index tensor,
        and one ``bincount`` of it at the end (on CUDA a ``bincount`` reads its maximum: once, not per
        chunk) is read back with the loss. ``confusion=False`` counts only the correct predictions (the
        same accuracy, without the matrix: what ``benchmarks/confusion.py`` compares against).
        ``per_sample=True`` (the window's mistakes) also keeps each sample's prediction and confidence
        (one max and one logsumexp per chunk, on the device) and copies them back once, as ``samples``.
        """
        data = self._split(split)
        chunk = max(1, int(chunk or self.eval_chunk))
        k = len(self.classes)
        ignore = self._loss_settings["ignore_index"]
        ignored = 0 <= ignore < k  # labels are classes: an ignore_index outside them ignores nothing
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        kept = torch.zeros((), dtype=torch.long, device=self.device)
        cells = torch.empty(data.n if confusion else 0, dtype=torch.long, device=self.device)
        per = torch.empty((2, data.n) if per_sample else (2, 0), dtype=torch.float32, device=self.device)
        head = self.head

        def run() -> None:
            nonlocal total, correct, kept
            with model_mode(self.model, False), torch.no_grad():
                for start in range(0, data.n, chunk):
                    x, y = data.rows(start, start + chunk)
                    out = self.model(x)
                    total = total + self._per_sample_loss(out, y).sum()
                    if per_sample:
                        top, pred = out.max(1)
                        stop = start + len(y)
                        per[0, start:stop] = pred
                        if head == "Softmax":  # the output is already softmax(z)
                            per[1, start:stop] = top
                        elif head == "LogSoftmax":
                            per[1, start:stop] = top.exp()
                        else:  # max softmax(z) = exp(max z - logsumexp z)
                            per[1, start:stop] = (top - torch.logsumexp(out, 1)).exp()
                    else:
                        pred = out.argmax(1)
                    if confusion:
                        cell = y * k + pred
                        if ignored:
                            cell = torch.where(y == ignore, k * k, cell)
                        cells[start:start + len(y)] = cell
                    elif ignored:
                        keep = y != ignore
                        correct = correct + ((pred == y) & keep).sum()
                        kept = kept + keep.sum()
                    else:
                        correct = correct + (pred == y).sum()

        self._guard_oom(run, "evaluating")
        n = max(1, data.n)
        if not confusion:
            values = torch.stack([correct, kept]).tolist()  # the one device read (the loss's below is a copy)
            loss = total.item()
            counted = values[1] if ignored else data.n
            accuracy = values[0] / counted if counted else 0.0
            samples = per.cpu().numpy() if per_sample else None
            return Evaluation(self.step_count, split, loss / n, accuracy, data.n, counted, classes=self.classes,
                              samples=samples)
        counts = self._guard_oom(lambda: torch.bincount(cells, minlength=k * k + 1), "evaluating")
        rows = counts[: k * k].reshape(k, k).tolist()  # the one device read (the loss's below is a copy)
        loss = total.item()
        matrix = tuple(tuple(row) for row in rows)
        diagonal = sum(matrix[i][i] for i in range(k))
        counted = sum(sum(row) for row in matrix)
        per_class = tuple(row[i] / sum(row) if sum(row) else None for i, row in enumerate(matrix))
        accuracy = diagonal / counted if counted else 0.0
        samples = per.cpu().numpy() if per_sample else None  # the one copy, after the read above
        return Evaluation(self.step_count, split, loss / n, accuracy, data.n, counted, matrix, per_class, self.classes,
                          samples)

    def _split(self, split: str) -> DeviceSplit:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.train_split if split == "train" else self.test_split

    # ----------------------------------------------------------- probes and identities
    def probe(self, index: int = 0, split: str = "test", mode: str = "eval", with_identities: bool = True):
        """Everything the views draw for one sample (see :class:`probes.Probe`)."""
        from cnnviz.core.run import probes

        return self._guard_oom(lambda: probes.take(self, index, split, mode, with_identities), "probing")

    def probe_image(self, image, label: int | None = None, mode: str = "eval", with_identities: bool = True):
        """Probe an image that is not in the data set (C×H×W in [0, 1], as ``data.load_image`` gives it).

        It is normalised like the training data (:meth:`image_split`). With no
        ``label`` (a person's own photo has none) the loss and gradients are
        taken for the class the model predicts, and the probe's ``split`` is ``"image"``.
        """
        from cnnviz.core.run import probes

        return self._guard_oom(
            lambda: probes.take(self, 0, ("image", self.image_split(image, label)), mode, with_identities), "probing")

    def image_split(self, image, label: int | None = None) -> DeviceSplit:
        """An image that is not in the data set (C×H×W in [0, 1]) as a split of one on the device, normalised
        like the training data: what :meth:`probe_image` probes, and what the views that explain the person's
        own image take (``rows(0, 1)``). With no ``label``, it is labelled with the class the model predicts
        (eval mode, no gradients)."""
        from cnnviz.core.data import Dataset

        image = np.asarray(image, dtype=np.float32)
        if image.shape != tuple(self.stack.input.shape):
            raise EngineError(f"the image is {fmt_shape(image.shape)} but the stack takes "
                              f"{fmt_shape(self.stack.input.shape)}", kind="data")
        channels = self.stack.input.channels
        mean = getattr(self.data, "mean", None) or (0.0,) * channels
        std = getattr(self.data, "std", None) or (1.0,) * channels
        guess = 0 if label is None else int(label)
        one = DeviceSplit(Dataset(image[None], np.array([guess], np.int64), self.classes), mean, std, self.device, True)
        if label is None:
            with model_mode(self.model, False), torch.no_grad():
                one.labels.fill_(int(self.model(one.images).reshape(-1).argmax()))
            one.labels_np = one.labels.cpu().numpy()
        return one

    def check_identities(self, n: int = 8, split: str = "test") -> identities.Identities:
        """The loss-head identities on the first ``n`` samples of a split (eval mode), N = ``n``."""
        data = self._split(split)
        x, y = data.rows(0, min(n, data.n))
        with model_mode(self.model, False), torch.no_grad():
            z = x
            for i, module in enumerate(self.model):
                if i > self.z_index:
                    break
                z = module(z)
        z = z.reshape(len(y), -1).float().cpu()
        return identities.check(z, y.cpu(), self.stack.loss, self.head, z_source=self.z_source)

    @property
    def z_source(self) -> str:
        layers = self.report.layers
        if self.head is not None:
            h = len(layers) - 1
            return f"the input of layer {h} ({layers[h].label})"
        return f"the output of layer {self.z_index} ({layers[self.z_index].label})" if layers else "the input"

    # ----------------------------------------------------------- faults
    def _guard_oom(self, fn, doing: str):
        """Run ``fn``; turn an out-of-memory error into OutOfMemory after handing the memory back."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001  (only OOM is handled; the rest re-raised as is)
            if not devices.is_out_of_memory(exc):
                raise
            detail = str(exc).splitlines()[0][:200]
        # Outside the except block: the traceback, and every tensor its frames held, is gone.
        self._recover_memory()
        batch = self.batch_size
        info = self.device_info
        memory = f", {format_bytes(info.memory_bytes)}" if info.memory_bytes else ""
        where = f"{info.id} ({info.name}{memory})"
        if batch > 1:
            smaller = max(1, batch // 2)
            msg = f"out of memory on {where} while {doing} at batch {batch}: try a batch of {smaller}"
        else:
            smaller = 1
            msg = (f"out of memory on {where} while {doing} at batch 1: the model itself does not fit; "
                   "try fewer channels or a smaller input")
        raise OutOfMemory(f"{msg} ({detail})", device=info.id, batch_size=batch, suggested_batch=smaller)

    def _recover_memory(self) -> None:
        optimizer = self.__dict__.get("_optimizer")
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        gc.collect()
        devices.empty_cache(self.device)

    def _raise_nonfinite(self, x: torch.Tensor, y: torch.Tensor) -> None:
        step = self.step_count + 1
        try:
            phase, layer = first_nonfinite(self.model, self.loss_fn, x, y)
        except Exception:  # noqa: BLE001  (a failed diagnosis must not hide the fault itself)
            phase, layer = "loss", None
        label = self.labels[layer] if layer is not None and layer >= 0 else None
        raise NonFiniteError(f"training stopped at step {step}: {self._nonfinite_text(phase, layer)}", step=step,
                             phase=phase, layer=layer if phase in ("forward", "backward") else None, label=label)

    def _norm_for(self, layer: int | None) -> str:
        """The BatchNorm that fits before ``layer``: BatchNorm1d where its input is flat (after Flatten), else
        BatchNorm2d."""
        if layer is not None and 0 <= layer < len(self.report.layers):
            shape = self.report.layers[layer].input_shape
            if shape is not None and len(shape) == 1:
                return "BatchNorm1d"
        return "BatchNorm2d"

    def _nonfinite_text(self, phase: str, layer: int | None) -> str:
        """Where NaN or Inf first appeared (``phase``: input, forward, backward or loss), and what to do."""
        label = self.labels[layer] if layer is not None and layer >= 0 else None
        lr = f"lower the learning rate (now {self.lr:g})"
        if phase == "input":
            return "the input images contain NaN or Inf: check the data set"
        norm = self._norm_for(layer)
        if phase == "forward":
            return (f"layer {layer} ({label}) produced NaN or Inf in the forward pass: its input or weights grew "
                    f"too large; {lr}, or add {norm} before it")
        if phase == "backward":
            return (f"the gradient became NaN or Inf at layer {layer} ({label}) in the backward pass; {lr} "
                    f"or add {norm}")
        ignore = self._loss_settings["ignore_index"]
        return (f"the loss ({self.stack.loss.type}) is NaN or Inf although every layer's output is finite "
                f"(if every label in the batch is ignore_index={ignore}, the mean divides 0 by 0); {lr}")

    def describe(self) -> str:
        """One line: what trains where."""
        info = self.device_info
        return (f"{one_line(self.stack.name)} on {info.id} ({info.name}) with {self.data_name}: "
                f"{self.train_split.n:,} training / {self.test_split.n:,} held-out images, batch {self.batch_size}, "
                f"{self.config.optimizer} lr {self.lr:g}{self._schedule_words()}")

    def _schedule_words(self) -> str:
        """`` on a cosine schedule to 0 at step N`` (nothing for a constant rate)."""
        if self.config.schedule == "cosine":
            return f" on a cosine schedule to 0 at step {self.horizon:,}"
        return ""


def check_memory(stack: Stack, config: TrainingConfig | None = None, device: torch.device | None = None, *,
                 data: Any = None, report: StackReport | None = None) -> tuple[memory.Estimate, int | None]:
    """What training ``stack`` needs (``memory.estimate``) and the device's free memory, having refused
    with :class:`NotEnoughMemory` a run that cannot fit; nothing is loaded or built.

    ``data`` is a loaded split when there is one (its arrays are counted as
    they are); otherwise the set ``config.data`` will be, at the stack's input
    size and within the loader's budget. The window calls this before it reads
    the data, :class:`Session` before it builds anything.
    """
    config = config or stack.training or TrainingConfig()
    if report is None:
        try:
            report = build.check_buildable(stack)
        except build.StackInvalid as exc:
            raise StackRefused(str(exc)) from None
    device = device if device is not None else devices.resolve(config.device)
    free = devices.free_memory(device)
    info = devices.describe(device)
    where = "the CPU" if device.type == "cpu" else f"{info.id} ({info.name})"
    est = memory.check_run(report, config, device_type=device.type, free=free, name=one_line(stack.name),
                           where=where, device=info.id, data=data)
    return est, free
