"""Saliency, Grad-CAM and the receptive field of the person's own image (the toolbar's *open image*).

Each map is checked against one computed here on the same model from an input normalised here, independently
of the window's code: ``data.load_image`` then ``data.normalize`` with the data set's mean and std (what the
probe of that image gives layer 0), with plain autograd for saliency and Grad-CAM.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from cnnviz.app.runner import debugging
from cnnviz.app.runner import receptive as glue
from cnnviz.app.runner.own_image import OwnImage
from cnnviz.core import data
from cnnviz.core.lab import receptive
from cnnviz.core.model import assets, files
from tests.app.run_helpers import TIMEOUT_MS, digits_stack, show_tab, wait_probe
from tests.core.run.test_attribution import reference

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = {"rtol": 1e-5, "atol": 1e-5}
GRAD_CAM_LAYER, SCORES = 4, 9  # the digits net: MaxPool2d, the last C×H×W output; Linear, the class scores


def picture(path, seed=0):
    """A 48×32 RGB picture: a bright blob on noise, nothing like the digits."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (32, 48, 3))
    pixels[8:22, 14:30] += 150
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)
    return str(path)


def normalised_here(session, path):
    """The image as layer 0 gets it, computed without the window's code."""
    pixels = data.load_image(path, session.stack.input.shape)
    x = data.normalize(pixels[None], session.data.mean, session.data.std)
    return pixels, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(session.device)


@pytest.fixture(scope="module")
def session():
    from cnnviz.core.run.engine import Session

    stack = files.load(assets.path("examples", "digits.cnnviz"))
    s = Session(stack, replace(stack.training, device="cpu"))
    for _ in range(30):
        s.step()
    yield s
    s.close()


def test_saliency_and_grad_cam_of_an_own_image_are_the_formulas_on_its_normalised_pixels(session, tmp_path):
    path = picture(tmp_path / "my photo.png")
    pixels, x = normalised_here(session, path)
    own = OwnImage()
    key = (1, path, session.step_count, None, None)
    got = debugging.attribute_image_on_worker(session, key, path, None, None, own)
    ref = reference(session.model, x, GRAD_CAM_LAYER, SCORES)
    assert not got.error and got.path == path and got.key == key
    assert got.class_index == got.predicted == ref["c"]  # no true class: the predicted one
    assert got.layer == GRAD_CAM_LAYER and got.score == pytest.approx(ref["score"], rel=1e-5)
    np.testing.assert_array_equal(got.image, pixels)   # drawn over the person's image
    np.testing.assert_allclose(got.saliency, ref["sal"], **TOL)
    np.testing.assert_allclose(got.cam, ref["up"], **TOL)
    assert got.saliency.shape == got.cam.shape == (8, 8) and got.saliency.max() > 0

    # Another class: its maps, the prediction kept; the file is read once (gone now, still explained).
    other = (ref["c"] + 3) % 10
    (tmp_path / "my photo.png").unlink()
    again = debugging.attribute_image_on_worker(session, key, path, other, 1, own)
    ref2 = reference(session.model, x, 1, SCORES, class_index=other)
    assert not again.error and again.class_index == other and again.predicted == ref["c"] and again.layer == 1
    np.testing.assert_allclose(again.saliency, ref2["sal"], **TOL)
    np.testing.assert_allclose(again.cam, ref2["up"], **TOL)
    assert not np.allclose(again.saliency, got.saliency)

    # A tab that has not read it yet: one sentence, no traceback.
    gone = debugging.attribute_image_on_worker(session, key, path, None, None, OwnImage())
    assert gone.error.startswith("Saliency and Grad-CAM cannot be computed for my photo.png: ")
    assert "no such file" in gone.error and "\n" not in gone.error and "Traceback" not in gone.error


def test_the_receptive_field_of_an_own_image_is_effective_field_on_its_normalised_pixels(session, tmp_path):
    path = picture(tmp_path / "cat.png", seed=3)
    pixels, x = normalised_here(session, path)
    key = (1, path, session.step_count, 2, 5, 3, 4)
    got = glue.measure_image_on_worker(session, key, path, 2, 5, 3, 4, True, OwnImage())
    want = receptive.effective_field(session.model, x, 2, 5, 3, 4, report=session.report)
    assert not got.error and got.path == path
    np.testing.assert_array_equal(got.image, pixels)
    np.testing.assert_allclose(got.field.map, want.map, rtol=1e-6, atol=1e-9)
    assert got.field.extent == want.extent and got.field.map.max() > 0
    growth = receptive.effective_growth(session.model, x, session.report)
    assert [p.effective for p in got.growth] == [p.effective for p in growth]
    # A held-out sample's field differs: the image, not sample 0, was measured.
    held_out = glue.measure_on_worker(session, key, 0, 2, 5, 3, 4, False)
    assert not np.allclose(held_out.field.map, got.field.map)

    gone = glue.measure_image_on_worker(session, key, str(tmp_path / "deleted.png"), 2, 5, 3, 4, False, OwnImage())
    assert gone.error.startswith("The receptive field cannot be measured on deleted.png: ")
    assert "\n" not in gone.error and gone.field is None


def on_worker(qtbot, runner, fn):
    future = runner.worker.call_at_boundary(fn)
    qtbot.waitUntil(future.done, timeout=TIMEOUT_MS)
    return future.result()


def open_image(qtbot, runner, dialogs, path):
    """The toolbar's *open image*, as a person picks it; waits for its probe."""
    from cnnviz.app.runner.toolbar import OPEN_IMAGE
    from tests.app.test_own_images import choose

    dialogs.open_answers.append(path)
    choose(runner.toolbar, OPEN_IMAGE)
    assert runner.target.image == path
    return wait_probe(qtbot, runner, lambda s: s.probe is not None and s.target.image == path)


def test_in_the_live_window_an_own_image_is_explained_and_its_field_measured(make_window, examples, qtbot,
                                                                            tmp_path, dialogs):
    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    wait_probe(qtbot, runner, timeout=60_000)   # torch and the data set load first, on a busy machine
    path = picture(tmp_path / "mine.png")
    open_image(qtbot, runner, dialogs, path)
    dbg = runner.debugging
    show_tab(window, "Saliency")
    qtbot.waitUntil(lambda: dbg.attribution_key is not None and dbg.attribution_key[1] == path
                    and dbg.attributions >= 1, timeout=TIMEOUT_MS)
    view = dbg.attribution
    assert not view.is_empty and view.chosen_class is None

    def here(session):
        _, x = normalised_here(session, path)
        return reference(session.model, x, GRAD_CAM_LAYER, SCORES), session.step_count

    ref, step = on_worker(qtbot, runner, here)
    assert dbg.attribution_key[2] == step
    np.testing.assert_allclose(view.saliency_map(), ref["sal"], **TOL)
    np.testing.assert_allclose(view.cam_map(), ref["up"], **TOL)
    view.flush()
    assert view.shown_heat("saliency").shape == view.shown_heat("cam").shape == (8, 8)  # the image's size
    assert "Your image mine.png" in view.caption.text() and "the predicted class" in view.caption.text()

    fields = runner.workbench.receptive
    show_tab(window, "Receptive field")
    window.select_layer(2)
    qtbot.waitUntil(lambda: fields.shown_key is not None and fields.shown_key[1] == path
                    and fields.shown_key[3] == 2 and fields.measurements >= 1, timeout=TIMEOUT_MS)
    _, _, _, layer, c, y, x = fields.shown_key

    def field_here(session):
        _, xb = normalised_here(session, path)
        return receptive.effective_field(session.model, xb, layer, c, y, x, report=session.report)

    want = on_worker(qtbot, runner, field_here)
    fields.flush()
    np.testing.assert_allclose(fields.view.shown_heat(), want.map, rtol=1e-6, atol=1e-9)
    assert "Your image mine.png at step" in fields.view.caption.text()

    # Another image, deleted after its probe and before either tab read it: a sentence in each tab.
    show_tab(window, "Confusion")
    other = picture(tmp_path / "gone.png", seed=5)
    open_image(qtbot, runner, dialogs, other)
    (tmp_path / "gone.png").unlink()
    show_tab(window, "Saliency")
    qtbot.waitUntil(lambda: dbg.attribution_key is not None and dbg.attribution_key[1] == other, timeout=TIMEOUT_MS)
    assert view.is_empty and view.hint_text.startswith("Saliency and Grad-CAM cannot be computed for gone.png: ")
    assert "\n" not in view.hint_text
    show_tab(window, "Receptive field")
    qtbot.waitUntil(lambda: fields.shown_key is not None and fields.shown_key[1] == other, timeout=TIMEOUT_MS)
    assert fields.view.is_empty and fields.view.hint_text.startswith(
        "The receptive field cannot be measured on gone.png: ")

    # A held-out sample again: as before.
    runner.toolbar.set_sample(7)
    wait_probe(qtbot, runner, lambda s: s.target.image is None and s.probe.index == 7)
    qtbot.waitUntil(lambda: fields.shown_key is not None and fields.shown_key[1] == 7, timeout=TIMEOUT_MS)
    assert not fields.view.is_empty
    assert not dialogs.exceptions
