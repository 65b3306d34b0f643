"""Blocks in the stack list: nested, indented, collapsible rows; layers added, dragged and wrapped into blocks
and out of them, each one undoable step, the shapes following; Qt's own model checks on a nested tree."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, QPersistentModelIndex, Qt

from cnnviz.app.document.undo import History
from cnnviz.app.sidebar.stack_model import (
    KIND_ROLE,
    LIST,
    ROWS_MIME,
    SHAPE_ROLE,
    STATUS_ROLE,
    TYPE_MIME,
    StackListModel,
)
from cnnviz.app.sidebar.stack_panel import StackPanel
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import (
    InputSpec,
    InsertLayer,
    Layer,
    Stack,
    StackDocument,
    concat,
    residual,
    set_param,
)
from cnnviz.core.shapes import infer
from tests.app.sidebar.test_stack_model import Signals


def conv(c, k=3, **kw):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": k, **kw})


STACK = Stack("blocks", InputSpec(3, 16, 16), (
    conv(8, padding=1),
    residual([conv(8, padding=1), Layer("BatchNorm2d")], [], name="res"),
    concat([conv(4, 1)], []),
    Layer("Flatten"), Layer("Linear", {"out_features": 10})))


@pytest.fixture
def parts(qtbot):
    document = StackDocument(STACK, analyse=infer)
    history = History(document)
    model = StackListModel(document, history.push_edit)
    panel = StackPanel(model, history.push_edit)
    qtbot.addWidget(panel)
    panel.resize(320, 700)
    panel.show()
    qtbot.waitExposed(panel)
    return document, history, model, panel


def rows(model, parent=QModelIndex(), depth=0) -> list[str]:
    """Every row at every depth as indented text: what the tree shows."""
    out = []
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        out.append("  " * depth + str(index.data(Qt.ItemDataRole.DisplayRole)).split(" 1×")[0].split(" 3×")[0])
        out.extend(rows(model, index, depth + 1))
    return out


def drop(model, mime: str, payload: bytes, row: int, parent: QModelIndex) -> bool:
    data = QMimeData()
    data.setData(mime, QByteArray(payload))
    return model.dropMimeData(data, Qt.DropAction.MoveAction, row, 0, parent)


def test_qt_accepts_the_nested_tree(parts, qtmodeltester):
    qtmodeltester.check(parts[2], force_py=True)


def test_a_block_shows_its_lists_and_their_layers(parts):
    _doc, _hist, model, panel = parts
    block = model.index_of(LayerPath(1))
    assert model.rowCount(block) == 2 and panel.view.isExpanded(block)
    body, shortcut = model.index(0, 0, block), model.index(1, 0, block)
    assert body.data(KIND_ROLE) == LIST and body.data(Qt.ItemDataRole.DisplayRole) == "body"
    assert shortcut.data(Qt.ItemDataRole.DisplayRole) == "shortcut (identity)"
    assert body.data(SHAPE_ROLE) == "8×16×16 → 8×16×16"
    first = model.index(0, 0, body)
    assert model.path_of(first) == LayerPath(1, "body", 0) and model.index_of("1.body.0") == first
    assert model.parent(first) == body and model.parent(body) == block
    cat = model.index_of(LayerPath(2))
    assert [model.index(k, 0, cat).data(Qt.ItemDataRole.DisplayRole) for k in range(2)] == \
        ["branch 0", "branch 1 (identity)"]
    assert "12×16×16" in cat.data(SHAPE_ROLE)  # 4 channels + the input's 8


def test_an_edit_inside_a_block_is_one_row_signal_under_its_list(parts):
    document, history, model, _panel = parts
    seen = Signals(model)
    history.push_edit(InsertLayer("1.body.2", Layer("ReLU")))
    body = model.list_index(LayerPath(1), ("body",))
    assert seen.done() == [("rowsInserted", ("row", body.row()), 2, 2)]
    assert model.rowCount(body) == 3 and model.index(2, 0, body).data(Qt.ItemDataRole.DisplayRole).startswith("2 ReLU")
    history.undo()
    assert seen.done()[-1] == ("rowsRemoved", ("row", body.row()), 2, 2)


def test_a_persistent_index_inside_a_block_follows_when_the_block_moves_down(parts):
    document, history, model, _panel = parts
    inner = QPersistentModelIndex(model.index_of("1.body.1"))
    history.push_edit(InsertLayer(0, Layer("ReLU")))  # the block is now layer 2
    assert inner.isValid() and model.path_of(QModelIndex(inner)) == LayerPath(2, "body", 1)
    assert document.stack.layer_at("2.body.1").type == "BatchNorm2d"


def test_a_palette_layer_dropped_on_a_shortcut_goes_into_it_and_the_shapes_follow(parts):
    document, history, model, panel = parts
    shortcut = model.list_index(LayerPath(1), ("shortcut",))
    assert drop(model, TYPE_MIME, b"Conv2d", -1, shortcut)
    assert document.stack.layer_at("1.shortcut.0").type == "Conv2d"
    assert panel.selected_path() == LayerPath(1, "shortcut", 0)
    history.push_edit(set_param(document.stack, "1.shortcut.0", "out_channels", 8))
    history.push_edit(set_param(document.stack, "1.shortcut.0", "kernel_size", 1))
    assert infer(document.stack).ok
    shortcut = model.list_index(LayerPath(1), ("shortcut",))
    assert shortcut.data(Qt.ItemDataRole.DisplayRole) == "shortcut"
    history.push_edit(set_param(document.stack, "1.shortcut.0", "out_channels", 5))
    block = model.index_of(LayerPath(1))
    assert block.data(STATUS_ROLE) == "error" and "8×16×16" in infer(document.stack).layers[1].error


def test_a_layer_dragged_into_a_body_keeps_its_identity_and_undo_takes_it_back(parts):
    document, history, model, panel = parts
    moved_uid = document.stack.layers[0].uid
    body = model.list_index(LayerPath(1), ("body",))
    payload = json.dumps([[0]]).encode()
    assert drop(model, ROWS_MIME, payload, 0, body)  # to the top of the body
    assert [layer.type for layer in document.stack.layers] == ["Residual", "Concat", "Flatten", "Linear"]
    assert document.stack.layer_at("0.body.0").uid == moved_uid
    assert panel.selected_path() == LayerPath(0, "body", 0)
    assert not infer(document.stack).ok  # 3 channels in, 8 out of the body: the residual add fails
    assert infer(document.stack).layers[0].error_code == "residual"
    assert "Residual" in rows(model)[1] and rows(model)[3].strip().startswith("0 Conv2d")
    history.undo()
    assert document.stack == STACK and document.stack.layers[0].uid == moved_uid
    # and out again: the body's first layer to the top
    assert drop(model, ROWS_MIME, json.dumps([[1, "body", 0]]).encode(), 1, QModelIndex())
    assert document.stack.layers[0].type == "Conv2d" and len(document.stack.layers[2].body) == 1


def test_a_block_cannot_be_dropped_into_itself(parts):
    document, _history, model, _panel = parts
    body = model.list_index(LayerPath(1), ("body",))
    assert not drop(model, ROWS_MIME, json.dumps([[1]]).encode(), 0, body)
    assert document.stack == STACK


def test_wrap_a_layer_in_a_residual_block_and_take_a_concat_apart(parts):
    document, history, model, panel = parts
    panel.select_layer(0)
    uid = document.stack.layers[0].uid
    panel.wrap_residual_action.trigger()
    assert document.stack.layers[0].type == "Residual" and document.stack.layer_at("0.body.0").uid == uid
    assert history.undoText() == "Wrap Conv2d in a Residual block"
    assert panel.selected_path() == LayerPath(0, "body", 0)
    history.undo()
    assert document.stack == STACK
    panel.select_layer(2)
    assert panel.add_branch_action.isEnabled() and not panel.unwrap_action.isEnabled()
    panel.add_branch_action.trigger()
    assert len(document.stack.layers[2].branches) == 3
    history.undo()
    # a Concat of one branch is that branch: taking it apart computes the same
    history.push_edit(InsertLayer(3, concat([Layer("ReLU"), Layer("Dropout")])))
    panel.select_path("3")
    assert panel.unwrap_action.isEnabled()
    panel.unwrap_action.trigger()
    assert [layer.type for layer in document.stack.layers[3:5]] == ["ReLU", "Dropout"]
    panel.select_path("1")
    assert not panel.unwrap_action.isEnabled()  # body(x) + x is not body(x)


def test_delete_duplicate_and_move_work_inside_a_block(parts):
    document, history, model, panel = parts
    panel.select_path("1.body.0")
    panel.duplicate_action.trigger()
    assert len(document.stack.layers[1].body) == 3
    assert document.stack.layer_at("1.body.1").uid != document.stack.layer_at("1.body.0").uid
    assert panel.selected_path() == LayerPath(1, "body", 1)
    panel.move_down_action.trigger()
    assert panel.selected_path() == LayerPath(1, "body", 2)
    panel.delete_action.trigger()
    assert len(document.stack.layers[1].body) == 2
    for _ in range(3):
        history.undo()
    assert document.stack == STACK


def test_the_fixes_of_a_layer_inside_a_block_are_in_its_menu(parts):
    document, history, model, panel = parts
    history.push_edit(set_param(document.stack, "1.body.0", "stride", 2))  # 8×8 body, 8×16×16 shortcut
    block = model.index_of(LayerPath(1))
    texts = [a.text() for a in panel.fix_actions(block)]
    assert texts == ["Apply fix: shortcut Conv2d"]
    panel.fix_actions(block)[0].trigger()
    assert infer(document.stack).ok and document.stack.layer_at("1.shortcut.0").params["stride"] == 2


def test_in_the_window_a_residual_from_the_palette_takes_a_dragged_layer_and_undo_follows(window, qtbot):
    """The issue's journey: Residual block from the palette, a layer dragged into its body, Ctrl+Z; the
    properties and details panels show the layer inside, and the shapes follow at each step."""
    model, panel = window.stack_model, window.stack_panel
    item = window.palette.tree.item_for("Residual")
    assert item is not None and item.text(0) == "Residual block"
    window.select_layer(1)  # after the first ReLU of LeNet-5 (6×28×28)
    window.palette.tree.itemDoubleClicked.emit(item, 0)
    stack = window.document.stack
    assert stack.layers[2].type == "Residual" and stack.layers[2].body == ()
    block = model.index_of(LayerPath(2))
    body = model.index(0, 0, block)
    assert body.data(SHAPE_ROLE) == "6×28×28 → 6×28×28"
    conv_uid = stack.layers[3].uid  # LeNet's MaxPool2d is layer 2 before the insert: now 3
    assert drop(model, ROWS_MIME, json.dumps([[3]]).encode(), 0, body)
    stack = window.document.stack
    assert stack.layer_at("2.body.0").uid == conv_uid and stack.layer_at("2.body.0").type == "MaxPool2d"
    assert panel.selected_path() == LayerPath(2, "body", 0)
    assert window.properties.editor.title.text().count("2.body.0") == 1
    assert "2.body.0" in window.details.html()
    report = infer(stack)
    assert report.layers[2].error_code == "residual"  # 6×14×14 body, 6×28×28 identity shortcut
    assert "the body gives 6×14×14 but the identity shortcut gives 6×28×28" in report.layers[2].error
    window.undo_action.trigger()
    stack = window.document.stack
    assert stack.layers[3].uid == conv_uid and stack.layers[2].body == ()
    assert infer(stack).ok
    window.undo_action.trigger()
    assert [layer.type for layer in window.document.stack.layers][:3] == ["Conv2d", "ReLU", "MaxPool2d"]


# ------------------------------------------------------------------ the selected row stays in view
def _in_view(view) -> bool:
    rect = view.visualRect(view.currentIndex())
    return rect.isValid() and view.viewport().rect().intersected(rect).height() >= rect.height() * 0.9


def test_a_row_selected_from_outside_stays_in_view_through_layouts_until_the_person_scrolls(make_window, examples,
                                                                                             qtbot):
    window = make_window(examples["resnet-mini"])
    window.resize(1024, 700)
    view = window.stack_panel.view
    last = len(window.document.stack.layers) - 1
    window.select_layer(last)            # as the overview does: a row far below the blocks' open insides
    view.collapseAll()
    view.expandAll()                      # rows above it change height: it is scrolled back into view
    qtbot.waitUntil(lambda: _in_view(view), timeout=3000)
    window.resize(1024, 640)              # and when the list gets smaller
    qtbot.waitUntil(lambda: _in_view(view), timeout=3000)
    bar = view.verticalScrollBar()
    bar.triggerAction(bar.SliderAction.SliderToMinimum)   # the person scrolls to the top: it stays there
    window.resize(1024, 700)
    qtbot.wait(100)
    assert bar.value() == bar.minimum() and not _in_view(view)
