"""Which devices this machine has, and turning a ``--device`` string into a ``torch.device``.

``auto`` picks CUDA, then MPS, then the CPU (SPEC §2). A device that was asked
for and is not present is a :class:`DeviceError` naming what is there, never a
silent fallback. :func:`list_devices` is what the window's picker shows: every
device really present, with its name and memory. No Qt.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache

import torch

from cnnviz.core.model.units import format_bytes
from cnnviz.core.run.faults import DeviceError

SPEC_RE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d{1,4}))?$")
ACCEPTED = "auto, cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class DeviceInfo:
    """One device for the picker: ``id`` is what ``--device`` takes (``cuda:0``, ``mps``, ``cpu``)."""

    id: str
    name: str
    memory_bytes: int | None
    kind: str

    @property
    def label(self) -> str:
        """``cuda:0 · NVIDIA H100 80GB HBM3 · 79.1 GiB``."""
        parts = [self.id, self.name]
        if self.memory_bytes:
            parts.append(format_bytes(self.memory_bytes))
        return " · ".join(parts)


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _cuda_count() -> int:
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001  (a broken driver means no usable CUDA device)
        return 0


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _mps_memory() -> int | None:
    fn = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
    try:
        return int(fn()) if fn is not None else ram_bytes()
    except Exception:  # noqa: BLE001
        return ram_bytes()


def list_devices() -> list[DeviceInfo]:
    """Every device present, in the order ``auto`` prefers them (CUDA, MPS, CPU)."""
    found = []
    for i in range(_cuda_count()):
        props = torch.cuda.get_device_properties(i)
        found.append(DeviceInfo(f"cuda:{i}", props.name, int(props.total_memory), "cuda"))
    if _mps_available():
        found.append(DeviceInfo("mps", "Apple GPU (Metal)", _mps_memory(), "mps"))
    found.append(DeviceInfo("cpu", cpu_name(), ram_bytes(), "cpu"))
    return found


def parse(spec: str | None) -> tuple[str, int | None]:
    """``"cuda:1"`` → ``("cuda", 1)``; a malformed string is a DeviceError."""
    text = "auto" if spec is None else str(spec).strip()
    match = SPEC_RE.match(text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"unknown device {spec!r}: expected {ACCEPTED}")
    index = match.group(2)
    return match.group(1), (int(index) if index is not None else None)


def _why_no_cuda() -> str:
    build = torch.__version__
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {build} is a CPU-only build"
    return f"torch {build} was built for CUDA {torch.version.cuda or torch.version.hip} but finds no GPU or driver"


def _why_no_mps() -> str:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return f"torch {torch.__version__} was built without MPS (it exists only on macOS)"
    return "MPS needs macOS 12.3 or later on a Mac with Apple silicon or an AMD GPU"


def resolve(spec: str | None = "auto") -> torch.device:
    """The ``torch.device`` for a ``--device`` string; CUDA devices always carry their index."""
    kind, index = parse(spec)
    if kind == "auto":
        if _cuda_count():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"mps was asked for but this machine has no MPS device ({_why_no_mps()})")
        return torch.device("mps")
    count = _cuda_count()
    if count == 0:
        raise DeviceError(f"{spec.strip()} was asked for but this machine has no CUDA device ({_why_no_cuda()})")
    if index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if index >= count:
        have = "only cuda:0 exists" if count == 1 else f"only cuda:0..cuda:{count - 1} exist"
        raise DeviceError(f"cuda:{index} was asked for but {have}")
    return torch.device("cuda", index)


def describe(device: torch.device) -> DeviceInfo:
    """Name and memory of a resolved device."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return DeviceInfo(f"cuda:{index}", props.name, int(props.total_memory), "cuda")
    if device.type == "mps":
        return DeviceInfo("mps", "Apple GPU (Metal)", _mps_memory(), "mps")
    return DeviceInfo("cpu", cpu_name(), ram_bytes(), "cpu")


def device_id(device: torch.device) -> str:
    """``cpu``, ``mps`` or ``cuda:N``: where the work actually ran."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (for timing); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def empty_cache(device: torch.device) -> None:
    """Hand cached blocks back to the driver (after an out-of-memory error)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def memory_allocated(device: torch.device) -> int | None:
    """Bytes held by tensors on ``device`` (None on the CPU, where torch does not count)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    if device.type == "mps":
        return int(torch.mps.current_allocated_memory())
    return None


def free_memory(device: torch.device) -> int | None:
    """Bytes the device could still hand out (None where that is unknown); on the CPU,
    :func:`cnnviz.core.run.memory.cpu_free_bytes` (available memory within the cgroup's limit)."""
    if device.type == "cpu":
        from cnnviz.core.run import memory

        return memory.cpu_free_bytes()
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        limit = _mps_memory()
        used = getattr(torch.mps, "driver_allocated_memory", lambda: 0)()
        return None if limit is None else max(0, int(limit) - int(used))
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError, MPS's out-of-memory RuntimeError and the CPU allocator's."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
