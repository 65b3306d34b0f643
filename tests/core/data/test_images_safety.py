"""The person's images and folders cannot hang, exhaust memory or crash the reader (cnnviz.core.data.images).

Named pipes, huge headers, many decoding threads, folders nested past the
system's path limit, link loops, files that vanish: each ends in a skipped
file with a note or a :class:`DataError` sentence, never a hang or a raw error.
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.core import data
from cnnviz.core.data import DataError, images

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


# ------------------------------------------------------------------ helpers
def _finishes(call, *fifos: Path, seconds: float = 10.0):
    """``call()``'s result, run in a thread that must end within ``seconds``.

    A reader blocked opening a named pipe cannot be interrupted, so a
    regression would hang the test run: instead the test fails, and the pipes
    are opened for writing (and closed) to let the stuck reader go.
    """
    outcome: dict[str, object] = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for _ in range(100):
            for fifo in fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            thread.join(0.1)
            if not thread.is_alive():
                break
        pytest.fail(f"still reading after {seconds:.0f} s: something blocked (a named pipe was opened)")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


def _png_header(path: Path, width: int, height: int, colour_type: int = 6, depth: int = 8) -> None:
    """A PNG that declares width×height pixels (RGBA by default) but holds almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i:03d}.png")
    return root


def _png_bytes(size: int = 12) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), 128).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


# ------------------------------------------------------------------ named pipes and other special files (item 5)
@posix_only
@pytest.mark.timeout(60)
def test_load_image_refuses_a_named_pipe_without_opening_it(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"x\.png: this is a named pipe \(FIFO\), not an image file"):
        _finishes(lambda: data.load_image(fifo, (1, 8, 8)), fifo)
    link = tmp_path / "link.png"
    link.symlink_to(fifo)
    with pytest.raises(DataError, match="named pipe"):
        _finishes(lambda: data.load_image(link, (1, 8, 8)), fifo)


@posix_only
@pytest.mark.timeout(60)
def test_a_pipe_swapped_in_after_the_check_is_still_refused(tmp_path, monkeypatch):
    """The file is opened without blocking and looked at again: a pipe put in place after ``os.stat`` is caught."""
    fifo = tmp_path / "swapped.png"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    fake_os = types.ModuleType("os")
    fake_os.__dict__.update(os.__dict__)
    fake_os.stat = lambda path, *a, **k: regular if Path(path) == fifo else os.stat(path, *a, **k)
    monkeypatch.setattr(images, "os", fake_os)
    with pytest.raises(DataError, match="named pipe"):
        _finishes(lambda: data.load_image(fifo, (1, 8, 8)), fifo)


@posix_only
@pytest.mark.timeout(60)
def test_folder_skips_named_pipes_and_says_so(tmp_path):
    root = _folder(tmp_path / "set", {"a": 4, "b": 4})
    fifos = [root / "a" / "x.png", root / "b" / "deeper" / "y.jpg"]
    (root / "b" / "deeper").mkdir()
    for fifo in fifos:
        os.mkfifo(fifo)
    (root / "a" / "z.png").symlink_to(fifos[0])          # a link to a pipe is a pipe too
    os.mkfifo(root / "a" / "notes.txt")                   # not an image by name: ignored as before
    split = _finishes(lambda: data.load_folder(root, (1, 8, 8)), *fifos, root / "a" / "notes.txt")
    assert len(split.train) + len(split.test) == 8
    assert split.skipped == 3
    assert any("skipped 3 names ending like an image that are not regular files" in note and "named pipe" in note
               for note in split.notes), split.notes
    assert any("ignored 1 file" in note for note in split.notes)


@posix_only
@pytest.mark.timeout(60)
def test_a_folder_of_only_pipes_says_so(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        os.mkfifo(root / name / "x.png")
    with pytest.raises(DataError, match="hold no images.*2 names ending like an image that are not regular files"):
        _finishes(lambda: data.load_folder(root, (1, 8, 8)), root / "a" / "x.png", root / "b" / "x.png")


@posix_only
@pytest.mark.timeout(60)
def test_a_named_pipe_or_a_file_as_the_folder_is_not_a_folder(tmp_path):
    fifo = tmp_path / "pets"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"pets: this is a named pipe \(FIFO\), which is not a folder"):
        _finishes(lambda: data.load(f"folder:{fifo}", (1, 8, 8)), fifo)   # what a file's training.data names
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: this is a file, not a folder"):
        data.load_folder(tmp_path / "notes.txt", (1, 8, 8))


# ------------------------------------------------------------------ decoded size, checked from the header (item 3)
def test_an_image_over_the_decoded_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    _png_header(tmp_path / "huge.png", 9_000, 9_000)   # under Pillow's pixel limit; 309 MiB as RGBA
    decoded = []

    def record_only(image, c, h, w, fit):
        decoded.append(image.size)
        return np.zeros((c, h, w), dtype=np.float32)

    monkeypatch.setattr(images, "_decode", record_only)
    with pytest.raises(DataError, match=r"huge\.png: the image is 9,000×9,000 pixels at 4 bytes each, 309 MiB "
                                        r"once decoded; at most 256 MiB is decoded for one image"):
        data.load_image(tmp_path / "huge.png", (3, 32, 32))
    assert decoded == []
    _png_header(tmp_path / "deep16.png", 9_000, 9_000, colour_type=0, depth=16)   # 2 bytes a pixel: 154 MiB
    data.load_image(tmp_path / "deep16.png", (3, 32, 32))
    assert decoded == [(9_000, 9_000)]


def test_an_image_over_the_decoded_budget_is_skipped_in_a_folder(tmp_path):
    root = _folder(tmp_path / "set", {"a": 3, "b": 3})
    _png_header(root / "a" / "huge.png", 9_000, 9_000)
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 1 and len(split.train) + len(split.test) == 6
    assert any("skipped 1 file that could not be read" in note and "9,000×9,000 pixels" in note
               and "at most 256 MiB" in note for note in split.notes), split.notes


def test_decoding_costs_are_counted_from_the_header():
    """What :data:`images.MAX_DECODING_BYTES` counts, for the 9,400×9,400 16-bit PNG of the issue: about 270 MiB."""
    def opened(mode: str, size: tuple[int, int]):  # what the header tells, without the pixels
        return types.SimpleNamespace(width=size[0], height=size[1], mode=mode, info={})

    grey16 = images._decoding_bytes(opened("I;16", (9_400, 9_400)), (3, 64, 64))
    assert 250 << 20 < grey16 < 290 << 20     # 169 MiB decoded + 84 MiB as 8-bit grey + one strip
    rgb = images._decoding_bytes(opened("RGB", (6_000, 6_000)), (3, 64, 64))
    assert rgb == 2 * 6_000 * 6_000 * 4 + 8 * 3 * 64 * 64   # no conversion; a turn would copy it once
    assert images._pixel_bytes("1") == images._pixel_bytes("P") == 1
    assert images._pixel_bytes("I;16B") == 2 and images._pixel_bytes("LA") == images._pixel_bytes("F") == 4


# ------------------------------------------------------------------ the decoding threads share one budget (item 9)
def _watch_decoding(monkeypatch, *, meet: int = 0):
    """Wrap ``_decode`` to record, at each call, the image's size, the decodes running and the bytes held.

    With ``meet`` > 1 the first ``meet`` decodes wait for each other (a barrier):
    they prove the budget still lets images be decoded side by side.
    """
    record: list[tuple[tuple[int, int], int, int]] = []
    running = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(meet, timeout=10) if meet > 1 else None
    calls = [0]
    real = images._decode

    def watched(image, *args, **kwargs):
        with lock:
            running[0] += 1
            calls[0] += 1
            first = calls[0] <= meet
            record.append((image.size, running[0], images._room.in_flight))
        try:
            if barrier is not None and first:
                barrier.wait()
            else:
                threading.Event().wait(0.005)   # long enough for the other threads to crowd in
            return real(image, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(images, "_decode", watched)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)   # the pool's min(8, cores) threads of an 8-core machine
    return record


def _cost(path: Path, shape: tuple[int, int, int]) -> int:
    with Image.open(path) as image:
        return images._decoding_bytes(image, shape)


def test_the_bytes_in_flight_stay_under_the_total_budget(tmp_path, monkeypatch):
    root = _folder(tmp_path / "set", {"a": 12, "b": 12}, size=64)
    one = _cost(root / "a" / "000.png", (1, 8, 8))
    monkeypatch.setattr(images, "MAX_DECODING_BYTES", 2 * one + one // 2)   # room for two at a time
    record = _watch_decoding(monkeypatch, meet=2)
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 0 and len(record) == 24
    assert max(held for _, _, held in record) <= 2 * one + one // 2
    assert max(running for _, running, _ in record) == 2


def test_an_image_larger_than_the_budget_runs_alone(tmp_path, monkeypatch):
    root = _folder(tmp_path / "set", {"a": 10, "b": 10}, size=16)
    Image.new("L", (256, 256), 90).save(root / "a" / "big.png")
    big = _cost(root / "a" / "big.png", (1, 8, 8))
    monkeypatch.setattr(images, "MAX_DECODING_BYTES", big)
    record = _watch_decoding(monkeypatch)
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 0 and len(record) == 21
    assert [(running, held) for size, running, held in record if size == (256, 256)] == [(1, big)]
    monkeypatch.setattr(images, "MAX_DECODING_BYTES", 1)   # smaller than any image: one at a time, none refused
    record.clear()
    data.clear_cache()
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 0 and {running for _, running, _ in record} == {1}
    assert images._room.in_flight == 0


def test_load_image_waits_for_room_held_by_others(tmp_path, monkeypatch):
    Image.new("L", (32, 32), 10).save(tmp_path / "one.png")
    monkeypatch.setattr(images, "MAX_DECODING_BYTES", 1)
    got = []
    with images._room.hold(1):
        reader = threading.Thread(target=lambda: got.append(data.load_image(tmp_path / "one.png", (1, 4, 4))))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and not got   # waiting for the room held here
    reader.join(10)
    assert len(got) == 1 and images._room.in_flight == 0


# ------------------------------------------------------------------ deep nesting (item 6)
def _nest(top: Path, levels: int, name, image_at: tuple[int, ...] = ()) -> None:
    """``levels`` folders one inside the next below ``top``, level n named ``name(n)``, with an image at the levels
    ``image_at``. Each is made relative to the one above, held open: the whole path is longer than the system
    allows (PATH_MAX), so it cannot be named in one go."""
    png = _png_bytes()
    fd = os.open(top, os.O_RDONLY)
    try:
        for level in range(1, levels + 1):
            os.mkdir(name(level), dir_fd=fd)
            inner = os.open(name(level), os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            if level in image_at:
                out = os.open(f"at-{level}.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(out, png)
                os.close(out)
    finally:
        os.close(fd)


@pytest.fixture
def deep_place(tmp_path):
    """A folder removed with ``rm -rf`` afterwards: pytest's own clean-up recurses, and fails on 1,200 levels."""
    place = tmp_path / "deep"
    place.mkdir()
    yield place
    subprocess.run(["rm", "-rf", str(place)], check=False)
    assert not place.exists()


@pytest.mark.skipif(not {os.mkdir, os.open} <= os.supports_dir_fd or shutil.which("rm") is None,
                    reason="needs folders made relative to an open folder, and rm")
@pytest.mark.timeout(120)
def test_twelve_hundred_nested_folders(deep_place, monkeypatch):
    """900 short names (os.walk used to recurse into a RecursionError there), then 300 long ones past PATH_MAX."""
    root = _folder(deep_place / "set", {"a": 2, "b": 3})
    _nest(root / "a", 1_200, lambda n: "d" if n <= 900 else f"level-{n:04d}", image_at=(5, 32, 33, 1_000, 1_200))
    split = _finishes(lambda: data.load_folder(root, (1, 8, 8)), seconds=60)
    assert images.MAX_FOLDER_DEPTH == 32
    assert len(split.train) + len(split.test) == 2 + 3 + 2   # the images at levels 5 and 32, no deeper
    assert any("did not look inside 1 folder more than 32 levels below a class folder" in note
               for note in split.notes), split.notes

    # with no depth limit, the walk reaches the longest path the system takes: a note, not an error
    monkeypatch.setattr(images, "MAX_FOLDER_DEPTH", 10_000)
    data.clear_cache()
    split = _finishes(lambda: data.load_folder(root, (1, 8, 8)), seconds=60)
    assert len(split.train) + len(split.test) == 2 + 3 + 4   # levels 5, 32, 33 and 1,000; not 1,200
    assert any("could not look inside 1 folder" in note and "too long" in note for note in split.notes), split.notes


# ------------------------------------------------------------------ links (item 5 of the list, loops)
@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symbolic links")
@pytest.mark.timeout(60)
def test_link_loops_are_not_followed(tmp_path):
    root = _folder(tmp_path / "set", {"a": 3, "b": 3})
    (root / "a" / "again").symlink_to(".", target_is_directory=True)     # a folder link to itself
    (root / "a" / "up").symlink_to("..", target_is_directory=True)       # to the folder above
    (root / "b" / "sub").mkdir()
    (root / "b" / "sub" / "back").symlink_to(root, target_is_directory=True)
    (root / "a" / "self.png").symlink_to("self.png")                     # file links that loop
    (root / "a" / "ping.png").symlink_to("pong.png")
    (root / "a" / "pong.png").symlink_to("ping.png")
    (root / "loop").symlink_to("loop")                                   # a class name that loops
    split = _finishes(lambda: data.load_folder(root, (1, 8, 8)))
    assert split.classes == ("a", "b")
    assert len(split.train) + len(split.test) == 6 and split.skipped == 3
    assert any("skipped 3 files that could not be read" in note and "symbolic links" in note
               for note in split.notes), split.notes
    with pytest.raises(DataError, match="self.png: the file cannot be read"):
        data.load_image(root / "a" / "self.png", (1, 8, 8))
    (tmp_path / "circle").symlink_to("circle")
    with pytest.raises(DataError, match="circle: the folder cannot be read"):
        data.load_folder(tmp_path / "circle", (1, 8, 8))


# ------------------------------------------------------------------ only DataError, whatever the files do
def test_a_file_that_vanishes_after_the_listing_is_skipped(tmp_path, monkeypatch):
    root = _folder(tmp_path / "set", {"a": 4, "b": 4})
    real = images._scan_folder

    def scan_then_delete(folder):
        found = real(folder)
        (root / "a" / "001.png").unlink()
        return found

    monkeypatch.setattr(images, "_scan_folder", scan_then_delete)
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 1 and len(split.train) + len(split.test) == 7
    assert any("001.png: there is no such file" in note for note in split.notes), split.notes


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads any folder, whatever its permissions")
def test_a_folder_that_cannot_be_listed_is_noted(tmp_path):
    root = _folder(tmp_path / "set", {"a": 3, "b": 3})
    (root / "a" / "locked").mkdir()
    Image.new("L", (4, 4)).save(root / "a" / "locked" / "hidden.png")
    os.chmod(root / "a" / "locked", 0)
    try:
        split = data.load_folder(root, (1, 8, 8))
    finally:
        os.chmod(root / "a" / "locked", stat.S_IRWXU)
    assert len(split.train) + len(split.test) == 6
    assert any("could not look inside 1 folder" in note and "locked" in note for note in split.notes)


def test_a_folder_refused_by_the_system_is_noted_even_as_root(tmp_path, monkeypatch):
    """The same as above where root reads everything: the listing is refused by a stand-in for ``os.scandir``."""
    root = _folder(tmp_path / "set", {"a": 3, "b": 3})
    (root / "a" / "locked").mkdir()
    Image.new("L", (4, 4)).save(root / "a" / "locked" / "hidden.png")

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return os.scandir(path)

    fake_os = types.ModuleType("os")
    fake_os.__dict__.update(os.__dict__)
    fake_os.scandir = scandir
    monkeypatch.setattr(images, "os", fake_os)
    split = data.load_folder(root, (1, 8, 8))
    assert len(split.train) + len(split.test) == 6 and split.skipped == 0
    assert "could not look inside 1 folder, for example a/locked (Permission denied)" in split.notes


def test_odd_names_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="NUL character"):
        data.load_image(str(tmp_path / "a\0b.png"), (1, 8, 8))
    with pytest.raises(DataError, match="NUL character"):
        data.load_folder(str(tmp_path / "a\0b"), (1, 8, 8))
    with pytest.raises(DataError, match="no such folder"):
        data.load_folder("~no-such-user-here-at-all/pets", (1, 8, 8))
    with pytest.raises(DataError, match="file cannot be read"):
        data.load_image(tmp_path / ("n" * 300 + ".png"), (1, 8, 8))   # a name longer than the system allows
