"""What a data set is (:class:`Dataset`, :class:`DataSplit`, :class:`DataError`) and the machinery
every source shares: shape checks, the memory budget, the per-process cache, stratified splits,
per-channel statistics and resizing. Numpy only; :mod:`cnnviz.core.data` is the public face.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from cnnviz.core.model.layers import MAX_INPUT_CHANNELS, MAX_INPUT_SIZE

FOLDER_PREFIX = "folder:"
"""A data-set name that starts with this names a folder of the person's images."""
TEST_FRACTION = 0.2

MAX_BYTES = 1 << 30
"""float32 bytes of one loaded set, train and test together (1 GiB)."""

_CACHE_BYTES = 2 * MAX_BYTES

_CHUNK_PIXELS = 1 << 20

_STATS_IMAGES = 2_000

Progress = Callable[[int, int], None]
"""Called with (images read, images to read); raise from it to stop."""



class DataError(ValueError):
    """Data that cannot be used; ``str()`` is a sentence for the user."""



@dataclass(frozen=True, eq=False)
class Dataset:
    """One split: ``images`` float32 (N, C, H, W) in [0, 1], ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)



@dataclass(frozen=True, eq=False)
class DataSplit:
    """A training split and a held-out test split that training never sees."""

    name: str
    train: Dataset
    test: Dataset
    classes: tuple[str, ...]
    attribution: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: int = 0
    """Files of a folder that could not be read and were left out."""
    notes: tuple[str, ...] = ()
    """Sentences for the user about what was left out or reduced."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]



def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(images - mean) / std`` per channel, float32; ``images`` is (C, H, W) or (N, C, H, W)."""
    m = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    return ((np.asarray(images, dtype=np.float32) - m) / s).astype(np.float32, copy=False)



def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()



def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in shape)
        exact = all(int(v) == v for v in shape)
    except (TypeError, ValueError):
        raise DataError(f"an input shape is three whole numbers (channels, height, width), got {shape!r}") from None
    if not exact:
        raise DataError(f"an input shape is three whole numbers (channels, height, width), got {shape!r}")
    if not 1 <= c <= MAX_INPUT_CHANNELS:
        raise DataError(f"images can have 1 to {MAX_INPUT_CHANNELS} channels, not {c}")
    if not (1 <= h <= MAX_INPUT_SIZE and 1 <= w <= MAX_INPUT_SIZE):
        raise DataError(f"images can be 1 to {MAX_INPUT_SIZE} pixels high and wide, not {h}×{w}")
    return c, h, w



def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"a seed is a whole number of 0 or more, got {seed!r}")
    return int(seed)



def _fit_budget(n_train: int, n_test: int, shape: tuple[int, int, int]) -> tuple[int, int]:
    """How many training and test images fit in :data:`MAX_BYTES`, keeping their proportion."""
    per_image = 4 * shape[0] * shape[1] * shape[2]
    room = MAX_BYTES // per_image
    if n_train + n_test <= room:
        return n_train, n_test
    if room < 2:
        mib = per_image / (1 << 20)
        raise DataError(f"one {shape[0]}×{shape[1]}×{shape[2]} image takes {mib:,.0f} MiB; "
                        f"a data set at that size does not fit in {MAX_BYTES >> 20:,} MiB. "
                        f"Use a smaller input size")
    keep_test = max(1, round(room * n_test / (n_train + n_test)))
    return room - keep_test, keep_test



def _budget_note(kept: int, total: int, shape: tuple[int, int, int]) -> str:
    return (f"used {kept:,} of {total:,} images: at {shape[0]}×{shape[1]}×{shape[2]} "
            f"that is as many as fit in {MAX_BYTES >> 20:,} MiB")



_cache: OrderedDict[tuple, DataSplit] = OrderedDict()

_cache_lock = threading.Lock()



def _split_bytes(split: DataSplit) -> int:
    return split.train.images.nbytes + split.test.images.nbytes



def _cache_get(key: tuple) -> DataSplit | None:
    with _cache_lock:
        split = _cache.get(key)
        if split is not None:
            _cache.move_to_end(key)
        return split



def _cache_put(key: tuple, split: DataSplit) -> None:
    with _cache_lock:
        _cache[key] = split
        _cache.move_to_end(key)
        while len(_cache) > 1 and sum(_split_bytes(s) for s in _cache.values()) > _CACHE_BYTES:
            _cache.popitem(last=False)



def _balanced_order(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``index`` reordered round-robin over classes, so that any prefix is class-balanced."""
    lab = labels[index]
    rank = np.empty(len(index), dtype=np.int64)
    for cls in np.unique(lab):
        where = np.flatnonzero(lab == cls)
        rank[where] = np.arange(len(where))
    return index[np.lexsort((lab, rank))]



def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, test = [], []
    for cls in np.unique(labels):
        where = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(fraction * len(where))
        if len(where) >= 2:
            n_test = min(max(n_test, 1), len(where) - 1)
        test.append(where[:n_test])
        train.append(where[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))



def _finish(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
            classes: tuple[str, ...], attribution: str, skipped: int = 0, notes: Iterable[str] = ()) -> DataSplit:
    """The split, read-only; ``train_x`` is already in training order."""
    mean, std = _channel_stats(train_x[:_STATS_IMAGES])
    for array in (train_x, train_y, test_x, test_y):
        array.flags.writeable = False
    return DataSplit(name=name,
                     train=Dataset(train_x, train_y.astype(np.int64, copy=False), classes),
                     test=Dataset(test_x, test_y.astype(np.int64, copy=False), classes),
                     classes=classes, attribution=attribution, mean=mean, std=std,
                     skipped=skipped, notes=tuple(notes))



def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (1 where an image set is flat)."""
    n, c = images.shape[:2]
    if n == 0:
        return (0.0,) * c, (1.0,) * c
    total = np.zeros(c)
    squares = np.zeros(c)
    step = max(1, (_CHUNK_PIXELS >> 2) // max(1, images[0].size))
    for start in range(0, n, step):
        part = images[start:start + step]
        total += part.sum(axis=(0, 2, 3), dtype=np.float64)
        squares += np.einsum("nchw,nchw->c", part, part)
    count = max(1, n * images.shape[2] * images.shape[3])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)



def _axis_weights(n_in: int, n_out: int) -> np.ndarray | None:
    """(n_out, n_in) weights: exact pixel-area overlap when shrinking, bilinear when growing."""
    if n_in == n_out:
        return None
    if n_out < n_in:
        scale = n_in / n_out
        edges = np.arange(n_out + 1) * scale
        j = np.arange(n_in)[None, :]
        overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
        weights = np.clip(overlap, 0.0, None) / scale
    else:
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        j0 = np.floor(src).astype(np.int64)
        j1 = np.minimum(j0 + 1, n_in - 1)
        frac = src - j0
        weights = np.zeros((n_out, n_in))
        rows = np.arange(n_out)
        np.add.at(weights, (rows, j0), 1.0 - frac)
        np.add.at(weights, (rows, j1), frac)
    return weights.astype(np.float32)



def _resize_grey(raw: np.ndarray, scale: float, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (N, h, w) divided by ``scale`` -> float32 (N, C, H, W), greyscale repeated into C channels."""
    n, h, w = raw.shape
    c, out_h, out_w = shape
    wy, wx = _axis_weights(h, out_h), _axis_weights(w, out_w)
    out = np.empty((n, c, out_h, out_w), dtype=np.float32)
    step = max(1, _CHUNK_PIXELS // max(h * w, out_h * out_w, h * out_w, out_h * w))
    for start in range(0, n, step):
        x = raw[start:start + step].astype(np.float32)
        x /= np.float32(scale)
        m = len(x)
        if wy is not None:
            x = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(-1, h) @ wy.T
            x = np.ascontiguousarray(x.reshape(m, w, out_h).transpose(0, 2, 1))
        if wx is not None:
            x = (x.reshape(-1, w) @ wx.T).reshape(m, out_h, out_w)
        np.clip(x, 0.0, 1.0, out=x)
        out[start:start + m] = x[:, None]
    return out
