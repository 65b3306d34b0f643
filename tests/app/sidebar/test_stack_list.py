"""The stack list: rows with shapes and marks, reorder, keys, context menu; model and view in both directions."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest

from cnnviz.app.sidebar import display as fmt
from cnnviz.app.sidebar.stack_model import MESSAGE_ROLE, STATUS_ROLE
from cnnviz.core.model.stack import InputSpec, InsertLayer, Layer, MoveLayer, SetInput, Stack
from cnnviz.core.shapes import infer
from tests.app.qt_helpers import field, layer_row_text, rows

LENET = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear", "ReLU",
         "Linear"]


def types(window) -> list[str]:
    return [layer.type for layer in window.document.stack.layers]


def test_rows_show_index_type_key_parameters_and_shapes(window):
    text = rows(window)
    assert text[0] == "input 1×28×28"
    assert text[1] == "0 Conv2d 6, k5, p2 1×28×28 → 6×28×28"
    assert text[3] == "2 MaxPool2d k2 6×28×28 → 6×14×14"
    assert text[7] == "6 Flatten  16×5×5 → 400"
    assert text[-1] == "loss CrossEntropyLoss"
    model = window.stack_model
    assert all(model.index(r).data(STATUS_ROLE) == fmt.OK for r in range(1, 13))


def test_changing_a_parameter_in_the_editor_changes_the_shape_in_the_row(window):
    window.select_layer(0)
    field(window, "out_channels").spin.setValue(8)
    assert layer_row_text(window, 0) == "0 Conv2d 8, k5, p2 1×28×28 → 8×28×28"
    assert "8×28×28 → 8×28×28" in layer_row_text(window, 1)
    assert window.document.stack.layers[3].params.get("in_channels") is None  # still inferred


def test_an_impossible_kernel_marks_the_layer_and_everything_after_it_unreachable(window):
    window.select_layer(3)
    field(window, "kernel_size").h.setValue(15)  # 14×14 maps in, no padding
    model = window.stack_model
    failing = model.index(model.row_of_layer(3))
    assert failing.data(STATUS_ROLE) == fmt.ERROR
    message = failing.data(MESSAGE_ROLE)
    assert "kernel 15" in message and "14" in message and "padding" in message
    assert message in failing.data(Qt.ItemDataRole.ToolTipRole)
    for i in range(4, 12):
        index = model.index(model.row_of_layer(i))
        assert index.data(STATUS_ROLE) == fmt.UNREACHABLE
        assert index.data().endswith("not reachable")
    assert "cannot work" in window.status_fields["validity"].text()
    html = window.details.toPlainText()
    assert "This layer cannot work" in html and message.split(":")[0] in html


def test_a_warning_shows_amber_with_its_sentence(window):
    window.select_layer(11)
    window.add_layer("Softmax")
    model = window.stack_model
    index = model.index(model.row_of_layer(12))
    assert index.data(STATUS_ROLE) == fmt.WARNING
    assert any("twice" in line for line in index.data(Qt.ItemDataRole.ToolTipRole).splitlines())
    loss = model.index(model.loss_row())
    assert loss.data(STATUS_ROLE) == fmt.WARNING


def test_drag_reorder_through_the_model_is_one_move_edit(window):
    model = window.stack_model
    window.select_layer(1)
    data = model.mimeData([model.index(model.row_of_layer(1))])
    assert model.dropMimeData(data, Qt.DropAction.MoveAction, model.row_of_layer(4), 0, QModelIndex()) is True
    assert types(window)[:5] == ["Conv2d", "MaxPool2d", "Conv2d", "ReLU", "ReLU"]
    assert window.history.count() == 1 and window.history.undoText().startswith("Move ReLU")
    assert window.selected_layer() == 3  # the selection went with the moved layer


def test_move_rows_as_qt_calls_it(window):
    model = window.stack_model
    assert model.moveRows(QModelIndex(), model.row_of_layer(0), 1, QModelIndex(), model.row_of_layer(3))
    assert types(window)[:4] == ["ReLU", "MaxPool2d", "Conv2d", "Conv2d"]
    assert model.moveRows(QModelIndex(), model.row_of_layer(2), 1, QModelIndex(), 0)
    assert types(window)[:2] == ["Conv2d", "ReLU"]
    assert not model.moveRows(QModelIndex(), 0, 1, QModelIndex(), 5)  # the input row stays on top


def test_a_drop_event_with_an_internal_row_moves_it(window):
    view, model = window.stack_view, window.stack_model
    data = model.mimeData([model.index(model.row_of_layer(11))])
    rect = view.visualRect(model.index(model.row_of_layer(0)))
    event = QDropEvent(QPointF(rect.center().x(), rect.top() + 1), Qt.DropAction.MoveAction, data,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    view.dropEvent(event)
    assert types(window)[0] == "Linear" and len(types(window)) == 12
    assert event.isAccepted()
    assert not model.removeRows(0, 1)  # what a move-drag's source would call afterwards: nothing is removed twice


def test_keys_delete_duplicate_and_move(window, qtbot):
    view = window.stack_view
    window.activateWindow()
    view.setFocus()
    window.select_layer(1)
    QTest.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert types(window)[:3] == ["Conv2d", "ReLU", "ReLU"] and window.selected_layer() == 2
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert types(window) == LENET and window.selected_layer() == 2
    QTest.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert types(window)[:3] == ["Conv2d", "MaxPool2d", "ReLU"] and window.selected_layer() == 1
    QTest.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert types(window) == LENET and window.selected_layer() == 2


def test_delete_in_a_text_field_does_not_delete_the_layer(window, qtbot):
    window.select_layer(0)
    edit = window.properties.editor.label_edit
    window.activateWindow()
    edit.setFocus()
    edit.setText("first")
    QTest.keyClick(edit, Qt.Key.Key_Delete)
    assert len(window.document.stack.layers) == 12


def test_the_context_menu_holds_the_row_actions(window):
    texts = [a.text() if a is not None else "-" for a in window.stack_view.context_actions]
    assert texts == ["Rename…", "Duplicate layer", "-", "Move layer up", "Move layer down", "-",
                     "Wrap in Residual block", "Wrap in parallel branches (Concat)", "Add branch",
                     "Take layers out of block", "-", "Delete layer"]
    window.select_layer(0)
    assert not window.stack_panel.move_up_action.isEnabled()
    window.stack_panel.select_row(0)
    assert not window.stack_panel.delete_action.isEnabled()


def test_renaming_through_the_model_labels_the_layer(window):
    model = window.stack_model
    assert model.setData(model.index(1), "stem")
    assert window.document.stack.layers[0].name == "stem"
    assert "Conv2d “stem”" in layer_row_text(window, 0)
    assert model.setData(model.index(0), "My net")
    assert window.document.stack.name == "My net" and window.windowTitle().startswith("My net")


def test_model_to_view_and_view_to_model(window, qtbot):
    """napari habit 2: change the model, the view follows; act on the view, the model follows."""
    model = window.stack_model
    window.history.push_edit(InsertLayer(0, Layer("BatchNorm2d")))
    assert model.rowCount() == 15 and layer_row_text(window, 0).startswith("0 BatchNorm2d")
    window.history.push_edit(SetInput(InputSpec(1, 32, 32)))
    assert rows(window)[0] == "input 1×32×32" and "1×32×32 → 6×32×32" in layer_row_text(window, 1)
    # the view's selection drives the editor and the details
    view = window.stack_view
    rect = view.visualRect(model.index(model.row_of_layer(3)))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    assert window.selected_layer() == 3
    assert window.properties.editor.index == 3 and "3 · MaxPool2d" in window.details.toPlainText()
    # a move in the model keeps the selection on the same layer
    window.history.push_edit(MoveLayer(3, 0))
    assert window.selected_layer() == 0


def test_selection_signal_reports_kind_and_index(window, qtbot):
    seen = []
    window.selectionChanged.connect(lambda kind, i: seen.append((kind, i)))
    window.select_layer(4)
    window.stack_panel.select_row(0)
    window.stack_panel.select_row(window.stack_model.loss_row())
    assert seen == [("layer", 4), ("input", -1), ("loss", -1)]


def test_f2_opens_an_inline_editor_for_the_label(window, qtbot):
    from PySide6.QtWidgets import QAbstractItemView, QLineEdit

    window.activateWindow()
    window.stack_view.setFocus()
    window.select_layer(2)
    QTest.keyClick(window.stack_view, Qt.Key.Key_F2)
    assert window.stack_view.state() == QAbstractItemView.State.EditingState
    editor = window.stack_view.findChild(QLineEdit)
    editor.setText("pool1")
    window.stack_view.commitData(editor)  # what the delegate does on Return (queued, so not waited for here)
    assert window.document.stack.layers[2].name == "pool1"
    assert window.history.undoText() == "Rename MaxPool2d"


def test_a_batchnorm1d_row_shows_its_inferred_feature_count():
    head = Stack(input=InputSpec(1, 4, 4), layers=(Layer("Flatten"), Layer("Linear", {"out_features": 6}),
                                                   Layer("BatchNorm1d", {"affine": False})))
    assert fmt.param_summary(head.layers[2], infer(head).layers[2]) == "6, no affine"
