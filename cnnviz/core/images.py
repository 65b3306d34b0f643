"""The person's own images: one file for a forward pass, or a folder with one subfolder per class.

Decoded with Pillow (imported only here), resized and converted to the stack's input; every
problem is a :class:`DataError` with a sentence for the user, never a raw Pillow error.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from . import dataset
from .dataset import (FOLDER_PREFIX, TEST_FRACTION, DataError, DataSplit, Progress, _balanced_order, _cache_get,
                      _cache_put, _check_seed, _check_shape, _finish, _fit_budget)




MAX_FOLDER_IMAGES = 20_000
"""Images read from one folder at most; a larger folder gives a class-balanced subset."""

MAX_IMAGE_PIXELS = 89_478_485
"""Pixels in one image file at most (Pillow's own decompression-bomb threshold)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

FITS = ("stretch", "crop", "pad")



def load_image(path: str | os.PathLike, shape: Sequence[int], *, fit: str = "stretch") -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1], for a single forward pass.

    ``fit`` says how an image of another aspect ratio meets H×W: ``"stretch"``
    (the whole image, distorted), ``"crop"`` (the centre, undistorted) or
    ``"pad"`` (the whole image, undistorted, with black borders). The EXIF
    orientation is applied; transparency is composited over white.
    """
    shape = _check_shape(shape)
    if fit not in FITS:
        raise DataError(f"fit is one of {', '.join(FITS)}, not {fit!r}")
    return _read_image(Path(path), shape, fit)



_warnings_lock = threading.Lock()  # warnings.catch_warnings is not thread-safe



def _read_image(path: Path, shape: tuple[int, int, int], fit: str) -> np.ndarray:
    from PIL import Image

    c, h, w = shape
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: there is no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: this is a folder, not an image file") from None
    except PermissionError:
        raise DataError(f"{path}: permission to read the file was refused") from None
    except OSError as exc:
        raise DataError(f"{path}: the file cannot be read ({exc.strerror or exc})") from None
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise DataError(f"{path}: the file is empty")
        try:
            with _warnings_lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(fh)
        except Image.DecompressionBombError:
            raise DataError(f"{path}: the image is far too large to open safely "
                            f"(more than {MAX_IMAGE_PIXELS:,} pixels)") from None
        except Image.UnidentifiedImageError:
            raise DataError(f"{path}: this is not an image file Pillow can read "
                            f"(PNG, JPEG, BMP, GIF, WebP, TIFF)") from None
        except Exception as exc:  # Pillow raises many kinds on a malformed header
            raise DataError(f"{path}: the image header is damaged ({exc})") from None
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{path}: the image is {width:,}×{height:,} pixels; "
                                f"at most {MAX_IMAGE_PIXELS:,} pixels are accepted")
            if width < 1 or height < 1:
                raise DataError(f"{path}: the image has no pixels")
            try:
                return _decode(image, c, h, w, fit)
            except Image.DecompressionBombError:
                raise DataError(f"{path}: the image is far too large to open safely") from None
            except MemoryError:
                raise DataError(f"{path}: there is not enough memory to decode this image") from None
            except Exception as exc:  # a broken or truncated stream surfaces from any Pillow call
                reason = "the file is truncated" if "truncated" in str(exc) else f"the image data is damaged ({exc})"
                raise DataError(f"{path}: {reason}") from None



def _decode(image, c: int, h: int, w: int, fit: str) -> np.ndarray:
    from PIL import Image, ImageOps

    if image.format == "JPEG":
        image.draft(None, (max(h, w), max(h, w)))
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        peak = float(values.max(initial=0))
        top = 1.0 if mode == "F" and peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))
    elif mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB" if c == 3 else "L")
    growing = image.width < w or image.height < h
    method = Image.Resampling.BILINEAR if growing else Image.Resampling.BOX
    if fit == "crop":
        image = ImageOps.fit(image, (w, h), method)
    elif fit == "pad":
        image = ImageOps.pad(image, (w, h), method, color=0)
    elif image.size != (w, h):
        image = image.resize((w, h), method)
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    if c == 3:
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))
    return np.ascontiguousarray(np.broadcast_to(pixels, (c, h, w)))



def load_folder(path: str | os.PathLike, shape: Sequence[int], seed: int = 0,
                test_fraction: float = TEST_FRACTION, *, progress: Progress | None = None) -> DataSplit:
    """A folder with one subfolder of images per class, as a training and a held-out split.

    Subfolders (sorted by name) are the classes; images are found at any depth
    below them by their suffix (:data:`IMAGE_SUFFIXES`) and stretched to H×W;
    hidden files and folders are left out. At most :data:`MAX_FOLDER_IMAGES`
    images are read (a class-balanced subset beyond that). Files that cannot
    be read are skipped and counted in ``skipped`` and ``notes``. Each class
    with two or more images gives ``test_fraction`` of them, at least one, to
    the test split, chosen by a hash of the file's path: adding files does not
    move others. ``progress(done, total)`` is called as images are read; an
    exception raised from it stops the reading and propagates.
    """
    shape = _check_shape(shape)
    seed = _check_seed(seed)
    if isinstance(test_fraction, bool) or not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise DataError(f"the held-out fraction is between 0 and 1, not {test_fraction!r}")
    if not str(path).strip():
        raise DataError("no folder was given: name a folder that holds one subfolder of images per class")
    root = Path(path).expanduser()
    classes, files, ignored = _scan_folder(root)
    signature = hashlib.blake2b(repr([(f, s, t) for f, _, s, t in files]).encode(), digest_size=16).hexdigest()
    key = ("folder", str(root.resolve()), shape, seed, float(test_fraction), signature)
    cached = _cache_get(key)
    if cached is not None:
        return cached

    notes = []
    if ignored:
        notes.append(f"ignored {ignored:,} file{'s' if ignored != 1 else ''} that {'are' if ignored != 1 else 'is'} "
                     f"not an image by name (images end in {', '.join(IMAGE_SUFFIXES)})")
    labels = np.array([label for _, label, _, _ in files], dtype=np.int64)
    hashes = np.array([_path_hash(f) for f, _, _, _ in files], dtype=np.uint64)
    limit = min(MAX_FOLDER_IMAGES, _fit_budget(len(files), 0, shape)[0])
    chosen = np.arange(len(files))
    if len(files) > limit:
        chosen = np.sort(_balanced_order(labels, np.argsort(hashes, kind="stable"))[:limit])
        why = ("the limit for a folder" if limit == MAX_FOLDER_IMAGES
               else f"as many as fit in {dataset.MAX_BYTES >> 20:,} MiB at {shape[0]}×{shape[1]}×{shape[2]}")
        notes.append(f"used {limit:,} of {len(files):,} images ({why})")

    test_mask = np.zeros(len(files), dtype=bool)
    for cls in np.unique(labels[chosen]):
        where = chosen[labels[chosen] == cls]
        if len(where) < 2:
            notes.append(f"the class {classes[cls]!r} has one image: it is used for training only")
            continue
        n_test = min(max(round(test_fraction * len(where)), 1), len(where) - 1)
        test_mask[where[np.argsort(hashes[where], kind="stable")[:n_test]]] = True
    if not test_mask.any():
        raise DataError(f"{root}: there are too few images to hold any out for testing; "
                        f"put at least two images in a class subfolder")
    train = np.random.default_rng(seed).permutation(chosen[~test_mask[chosen]])
    test = chosen[test_mask[chosen]]

    train_x, train_ok, test_x, test_ok, failures = _read_many(root, files, train, test, shape, progress)
    train_y, test_y = labels[train][train_ok], labels[test][test_ok]
    if failures:
        notes.append(f"skipped {len(failures):,} file{'s' if len(failures) != 1 else ''} that could not be read, "
                     f"for example {failures[0]}")
    present = np.unique(np.concatenate([train_y, test_y]))
    for missing in sorted(set(range(len(classes))) - set(present.tolist())):
        notes.append(f"the subfolder {classes[missing]!r} has no readable images and is left out")
    if len(present) == 0:
        raise DataError(f"{root}: none of the images could be read (for example {failures[0]})")
    if len(present) < 2:
        raise DataError(f"{root}: only the subfolder {classes[present[0]]!r} has readable images; "
                        f"training needs at least two classes, one subfolder each")
    if len(test_y) == 0 or len(train_y) == 0:
        raise DataError(f"{root}: none of the images {'held out for testing' if len(test_y) == 0 else 'for training'} "
                        f"could be read (for example {failures[0]})")
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    split = _finish(f"{FOLDER_PREFIX}{path}", train_x, remap[train_y], test_x, remap[test_y],
                    tuple(classes[i] for i in present), f"your images from {root}",
                    skipped=len(failures), notes=notes)
    _cache_put(key, split)
    return split



def _path_hash(relative: str) -> int:
    return int.from_bytes(hashlib.blake2b(relative.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big")



def _scan_folder(root: Path) -> tuple[tuple[str, ...], list[tuple[str, int, int, int]], int]:
    """Class names, and (relative path, label, size, mtime) of each image file, and how many files were not images."""
    if not root.exists():
        raise DataError(f"{root}: there is no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: this is a file; a training folder holds one subfolder of images per class")
    try:
        with os.scandir(root) as listing:
            entries = sorted((e for e in listing if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{root}: the folder cannot be read ({exc.strerror or exc})") from None
    if not entries:
        raise DataError(f"{root}: there are no subfolders; put each class's images in a subfolder "
                        f"named after the class (for example cats/ and dogs/)")
    classes = tuple(e.name for e in entries)
    files: list[tuple[str, int, int, int]] = []
    ignored = 0
    for label, entry in enumerate(entries):
        found = []
        for folder, dirs, names in os.walk(entry.path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file_name in names:
                if file_name.startswith("."):
                    continue
                full = os.path.join(folder, file_name)
                if not file_name.lower().endswith(IMAGE_SUFFIXES):
                    ignored += 1
                    continue
                try:
                    info = os.stat(full)
                except OSError:
                    info = None
                relative = os.path.relpath(full, root)
                found.append((relative, label, info.st_size if info else -1, info.st_mtime_ns if info else -1))
        files.extend(sorted(found))
    if not files:
        raise DataError(f"{root}: the class subfolders ({', '.join(classes[:5])}"
                        f"{', …' if len(classes) > 5 else ''}) hold no images "
                        f"(files ending in {', '.join(IMAGE_SUFFIXES)})")
    if len({label for _, label, _, _ in files}) < 2:
        only = classes[files[0][1]]
        raise DataError(f"{root}: only the subfolder {only!r} holds images; training needs at least two "
                        f"classes, one subfolder each")
    return classes, files, ignored



def _read_many(root: Path, files: list[tuple[str, int, int, int]], train: np.ndarray, test: np.ndarray,
               shape: tuple[int, int, int], progress: Progress | None):
    """Decode the train and test files into two arrays, in order, leaving out the ones that fail.

    Returns the two arrays (rows of readable images only), which rows of
    ``train`` and ``test`` were readable, and a message for each failure.
    """
    def read(index: int) -> np.ndarray | str:
        try:
            return _read_image(root / files[index][0], shape, "stretch")
        except DataError as exc:
            return str(exc)

    order = np.concatenate([train, test])
    arrays = [np.empty((len(train), *shape), dtype=np.float32), np.empty((len(test), *shape), dtype=np.float32)]
    filled = [0, 0]
    readable = np.zeros(len(order), dtype=bool)
    failures: list[str] = []
    workers = max(1, min(8, os.cpu_count() or 1))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    try:
        for k, result in enumerate(pool.map(read, order.tolist())):
            if isinstance(result, str):
                failures.append(result)
            else:
                side = 0 if k < len(train) else 1
                arrays[side][filled[side]] = result
                filled[side] += 1
                readable[k] = True
            if progress is not None and (k % 64 == 63 or k == len(order) - 1):
                progress(k + 1, len(order))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    train_x, test_x = arrays[0][:filled[0]], arrays[1][:filled[1]]
    if filled[0] < len(train):
        train_x = train_x.copy()
    if filled[1] < len(test):
        test_x = test_x.copy()
    return train_x, readable[:len(train)], test_x, readable[len(train):], failures
