"""One rank of a distributed run: PyTorch's own ``torch.distributed`` and DistributedDataParallel (SPEC §3.5).

The ranks are started by ``torch.distributed.run`` (torchrun; ``cnnviz train
--nproc-per-node N`` launches it, ``cli/distributed.py``), which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`setup` reads them and calls ``init_process_group``: gloo on CPUs,
nccl on CUDA (rank ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``).

**The same weights as one process, by construction.** :class:`DistributedSession`
is a :class:`~cnnviz.core.run.engine.Session` whose every rank draws the *same*
per-epoch ``randperm`` from the same seeded generator the single process uses
(not ``DistributedSampler``'s own order and padding) and takes its contiguous
slice of that global batch. Each rank's loss is the sum of its samples'
losses divided by the *global* denominator (the global batch size; Σ w_y over
the global batch's non-ignored rows for a weighted or ``ignore_index`` mean;
1 for ``sum``), read from the global batch's labels, which every rank has,
so no extra collective is needed; it is multiplied by the world size because
DDP averages the gradients. BatchNorm runs as ``nn.SyncBatchNorm``
(``convert_sync_batchnorm``) on GPUs; torch's SyncBatchNorm runs on GPUs only, so on
the CPU the BatchNorm layers compute the global batch statistics with
differentiable all-reduces on a process group of their own
(:class:`GlooSyncBatchNorm`), the same arithmetic. Dropout is the exception:
each rank draws its own masks (from the session's stream, seeded with the
seed plus the rank).

**One agreed step.** Each step ends with one all-reduce of two flags: this
rank's loss or gradients are not finite, and a stop was asked for on this rank
(Ctrl+C: :meth:`DistributedSession.request_stop`). Every rank therefore sees a
NaN at the same step (the weights untouched, each rank's shard diagnosed and
the first finding reported) and stops at the same step after a Ctrl+C. A rank
that dies (killed, out of memory) makes the others' next collective fail:
:class:`RankFailed` (exit 4). SIGTERM (what torchrun sends the survivors)
ends a rank at once with exit 4, even inside a blocked collective
(:func:`exit_on_sigterm`). No Qt.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cnnviz.core.model.stack import Stack, TrainingConfig, config_with
from cnnviz.core.run import devices, identities
from cnnviz.core.run.device_data import Batches
from cnnviz.core.run.engine import Evaluation, Session
from cnnviz.core.run.faults import DeviceError, EngineError, NonFiniteError
from cnnviz.core.run.hygiene import exactly_finite, finite_flag, first_nonfinite

__all__ = ["DistributedSession", "GlooSyncBatchNorm", "RankFailed", "RankInfo", "ShardedBatches", "convert_batchnorm",
           "exit_on_sigterm", "in_rank", "local_batchnorm", "rank_config", "rank_device", "setup", "shutdown"]

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
FAULT_ENV = "CNNVIZ_DISTRIBUTED_FAULT"
"""Test hook: ``RANK:STEP:KIND`` makes rank RANK fail at step STEP: ``nan`` (its input becomes NaN),
``kill`` (it kills itself with SIGKILL) or ``exit`` (it exits 1 at once)."""
TIMEOUT_ENV = "CNNVIZ_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
"""How long a collective waits for a rank that neither answers nor dies (rank 0 evaluating, a hung peer)."""


class RankFailed(EngineError):
    """Another rank failed or stopped answering; this one stops too (exit 4)."""

    kind = "rank"


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def in_rank(env: Any = None) -> bool:
    """Whether this process is a rank started by torchrun (its environment variables are all set)."""
    env = os.environ if env is None else env
    return all(env.get(name) for name in TORCHRUN_VARS)


def rank_device(spec: str | None, local_rank: int) -> str:
    """The device a rank trains on: ``cpu``, or ``cuda:LOCAL_RANK`` for ``cuda``/``auto`` with CUDA present.

    ``cuda:N`` and ``mps`` are refused (one GPU for every rank; MPS has no
    distributed backend) with a :class:`DeviceError`.
    """
    kind, index = devices.parse(spec)
    if kind == "mps":
        raise DeviceError("mps cannot train with several ranks (torch.distributed has no MPS backend): "
                          "use --device cpu")
    if kind == "cuda" and index is not None:
        raise DeviceError(f"--device cuda:{index} names one GPU but each rank takes its own (cuda:LOCAL_RANK): "
                          "use --device cuda, or CUDA_VISIBLE_DEVICES to choose the GPUs")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return "cpu"
    count = torch.cuda.device_count()
    if count == 0:
        devices.resolve("cuda")  # raises the engine's sentence on why there is no CUDA
    if local_rank >= count:
        raise DeviceError(f"rank {local_rank} of this node needs cuda:{local_rank} but only {count} GPU(s) "
                          "are visible: NCCL runs one rank per GPU; use fewer --nproc-per-node")
    return f"cuda:{local_rank}"


def rank_config(config: TrainingConfig, info: RankInfo) -> TrainingConfig:
    """The run's settings for one rank: its own device; the batch stays global (checked to divide)."""
    if config.batch_size % info.world_size:
        raise EngineError(f"the batch of {config.batch_size} is global and must divide by the {info.world_size} "
                          "ranks", kind="config")
    return config_with(config, device=info.device)


def setup(device_spec: str | None = "auto", env: Any = None) -> RankInfo:
    """``init_process_group`` from torchrun's environment: gloo on the CPU, nccl on CUDA."""
    env = os.environ if env is None else env
    rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    device = rank_device(device_spec, local)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=float(env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S))
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
        if backend == "nccl":
            kwargs["device_id"] = torch.device(device)
        dist.init_process_group(**kwargs)
    return RankInfo(rank, world, local, backend, device)


def shutdown() -> bool:
    """Leave the process group after a last barrier; whether every rank reached it (then rank 0's output
    is complete, and the other ranks may end with status 0: rank 0's status is the run's)."""
    if not dist.is_initialized():
        return False
    reached = False
    with contextlib.suppress(Exception):
        dist.barrier()
        reached = True
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
    return reached


# ------------------------------------------------------------------ SyncBatchNorm
class _AllReduceSum(torch.autograd.Function):
    """A sum over the ranks whose gradient is the sum of the ranks' gradients (each rank's loss depends
    on every rank's input through it)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """SyncBatchNorm for the CPU (torch's ``nn.SyncBatchNorm`` runs on GPUs only, and DDP refuses it on a
    CPU module): the global batch's mean and biased variance from two differentiable all-reduces (the
    sums, then the squared deviations) on a process group of its own; normalisation and running
    statistics as ``F.batch_norm`` computes them. Outside training (or with ``sync`` off) it is
    ``nn.BatchNorm2d`` on this rank's samples. It stands in for a BatchNorm1d too, so it takes N×C as well
    as N×C×H×W."""

    sync_group = None  # the process group of the CPU layers, made once per process
    sync = True

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"expected 2D (N×C) or 4D (N×C×H×W) input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.sync and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        group = GlooSyncBatchNorm.sync_group
        dims = [0] + list(range(2, input.dim()))
        count = torch.tensor([float(input.numel() // input.shape[1])], dtype=input.dtype, device=input.device)
        sums = _AllReduceSum.apply(torch.cat([input.sum(dims), count]), group)
        total = sums[-1]
        mean = sums[:-1] / total
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = input - mean.reshape(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), group) / total
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(total)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return out


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm synced over the ranks: ``nn.SyncBatchNorm.convert_sync_batchnorm`` on GPUs; on the
    CPU, where torch's SyncBatchNorm does not run, :class:`GlooSyncBatchNorm`. The state-dict keys do
    not change."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    converted = False
    for module in model.modules():
        if type(module) in (nn.BatchNorm2d, nn.BatchNorm1d):
            module.__class__ = GlooSyncBatchNorm
            converted = True
    if converted and GlooSyncBatchNorm.sync_group is None and dist.is_initialized():
        GlooSyncBatchNorm.sync_group = dist.new_group(backend="gloo")
    return model


@contextlib.contextmanager
def local_batchnorm(model: nn.Module):
    """Inside, every synced BatchNorm normalises this rank's samples alone (no collective): for the NaN
    diagnosis, which the ranks run module by module and may leave at different layers."""
    saved = []
    for module in model.modules():
        if isinstance(module, (nn.SyncBatchNorm, GlooSyncBatchNorm)):
            saved.append((module, module.__class__))
            module.__class__ = GlooSyncBatchNorm
            module.sync = False
    try:
        yield model
    finally:
        for module, cls in saved:
            module.__dict__.pop("sync", None)
            module.__class__ = cls


# ------------------------------------------------------------------ batches
class ShardedBatches(Batches):
    """The single process's batches (the same ``randperm`` from the same generator), each rank taking its
    contiguous slice of every global batch. ``next`` returns this rank's images and labels and the
    global batch's labels (for the loss's global denominator)."""

    def __init__(self, split, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        super().__init__(split, batch_size, seed)
        self.rank, self.world_size = rank, world_size

    def next(self):
        if self.perm is None or self.pos + self.batch_size > len(self.perm):
            self._refill()
        index = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        share = self.batch_size // self.world_size
        mine = index[self.rank * share:(self.rank + 1) * share]
        x, y = self.split.take(mine)
        labels = self.split.labels
        y_all = labels.index_select(0, index.to(labels.device)).to(y.device)
        return x, y, y_all


# ------------------------------------------------------------------ the session
def _is_collective_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in (
        "gloo", "nccl", "connection", "peer", "timed out", "timeout", "broken pipe", "process group"))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class DistributedSession(Session):
    """A :class:`Session` for one rank of a DDP run (see the module docstring).

    ``self.model`` is the plain ``nn.Sequential`` (its BatchNorms synced), so
    evaluation, probes and saved weights are the single process's;
    ``self.ddp`` wraps it for the training step. ``on_stop`` (set by the
    command: it cancels the loop's control) is called on every rank at the
    step where any rank asked to stop. Evaluation runs on rank 0 only; the other ranks return an empty
    :class:`Evaluation` (NaN loss and accuracy) at once.
    """

    def __init__(self, stack: Stack, config: TrainingConfig | None = None, *, data: Any = None,
                 rank: RankInfo) -> None:
        self.rank_info = rank
        self.on_stop = None  # called on every rank at the step where any rank asked to stop
        self.stop_agreed = False
        self.failure: str | None = None  # the sentence this rank stopped with
        self._stop_asked = threading.Event()
        self._fault = _read_fault(rank.rank)
        config = rank_config(config or stack.training or TrainingConfig(), rank)
        super().__init__(stack, config, data=data)
        if rank.rank:  # each rank its own dropout masks (the documented exception)
            self._rng.reseed(int(self.config.seed) + rank.rank)

    # ----------------------------------------------------------- building
    def _build(self) -> None:
        super()._build()
        info = self.rank_info
        self.model = convert_batchnorm(self.model, self.device)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=device_ids)
        self._batches = ShardedBatches(self.train_split, self.batch_size, self.config.seed, info.rank,
                                       info.world_size)
        self._flags = torch.zeros(2, device=self.device)

    def reset(self) -> None:
        super().reset()
        info = self.rank_info
        self._batches = ShardedBatches(self.train_split, self.batch_size, self.config.seed, info.rank,
                                       info.world_size)
        if info.rank:
            self._rng.reseed(int(self.config.seed) + info.rank)

    def set_batch_size(self, batch_size: int) -> None:
        if batch_size % self.rank_info.world_size:
            raise EngineError(f"the batch of {batch_size} is global and must divide by the "
                              f"{self.rank_info.world_size} ranks", kind="config")
        super().set_batch_size(batch_size)

    # ----------------------------------------------------------- stopping
    def request_stop(self) -> None:
        """Ask every rank to stop after the step all of them agree on (safe from a signal handler)."""
        self._stop_asked.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_asked.is_set()

    # ----------------------------------------------------------- training
    def step(self) -> None:
        try:
            super().step()
            return
        except EngineError:
            raise
        except Exception as exc:
            if not _is_collective_error(exc):
                raise
            detail = _first_line(exc)
        raise self._peer_failed(detail)

    def _peer_failed(self, detail: str) -> RankFailed:
        info = self.rank_info
        return RankFailed(f"rank {info.rank} of {info.world_size} stopped at step {self.step_count + 1}: another "
                          f"rank failed or was killed, so the run cannot go on ({detail})")

    def _global_loss(self, out: torch.Tensor, y: torch.Tensor, y_all: torch.Tensor) -> torch.Tensor:
        """This rank's share of the global batch's loss: its samples' losses over the global denominator."""
        s = self._loss_settings
        per = identities.apply_loss(out, y, self.stack.loss.type, dict(s, reduction="none"))
        reduction = s["reduction"]
        if reduction == "sum":
            return per.sum()
        if reduction == "none":  # the engine trains on the mean of the per-sample losses
            return per.sum() / len(y_all)
        kept = y_all != s["ignore_index"]
        if s["weight"] is not None:
            safe = torch.where(kept, y_all, torch.zeros_like(y_all))
            denominator = (s["weight"].to(out.dtype)[safe] * kept).sum()
        else:
            denominator = kept.sum().to(out.dtype)
        return per.sum() / denominator

    def _inject(self, x: torch.Tensor) -> torch.Tensor:
        kind = self._fault[2]
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "exit":
            os._exit(1)
        return x * float("nan")

    def _step(self):
        x, y, y_all = self._batches.next()
        if self._fault is not None and self.step_count + 1 == self._fault[1]:
            x = self._inject(x)
        out = self.ddp(x)
        share = self._global_loss(out, y, y_all)
        self.optimizer.zero_grad(set_to_none=True)
        (share * self.rank_info.world_size).backward()  # DDP averages the gradients over the ranks
        bad = False
        if self.check_finite:
            grads = [p.grad for p in self._params if p.grad is not None]
            bad = not bool(finite_flag(share, grads)) and not exactly_finite(share, grads)
        flags = self._flags
        flags[0] = 1.0 if bad else 0.0
        flags[1] = 1.0 if self._stop_asked.is_set() else 0.0
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)  # the one agreement per step
        any_bad, any_stop = flags.tolist()
        if any_stop:
            self.stop_agreed = True
            if self.on_stop is not None:
                self.on_stop()
        if any_bad:
            self.optimizer.zero_grad(set_to_none=True)
            return x, y
        self._follow_schedule(self.optimizer)  # the same rate on every rank: it comes from the agreed step count
        self.optimizer.step()
        self.step_count += 1
        with torch.no_grad():
            self._sum_loss += share.detach()
            self._correct += (out.argmax(1) == y).sum()
        self._seen += len(y_all)
        self._window_steps += 1
        return None

    def read_stats(self) -> tuple[float, float, int] | None:
        """The global batches' loss and accuracy since the last read: one all-reduce (every rank calls it
        at the same steps)."""
        if self._window_steps == 0:
            return None
        values = torch.stack([self._sum_loss, self._correct.to(self._sum_loss.dtype)])
        try:
            dist.all_reduce(values)
        except Exception as exc:
            if not _is_collective_error(exc):
                raise
            raise self._peer_failed(_first_line(exc)) from None
        values = values.tolist()
        steps, seen = self._window_steps, self._seen
        per_step = values[0] / steps
        loss = per_step / (seen / steps) if self._sum_reduction else per_step
        self._zero_stats()
        return loss, values[1] / seen, steps

    def _raise_nonfinite(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Every rank comes here at the same step: each diagnoses its own share of the batch (without
        collectives), the findings are gathered, and the first rank that pins the NaN to the input or a
        layer is the one reported."""
        step = self.step_count + 1
        try:
            with local_batchnorm(self.model):
                found = first_nonfinite(self.model, self.loss_fn, x, y)
        except Exception:  # noqa: BLE001  (a failed diagnosis must not hide the fault itself)
            found = ("loss", None)
        gathered: list = [None] * self.rank_info.world_size
        try:
            dist.all_gather_object(gathered, found)
        except Exception:  # noqa: BLE001  (a peer gone as well: this rank's own finding)
            gathered = [None] * self.rank_info.rank + [found]
        order = {"input": 0, "forward": 1, "backward": 2, "loss": 3}
        ranked = sorted((order.get(g[0], 3), r, tuple(g)) for r, g in enumerate(gathered) if g is not None)
        _, where, (phase, layer) = ranked[0]
        label = self.labels[layer] if layer is not None and layer >= 0 else None
        text = self._nonfinite_text(phase, layer)
        info = self.rank_info
        raise NonFiniteError(f"training stopped at step {step} on every rank: {text} (found in rank {where}'s "
                             f"share of the batch, {info.world_size} ranks)", step=step, phase=phase,
                             layer=layer if phase in ("forward", "backward") else None, label=label)

    # ----------------------------------------------------------- evaluation: rank 0 only
    def evaluate(self, split: str = "test", *args: Any, **kwargs: Any) -> Evaluation:
        if self.rank_info.is_main:
            return super().evaluate(split, *args, **kwargs)
        nan = float("nan")
        return Evaluation(self.step_count, split, nan, nan, self._split(split).n, classes=self.classes)

    def describe(self) -> str:
        info = self.rank_info
        return f"{super().describe()} (global), {info.world_size} ranks over {info.backend}"


def _read_fault(rank: int) -> tuple[int, int, str] | None:
    text = os.environ.get(FAULT_ENV)
    if not text:
        return None
    try:
        r, step, kind = text.split(":")
        fault = (int(r), int(step), kind)
    except ValueError:
        return None
    return fault if fault[0] == rank and kind in ("nan", "kill", "exit") else None


# ------------------------------------------------------------------ SIGTERM
def exit_on_sigterm(on_exit: Callable[[], None] | None = None,
                    status: int | Callable[[], int] = 4) -> Callable[[], None]:
    """SIGTERM (torchrun stopping the survivors of a failed rank, or the launcher stopped) ends this rank
    at once with ``status``, even while its main thread waits inside a collective: the signal's number
    reaches a watcher thread through ``signal.set_wakeup_fd``. ``on_exit`` runs first (one line of output);
    ``status`` may be a function (the status known by then). Returns the undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    once = threading.Lock()

    def leave() -> None:
        if not once.acquire(blocking=False):
            return
        with contextlib.suppress(Exception):
            if on_exit is not None:
                on_exit()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        code = 4
        with contextlib.suppress(Exception):
            code = int(status() if callable(status) else status)
        os._exit(code)

    def watch() -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGTERM in data:
                leave()

    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: leave())
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=watch, name="cnnviz-sigterm", daemon=True).start()

    def restore() -> None:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGTERM, previous_handler)

    return restore
