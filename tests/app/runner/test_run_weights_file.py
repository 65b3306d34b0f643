"""Trained weights kept from the window: Save writes NAME.safetensors beside the stack, Open loads it,
and Reset, New and Quit ask first while trained weights are not saved."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tests.app.run_helpers import digits_stack, spin, wait_probe

WEIGHTS_QUESTION = "Trained weights not saved"


def train(qtbot, runner, steps: int) -> None:
    runner.worker.step(steps)
    qtbot.waitUntil(lambda: runner.last_progress is not None and runner.last_progress.step == steps,
                    timeout=20_000)


def wait_future(qtbot, future):
    qtbot.waitUntil(future.done, timeout=20_000)
    return future.result()


def save_as(qtbot, window, dialogs, path) -> None:
    dialogs.save_answers.append(str(path))
    assert window.files.save_as()
    qtbot.waitUntil(lambda: window.runner._weights_saving == 0, timeout=20_000)


def stack_and_weights(tmp_path, examples, weights_stack, name="net"):
    """The digits stack saved as NAME.cnnviz, with weights of a model built from ``weights_stack`` beside it."""
    from cnnviz.core.model import files
    from cnnviz.core.run import build, weights

    stack = digits_stack(examples)
    path = tmp_path / f"{name}.cnnviz"
    files.save(stack, path)
    model = build.build_model(weights_stack, seed=123)
    weights.save(model, weights_stack, weights.beside(path))
    return path, model


def test_save_as_writes_the_trained_weights_and_opening_loads_them(live, qtbot, dialogs, tmp_path, make_window):
    from safetensors.torch import load_file

    window = live()
    runner = window.runner
    train(qtbot, runner, 5)
    assert runner.weights_unsaved
    trained = wait_probe(qtbot, runner, lambda s: s.probe.step == 5).probe.logits.copy()

    save_as(qtbot, window, dialogs, tmp_path / "net.cnnviz")
    beside = tmp_path / "net.safetensors"
    assert beside.is_file() and (tmp_path / "net.cnnviz").is_file()
    assert not dialogs.errors
    assert "Saved the trained weights (step 5) to net.safetensors" in window.statusBar().currentMessage()
    assert not runner.weights_unsaved
    model = wait_future(qtbot, runner.live_model())
    saved = load_file(str(beside))
    state = model.state_dict()
    assert set(saved) == set(state)
    for key, value in state.items():
        assert np.array_equal(saved[key].numpy(), value.numpy()), key

    window.close()  # saved: nothing to ask
    assert not window.isVisible()
    other = live(tmp_path / "net.cnnviz")
    snap = wait_probe(qtbot, other.runner)
    assert snap.probe.step == 0
    np.testing.assert_allclose(snap.probe.logits, trained, rtol=1e-5, atol=1e-5)
    assert other.runner.trained and not other.runner.weights_unsaved
    assert "Loaded the trained weights in net.safetensors" in other.statusBar().currentMessage()
    assert not dialogs.errors and not dialogs.questions[1:]


def test_saving_an_untrained_network_writes_no_weights(live, qtbot, dialogs, tmp_path):
    window = live()
    dialogs.save_answers.append(str(tmp_path / "net.cnnviz"))
    assert window.files.save_as()
    spin(200)
    assert (tmp_path / "net.cnnviz").is_file() and not (tmp_path / "net.safetensors").exists()
    assert not window.runner.weights_unsaved and not dialogs.errors


def test_weights_saved_for_another_stack_that_fit_load_with_a_warning(live, qtbot, dialogs, tmp_path, examples):
    import torch

    from cnnviz.core.model.stack import set_param

    stack = digits_stack(examples)
    other = set_param(stack, 6, "p", 0.5).apply(stack)[0]  # another architecture key, the same tensors
    other = replace(other, name="Another net")
    path, model = stack_and_weights(tmp_path, examples, other)
    window = live(path)
    runner = window.runner
    snap = wait_probe(qtbot, runner)
    message = window.statusBar().currentMessage()
    assert "was saved for 'Another net', a different stack" in message and "so they were loaded" in message
    assert not dialogs.errors
    loaded = wait_future(qtbot, runner.live_model())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert snap.probe.step == 0 and runner.trained


def test_weights_that_do_not_fit_are_refused_with_the_layer_named_and_the_stack_opens(
        live, qtbot, dialogs, tmp_path, examples):
    from cnnviz.core.model.stack import set_param

    stack = digits_stack(examples)
    other = set_param(stack, 0, "out_channels", 8).apply(stack)[0]
    path, _model = stack_and_weights(tmp_path, examples, other)
    window = live(path)
    qtbot.waitUntil(lambda: bool(dialogs.errors), timeout=20_000)
    title, message = dialogs.errors[-1]
    assert title == "Cannot load the trained weights"
    assert "layer 0 (Conv2d)" in message and "seed's weights" in message
    assert window.files.path == path.resolve() and window.document.stack.name == "Digits net"
    runner = window.runner
    wait_probe(qtbot, runner)
    assert runner.state == "paused" and not runner.trained and not runner.weights_unsaved


def test_quit_new_and_reset_ask_while_trained_weights_are_unsaved(live, qtbot, dialogs, tmp_path):
    window = live()
    runner = window.runner
    train(qtbot, runner, 3)
    window.history.setClean()
    stack = window.document.stack

    dialogs.yes_no_answers.append(False)
    assert not window.close()
    assert dialogs.questions[-1] == (WEIGHTS_QUESTION, "The trained weights are not saved: discard them?")
    assert window.isVisible() and runner.worker._thread.isRunning()

    dialogs.yes_no_answers.append(False)
    assert not window.files.new_stack()
    assert dialogs.questions[-1][0] == WEIGHTS_QUESTION
    assert window.document.stack is stack

    dialogs.yes_no_answers.append(False)
    runner.toolbar.reset_action.trigger()
    assert dialogs.questions[-1][0] == WEIGHTS_QUESTION
    spin(300)
    runner.forward()
    assert wait_probe(qtbot, runner, lambda s: s.probe.step == 3).probe.step == 3  # not reset
    assert runner.weights_unsaved

    asked = len(dialogs.questions)
    save_as(qtbot, window, dialogs, tmp_path / "net.cnnviz")
    assert (tmp_path / "net.safetensors").is_file() and not runner.weights_unsaved
    assert window.close()  # saved: nothing more to ask
    assert len(dialogs.questions) == asked + 1  # only the save dialog
    assert not runner.worker._thread.isRunning()


def test_yes_discards_the_trained_weights_for_a_new_stack(live, qtbot, dialogs):
    window = live()
    runner = window.runner
    train(qtbot, runner, 2)
    window.history.setClean()
    dialogs.yes_no_answers.append(True)
    assert window.files.new_stack()
    assert dialogs.questions[-1][0] == WEIGHTS_QUESTION
    assert window.document.stack.layers == ()
