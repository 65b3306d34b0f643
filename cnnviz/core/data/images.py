"""The person's own images: one file for a forward pass, or a folder with one subfolder per class.

Decoded with Pillow (imported only here), resized and converted to the stack's input; every
problem is a :class:`DataError` with a sentence for the user, never a raw Pillow error.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import os
import stat
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnviz.core.data import dataset
from cnnviz.core.data.dataset import (
    FOLDER_PREFIX,
    TEST_FRACTION,
    DataError,
    DataSplit,
    Progress,
    _balanced_order,
    _cache_get,
    _cache_put,
    _check_seed,
    _check_shape,
    _finish,
    _fit_budget,
)

MAX_FOLDER_IMAGES = 20_000
"""Images read from one folder at most; a larger folder gives a class-balanced subset."""

MAX_IMAGE_PIXELS = 89_478_485
"""Pixels in one image file at most (Pillow's own decompression-bomb threshold)."""

MAX_IMAGE_BYTES = 256 << 20
"""Decoded size of one image at most (256 MiB): width × height × the bytes Pillow keeps per pixel.

Checked from the header, before anything is decoded. The pixel limit alone lets a
9,400×9,400 16-bit or colour image through, and decoding one took 1.3 GiB.
"""

MAX_DECODING_BYTES = 512 << 20
"""Memory for all the images being decoded at once, across every thread (512 MiB).

Each image counts its decoded size plus the converted copy that decoding makes
(:func:`_decoding_bytes`); a thread whose image does not fit waits for the others.
"""

MAX_FOLDER_DEPTH = 32
"""Levels of folders below a class folder that are searched for images; deeper ones are left out with a note."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

FITS = ("stretch", "crop", "pad")



def load_image(path: str | os.PathLike, shape: Sequence[int], *, fit: str = "stretch") -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1], for a single forward pass.

    ``fit`` says how an image of another aspect ratio meets H×W: ``"stretch"``
    (the whole image, distorted), ``"crop"`` (the centre, undistorted) or
    ``"pad"`` (the whole image, undistorted, with black borders). The EXIF
    orientation is applied; transparency is composited over white. Only a
    regular file is opened (a named pipe would block for ever), and one over
    :data:`MAX_IMAGE_BYTES` decoded is refused from its header; decoding
    waits while other threads hold :data:`MAX_DECODING_BYTES`.
    """
    shape = _check_shape(shape)
    if fit not in FITS:
        raise DataError(f"fit is one of {', '.join(FITS)}, not {fit!r}")
    return _read_image(Path(path), shape, fit)



_warnings_lock = threading.Lock()  # warnings.catch_warnings is not thread-safe



def _what_it_is(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, for a message."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"



def _open_regular(path: Path):
    """``path`` opened for reading in binary, or a :class:`DataError` unless it is a regular file.

    Opening a named pipe for reading blocks until something writes to it, and
    no Ctrl+C or cancel reaches a thread blocked there; a device may never
    end. So the file is looked at with ``os.stat`` first and anything but a
    regular file is refused unopened; it is then opened without blocking and
    looked at again, in case a pipe was put in its place in between.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: there is no such file") from None
    except PermissionError:
        raise DataError(f"{path}: permission to read the file was refused") from None
    except ValueError:  # an embedded NUL character
        raise DataError(f"{str(path)!r}: a file name cannot contain a NUL character") from None
    except OSError as exc:
        raise DataError(f"{path}: the file cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: this is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: this is {_what_it_is(info.st_mode)}, not an image file; only regular files are read")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise DataError(f"{path}: there is no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: this is a folder, not an image file") from None
    except PermissionError:
        raise DataError(f"{path}: permission to read the file was refused") from None
    except OSError as exc:
        raise DataError(f"{path}: the file cannot be read ({exc.strerror or exc})") from None
    fh = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        fh.close()
        raise DataError(f"{path}: the file cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        fh.close()
        raise DataError(f"{path}: this is {_what_it_is(mode)}, not an image file; only regular files are read")
    return fh



def _pixel_bytes(mode: str) -> int:
    """Bytes Pillow keeps per pixel in ``mode``: 1 for 1, L and P, 2 for 16-bit, else 4 (2–4 bands take 32 bits)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16") or mode in ("BGR;15", "BGR;16"):
        return 2
    return 3 if mode == "BGR;24" else 4



_GREY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")

_SCALED_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")

_STRIP_PIXELS = 1 << 20
"""Pixels converted at a time, so that a conversion's temporaries stay small beside the image."""



def _working_mode(image, c: int) -> str | None:
    """The mode the full-size image is converted to before resizing, or None where it is resized as it is.

    A greyscale image stays greyscale (1 byte a pixel) until it is resized,
    even for 3 channels: repeating the grey into R, G and B after resizing
    gives the same numbers as before, at a quarter of the memory.
    """
    grey = image.mode in _GREY_MODES
    work = "L" if grey or c != 3 else "RGB"
    if image.mode == work and "transparency" not in image.info:
        return None
    return work



def _decoding_bytes(image, shape: tuple[int, int, int]) -> int:
    """What decoding ``image`` at ``shape`` takes at its peak, from its header; :data:`MAX_DECODING_BYTES` counts it.

    The decoded image and its converted full-size copy (:func:`_working_mode`)
    side by side, with one strip's float32 temporaries, or, where the EXIF
    orientation turns it (known only once it is decoded, so always counted),
    the last full-size image and its turned copy; then the float32 result
    and its one temporary. Measured: a 9,400×9,400 16-bit PNG counted at
    269 MiB peaked at 272 MiB above the process's size.
    """
    c, h, w = shape
    pixels = image.width * image.height
    decoded = pixels * _pixel_bytes(image.mode)
    work = _working_mode(image, c)
    if work is None:
        peak = 2 * decoded
    else:
        converted = pixels * _pixel_bytes(work)
        peak = max(decoded + converted + 16 * min(pixels, _STRIP_PIXELS), 2 * converted)
    return peak + 8 * max(c, 3) * h * w



class _Room:
    """The bytes being decoded at once, across every thread, kept under :data:`MAX_DECODING_BYTES`.

    Each thread of the pool stays within :data:`MAX_IMAGE_BYTES`, but eight
    threads beside each other would need eight times that, so memory would
    grow with the machine's cores. A thread takes room for its image before
    decoding it and waits while there is not enough; waiters are served in
    the order they came, so a large image is not starved by small ones, and
    one larger than the whole budget runs alone.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self.in_flight = 0

    @contextlib.contextmanager
    def hold(self, cost: int):
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                while not (self._queue[0] is ticket
                           and (self.in_flight == 0 or self.in_flight + cost <= MAX_DECODING_BYTES)):
                    self._changed.wait()
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()
            self.in_flight += cost
        try:
            yield
        finally:
            with self._changed:
                self.in_flight -= cost
                self._changed.notify_all()



_room = _Room()



def _read_image(path: Path, shape: tuple[int, int, int], fit: str) -> np.ndarray:
    from PIL import Image

    c, h, w = shape
    with _open_regular(path) as fh:
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
                if image.format == "JPEG":  # decoded at a reduced scale: measured at that scale
                    image.draft(None, (max(h, w), max(h, w)))
                decoded = image.width * image.height * _pixel_bytes(image.mode)
                cost = _decoding_bytes(image, shape)
            except Exception as exc:
                raise DataError(f"{path}: the image header is damaged ({exc})") from None
            if decoded > MAX_IMAGE_BYTES:
                raise DataError(f"{path}: the image is {width:,}×{height:,} pixels at {_pixel_bytes(image.mode)} "
                                f"bytes each, {decoded / (1 << 20):,.0f} MiB once decoded; at most "
                                f"{MAX_IMAGE_BYTES / (1 << 20):,.0f} MiB is decoded for one image")
            with _room.hold(cost):
                try:
                    return _decode(image, c, h, w, fit)
                except Image.DecompressionBombError:
                    raise DataError(f"{path}: the image is far too large to open safely") from None
                except MemoryError:
                    raise DataError(f"{path}: there is not enough memory to decode this image") from None
                except Exception as exc:  # a broken or truncated stream surfaces from any Pillow call
                    reason = ("the file is truncated" if "truncated" in str(exc)
                              else f"the image data is damaged ({exc})")
                    raise DataError(f"{path}: {reason}") from None



def _decode(image, c: int, h: int, w: int, fit: str) -> np.ndarray:
    """The opened ``image`` as float32 (c, h, w), with at most two full-size images alive at once.

    It is converted in strips, so that a conversion's temporaries stay small,
    and each full-size image is closed (its pixels freed) as soon as the next
    one is made, which is what :func:`_decoding_bytes` counts on.
    """
    from PIL import ExifTags, Image, ImageOps

    image.load()
    turn = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}.get(image.getexif().get(ExifTags.Base.Orientation, 1))
    work = _working_mode(image, c)
    if work is not None:
        top = None
        if image.mode in _SCALED_MODES:
            top = max(float(image.getextrema()[1]), 0.0)
            top = 1.0 if image.mode == "F" and top <= 1.0 else (255.0 if top <= 255 else 65535.0)
        converted = Image.new(work, image.size)
        rows = max(1, _STRIP_PIXELS // image.width)
        for y in range(0, image.height, rows):
            strip = image.crop((0, y, image.width, min(y + rows, image.height)))
            converted.paste(_convert(strip, work, top), (0, y))
        image.close()
        image = converted
    if turn is not None:  # the EXIF orientation: the same turn as ImageOps.exif_transpose
        turned = image.transpose(turn)
        image.close()
        image = turned
    growing = image.width < w or image.height < h
    method = Image.Resampling.BILINEAR if growing else Image.Resampling.BOX
    if fit == "crop":
        image = ImageOps.fit(image, (w, h), method)
    elif fit == "pad":
        image = ImageOps.pad(image, (w, h), method, color=0)
    elif image.size != (w, h):
        image = image.resize((w, h), method)
    image = image.convert("RGB" if c == 3 else "L")  # a greyscale image kept as L becomes RGB only now
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    if c == 3:
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))
    return np.ascontiguousarray(np.broadcast_to(pixels, (c, h, w)))



def _convert(strip, work: str, top: float | None):
    """One strip in ``work`` mode: 16-bit and float scaled from [0, ``top``] to bytes, transparency over white."""
    from PIL import Image

    if top is not None:
        values = np.asarray(strip, dtype=np.float32)
        strip = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))
    elif strip.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in strip.info:
        rgba = strip.convert("RGBA")
        strip = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return strip.convert(work)



def load_folder(path: str | os.PathLike, shape: Sequence[int], seed: int = 0,
                test_fraction: float = TEST_FRACTION, *, progress: Progress | None = None) -> DataSplit:
    """A folder with one subfolder of images per class, as a training and a held-out split.

    Subfolders (sorted by name) are the classes; images are found below them,
    down to :data:`MAX_FOLDER_DEPTH` levels of folders, by their suffix
    (:data:`IMAGE_SUFFIXES`) and stretched to H×W; hidden files and folders
    are left out, and links to folders are not followed. At most
    :data:`MAX_FOLDER_IMAGES` images are read (a class-balanced subset beyond
    that). Files that cannot be read, that are not regular files (a named
    pipe would block the reading for ever) or that are over
    :data:`MAX_IMAGE_BYTES` decoded are skipped and counted in ``skipped`` and
    ``notes``; folders too deep or unreadable are named in ``notes``. Each class
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
    try:
        root = Path(path).expanduser()
    except RuntimeError:  # "~someone" with no such user
        raise DataError(f"{path}: there is no such folder (the home folder in it is unknown)") from None
    scan = _scan_folder(root)
    classes, files = scan.classes, scan.files
    signature = hashlib.blake2b(repr(([(f, s, t) for f, _, s, t in files], scan.irregular, scan.deep,
                                      scan.unreadable)).encode(), digest_size=16).hexdigest()
    key = ("folder", str(root.resolve()), shape, seed, float(test_fraction), signature)
    cached = _cache_get(key)
    if cached is not None:
        return cached

    notes = scan.notes()
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
                    skipped=len(failures) + len(scan.irregular), notes=notes)
    _cache_put(key, split)
    return split



def _path_hash(relative: str) -> int:
    return int.from_bytes(hashlib.blake2b(relative.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big")



@dataclass
class _Scan:
    """What :func:`_scan_folder` found: the classes and image files, and what it left out on the way."""

    classes: tuple[str, ...]
    files: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(path relative to the root, label, size, mtime) of each image file."""
    ignored: int = 0
    """Files whose names are not an image's."""
    irregular: list[str] = field(default_factory=list)
    """Image names that are not regular files (named pipes, devices, sockets): skipped unopened."""
    deep: list[str] = field(default_factory=list)
    """Folders more than :data:`MAX_FOLDER_DEPTH` levels below a class folder, not looked into."""
    unreadable: list[str] = field(default_factory=list)
    """Folders that could not be listed, each with its reason."""

    def notes(self) -> list[str]:
        notes = []
        if self.ignored:
            notes.append(f"ignored {self.ignored:,} file{'s' if self.ignored != 1 else ''} that "
                         f"{'are' if self.ignored != 1 else 'is'} not an image by name "
                         f"(images end in {', '.join(IMAGE_SUFFIXES)})")
        if self.irregular:
            n = len(self.irregular)
            notes.append(f"skipped {n:,} name{'s' if n != 1 else ''} ending like an image that "
                         f"{'are not regular files' if n != 1 else 'is not a regular file'} (a named pipe, "
                         f"device or socket), for example {self.irregular[0]}")
        if self.deep:
            n = len(self.deep)
            notes.append(f"did not look inside {n:,} folder{'s' if n != 1 else ''} more than {MAX_FOLDER_DEPTH} "
                         f"levels below a class folder, for example {_shortened(self.deep[0])}")
        if self.unreadable:
            n = len(self.unreadable)
            notes.append(f"could not look inside {n:,} folder{'s' if n != 1 else ''}, "
                         f"for example {_shortened(self.unreadable[0])}")
        return notes



def _shortened(relative: str, keep: int = 120) -> str:
    """A path for a note, its middle left out where it is long (a folder 30 levels deep)."""
    return relative if len(relative) <= keep else f"{relative[:keep // 2]}…{relative[-keep // 2:]}"



def _scan_folder(root: Path) -> _Scan:
    """The class subfolders of ``root`` and the image files below each, found without opening any file."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        raise DataError(f"{root}: there is no such folder") from None
    except ValueError:  # an embedded NUL character
        raise DataError(f"{str(root)!r}: a folder name cannot contain a NUL character") from None
    except OSError as exc:
        raise DataError(f"{root}: the folder cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISREG(info.st_mode):
        raise DataError(f"{root}: this is a file, not a folder; a training folder holds one subfolder of "
                        f"images per class")
    if not stat.S_ISDIR(info.st_mode):
        raise DataError(f"{root}: this is {_what_it_is(info.st_mode)}, which is not a folder; a training folder "
                        f"holds one subfolder of images per class")
    try:
        with os.scandir(root) as listing:
            entries = sorted((e for e in listing if _is_folder(e, follow=True) and not e.name.startswith(".")),
                             key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{root}: the folder cannot be read ({exc.strerror or exc})") from None
    if not entries:
        raise DataError(f"{root}: there are no subfolders; put each class's images in a subfolder "
                        f"named after the class (for example cats/ and dogs/)")
    scan = _Scan(tuple(e.name for e in entries))
    for label, entry in enumerate(entries):
        scan.files.extend(sorted(_scan_class(root, entry.path, label, scan)))
    for left_out in (scan.irregular, scan.deep, scan.unreadable):
        left_out.sort()  # the notes' examples do not depend on the order the system lists folders in
    if not scan.files:
        left_out = "".join(f"; {note}" for note in scan.notes() if not note.startswith("ignored"))
        raise DataError(f"{root}: the class subfolders ({', '.join(scan.classes[:5])}"
                        f"{', …' if len(scan.classes) > 5 else ''}) hold no images "
                        f"(files ending in {', '.join(IMAGE_SUFFIXES)}){left_out}")
    if len({label for _, label, _, _ in scan.files}) < 2:
        only = scan.classes[scan.files[0][1]]
        raise DataError(f"{root}: only the subfolder {only!r} holds images; training needs at least two "
                        f"classes, one subfolder each")
    return scan



def _is_folder(entry: os.DirEntry, *, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False



def _scan_class(root: Path, top: str, label: int, scan: _Scan) -> list[tuple[str, int, int, int]]:
    """The image files below one class folder, walked without recursion down to :data:`MAX_FOLDER_DEPTH` levels.

    ``os.walk`` recurses once per level and ends in a RecursionError past
    about a thousand; a walk with its own stack does not, and the depth limit
    keeps paths well short of the system's limit on a path's length. Links to
    folders are not followed, so a link loop cannot repeat; links to files
    are, and a file link that loops fails when the file is read.
    """
    found = []
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            scan.unreadable.append(f"{os.path.relpath(folder, root)} ({exc.strerror or exc})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_folder(entry, follow=False):
                if depth >= MAX_FOLDER_DEPTH:
                    scan.deep.append(os.path.relpath(entry.path, root))
                else:
                    stack.append((entry.path, depth + 1))
                continue
            if _is_folder(entry, follow=True):
                continue  # a link to a folder
            if not entry.name.lower().endswith(IMAGE_SUFFIXES):
                scan.ignored += 1
                continue
            relative = os.path.relpath(entry.path, root)
            try:
                info = entry.stat()
            except OSError:  # a broken or looping link, or a path too long: reading it says which
                info = None
            if info is not None and not stat.S_ISREG(info.st_mode):
                scan.irregular.append(relative)
                continue
            found.append((relative, label, info.st_size if info else -1, info.st_mtime_ns if info else -1))
    return found



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


SURVEY_IMAGES = 256
""":func:`survey_folder` reads the headers of at most this many images, spread over the classes."""


@dataclass(frozen=True)
class FolderSurvey:
    """What a folder of images holds, from its file headers only (:func:`survey_folder`)."""

    channels: int
    """3 when any image surveyed is in colour, else 1."""
    height: int
    width: int
    """The most common size among the images surveyed."""
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    """Image files found per class."""


def survey_folder(path: str | os.PathLike) -> FolderSurvey:
    """The common size, channels and classes of a folder of images, reading Pillow headers only (no pixels).

    The folder is scanned as :func:`load_folder` scans it; at most :data:`SURVEY_IMAGES` headers
    are read, spread evenly over the files. A :class:`DataError` when no image header can be read.
    """
    from PIL import Image

    try:
        root = Path(path).expanduser()
    except RuntimeError:
        raise DataError(f"{path}: there is no such folder (the home folder in it is unknown)") from None
    scan = _scan_folder(root)
    files = scan.files
    counts = [0] * len(scan.classes)
    for _, label, _, _ in files:
        counts[label] += 1
    picks = files if len(files) <= SURVEY_IMAGES else [files[int(i)] for i in
                                                        np.linspace(0, len(files) - 1, SURVEY_IMAGES)]
    sizes: collections.Counter = collections.Counter()
    colour = False
    for relative, _, _, _ in picks:
        try:
            with _open_regular(root / relative) as fh, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(fh) as image:  # lazy: the header only
                    sizes[(image.height, image.width)] += 1
                    colour = colour or image.mode not in _GREY_MODES
        except Exception:  # noqa: BLE001, S112 - a file that cannot be read is skipped, as load_folder does
            continue
    if not sizes:
        raise DataError(f"{root}: no image in it could be read")
    (height, width), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0]))
    return FolderSurvey(3 if colour else 1, int(height), int(width), tuple(scan.classes), tuple(counts))
