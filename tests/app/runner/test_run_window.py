"""The live window: forward passes on the worker thread reach the views, edits re-run, errors become messages."""
from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.model import files
from cnnviz.core.model.stack import SetInput, set_param
from tests.app.run_helpers import digits_stack, show_tab, spin, torch_forward, wait_probe


def test_the_first_forward_pass_fills_the_views_with_torchs_numbers(live, examples, qtbot):
    window = live()
    runner, hub = window.runner, window.runner.hub
    stack = window.document.stack
    assert window.selected_layer() == 0
    snap = hub.snapshot
    assert snap.probe.index == 0 and snap.probe.step == 0
    np.testing.assert_allclose(hub.maps.maps, torch_forward(stack, 0, 0), rtol=1e-5, atol=1e-5)
    assert "layer 0" in hub.maps._title and not hub.maps.is_empty
    assert hub.maps._input is not None  # the input image beside the maps
    np.testing.assert_allclose(hub.softmax._probs, snap.probe.softmax)
    assert hub.softmax.true_class == snap.probe.label
    assert hub.filters.weights.shape == (16, 1, 3, 3)
    assert snap.probe.activation_grads[0] is None, "the overview in front: the probe took no gradient"
    assert "Reading" in hub.grad_maps.hint_text
    show_tab(window, "Gradient maps")   # shown, it asks for the selected layer's gradient, and gets it
    snap = wait_probe(qtbot, runner, lambda s: s.probe.activation_grads[0] is not None)
    assert snap.probe.grad_layers == (0,) and all(g is None for g in snap.probe.activation_grads[1:])
    assert not hub.grad_maps.is_empty and hub.grad_maps.symmetric
    show_tab(window, "Overview")
    snap = wait_probe(qtbot, runner, lambda s: s.probe.grad_layers == ())
    assert snap.target.with_identities is False and snap.target.param_grads is False
    assert window.status_fields["device"].text().startswith("cpu")
    assert "step 0" in window.status_fields["run"].text()
    assert runner.toolbar.sample_label.text() == f"true: {snap.probe.label_name}"
    assert runner.toolbar.device_box.findData("cpu") >= 0


def test_selecting_another_layer_shows_its_maps_at_once(live, examples, qtbot):
    window = live()
    hub = window.runner.hub
    snap = hub.snapshot
    window.select_layer(2)
    # no waiting: the arrays are in the last snapshot already
    assert hub.snapshot is snap
    np.testing.assert_array_equal(hub.maps.maps, snap.probe.activations[2])
    np.testing.assert_allclose(hub.maps.maps, torch_forward(window.document.stack, 0, 2), rtol=1e-5, atol=1e-5)
    assert hub.filters.weights.shape == (32, 16, 3, 3)
    window.select_layer(1)  # ReLU: no filters
    assert hub.filters.is_empty and "no filters" in hub.filters.hint_text
    window.stack_panel.select_row(0)  # the input row: the image itself and the saliency map
    np.testing.assert_array_equal(hub.maps.maps, snap.probe.image)
    show_tab(window, "Gradient maps")  # dL/d(input) is taken once a view shows it
    snap = wait_probe(qtbot, window.runner, lambda s: s.probe.input_grad is not None)
    np.testing.assert_array_equal(hub.grad_maps.maps, snap.probe.input_grad)


def test_the_sample_picker_runs_another_sample(live, examples, qtbot):
    window = live()
    runner = window.runner
    runner.toolbar.next_button.click()
    snap = wait_probe(qtbot, runner, lambda s: s.probe.index == 1)
    np.testing.assert_allclose(runner.hub.maps.maps, torch_forward(window.document.stack, 1, 0), rtol=1e-5,
                               atol=1e-5)
    assert runner.toolbar.sample_label.text() == f"true: {snap.probe.label_name}"


def test_a_burst_of_edits_costs_one_or_two_builds_and_the_last_one_shows(live, examples, qtbot):
    window = live()
    runner = window.runner
    builds = runner.worker.builds
    for width in range(65, 85):
        window.history.push_edit(set_param(window.document.stack, 7, "out_features", width))
    snap = wait_probe(qtbot, runner)
    assert snap.probe.activations[7].shape == (84,)
    assert runner.worker.builds - builds <= 2
    window.select_layer(7)
    assert window.runner.hub.maps.maps.size == 84


def test_a_shape_error_shows_the_message_instead_of_running(live, examples, qtbot):
    window = live()
    hub = window.runner.hub
    window.history.push_edit(set_param(window.document.stack, 4, "kernel_size", 16))
    qtbot.waitUntil(lambda: window.runner.state == "refused")
    assert hub.maps.is_empty and "Fix layer 4 (MaxPool2d) to run the network" in hub.maps.hint_text
    assert "kernel" in hub.softmax.hint_text
    assert not window.runner.toolbar.train_action.isEnabled()
    window.history.undo()
    wait_probe(qtbot, window.runner)
    assert not hub.maps.is_empty and window.runner.toolbar.train_action.isEnabled()


def test_the_gradient_view_shows_the_identity_for_lenet5_on_digits(live, examples, qtbot):
    from dataclasses import replace

    lenet = files.load(examples["lenet5"])
    window = live(stack=replace(lenet, training=replace(lenet.training, data="digits")))
    view = window.runner.hub.gradient
    show_tab(window, "Loss head: dL/dz")
    wait_probe(qtbot, window.runner, lambda s: s.probe.identities is not None)
    assert view.max_difference is not None and view.max_difference < 1e-6
    assert view.agrees
    assert "sample 0" in view._note


def test_softmax_and_cross_entropy_says_where_the_identity_holds(live, examples, qtbot):
    from cnnviz.core.model.stack import InsertLayer, Layer

    window = live()
    show_tab(window, "Loss head: dL/dz")
    stack = window.document.stack
    window.history.push_edit(InsertLayer(len(stack.layers), Layer("Softmax", {"dim": 1})))
    wait_probe(qtbot, window.runner, lambda s: s.probe.identities is not None)
    view = window.runner.hub.gradient
    assert view.agrees is False
    assert "Double softmax" in view._note and "At the loss input p = softmax(z)" in view._note


def test_the_training_settings_are_undoable_edits_saved_with_the_stack(live, examples, qtbot, tmp_path):
    window = live()
    toolbar = window.runner.toolbar
    toolbar.lr_box.setEditText("0.01")
    toolbar.lr_box.lineEdit().editingFinished.emit()
    assert window.document.stack.training.lr == 0.01 and window.isWindowModified()
    toolbar.batch_spin.setValue(32)
    assert window.document.stack.training.batch_size == 32
    path = tmp_path / "saved.cnnviz"
    files.save(window.document.stack, path)
    assert files.load(path).training.lr == 0.01
    window.history.undo()
    window.history.undo()
    assert window.document.stack.training.lr == 0.002 and toolbar.lr_box.currentText() == "0.002"
    builds = window.runner.worker.builds
    spin(100)
    assert window.runner.worker.builds == builds  # lr and batch size change the running session, no rebuild


def test_an_edit_of_the_input_builds_again_on_the_new_size(live, examples, qtbot):
    from cnnviz.core.model.stack import InputSpec

    window = live()
    window.history.push_edit(SetInput(InputSpec(1, 16, 16)))
    snap = wait_probe(qtbot, window.runner)
    assert snap.probe.image.shape == (1, 16, 16)
    assert snap.probe.activations[0].shape == (16, 16, 16)


def test_closing_joins_the_worker_thread(live, examples, qtbot):
    window = live()
    worker = window.runner.worker
    assert worker._thread.isRunning()
    window.close_without_asking()
    assert not worker._thread.isRunning()


def test_a_bad_image_is_a_message(live, examples, qtbot, dialogs, tmp_path):
    window = live()
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    dialogs.open_answers.append(str(bad))
    window.runner.open_image()
    qtbot.waitUntil(lambda: bool(dialogs.errors))
    title, message = dialogs.errors[-1]
    assert title == "Cannot run this image" and "notes.png" in message
    assert window.runner.target.image is None


def test_an_image_of_ones_own_runs_with_the_predicted_class(live, examples, qtbot, dialogs, tmp_path):
    from PIL import Image

    window = live()
    path = tmp_path / "seven.png"
    Image.fromarray((np.eye(32, dtype=np.uint8) * 255)).save(path)
    dialogs.open_answers.append(str(path))
    window.runner.open_image()
    snap = wait_probe(qtbot, window.runner, lambda s: s.target.image is not None)
    assert snap.probe.image.shape == (1, 8, 8) and snap.probe.label == snap.probe.prediction
    assert window.runner.hub.softmax.true_class is None
    assert "seven.png" in window.runner.toolbar.sample_label.text()


def test_a_folder_with_another_class_count_says_what_to_change(live, examples, qtbot, dialogs, tmp_path):
    from PIL import Image

    window = live()
    for name in ("cats", "dogs", "owls"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "pets" / name / f"{i}.png")
    dialogs.open_answers.append(str(tmp_path / "pets"))
    window.runner.open_folder()
    assert window.document.stack.training.data == f"folder:{tmp_path / 'pets'}"
    qtbot.waitUntil(lambda: window.runner.state == "refused")
    hint = window.runner.hub.maps.hint_text
    assert "scores 10 classes but folder:" in hint and "pets has 3" in hint
    assert "folder: pets" in window.runner.toolbar.data_box.currentText()
    window.history.undo()
    wait_probe(qtbot, window.runner)


def test_onnx_export_carries_the_trained_weights(live, examples, qtbot, dialogs, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    window = live()
    runner = window.runner
    runner.worker.step(5)
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == 5)
    trained = snap.weights[0]
    target = tmp_path / "net.onnx"
    dialogs.save_answers.append(str(target))
    window.export_onnx()
    qtbot.waitUntil(lambda: not window.exporter.busy, timeout=60_000)
    assert not dialogs.errors and not dialogs.exceptions
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(target)).graph.initializer}
    first = next(w for w in weights.values() if w.shape == trained.shape)
    np.testing.assert_allclose(first, trained, rtol=1e-6, atol=1e-7)
    from cnnviz.core.run.build import build_model

    fresh = build_model(window.document.stack, seed=0)[0].weight.detach().numpy()
    assert not np.allclose(fresh, trained, atol=1e-4)  # five steps moved them: the export is not the seed's


def test_a_device_that_is_not_there_is_a_message(make_window, examples, qtbot, dialogs):
    window = make_window(stack=digits_stack(examples, device="cuda:7"), live=True)
    qtbot.waitUntil(lambda: window.runner.state == "refused", timeout=20_000)
    title, message = dialogs.errors[-1]
    assert title == "Cannot use this device" and "cuda:7 was asked for" in message
    assert "cuda:7" in window.runner.toolbar.device_box.currentText()
    ids = [window.runner.toolbar.device_box.itemData(i) for i in range(window.runner.toolbar.device_box.count())]
    assert ids[:2] == ["auto", "cpu"]  # what this machine has, then what the file asked for
    window.runner.toolbar.device_box.setCurrentIndex(1)
    window.runner.toolbar.device_box.activated.emit(1)
    assert window.document.stack.training.device == "cpu"
    wait_probe(qtbot, window.runner)


def test_the_live_window_imports_torch_only_on_the_worker_thread():
    """Start-up stays fast: the window shows without torch; the worker thread imports it afterwards."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import os, sys, tempfile, threading, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        first = {}

        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" and "thread" not in first:
                    first["thread"] = "main" if threading.current_thread() is threading.main_thread() else "worker"
                return None

        sys.meta_path.insert(0, Spy())
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from cnnviz.app.window.main_window import MainWindow
        from cnnviz.app.window.settings import Settings
        from cnnviz.app.window.dialogs import Dialogs
        d = tempfile.mkdtemp()
        w = MainWindow(settings=Settings(d + "/s.ini"), autosave_dir=d, dialogs=Dialogs(), live=True,
                       stack=None)
        w.show()
        before = "torch" in sys.modules   # the window is built and shown: the worker starts after the first paint
        app.processEvents()
        t = time.monotonic()
        while w.runner.hub.snapshot is None and time.monotonic() - t < 60:
            app.processEvents(); time.sleep(0.01)
        print(before, first.get("thread"), w.runner.hub.snapshot is not None)
        w.close_without_asking()
    """)
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "worker", "True"], out.stdout + out.stderr[-2000:]


def test_large_weights_travel_only_for_the_selected_layer(live, examples, qtbot, monkeypatch):
    from cnnviz.core.run import live as live_session

    monkeypatch.setattr(live_session, "SMALL_WEIGHTS", 0)
    window = live()
    runner = window.runner
    runner.forward()  # the first probe came before the patch; this one follows it
    qtbot.waitUntil(lambda: set(runner.hub.snapshot.weights) == {0}, timeout=10_000)  # layer 0 is selected
    window.select_layer(2)
    assert "Reading the weights of layer 2" in runner.hub.filters.hint_text
    qtbot.waitUntil(lambda: runner.hub.filters.weights is not None, timeout=10_000)
    assert runner.hub.filters.weights.shape == (32, 16, 3, 3) and set(runner.hub.snapshot.weights) == {2}
