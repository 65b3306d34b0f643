"""Own images: a person sees their folder's (or image's) pixels as the network gets them, its classes, counts
and the held-out split the engine uses, from the data picker, without the window waiting on the reading."""
from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QApplication

from cnnviz.app.runner.toolbar import OPEN_IMAGE, SHOW_DATA
from cnnviz.app.window.data_preview import DataPreview, PreviewRequest
from cnnviz.core import data
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from tests.app.run_helpers import wait_probe

RED, BLUE = "<b>red & co", "blue"  # a class named like markup is shown as typed


def colour_folder(root, counts=None):
    """32×32 RGB images, one colour per class, a little noise."""
    counts = counts or {RED: 7, BLUE: 5}
    rng = np.random.default_rng(1)
    colours = {RED: (220, 30, 30), BLUE: (30, 30, 220)}
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(np.array(colours[cls]) + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / cls / f"{i}.png")
    return root


def tiny_stack(data_name: str, classes: int = 2) -> Stack:
    return Stack(input=InputSpec(1, 8, 8), layers=(Layer("Flatten"), Layer("Linear", {"out_features": classes})),
                 training=TrainingConfig(data=data_name))


def choose(toolbar, value) -> None:
    """Pick an entry of the data picker, as a click in its list does."""
    box = toolbar.data_box
    index = box.findData(value)
    assert index >= 0, f"the data picker has no entry {value!r}"
    box.activated.emit(index)


def table(preview) -> list[tuple[str, ...]]:
    t = preview.table
    return [tuple(t.item(r, c).text() for c in range(t.columnCount())) for r in range(t.rowCount())]


def test_a_folder_shows_its_converted_images_classes_counts_and_split(make_window, qtbot, tmp_path, dialogs):
    folder = colour_folder(tmp_path / "pics")
    window = make_window(stack=tiny_stack(data.FOLDER_PREFIX + str(folder)), live=True)
    runner = window.runner
    wait_probe(qtbot, runner)
    choose(runner.toolbar, SHOW_DATA)
    preview = window.findChild(DataPreview)
    assert preview is not None and preview.isVisible()
    # The reading happens on a thread of its own: the window is back before the images are.
    assert preview.loading and preview.split is None and preview.state.text().startswith("Reading the images")
    qtbot.waitUntil(lambda: preview.split is not None or bool(preview.error), timeout=20_000)
    assert not preview.error

    # The same numbers the engine trains and tests on.
    split = data.load(data.FOLDER_PREFIX + str(folder), (1, 8, 8), 0)
    engine = {name: (int((split.train.labels == k).sum()), int((split.test.labels == k).sum()))
              for k, name in enumerate(split.classes)}
    rows = table(preview)
    assert rows[:-1] == [(name, f"{a}", f"{b}", f"{a + b}") for name, (a, b) in engine.items()]
    assert rows[-1] == ("all classes", str(len(split.train)), str(len(split.test)),
                        str(len(split.train) + len(split.test)))
    assert {name: a + b for name, (a, b) in engine.items()} == {RED: 7, BLUE: 5}
    assert engine[RED][1] == 1 and engine[BLUE][1] == 1  # 20 % of each class, at least one, held out
    assert "held out" in preview.split_note.text()

    # What is done to them, and how they look after it: 8×8 grey, each input pixel a square.
    assert "RGB → grey" in preview.conversion.text() and "32×32 to 8×8" in preview.conversion.text()
    assert len(preview.thumbs) == engine[RED][0] + engine[BLUE][0]  # at most 8 of each class
    image = preview.thumbs[0].pixmap().toImage()
    assert image.width() == image.height() == 56
    centre = image.pixelColor(28, 28)
    assert centre.red() == centre.green() == centre.blue()  # grey, as the one-channel input gets it
    shown = [w.text() for w in preview.grid_host.findChildren(type(preview.heading))]
    assert RED in shown  # the class name is plain text, not bold markup
    assert not dialogs.exceptions


def test_the_preview_follows_a_new_input_shape(make_window, qtbot, tmp_path):
    folder = colour_folder(tmp_path / "pics")
    window = make_window(stack=tiny_stack(data.FOLDER_PREFIX + str(folder)), live=True)
    runner = window.runner
    wait_probe(qtbot, runner)
    runner.toolbar.show_data_action.trigger()  # Run → Show the Data…
    preview = window.findChild(DataPreview)
    qtbot.waitUntil(lambda: preview.split is not None, timeout=20_000)
    from cnnviz.core.model.stack import SetInput

    window.history.push_edit(SetInput(InputSpec(3, 16, 16)))
    qtbot.waitUntil(lambda: preview.request is not None and preview.request.shape == (3, 16, 16)
                    and preview.split is not None, timeout=20_000)
    assert preview.split.shape == (3, 16, 16)
    assert "RGB → grey" not in preview.conversion.text()
    image = preview.thumbs[0].pixmap().toImage()
    assert image.pixelColor(28, 28).red() > image.pixelColor(28, 28).blue() or \
        image.pixelColor(28, 28).blue() > image.pixelColor(28, 28).red()  # in colour now


def test_a_single_image_is_shown_as_the_network_gets_it(make_window, qtbot, tmp_path, dialogs):
    picture = tmp_path / "my cat.png"
    Image.fromarray(np.full((32, 48, 3), (200, 40, 40), dtype=np.uint8), "RGB").save(picture)
    window = make_window(stack=tiny_stack("digits", 10), live=True)
    runner = window.runner
    wait_probe(qtbot, runner)
    dialogs.open_answers.append(str(picture))
    choose(runner.toolbar, OPEN_IMAGE)
    assert runner.target.image == str(picture)
    choose(runner.toolbar, SHOW_DATA)
    preview = window.findChild(DataPreview)
    qtbot.waitUntil(lambda: len(preview.thumbs) == 1, timeout=20_000)
    assert "my cat.png" in preview.heading.text() and "1×8×8" in preview.heading.text()
    texts = " ".join(w.text() for w in preview.grid_host.findChildren(type(preview.heading)))
    assert "48×32 RGB" in texts and "1×8×8" in texts
    image = preview.thumbs[0].pixmap().toImage()
    assert image.width() == image.height() and image.width() >= 64
    c = image.pixelColor(image.width() // 2, image.height() // 2)
    assert c.red() == c.green() == c.blue()
    assert not dialogs.exceptions


def test_a_folder_that_cannot_be_read_says_why_without_a_traceback(qtbot, tmp_path):
    preview = DataPreview()
    qtbot.addWidget(preview)
    preview.show_for(PreviewRequest(data.FOLDER_PREFIX + str(tmp_path / "nowhere"), (1, 8, 8)))
    qtbot.waitUntil(lambda: bool(preview.error), timeout=10_000)
    text = preview.state.text()
    assert text.startswith("The images cannot be shown:") and "Traceback" not in text
    QApplication.processEvents()
