"""Bundled data sets, generated shapes and the user's own images, as numpy arrays.

No Qt and no torch here: the engine turns the arrays into tensors.

API::

    NAMES = ("digits", "fashion-mnist", "shapes")      # plus "folder:<path>"
    load(name, shape, seed=0) -> DataSplit             # shape = (C, H, W)
    load_folder(path, shape, seed=0, test_fraction=0.2) -> DataSplit
    load_image(path, shape, *, fit="stretch") -> np.ndarray   # float32 (C, H, W)
    generate_shapes(n, shape, seed=0) -> Dataset
    describe(name) -> str                              # one line for a tooltip
    normalize(images, mean, std) -> np.ndarray         # (x - mean) / std per channel
    clear_cache() -> None
    DataError(ValueError)                              # str() is a message for the user

A :class:`DataSplit` holds a ``train`` and a ``test`` :class:`Dataset`; each
has ``images``, float32 ``(N, C, H, W)``, C-contiguous and read-only (copy
before changing them; ``torch.tensor(x)`` copies, ``torch.from_numpy`` warns
once), and ``labels``, int64 ``(N,)`` in ``0 .. len(classes) - 1``.

Values are in [0, 1] and are not normalised: 0 is black (the background of
digits, Fashion-MNIST and shapes), 1 is white or full ink. ``DataSplit.mean``
and ``DataSplit.std`` are per-channel statistics of the training split, for
the engine to normalise with ``normalize(x, split.mean, split.std)``, the same
for images from :func:`load_image` fed to a model trained on that split.

Every set is resized to the requested ``(C, H, W)``: exact area averaging
along an axis that shrinks, bilinear interpolation (pixel centres aligned, as
``torch``'s ``align_corners=False``) along one that grows. Greyscale sets are
repeated into every channel; a colour image becomes greyscale (ITU-R 601
luma) for C = 1, RGB for C = 3, and greyscale repeated for any other C.

The held-out ``test`` split is fixed: the same images for every seed (a
stratified 20 % of digits and Fashion-MNIST, 2,000 shapes drawn from their own
stream, in a folder a stratified share chosen by a hash of each file's path),
so ``test_accuracy`` compares across runs. ``seed`` orders the training split
(and draws the training shapes). One loaded set (train and test) is kept under
:data:`MAX_BYTES` of float32: past that a class-balanced subset is used and
``DataSplit.notes`` says so. Results are cached per (name, shape, seed) in
the process; a folder's cache entry is keyed by its files' names, sizes and
modification times as well.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnviz.core.data.dataset import (
    FOLDER_PREFIX,
    TEST_FRACTION,
    DataError,
    DataSplit,
    Progress,
    _balanced_order,
    _budget_note,
    _cache_get,
    _cache_put,
    _check_seed,
    _check_shape,
    _finish,
    _fit_budget,
    _resize_grey,
    _stratified_split,
)
from cnnviz.core.data.images import (
    MAX_FOLDER_IMAGES,
    load_folder,
    survey_folder,
)
from cnnviz.core.data.synthetic import SHAPE_CLASSES, SHAPES_TEST, SHAPES_TRAIN, _load_shapes
from cnnviz.core.model import assets

NAMES = ("digits", "fashion-mnist", "shapes")


DIGIT_CLASSES = tuple(str(d) for d in range(10))

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DIGITS_ATTRIBUTION = ("Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak, "
                      "UCI Machine Learning Repository (1998), https://doi.org/10.24432/C50P49, "
                      "test set as shipped by scikit-learn; CC BY 4.0")

FASHION_ATTRIBUTION = ("Fashion-MNIST test split, H. Xiao, K. Rasul and R. Vollgraf (2017), "
                       "arXiv:1708.07747, https://github.com/zalandoresearch/fashion-mnist; "
                       "MIT licence, © 2017 Zalando SE")

_SPLIT_SEED = 20_171_201



def load(name: str, shape: Sequence[int], seed: int = 0, *, progress: Progress | None = None) -> DataSplit:
    """The data set ``name`` (one of :data:`NAMES` or ``"folder:<path>"``) at ``shape`` = (C, H, W).

    ``progress`` is passed to :func:`load_folder`; the bundled sets load in well under a second.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        return load_folder(name[len(FOLDER_PREFIX):], shape, seed, progress=progress)
    if name not in NAMES:
        raise DataError(f"there is no data set called {name!r}; choose one of {', '.join(NAMES)} "
                        f"or {FOLDER_PREFIX}<path> for a folder of your images")
    shape = _check_shape(shape)
    seed = _check_seed(seed)
    key = (name, shape, seed)
    cached = _cache_get(key)
    if cached is not None:
        return cached
    if name == "shapes":
        split = _load_shapes(shape, seed)
    else:
        split = _load_bundled(name, shape, seed)
    _cache_put(key, split)
    return split



NATIVE_SHAPES = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28)}
"""The bundled sets' own image size (channels, height, width); the generated shapes have any size."""


def native(name: str) -> tuple[tuple[int, int, int] | None, tuple[str, ...]]:
    """A data set's own image shape (None where any size fits: the shapes) and its classes.

    A folder is surveyed from its file headers (:func:`~cnnviz.core.data.images.survey_folder`);
    a :class:`DataError` when it cannot be read.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        survey = survey_folder(name[len(FOLDER_PREFIX):])
        return (survey.channels, survey.height, survey.width), survey.classes
    if name == "digits":
        return NATIVE_SHAPES[name], DIGIT_CLASSES
    if name == "fashion-mnist":
        return NATIVE_SHAPES[name], FASHION_CLASSES
    if name == "shapes":
        return None, tuple(SHAPE_CLASSES)
    raise DataError(f"{name!r} is not a data set")


def describe(name: str) -> str:
    """One line for a tooltip: size, classes, source and licence."""
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        return (f"your images in {name[len(FOLDER_PREFIX):]}, one subfolder per class "
                f"(PNG, JPEG and other common formats; at most {MAX_FOLDER_IMAGES:,} images)")
    if name == "digits":
        return ("1,797 handwritten digits, 8×8 greyscale, 10 classes (0–9); "
                "UCI optical digits test set, CC BY 4.0")
    if name == "fashion-mnist":
        return ("10,000 photos of clothing, 28×28 greyscale, 10 classes (T-shirt/top … Ankle boot); "
                "Fashion-MNIST test split, MIT licence © 2017 Zalando SE")
    if name == "shapes":
        return (f"{SHAPES_TRAIN + SHAPES_TEST:,} shapes drawn at the input size, 10 classes "
                f"({', '.join(SHAPE_CLASSES)}); generated by cnnviz")
    raise DataError(f"there is no data set called {name!r}; choose one of {', '.join(NAMES)} "
                    f"or {FOLDER_PREFIX}<path>")



@functools.lru_cache(maxsize=None)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    path = assets.path("data", "digits.csv.gz")
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"the bundled digits file {path} cannot be read ({exc}); reinstall cnnviz") from exc
    if table.ndim != 2 or table.shape[1] != 65 or table[:, :64].min() < 0 or table[:, :64].max() > 16:
        raise DataError(f"the bundled digits file {path} is damaged; reinstall cnnviz")
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    labels = table[:, 64]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels



def _read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"the bundled file {path} cannot be read ({exc}); reinstall cnnviz") from exc
    header = 4 + 4 * dims
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"the bundled file {path} is not an IDX file of {dims} dimensions; reinstall cnnviz")
    size = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    if len(data) != header + int(np.prod(size)):
        raise DataError(f"the bundled file {path} is damaged (wrong length); reinstall cnnviz")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(size)



@functools.lru_cache(maxsize=None)
def _fashion_raw() -> tuple[np.ndarray, np.ndarray]:
    folder = assets.path("data", "fashion-mnist")
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz", 0x0803, 3)
    labels = _read_idx(folder / "t10k-labels-idx1-ubyte.gz", 0x0801, 1).astype(np.int64)
    if len(images) != len(labels) or labels.max() >= len(FASHION_CLASSES):
        raise DataError("the bundled Fashion-MNIST files do not match each other; reinstall cnnviz")
    labels.flags.writeable = False
    return images, labels



def _load_bundled(name: str, shape: tuple[int, int, int], seed: int) -> DataSplit:
    if name == "digits":
        (raw, labels), scale, classes, attribution = _digits_raw(), 16.0, DIGIT_CLASSES, DIGITS_ATTRIBUTION
    else:
        (raw, labels), scale, classes, attribution = _fashion_raw(), 255.0, FASHION_CLASSES, FASHION_ATTRIBUTION
    train, test = _stratified_split(labels, TEST_FRACTION, np.random.default_rng(_SPLIT_SEED))
    notes = []
    train = np.random.default_rng(seed).permutation(train)
    keep_train, keep_test = _fit_budget(len(train), len(test), shape)
    if keep_train + keep_test < len(labels):
        notes.append(_budget_note(keep_train + keep_test, len(labels), shape))
        kept = set(_balanced_order(labels, train)[:keep_train].tolist())
        train = np.array([i for i in train if i in kept], dtype=np.int64)
        test = np.sort(_balanced_order(labels, test)[:keep_test])
    return _finish(name, _resize_grey(raw[train], scale, shape), labels[train],
                   _resize_grey(raw[test], scale, shape), labels[test],
                   classes, attribution, notes=notes)
