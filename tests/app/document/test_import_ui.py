"""File → Import ONNX…: the model is read on a worker thread, saved as NAME.cnnviz with NAME.safetensors
beside it, and opened (so the runner loads those weights); a refused model leaves the open stack alone."""
from __future__ import annotations

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from onnx import TensorProto, helper

from cnnviz.app.document.files_ui import FileController
from cnnviz.app.document.import_ui import OnnxImporter
from cnnviz.app.document.undo import History
from cnnviz.core import shapes
from cnnviz.core.export import to_onnx
from cnnviz.core.model import files
from cnnviz.core.model.stack import InputSpec, Layer, Stack, StackDocument, residual
from cnnviz.core.run import build, weights


class _Settings:
    def __init__(self) -> None:
        self.recent: list[str] = []

    def last_folder(self) -> str:
        return ""

    def set_last_folder(self, folder) -> None:
        pass

    def add_recent_file(self, path) -> list[str]:
        self.recent.append(str(path))
        return self.recent

    def remove_recent_file(self, path) -> None:
        pass

    def last_clean_close(self) -> float:
        return 0.0

    def mark_clean_close(self, when=None) -> None:
        pass


STACK = Stack("small resnet", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("BatchNorm2d"), Layer("ReLU"),
    residual([Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("BatchNorm2d")]),
    Layer("Flatten"), Layer("Linear", {"out_features": 10})))


@pytest.fixture
def controller(qtbot, tmp_path, dialogs):
    document = StackDocument(Stack(), analyse=shapes.infer)
    history = History(document)
    file_controller = FileController(document, history, _Settings(), dialogs, tmp_path / "autosave")
    replaced = []
    file_controller.stackReplaced.connect(lambda: replaced.append(file_controller.path))
    importer = OnnxImporter(file_controller, dialogs, file_controller.settings)
    importer.replaced = replaced
    return importer


def test_import_saves_the_stack_with_its_weights_and_opens_it(controller, dialogs, qtbot, tmp_path):
    trained = build.build_model(STACK, seed=7)
    model_path = to_onnx(STACK, tmp_path / "model.onnx", model=trained).path
    dialogs.open_answers.append(str(model_path))
    dialogs.save_answers.append(str(tmp_path / "mine"))
    with qtbot.waitSignal(controller.finished, timeout=60_000):
        assert controller.import_onnx()
    assert not dialogs.errors, dialogs.errors
    stack_path = (tmp_path / "mine.cnnviz").resolve()
    assert controller.files.path == stack_path and controller.replaced == [stack_path]
    assert controller.files.document.stack == files.load(stack_path)
    assert [layer.type for layer in controller.files.document.stack.layers] == [layer.type for layer in STACK.layers]
    # what RunController.stack_opened loads into the session it builds next: the trained weights
    beside = weights.beside(stack_path)
    assert beside.is_file()
    loaded = build.build_model(controller.files.document.stack, seed=0)
    weights.load_into(loaded, controller.files.document.stack, beside)
    for key, value in trained.state_dict().items():
        assert (loaded.state_dict()[key] == value).all(), key
    assert not controller.busy and not controller.files.is_dirty()


def test_a_refused_model_leaves_the_open_stack_and_writes_nothing(controller, dialogs, qtbot, tmp_path):
    graph = helper.make_graph([helper.make_node("LRN", ["input"], ["output"], name="local_norm", size=3)], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)])
    model_path = tmp_path / "lrn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model_path))
    before = controller.files.document.stack
    dialogs.open_answers.append(str(model_path))
    dialogs.save_answers.append(str(tmp_path / "out.cnnviz"))
    with qtbot.waitSignal(controller.finished, timeout=60_000):
        controller.import_onnx()
    assert len(dialogs.errors) == 1
    title, message = dialogs.errors[0]
    assert title == "Cannot import this model" and "'local_norm' (LRN)" in message and "nothing was written" in message
    assert controller.files.document.stack is before and controller.replaced == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "autosave") == ["lrn.onnx"]


def test_cancelling_or_keeping_unsaved_work_imports_nothing(controller, dialogs, tmp_path):
    dialogs.open_answers.append(None)
    assert not controller.import_onnx()
    controller.files._forced_dirty = True  # as after a recovery: unsaved work
    dialogs.unsaved_answers.append("cancel")
    assert not controller.import_onnx()
    assert dialogs.questions[-1][0] == "unsaved" and not controller.busy
    assert not any(Path(tmp_path).glob("*.cnnviz"))


def test_file_import_onnx_opens_the_stack_with_its_weights_loaded(make_window, dialogs, qtbot, tmp_path):
    """The menu action, end to end in the live window: the runner loads NAME.safetensors beside the stack."""
    from tests.app.run_helpers import wait_probe

    trained = build.build_model(STACK, seed=7)
    model_path = to_onnx(STACK, tmp_path / "model.onnx", model=trained).path
    window = make_window(live=True)
    wait_probe(qtbot, window.runner)
    assert window.import_onnx_action in window.file_menu.actions()
    dialogs.open_answers.append(str(model_path))
    dialogs.save_answers.append(str(tmp_path / "mine.cnnviz"))
    with qtbot.waitSignal(window.onnx_importer.finished, timeout=60_000):
        window.import_onnx_action.trigger()
    assert not dialogs.errors, dialogs.errors
    assert window.files.path == (tmp_path / "mine.cnnviz").resolve()
    qtbot.waitUntil(lambda: "Loaded the trained weights in mine.safetensors" in window.statusBar().currentMessage(),
                    timeout=60_000)
    assert window.runner.trained and not window.runner.weights_unsaved
