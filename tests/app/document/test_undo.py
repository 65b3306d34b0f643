"""Undo/redo: every kind of edit restores the exact stack; spin-box steps merge; the editor updates in place."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QModelIndex, Qt
from PySide6.QtGui import QFocusEvent

from cnnviz.app.document.undo import History, new_session
from cnnviz.core.model import files
from cnnviz.core.model.stack import (
    InputSpec,
    InsertLayer,
    Layer,
    MoveLayer,
    RemoveLayer,
    SetInput,
    Stack,
    StackDocument,
    set_param,
)
from tests.app.qt_helpers import field

SMALL = Stack(input=InputSpec(1, 16, 16), layers=(Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),
                                                   Layer("ReLU"), Layer("Flatten"), Layer("Linear", {"out_features": 3})))


@pytest.fixture
def history(qtbot):
    """A History over a document of SMALL, and the changes its subscriber heard."""
    document = StackDocument(SMALL)
    heard = []
    document.subscribe(heard.append)
    history = History(document)
    history.heard = heard
    return history


def test_a_push_applies_the_edit_once(history):
    edit = InsertLayer(1, Layer("BatchNorm2d"))
    assert history.push_edit(edit) is True
    assert [c.edit for c in history.heard] == [edit], "push runs redo, and redo is the only apply"
    assert history.count() == 1 and history.undoText() == "Add BatchNorm2d"
    history.undo()
    history.redo()
    assert [type(c.edit) for c in history.heard] == [InsertLayer, RemoveLayer, InsertLayer]
    assert history.document.stack.layers[1].type == "BatchNorm2d"


def test_a_no_op_edit_leaves_no_command(history):
    assert history.push_edit(MoveLayer(1, 1)) is False
    assert history.push_edit(set_param(SMALL, 0, "out_channels", 4)) is False
    assert history.push_edit(set_param(SMALL, 0, "stride", 1)) is False, "torch's default is the omitted keyword"
    assert history.count() == 0 and history.heard == [] and history.document.stack is SMALL


def test_a_bad_edit_raises_and_leaves_no_command(history):
    with pytest.raises(IndexError):
        history.push_edit(RemoveLayer(9))
    assert history.count() == 0 and history.heard == []


def test_edits_of_one_session_merge_and_undo_to_the_start(history):
    session = new_session()
    for value in (5, 6, 7):
        assert history.push_edit(set_param(history.document.stack, 0, "out_channels", value), session)
    assert history.count() == 1 and len(history.heard) == 3
    assert history.undoText() == "Change out_channels of Conv2d"
    history.undo()
    assert history.document.stack == SMALL
    history.redo()
    assert history.document.stack.layers[0].params["out_channels"] == 7
    other = new_session()
    history.push_edit(SetInput(InputSpec(1, 20, 20)), other)
    history.push_edit(SetInput(InputSpec(1, 16, 16)), other)
    assert history.count() == 1, "back where the session started: the merged step is dropped"


def _add(w):
    w.select_layer(2)
    w.add_layer("Dropout2d")


def _delete(w):
    w.select_layer(4)
    w.stack_panel.delete_action.trigger()


def _duplicate(w):
    w.select_layer(3)
    w.stack_panel.duplicate_action.trigger()


def _move(w):
    w.select_layer(5)
    w.stack_panel.move_up_action.trigger()


def _drag(w):
    m = w.stack_model
    m.dropMimeData(m.mimeData([m.index(m.row_of_layer(0))]), Qt.DropAction.MoveAction, m.row_of_layer(3), 0,
                   QModelIndex())


def _parameter(w):
    w.select_layer(0)
    field(w, "kernel_size").h.setValue(9)


def _pair_unlinked(w):
    w.select_layer(0)
    field(w, "padding").pair.linked.setChecked(False)
    field(w, "padding").pair.w.setValue(1)


def _padding_same(w):
    w.select_layer(3)
    f = field(w, "padding")
    f.mode.activated.emit(f.MODES.index("same"))


def _inferred(w):
    w.select_layer(3)
    field(w, "in_channels").none.setChecked(False)


def _optional(w):
    w.select_layer(2)
    field(w, "stride").none.setChecked(False)


def _input(w):
    w.stack_panel.select_row(0)
    w.properties.editor.spins["height"].setValue(32)


def _rename_stack(w):
    w.stack_panel.select_row(0)
    w.properties.editor.name.setText("Bigger")
    w.properties.editor.name.editingFinished.emit()


def _loss(w):
    w.stack_panel.select_row(w.stack_model.loss_row())
    combo = w.properties.editor.combo
    combo.activated.emit(combo.findText("NLLLoss"))


def _loss_param(w):
    w.stack_panel.select_row(w.stack_model.loss_row())
    w.properties.editor.form.fields["label_smoothing"].spin.setValue(0.1)


def _loss_weights(w):
    w.stack_panel.select_row(w.stack_model.loss_row())
    f = w.properties.editor.form.fields["weight"]
    f.line.setText("1, 2, 1, 1, 1, 1, 1, 1, 1, 0.5")
    f.line.editingFinished.emit()


def _rename_layer(w):
    w.select_layer(7)
    w.properties.editor.label_edit.setText("fc1")
    w.properties.editor.label_edit.editingFinished.emit()


def _reset(w):
    w.select_layer(0)
    w.properties.editor.form.resets["padding"].click()


EDITS = {"add": _add, "delete": _delete, "duplicate": _duplicate, "move": _move, "drag reorder": _drag,
         "parameter": _parameter, "unlinked pair": _pair_unlinked, "padding same": _padding_same,
         "inferred count": _inferred, "optional stride": _optional, "input": _input, "rename stack": _rename_stack,
         "loss type": _loss, "loss keyword": _loss_param, "loss weights": _loss_weights, "rename layer": _rename_layer,
         "reset to default": _reset}


@pytest.mark.parametrize("kind", list(EDITS))
def test_undo_and_redo_restore_the_exact_stack(window, kind):
    before = window.document.stack
    EDITS[kind](window)
    after = window.document.stack
    assert after != before, f"{kind} changed nothing"
    assert window.history.count() == 1, window.history.undoText()
    assert window.isWindowModified()
    window.undo_action.trigger()
    assert window.document.stack == before and files.dumps(window.document.stack) == files.dumps(before)
    assert not window.isWindowModified()
    window.redo_action.trigger()
    assert window.document.stack == after


def test_consecutive_spin_box_steps_merge_into_one_undo_step(window):
    window.select_layer(0)
    before = window.document.stack
    spin = field(window, "out_channels").spin
    for _ in range(4):
        spin.stepUp()
    assert window.document.stack.layers[0].params["out_channels"] == 10
    assert window.history.count() == 1
    assert window.undo_action.text() == "&Undo Change out_channels of Conv2d"
    window.undo_action.trigger()
    assert window.document.stack == before


def test_steps_back_to_the_start_leave_no_undo_step(window):
    window.select_layer(0)
    spin = field(window, "out_channels").spin
    spin.stepUp()
    spin.stepDown()
    assert window.history.count() == 0 or not window.history.canUndo()


def test_leaving_the_field_ends_the_merge(window, qtbot):
    window.select_layer(0)
    spin = field(window, "out_channels").spin
    spin.stepUp()
    window.properties.editor.form.eventFilter(spin, QFocusEvent(QEvent.Type.FocusOut))
    spin.stepUp()
    assert window.history.count() == 2


def test_edits_of_different_fields_do_not_merge(window):
    window.select_layer(0)
    field(window, "out_channels").spin.stepUp()
    field(window, "kernel_size").h.stepUp()
    window.stack_panel.select_row(0)
    window.properties.editor.spins["height"].stepUp()
    window.properties.editor.spins["width"].stepUp()
    assert window.history.count() == 4


def test_undo_updates_the_editor_in_place_without_rebuilding_it(window):
    window.select_layer(0)
    editor = window.properties.editor
    spin = field(window, "out_channels").spin
    spin.setValue(12)
    window.select_layer(0)
    window.undo_action.trigger()
    assert window.properties.editor is editor and field(window, "out_channels").spin is spin
    assert spin.value() == 6
    window.redo_action.trigger()
    assert spin.value() == 12


def test_the_history_starts_again_on_new_and_open(window, dialogs, examples):
    window.add_layer("ReLU")
    dialogs.unsaved_answers.append("discard")
    window.new_action.trigger()
    assert window.document.stack == Stack() and window.history.count() == 0 and not window.isWindowModified()
    window.add_layer("ReLU")
    dialogs.unsaved_answers.append("discard")
    assert window.files.open_path(examples["tiny-vgg"])
    assert window.history.count() == 0


def test_undo_of_an_insert_selects_a_neighbour(window):
    window.select_layer(11)
    window.add_layer("Softmax")
    assert window.selected_layer() == 12
    window.undo_action.trigger()
    assert window.selected_layer() == 11
    assert window.properties.editor.index == 11


def test_an_invalid_value_in_a_field_cannot_reach_the_stack(window):
    window.stack_panel.select_row(window.stack_model.loss_row())
    f = window.properties.editor.form.fields["weight"]
    f.line.setText("1, two, 3")
    f.line.editingFinished.emit()
    assert "item 2" in f.problem
    assert window.history.count() == 0


def test_typing_a_number_keeps_the_focus_and_makes_one_undo_step(window, qtbot):
    from PySide6.QtTest import QTest

    window.activateWindow()
    window.select_layer(0)
    spin = field(window, "out_channels").spin
    editor = window.properties.editor
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, "128")
    assert window.document.stack.layers[0].params["out_channels"] == 128
    assert spin.hasFocus() and spin.text() == "128" and window.properties.editor is editor
    assert window.history.count() == 1
    assert "128×28×28" in window.stack_model.index(1).data()
