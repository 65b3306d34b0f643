"""Bundled data sets, generated shapes, and the user's images and folders (cnnviz.core.data)."""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.core import data
from cnnviz.core.data import DataError, bundled, dataset, images


# ------------------------------------------------------------------ helpers
def _rows(images: np.ndarray) -> list[bytes]:
    return sorted(image.tobytes() for image in images)


def _fft_features(images: np.ndarray) -> np.ndarray:
    """Features blind to position: the normalised magnitude spectrum of the grey image."""
    grey = images.mean(axis=1)
    spectrum = np.abs(np.fft.rfft2(grey - grey.mean(axis=(1, 2), keepdims=True))).reshape(len(grey), -1)
    return spectrum / (np.linalg.norm(spectrum, axis=1, keepdims=True) + 1e-9)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width×height pixels but holds almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            level = 40 + 20 * list(counts).index(name)
            pixels = np.clip(level + rng.integers(-10, 10, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i:03d}.png")
    return root


# ------------------------------------------------------------------ bundled sets
@pytest.mark.parametrize("name, total, native", [("digits", 1797, (1, 8, 8)),
                                                 ("fashion-mnist", 10_000, (1, 28, 28))])
def test_bundled_counts_labels_and_balance(name, total, native):
    split = data.load(name, native)
    assert len(split.train) + len(split.test) == total
    assert split.classes == split.train.classes == split.test.classes
    assert len(split.classes) == 10
    for part in (split.train, split.test):
        assert part.images.dtype == np.float32 and part.images.flags.c_contiguous
        assert part.images.shape[1:] == native
        assert part.labels.dtype == np.int64
        assert part.labels.min() == 0 and part.labels.max() == 9
        assert 0.0 <= part.images.min() and part.images.max() <= 1.0
    counts = np.bincount(np.concatenate([split.train.labels, split.test.labels]), minlength=10)
    test_counts = np.bincount(split.test.labels, minlength=10)
    # the held-out share is 20 % of every class (stratified), to within one image
    assert np.all(np.abs(test_counts - 0.2 * counts) <= 1)
    if name == "fashion-mnist":
        assert counts.tolist() == [1000] * 10
        assert test_counts.tolist() == [200] * 10
    else:
        assert counts.min() >= 170 and counts.max() <= 190
    assert split.classes[0] == ("0" if name == "digits" else "T-shirt/top")
    assert split.attribution and split.notes == () and split.skipped == 0


def test_bundled_values_are_the_files_scaled_to_unit_range():
    raw, labels = bundled._digits_raw()
    split = data.load("digits", (1, 8, 8))
    together = np.concatenate([split.train.images, split.test.images])[:, 0]
    assert _rows(together) == _rows((raw / 16).astype(np.float32))
    assert sorted(np.concatenate([split.train.labels, split.test.labels]).tolist()) == sorted(labels.tolist())
    raw, _ = bundled._fashion_raw()
    split = data.load("fashion-mnist", (1, 28, 28))
    together = np.concatenate([split.train.images, split.test.images])[:, 0]
    assert _rows(together) == _rows((raw / np.float32(255)).astype(np.float32))


@pytest.mark.parametrize("name, shape", [("digits", (1, 8, 8)), ("fashion-mnist", (1, 28, 28)),
                                         ("shapes", (1, 16, 16))])
def test_train_and_test_are_disjoint_and_deterministic(name, shape):
    data.clear_cache()
    first = data.load(name, shape, seed=0)
    data.clear_cache()
    again = data.load(name, shape, seed=0)
    assert np.array_equal(first.train.images, again.train.images)
    assert np.array_equal(first.train.labels, again.train.labels)
    assert np.array_equal(first.test.images, again.test.images)
    # no image of the test split appears in the training split
    train = {image.tobytes() for image in first.train.images}
    shared = sum(image.tobytes() in train for image in first.test.images)
    if name == "digits":
        # the data set itself holds a handful of identical images; none may be split by us
        raw = bundled._digits_raw()[0].reshape(len(bundled._digits_raw()[0]), -1)
        duplicates = len(raw) - len(np.unique(raw, axis=0))
        assert shared <= duplicates
    else:
        assert shared == 0
    # the held-out split is the same for every seed; the seed orders (or draws) the training split
    other = data.load(name, shape, seed=1)
    assert np.array_equal(first.test.images, other.test.images)
    assert not np.array_equal(first.train.labels, other.train.labels)
    if name != "shapes":
        assert _rows(first.train.images) == _rows(other.train.images)


def test_results_are_cached_and_read_only():
    one = data.load("digits", (1, 28, 28))
    assert data.load("digits", (1, 28, 28)) is one
    assert data.load("digits", [1, 28, 28]) is one
    with pytest.raises(ValueError):
        one.train.images[0, 0, 0, 0] = 1.0


@pytest.mark.parametrize("name", data.NAMES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (3, 20, 36), (2, 5, 7)])
def test_every_set_comes_at_every_shape(name, shape):
    split = data.load(name, shape)
    for part in (split.train, split.test):
        assert part.images.shape == (len(part), *shape)
        assert part.images.dtype == np.float32 and part.images.flags.c_contiguous
        assert 0.0 <= part.images.min() and part.images.max() <= 1.0
    assert split.shape == shape
    assert len(split.mean) == len(split.std) == shape[0]
    assert all(0.0 < m < 1.0 for m in split.mean) and all(0.0 < s < 1.0 for s in split.std)
    if name != "shapes" and shape[0] > 1:
        # greyscale sets are the same in every channel
        assert np.array_equal(split.train.images[:, 0], split.train.images[:, -1])


def test_resizing_averages_areas_and_interpolates_bilinearly():
    raw = bundled._fashion_raw()[0][:50]
    small = dataset._resize_grey(raw, 255.0, (1, 7, 7))[:, 0]
    blocks = (raw / 255.0).reshape(50, 7, 4, 7, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(small, blocks, atol=1e-5)
    # a non-integer shrink keeps the mean (every input pixel's area is counted once)
    odd = dataset._resize_grey(raw, 255.0, (1, 9, 11))[:, 0]
    np.testing.assert_allclose(odd.mean(axis=(1, 2)), (raw / 255.0).mean(axis=(1, 2)), atol=1e-5)
    # growing by two: bilinear between pixel centres, edges clamped (as torch's align_corners=False)
    ramp = np.array([[[0, 100, 200]]], dtype=np.uint8).repeat(3, axis=1)
    grown = dataset._resize_grey(ramp, 200.0, (1, 6, 6))[0, 0, 0]
    np.testing.assert_allclose(grown, [0, 0.125, 0.375, 0.625, 0.875, 1.0], atol=1e-6)
    # digits drawn for LeNet-5 keep their strokes
    big = data.load("digits", (1, 28, 28)).train.images
    assert big.mean() == pytest.approx(data.load("digits", (1, 8, 8)).train.images.mean(), abs=1e-3)


def test_a_set_too_large_for_memory_gives_a_balanced_subset(monkeypatch):
    data.clear_cache()
    try:
        monkeypatch.setattr(dataset, "MAX_BYTES", 1000 * 4 * 32 * 32)
        split = data.load("fashion-mnist", (1, 32, 32))
        assert len(split.train) + len(split.test) == 1000
        assert len(split.test) == 200
        assert np.bincount(split.test.labels).tolist() == [20] * 10
        assert np.bincount(split.train.labels).min() >= 70
        assert "used 1,000 of 10,000 images" in split.notes[0]
        shapes = data.load("shapes", (1, 32, 32))
        assert len(shapes.train) + len(shapes.test) == 1000 and shapes.notes
        with pytest.raises(DataError, match="smaller input size"):
            data.load("digits", (64, 4096, 4096))
    finally:
        data.clear_cache()


def test_mean_and_std_normalise_the_training_split():
    split = data.load("fashion-mnist", (1, 28, 28))
    normal = data.normalize(split.train.images[:2000], split.mean, split.std)
    assert normal.dtype == np.float32
    assert abs(float(normal.mean())) < 1e-3 and abs(float(normal.std()) - 1) < 1e-3
    one = data.normalize(split.test.images[0], split.mean, split.std)
    assert one.shape == (1, 28, 28)


# ------------------------------------------------------------------ shapes
def test_shapes_are_deterministic_balanced_and_varied():
    a = data.generate_shapes(500, (1, 28, 28), seed=3)
    b = data.generate_shapes(500, (1, 28, 28), seed=3)
    c = data.generate_shapes(500, (1, 28, 28), seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert np.bincount(a.labels).tolist() == [50] * 10
    assert a.classes == data.SHAPE_CLASSES and len(set(a.classes)) == 10
    assert a.images.dtype == np.float32 and a.images.shape == (500, 1, 28, 28)
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    assert len(np.unique(a.images.reshape(500, -1), axis=0)) == 500
    # a colour run varies the colour; every channel carries the figure
    rgb = data.generate_shapes(200, (3, 32, 32), seed=0)
    assert rgb.images.shape == (200, 3, 32, 32)
    assert np.abs(rgb.images[:, 0] - rgb.images[:, 1]).mean() > 0.02


@pytest.mark.parametrize("shape", [(1, 4, 4), (1, 5, 9), (2, 6, 6), (1, 300, 200)])
def test_shapes_at_tiny_and_large_sizes(shape):
    images = data.generate_shapes(20, shape).images
    assert images.shape == (20, *shape)
    assert np.isfinite(images).all() and images.max() > images.min()


@pytest.mark.parametrize("size, overall, worst", [(28, 0.95, 0.85), (8, 0.9, 0.75)])
def test_each_shape_class_is_distinguishable(size, overall, worst):
    train = data.generate_shapes(2000, (1, size, size), seed=0)
    test = data.generate_shapes(500, (1, size, size), seed=1)
    known, queries = _fft_features(train.images), _fft_features(test.images)
    distance = (queries ** 2).sum(1)[:, None] + (known ** 2).sum(1)[None] - 2 * queries @ known.T
    nearest = train.labels[np.argsort(distance, axis=1)[:, :5]]
    predicted = np.array([np.bincount(row, minlength=10).argmax() for row in nearest])
    accuracy = (predicted == test.labels).mean()
    recall = [(predicted[test.labels == k] == k).mean() for k in range(10)]
    # chance is 10 %; five nearest neighbours on magnitude spectra (blind to position) are no CNN
    assert accuracy > overall, accuracy
    assert min(recall) > worst, dict(zip(data.SHAPE_CLASSES, recall))


def test_generate_shapes_refuses_bad_arguments():
    with pytest.raises(DataError):
        data.generate_shapes(-1, (1, 8, 8))
    with pytest.raises(DataError):
        data.generate_shapes(10, (1, 8, 8), seed=-2)
    assert len(data.generate_shapes(0, (1, 8, 8))) == 0


# ------------------------------------------------------------------ names, shapes, description
@pytest.mark.parametrize("shape", [(0, 28, 28), (1, 28), (1, 0, 5), (65, 8, 8), (1, 5000, 8), ("a", 2, 2),
                                   (1.5, 8, 8), None])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(DataError, match="channels|pixels|shape"):
        data.load("digits", shape)


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(DataError, match="digits, fashion-mnist, shapes"):
        data.load("mnist", (1, 28, 28))
    with pytest.raises(DataError, match="no data set"):
        data.describe("mnist")
    with pytest.raises(DataError, match="seed"):
        data.load("digits", (1, 8, 8), seed=-1)


def test_describe_gives_one_line_each():
    for name in (*data.NAMES, "folder:/tmp/pets"):
        text = data.describe(name)
        assert text and "\n" not in text and len(text) < 200
    assert "1,797" in data.describe("digits") and "CC BY 4.0" in data.describe("digits")
    assert "10,000" in data.describe("fashion-mnist") and "MIT" in data.describe("fashion-mnist")
    assert "/tmp/pets" in data.describe("folder:/tmp/pets")


# ------------------------------------------------------------------ one image
def test_png_greyscale_and_rgb(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    got = data.load_image(tmp_path / "grey.png", (1, 6, 8))
    assert got.dtype == np.float32 and got.shape == (1, 6, 8) and got.flags.c_contiguous
    np.testing.assert_allclose(got[0], grey / 255, atol=1e-6)
    three = data.load_image(str(tmp_path / "grey.png"), (3, 6, 8))
    assert np.array_equal(three[0], three[2]) and np.allclose(three[1], grey / 255, atol=1e-6)

    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb, "RGB").save(tmp_path / "red.png")
    red = data.load_image(tmp_path / "red.png", (3, 4, 4))
    assert red[0].min() == 1.0 and red[1].max() == 0.0 and red[2].max() == 0.0
    luma = data.load_image(tmp_path / "red.png", (1, 4, 4))
    assert luma[0, 0, 0] == pytest.approx(0.299, abs=0.01)
    four = data.load_image(tmp_path / "red.png", (4, 2, 2))
    assert four.shape == (4, 2, 2) and np.allclose(four, luma[0, 0, 0], atol=0.01)


def test_jpeg_is_resized_both_ways(tmp_path):
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    image[:, 45:] = 200
    Image.fromarray(image, "RGB").save(tmp_path / "photo.jpg", quality=95)
    small = data.load_image(tmp_path / "photo.jpg", (3, 6, 8))
    assert small.shape == (3, 6, 8)
    assert small[:, :, :3].max() < 0.1 and small[:, :, -3:].min() > 0.7
    big = data.load_image(tmp_path / "photo.jpg", (1, 120, 200))
    assert big.shape == (1, 120, 200) and big[0, :, :80].max() < 0.1 and big[0, :, -80:].min() > 0.7


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2, :, :] = (0, 0, 255, 255)      # opaque blue above
    rgba[2:, :, :] = (0, 0, 0, 0)          # transparent below
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = data.load_image(tmp_path / "a.png", (3, 4, 4))
    np.testing.assert_allclose(got[:, :2, :], [[[0]], [[0]], [[1]]] * np.ones((3, 2, 4)), atol=1e-6)
    np.testing.assert_allclose(got[:, 2:, :], 1.0, atol=1e-6)
    grey_alpha = Image.fromarray(np.array([[0, 0], [0, 0]], dtype=np.uint8), "L").convert("LA")
    grey_alpha.putalpha(Image.fromarray(np.array([[255, 0], [255, 0]], dtype=np.uint8), "L"))
    grey_alpha.save(tmp_path / "la.png")
    np.testing.assert_allclose(data.load_image(tmp_path / "la.png", (1, 2, 2))[0], [[0, 1], [0, 1]], atol=1e-6)


def test_sixteen_bit_and_palette_images(tmp_path):
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    Image.fromarray(deep).save(tmp_path / "deep.png")
    got = data.load_image(tmp_path / "deep.png", (1, 4, 4))
    np.testing.assert_allclose(got[0], deep / 65535, atol=1 / 255)
    Image.fromarray(np.full((5, 5), 255, np.uint8), "L").convert("P").save(tmp_path / "p.gif")
    assert data.load_image(tmp_path / "p.gif", (3, 5, 5)).min() == 1.0


def test_exif_orientation_is_respected(tmp_path):
    pixels = np.zeros((10, 20), dtype=np.uint8)   # 20 wide, 10 high, a mark at the top left
    pixels[:3, :3] = 255
    image = Image.fromarray(pixels, "L")
    exif = image.getexif()
    exif[0x0112] = 6                               # shown turned 90° clockwise
    image.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    got = data.load_image(tmp_path / "turned.jpg", (1, 20, 10))[0]
    # turned clockwise, the picture is 10 wide and 20 high and the mark is at the top right
    assert got[:3, -3:].mean() > 0.8
    assert got[:3, :3].mean() < 0.2 and got[-3:, :].mean() < 0.2


def test_fit_crop_and_pad(tmp_path):
    pixels = np.full((10, 30), 255, dtype=np.uint8)
    pixels[:, :10] = 0
    Image.fromarray(pixels, "L").save(tmp_path / "wide.png")
    stretched = data.load_image(tmp_path / "wide.png", (1, 10, 10))[0]
    cropped = data.load_image(tmp_path / "wide.png", (1, 10, 10), fit="crop")[0]
    padded = data.load_image(tmp_path / "wide.png", (1, 12, 12), fit="pad")[0]
    assert stretched[:, :3].max() < 0.05 and cropped.min() > 0.95
    assert padded[:4].max() == 0.0 and padded[-4:].max() == 0.0 and padded[5:7, -3:].min() > 0.95
    with pytest.raises(DataError, match="fit"):
        data.load_image(tmp_path / "wide.png", (1, 10, 10), fit="zoom")


# ------------------------------------------------------------------ bad input
def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("these are not pixels")
    with pytest.raises(DataError, match="not an image file"):
        data.load_image(tmp_path / "notes.png", (1, 8, 8))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg: the file is empty"):
        data.load_image(tmp_path / "empty.jpg", (1, 8, 8))


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_file(tmp_path, suffix):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(tmp_path / f"whole.{suffix}")
    whole = (tmp_path / f"whole.{suffix}").read_bytes()
    (tmp_path / f"cut.{suffix}").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.(png|jpg): (the file is truncated|the image data is damaged)"):
        data.load_image(tmp_path / f"cut.{suffix}", (3, 16, 16))


def test_decompression_bombs(tmp_path):
    _png_header_only(tmp_path / "bomb.png", 50_000, 50_000)
    with pytest.raises(DataError, match="too large"):
        data.load_image(tmp_path / "bomb.png", (1, 28, 28))
    _png_header_only(tmp_path / "big.png", 10_000, 10_000)   # under Pillow's hard limit, over ours
    with pytest.raises(DataError, match="10,000×10,000 pixels"):
        data.load_image(tmp_path / "big.png", (1, 28, 28))


def test_missing_folder_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load_image(tmp_path / "gone.png", (1, 8, 8))
    with pytest.raises(DataError, match="a folder, not an image"):
        data.load_image(tmp_path, (1, 8, 8))
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        Image.new("L", (4, 4)).save(tmp_path / "locked.png")
        os.chmod(tmp_path / "locked.png", 0)
        try:
            with pytest.raises(DataError, match="permission"):
                data.load_image(tmp_path / "locked.png", (1, 8, 8))
        finally:
            os.chmod(tmp_path / "locked.png", 0o600)


def test_errors_are_value_errors_without_a_pillow_cause(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError) as info:
        data.load_image(tmp_path / "x.png", (1, 8, 8))
    assert isinstance(info.value, DataError)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ------------------------------------------------------------------ folders
def test_folder_split_is_stratified_and_deterministic(tmp_path):
    root = _folder(tmp_path / "pets", {"cats": 10, "dogs": 10, "fish": 5})
    (root / "cats" / "readme.txt").write_text("not an image")
    (root / "dogs" / ".hidden.png").write_text("hidden, left alone")
    split = data.load_folder(root, (1, 8, 8))
    assert split.classes == ("cats", "dogs", "fish")
    assert np.bincount(split.test.labels).tolist() == [2, 2, 1]
    assert np.bincount(split.train.labels).tolist() == [8, 8, 4]
    assert split.train.images.shape == (20, 1, 8, 8) and split.test.images.shape == (5, 1, 8, 8)
    assert split.skipped == 0 and any("ignored 1 file" in note for note in split.notes)
    # each class's images keep their own brightness through the resize
    for part in (split.train, split.test):
        levels = part.images.mean(axis=(1, 2, 3)) * 255
        assert np.all(np.abs(levels - (40 + 20 * part.labels)) < 6)
    same = data.load_folder(root, (1, 8, 8), seed=0)
    assert same is split
    other = data.load_folder(root, (1, 8, 8), seed=5)
    assert np.array_equal(other.test.images, split.test.images)
    assert _rows(other.train.images) == _rows(split.train.images)
    via_load = data.load(f"folder:{root}", (3, 16, 16))
    assert via_load.train.images.shape == (20, 3, 16, 16) and via_load.name == f"folder:{root}"


def test_folder_change_is_seen(tmp_path):
    root = _folder(tmp_path / "set", {"a": 4, "b": 4})
    first = data.load_folder(root, (1, 8, 8))
    Image.new("L", (12, 12), 200).save(root / "a" / "new.png")
    second = data.load_folder(root, (1, 8, 8))
    assert len(second.train) + len(second.test) == len(first.train) + len(first.test) + 1


def test_folder_skips_unreadable_files_and_says_so(tmp_path):
    root = _folder(tmp_path / "set", {"a": 5, "b": 5})
    (root / "a" / "broken.png").write_bytes(b"not a png at all")
    good = (root / "b" / "000.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    split = data.load_folder(root, (1, 8, 8))
    assert split.skipped == 2
    assert len(split.train) + len(split.test) == 10
    assert any("skipped 2 files that could not be read" in note for note in split.notes)


def test_folder_image_cap(tmp_path, monkeypatch):
    root = _folder(tmp_path / "set", {"a": 12, "b": 12, "c": 3})
    monkeypatch.setattr(images, "MAX_FOLDER_IMAGES", 12)
    split = data.load_folder(root, (1, 8, 8))
    assert len(split.train) + len(split.test) == 12
    assert np.bincount(np.concatenate([split.train.labels, split.test.labels])).tolist() == [5, 4, 3]
    assert any("used 12 of 27 images" in note for note in split.notes)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("file", "this is a file"),
    ("empty", "no subfolders"),
    ("no images", "hold no images"),
    ("one class", "only the subfolder 'a' holds images"),
    ("one readable class", "only the subfolder 'a' has readable images"),
    ("nothing readable", "none of the images could be read"),
    ("too few", "too few images to hold any out"),
])
def test_bad_folders(tmp_path, case, message):
    root = tmp_path / "set"
    if case == "file":
        root.write_text("x")
    elif case == "empty":
        root.mkdir()
        (root / "loose.png").write_bytes(b"")
    elif case == "no images":
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
        (root / "b" / "notes.txt").write_text("x")
    elif case == "one class":
        _folder(root, {"a": 3})
        (root / "b").mkdir()
    elif case == "one readable class":
        _folder(root, {"a": 3})
        (root / "b").mkdir()
        (root / "b" / "bad.png").write_text("x")
    elif case == "nothing readable":
        for name in ("a", "b"):
            (root / name).mkdir(parents=True)
            for i in range(3):
                (root / name / f"bad{i}.jpg").write_text("x")
    elif case == "too few":
        _folder(root, {"a": 1, "b": 1})
    with pytest.raises(DataError, match=message):
        data.load_folder(root, (1, 8, 8))


def test_folder_progress_and_stopping(tmp_path):
    root = _folder(tmp_path / "set", {"a": 70, "b": 70})
    calls = []
    split = data.load(f"folder:{root}", (1, 8, 8), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(64, 140), (128, 140), (140, 140)]
    assert len(split.train) + len(split.test) == 140

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    data.clear_cache()
    with pytest.raises(Stop):
        data.load_folder(root, (1, 8, 8), progress=stop)


def test_folder_edge_cases(tmp_path):
    root = _folder(tmp_path / "set", {"a": 4, "b": 1, "c": 0})
    split = data.load_folder(root, (1, 8, 8))
    assert split.classes == ("a", "b")
    assert np.bincount(split.train.labels).tolist() == [3, 1] and split.test.labels.tolist() == [0]
    assert any("'b' has one image" in note for note in split.notes)
    assert any("'c' has no readable images" in note for note in split.notes)
    with pytest.raises(DataError, match="no folder was given"):
        data.load("folder:", (1, 8, 8))


def test_folder_refuses_a_bad_fraction(tmp_path):
    root = _folder(tmp_path / "set", {"a": 3, "b": 3})
    for fraction in (0, 1, -0.5, "half"):
        with pytest.raises(DataError, match="fraction"):
            data.load_folder(root, (1, 8, 8), test_fraction=fraction)

