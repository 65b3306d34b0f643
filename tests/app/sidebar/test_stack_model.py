"""The stack's Qt model on its own (napari's ``test_qt_layer_list`` habit): change the document and the model
emits the matching row signal, act on the view and the document follows; a tree model that is flat today."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest

from cnnviz.app.document.undo import History
from cnnviz.app.sidebar.stack_model import LAYER_INDEX_ROLE, ROWS_MIME, StackListModel
from cnnviz.app.sidebar.stack_panel import StackPanel
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import (
    Batch,
    InputSpec,
    InsertLayer,
    Layer,
    MoveLayer,
    RemoveLayer,
    SetInput,
    SetStack,
    Stack,
    StackDocument,
    set_param,
)
from cnnviz.core.shapes import infer

STACK = Stack(name="small", input=InputSpec(1, 16, 16), layers=(
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}), Layer("ReLU"), Layer("MaxPool2d", {"kernel_size": 2}),
    Layer("Flatten"), Layer("Linear", {"out_features": 10})))


class Signals:
    """Every row signal of a model, as (name, args) in the order Qt sent them."""

    NAMES = ("rowsAboutToBeInserted", "rowsInserted", "rowsAboutToBeRemoved", "rowsRemoved",
             "rowsAboutToBeMoved", "rowsMoved", "modelAboutToBeReset", "modelReset")

    def __init__(self, model) -> None:
        self.seen: list[tuple] = []
        for name in self.NAMES:
            getattr(model, name).connect(lambda *args, name=name: self.seen.append((name, *self._plain(args))))
        self.data_changed = 0
        model.dataChanged.connect(lambda *args: setattr(self, "data_changed", self.data_changed + 1))

    @staticmethod
    def _plain(args) -> tuple:
        return tuple(("root" if not a.isValid() else ("row", a.row())) if isinstance(a, QModelIndex) else a
                     for a in args)

    def done(self) -> list[tuple]:
        """The signals that say a change is over (rowsInserted, rowsRemoved, rowsMoved, modelReset)."""
        return [s for s in self.seen if "About" not in s[0]]


@pytest.fixture
def parts(qtbot):
    document = StackDocument(STACK, analyse=infer)
    history = History(document)
    model = StackListModel(document, history.push_edit)
    panel = StackPanel(model, history.push_edit)
    qtbot.addWidget(panel)
    panel.resize(300, 500)
    panel.show()
    qtbot.waitExposed(panel)
    return document, history, model, panel


def types(document) -> list[str]:
    return [layer.type for layer in document.stack.layers]


def assert_flat_tree(model) -> None:
    assert model.columnCount() == 1
    for row in range(model.rowCount()):
        index = model.index(row, 0, QModelIndex())
        assert index.isValid() and not model.parent(index).isValid() and model.rowCount(index) == 0
        assert not model.index(0, 0, index).isValid(), "no row has children yet"
    assert not model.index(model.rowCount()).isValid() and not model.index(0, 1).isValid()


def test_a_tree_model_that_is_flat_today(parts, qtmodeltester):
    model = parts[2]
    # Qt's model checks (their data checks after an insert would trip on the row numbers shown, so only here)
    qtmodeltester.check(model, force_py=True)
    assert model.rowCount() == 7
    assert_flat_tree(model)
    assert model.path_of(model.index(3)) == LayerPath(2) and model.index_of(LayerPath(2)) == model.index(3)
    assert model.path_of(model.index(0)) is None and model.path_of(model.index(6)) is None
    with pytest.raises(IndexError):
        model.index_of(LayerPath(2, "body", 0))


def test_the_tree_stays_flat_through_edits(parts):
    document, history, model, _ = parts
    for edit in (InsertLayer(0, Layer("BatchNorm2d")), MoveLayer(0, 3), RemoveLayer(2)):
        history.push_edit(edit)
        assert_flat_tree(model)
        assert model.rowCount() == len(document.stack.layers) + 2
    history.undo()
    assert_flat_tree(model)


@pytest.mark.parametrize("edit, expected", [
    (InsertLayer(2, Layer("Dropout")), [("rowsInserted", "root", 3, 3)]),
    (InsertLayer(5, Layer("ReLU")), [("rowsInserted", "root", 6, 6)]),
    (RemoveLayer(0), [("rowsRemoved", "root", 1, 1)]),
    (MoveLayer(0, 3), [("rowsMoved", "root", 1, 1, "root", 5)]),
    (MoveLayer(4, 1), [("rowsMoved", "root", 5, 5, "root", 2)]),
    (set_param(STACK, 0, "out_channels", 8), []),
    (SetInput(InputSpec(1, 20, 20)), []),
    (SetStack(Stack(name="renamed", input=STACK.input, layers=STACK.layers)), []),
    (SetStack(Stack(name="other", layers=(Layer("Flatten"),))), [("modelReset",)]),
    (Batch((RemoveLayer(4), InsertLayer(0, Layer("ReLU")))), [("rowsRemoved", "root", 5, 5),
                                                              ("rowsInserted", "root", 1, 1)]),
])
def test_each_edit_is_one_row_signal(parts, edit, expected):
    document, history, model, _ = parts
    signals = Signals(model)
    assert history.push_edit(edit)
    assert signals.done() == expected
    assert signals.data_changed == 1, "every row's shapes and marks may change"
    assert model.stack is document.stack and model.report is document.report
    assert [model.index(model.row_of_layer(i)).data(LAYER_INDEX_ROLE) for i in range(len(document.stack.layers))] \
        == list(range(len(document.stack.layers)))
    signals.seen.clear()
    history.undo()
    inverse = {"rowsInserted": "rowsRemoved", "rowsRemoved": "rowsInserted"}
    if expected and expected[0][0] in inverse and len(expected) == 1:
        assert signals.done() == [(inverse[expected[0][0]], *expected[0][1:])]
    assert document.stack == STACK and model.stack is document.stack


def test_a_move_keeps_the_selection_on_the_moved_layer(parts):
    document, history, _, panel = parts
    panel.select_layer(1)
    history.push_edit(MoveLayer(1, 4))
    assert panel.selected_layer() == 4 and document.stack.layers[4].type == "ReLU"
    history.undo()
    assert panel.selected_layer() == 1


def test_the_view_changes_the_document(parts, qtbot):
    document, history, model, panel = parts
    view = panel.view
    rect = view.visualRect(model.index(model.row_of_layer(2)))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    assert panel.selected_layer() == 2
    signals = Signals(model)
    panel.move_up_action.trigger()
    assert types(document) == ["Conv2d", "MaxPool2d", "ReLU", "Flatten", "Linear"]
    assert signals.done() == [("rowsMoved", "root", 3, 3, "root", 2)] and panel.selected_layer() == 1
    panel.delete_action.trigger()
    assert types(document) == ["Conv2d", "ReLU", "Flatten", "Linear"]
    assert signals.done()[-1] == ("rowsRemoved", "root", 2, 2)
    assert model.setData(model.index(1), "stem")
    assert document.stack.layers[0].name == "stem" and history.undoText() == "Rename Conv2d"
    data = model.mimeData([model.index(model.row_of_layer(0))])
    assert model.dropMimeData(data, Qt.DropAction.MoveAction, model.row_of_layer(3), 0, QModelIndex())
    assert types(document) == ["ReLU", "Flatten", "Conv2d", "Linear"]
    assert history.count() == 4


def test_drag_data_names_layers_by_path(parts):
    model = parts[2]
    data = model.mimeData([model.index(0), model.index(3), model.index(6)])  # the input and loss rows drop out
    assert bytes(data.data(ROWS_MIME).data()) == b"[[2]]"
