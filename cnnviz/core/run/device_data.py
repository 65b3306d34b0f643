"""A data set on the device, and shuffled batches from it without a DataLoader.

The images are normalised once with the training split's per-channel mean
and standard deviation and kept on the device when they take at most
:data:`DEVICE_DATA_FRACTION` of its free memory (the bundled sets are a few
megabytes); otherwise they stay in pinned host memory and each batch is copied
with ``non_blocking=True``. Batches are slices of one ``randperm`` per epoch,
drawn from the session's own generator, so a seed gives the same order. No Qt.
"""
from __future__ import annotations

import numpy as np
import torch

from cnnviz.core.run import devices
from cnnviz.core.run.faults import DataUnavailable
from cnnviz.core.run.memory import DEVICE_DATA_FRACTION  # the estimate counts the same share


def load_data(name: str, shape: tuple[int, int, int], seed: int = 0):
    """``data.load`` with its DataError as the engine's :class:`DataUnavailable`."""
    from cnnviz.core import data

    try:
        return data.load(name, shape, seed)
    except data.DataError as exc:
        raise DataUnavailable(str(exc)) from None


def fits_on_device(split, device: torch.device) -> bool:
    """Whether ``split`` (train and test) should live on ``device`` rather than in pinned host memory."""
    if device.type == "cpu":
        return True
    free = devices.free_memory(device)
    size = sum(np.asarray(s.images).nbytes + np.asarray(s.labels).nbytes * 2 for s in (split.train, split.test))
    return free is None or size <= DEVICE_DATA_FRACTION * free


class DeviceSplit:
    """One split on the device (or pinned on the host when it would not fit): normalised images, labels."""

    def __init__(self, dataset, mean, std, device: torch.device, on_device: bool) -> None:
        self.raw = dataset.images
        self.labels_np = dataset.labels
        images = torch.tensor(np.asarray(dataset.images), dtype=torch.float32)
        m = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        images.sub_(m).div_(s)  # in place: one copy of the set, not three at once (memory.py counts one)
        labels = torch.tensor(np.asarray(dataset.labels), dtype=torch.long)
        self.device = device
        self.on_device = on_device or device.type == "cpu"
        if self.on_device:
            self.images, self.labels = images.to(device), labels.to(device)
        else:
            pin = device.type == "cuda"
            self.images = images.pin_memory() if pin else images
            self.labels = labels.pin_memory() if pin else labels
        self.n = len(labels)

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``index`` (on the images' device) as device tensors."""
        x = self.images.index_select(0, index)
        y = self.labels.index_select(0, index)
        if not self.on_device:
            pin = self.device.type == "cuda"
            x = (x.pin_memory() if pin else x).to(self.device, non_blocking=pin)
            y = (y.pin_memory() if pin else y).to(self.device, non_blocking=pin)
        return x, y

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.images[start:stop], self.labels[start:stop]
        if not self.on_device:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x, y


class Batches:
    """Shuffled batches without a DataLoader: one ``randperm`` per epoch from the session's generator."""

    def __init__(self, split: DeviceSplit, batch_size: int, seed: int) -> None:
        self.split = split
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.index_device = split.images.device
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def _refill(self) -> None:
        n, b = self.split.n, self.batch_size
        rest = self.perm[self.pos:] if self.perm is not None and n < b else None
        parts = [] if rest is None else [rest]
        have = 0 if rest is None else len(rest)
        while have < b:
            parts.append(torch.randperm(n, generator=self.generator).to(self.index_device))
            have += n
        self.perm = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.perm is None or self.pos + self.batch_size > len(self.perm):
            self._refill()
        index = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.split.take(index)
