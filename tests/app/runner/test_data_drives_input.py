"""The data drives the input: choosing a data set offers, in one click, the input and classes that fit it;
what is still done to its images is stated beside the sample; stale labels and curves go with the data."""
from __future__ import annotations

import numpy as np
from PIL import Image

from cnnviz.core.data import FOLDER_PREFIX
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from tests.app.run_helpers import wait_probe


def small_stack(data: str, shape=(1, 28, 28), classes: int = 10) -> Stack:
    return Stack(input=InputSpec(*shape), layers=(Layer("Flatten"), Layer("Linear", {"out_features": classes})),
                 training=TrainingConfig(data=data))


def pick(toolbar, name: str) -> None:
    box = toolbar.data_box
    box.activated.emit(box.findData(name))


def rgb_folder(root, size=(32, 32), per_class=3):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / cls / f"{i}.png")
    return root


def test_survey_reads_the_common_size_channels_and_classes(tmp_path):
    from cnnviz.core.data import survey_folder

    survey = survey_folder(rgb_folder(tmp_path / "pics"))
    assert (survey.channels, survey.height, survey.width) == (3, 32, 32)
    assert survey.classes == ("cats", "dogs") and survey.counts == (3, 3)


def test_picking_digits_offers_its_input_and_undo_takes_it_back(make_window, qtbot):
    window = make_window(stack=small_stack("fashion-mnist"), live=True)
    runner, toolbar = window.runner, window.runner.toolbar
    wait_probe(qtbot, runner)
    assert toolbar.offer == ""  # nothing to offer for the data set the stack was made for
    toolbar.set_sample(0)
    shown = toolbar.sample_label.text()
    assert shown.startswith("true: ")
    before = window.document.stack
    pick(toolbar, "digits")
    assert window.document.stack.training.data == "digits"
    assert toolbar.sample_label.text() == ""  # not the fashion label any more
    assert "1×8×8 input" in toolbar.offer and "10 classes" not in toolbar.offer  # the Linear has 10 already
    assert "resized from 8×8 to 28×28" in toolbar.conversion_label.text()
    wait_probe(qtbot, runner)
    assert toolbar.sample_label.text().removeprefix("true: ") in tuple("0123456789")
    toolbar.adapt_button.click()
    assert window.document.stack.input == InputSpec(1, 8, 8)
    assert toolbar.offer == "" and toolbar.conversion_label.text() == ""
    wait_probe(qtbot, runner)
    assert window.undo_action.shortcut().toString() == "Ctrl+Z"
    assert window.undo_action.text() == "&Undo Use 1×8×8 input"
    window.undo_action.trigger()  # Ctrl+Z
    assert window.document.stack.input == before.input
    assert "1×8×8" in toolbar.offer  # back, the offer stands again


def test_the_curves_go_when_the_data_set_changes(make_window, qtbot):
    window = make_window(stack=small_stack("digits", (1, 8, 8)), live=True)
    runner = window.runner
    wait_probe(qtbot, runner)
    runner.step()
    qtbot.waitUntil(lambda: runner.last_progress is not None, timeout=20_000)
    pick(runner.toolbar, "shapes")
    assert runner.last_progress is None
    assert runner.toolbar.sample_label.text() == ""


def test_a_folder_of_rgb_images_states_the_conversion_and_offers_its_shape(make_window, qtbot, tmp_path):
    folder = rgb_folder(tmp_path / "pics")
    window = make_window(stack=small_stack("digits", (1, 8, 8)), live=True)
    runner, toolbar = window.runner, window.runner.toolbar
    wait_probe(qtbot, runner)
    runner.edit_training("data", FOLDER_PREFIX + str(folder))
    conversion = toolbar.conversion_label.text()
    assert "resized from 32×32 to 8×8" in conversion and "RGB → grey" in conversion
    assert "3×32×32 input" in toolbar.offer and "2 classes" in toolbar.offer
    assert "RGB → grey" in toolbar.conversion_label.toolTip()
    toolbar.adapt_button.click()
    stack = window.document.stack
    assert stack.input == InputSpec(3, 32, 32) and stack.layers[-1].params["out_features"] == 2
    assert toolbar.offer == "" and toolbar.conversion_label.text() == ""
    wait_probe(qtbot, runner)
    assert toolbar.sample_label.text() in ("true: cats", "true: dogs")
    window.undo_action.trigger()  # Ctrl+Z: both in one step
    assert window.document.stack.input == InputSpec(1, 8, 8)
    assert window.document.stack.layers[-1].params["out_features"] == 10


def test_a_class_count_that_does_not_fit_is_fixed_in_one_click(make_window, qtbot):
    """The engine refuses a network that scores 12 classes on digits; the offer fits the last Linear."""
    from cnnviz.core.model.stack import set_param

    window = make_window(stack=small_stack("digits", shape=(1, 8, 8)), live=True)
    runner, toolbar = window.runner, window.runner.toolbar
    wait_probe(qtbot, runner)
    assert toolbar.offer == ""
    window.history.push_edit(set_param(window.document.stack, 1, "out_features", 12))
    qtbot.waitUntil(lambda: runner.state == "refused", timeout=20_000)
    assert "scores 12 classes but digits has 10" in runner.hub.message
    assert toolbar.offer == "Use 10 classes for digits"  # the classes only: the input already fits
    toolbar.adapt_button.click()
    assert window.document.stack.layers[1].params["out_features"] == 10
    wait_probe(qtbot, runner)
    assert runner.state == "paused" and toolbar.offer == ""
    window.undo_action.trigger()
    assert window.document.stack.layers[1].params["out_features"] == 12
