"""Files: save and reopen, hostile files, unsaved-changes prompts, recent, examples, drops, autosave, recovery."""
from __future__ import annotations

import json
import os
import time

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cnnviz.core.model import files
from cnnviz.core.model.stack import InputSpec, SetInput


def dirty(window):
    window.select_layer(0)
    window.add_layer("ReLU")


def test_save_then_reopen_gives_the_same_stack(make_window, window, dialogs, tmp_path):
    window.select_layer(0)
    window.properties.editor.form.fields["kernel_size"].h.setValue(3)
    window.stack_panel.select_row(window.stack_model.loss_row())
    window.properties.editor.combo.activated.emit(1)
    target = tmp_path / "mine"
    dialogs.save_answers.append(str(target))
    assert window.files.save()  # an example opens as an untitled copy: Save asks where
    saved = tmp_path / "mine.cnnviz"
    assert saved.is_file() and window.files.path == saved.resolve()
    assert not window.isWindowModified() and "(mine.cnnviz)" in window.windowTitle()
    text = files.dumps(window.document.stack)
    assert saved.read_text(encoding="utf-8") == text
    other = make_window(saved)
    assert files.dumps(other.document.stack) == text
    assert other.history.count() == 0
    # a second save writes in place without asking
    window.add_layer("Tanh")
    assert window.isWindowModified()
    window.save_action.trigger()
    assert files.load(saved) == window.document.stack


HOSTILE = {
    "not json": (b"this is { not json", None),
    "unknown type": (json.dumps({"format": "cnnviz.stack", "version": 1, "input": {"channels": 1, "height": 28,
                                 "width": 28}, "layers": [{"type": "ReLU"}, {"type": "os.system"}]}).encode(),
                     "layers[1].type"),
    "bad value": (json.dumps({"format": "cnnviz.stack", "version": 1, "input": {"channels": 1, "height": 28,
                              "width": 28}, "layers": [{"type": "Conv2d", "params": {"out_channels": -4,
                                                                                      "kernel_size": 3}}]}).encode(),
                  "layers[0].params.out_channels"),
    "huge": (b"{" + b" " * (files.MAX_FILE_BYTES + 10) + b"}", "bytes"),
    "newer version": (json.dumps({"format": "cnnviz.stack", "version": 99, "input": {}, "layers": []}).encode(),
                      "version"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_file_leaves_the_stack_untouched_and_says_where(window, dialogs, tmp_path, kind):
    data, where = HOSTILE[kind]
    bad = tmp_path / f"{kind.replace(' ', '-')}.cnnviz"
    bad.write_bytes(data)
    before = window.document.stack
    title = window.windowTitle()
    assert window.files.open_path(bad) is False
    assert window.document.stack is before and window.windowTitle() == title
    assert len(dialogs.errors) == 1
    heading, message = dialogs.errors[0]
    assert bad.name in message and "Traceback" not in message
    if where:
        assert where in message
    with pytest.raises(files.StackFileError) as info:
        files.load(bad)
    assert str(info.value) in message


def test_closing_with_unsaved_changes_asks_cancel_keeps_the_window(window, dialogs):
    dirty(window)
    dialogs.unsaved_answers.append("cancel")
    assert window.close() is False
    assert window.isVisible()
    assert dialogs.questions[-1][0] == "unsaved" and "closing" in dialogs.questions[-1][1]


def test_closing_with_unsaved_changes_discard_closes(window, dialogs):
    dirty(window)
    dialogs.unsaved_answers.append("discard")
    assert window.close() is True
    assert not window.isVisible()


def test_closing_with_unsaved_changes_save_writes_first(window, dialogs, tmp_path):
    dirty(window)
    dialogs.unsaved_answers.append("save")
    dialogs.save_answers.append(str(tmp_path / "kept.cnnviz"))
    assert window.close() is True
    assert files.load(tmp_path / "kept.cnnviz") == window.document.stack


def test_a_clean_window_closes_without_asking(window, dialogs):
    assert window.close() is True and not dialogs.questions


@pytest.mark.parametrize("how", ["new", "open", "example", "recent", "drop"])
def test_replacing_an_unsaved_stack_asks_first(window, dialogs, examples, how, tmp_path):
    recent = tmp_path / "recent.cnnviz"
    files.save(files.load(examples["digits"]), recent)
    window.settings.add_recent_file(recent)
    dirty(window)
    before = window.document.stack
    dialogs.unsaved_answers.append("cancel")
    if how == "new":
        window.new_action.trigger()
    elif how == "open":
        window.open_action.trigger()
    elif how == "example":
        next(a for a in window.examples_menu.actions() if a.text() == "Tiny VGG").trigger()
    elif how == "recent":
        window._fill_recent_menu()
        window.recent_menu.actions()[0].trigger()
    else:
        window.files.open_path(recent)
    assert window.document.stack is before and dialogs.questions[-1][0] == "unsaved"
    dialogs.unsaved_answers.append("discard")
    dialogs.open_answers.append(str(examples["dilation-demo"]))
    if how == "new":
        window.new_action.trigger()
        assert window.document.stack.layers == ()
    elif how == "open":
        window.open_action.trigger()
        assert window.document.stack.name == "Dilation demo"
    elif how == "example":
        next(a for a in window.examples_menu.actions() if a.text() == "Tiny VGG").trigger()
        assert window.document.stack.name == "Tiny VGG" and window.files.path is None
    else:
        window.files.open_path(recent)
        assert window.document.stack.name == "Digits net" and window.files.path == recent.resolve()


def test_dropping_a_stack_file_on_the_window_opens_it(window, qtbot, examples):
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(examples["ceil-mode-demo"]))])
    event = QDropEvent(QPointF(700, 400), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: window.document.stack.name == "ceil_mode demo", timeout=2000)


def test_the_examples_menu_lists_every_example_by_name(window, examples):
    names = {a.text() for a in window.examples_menu.actions()}
    assert names == {files.load(p).name for p in examples.values()}


def test_recent_files_remember_saved_and_opened_files(window, dialogs, tmp_path, examples):
    dialogs.save_answers.append(str(tmp_path / "a.cnnviz"))
    window.save_as_action.trigger()
    dirty(window)
    dialogs.unsaved_answers.append("discard")
    window.files.open_path(examples["digits"])
    window._fill_recent_menu()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert texts[:2] == ["&1 digits.cnnviz", "&2 a.cnnviz"]


def test_a_missing_recent_file_is_dropped_from_the_list(window, dialogs, tmp_path):
    gone = tmp_path / "gone.cnnviz"
    window.settings.add_recent_file(gone)
    assert window.files.open_path(gone) is False
    assert "no such file" in dialogs.errors[-1][1]
    assert str(gone.resolve()) not in window.settings.recent_files()


def test_a_failed_save_says_why_and_keeps_the_stack(window, dialogs, tmp_path):
    dirty(window)
    dialogs.save_answers.append(str(tmp_path / "no-such-folder" / "x.cnnviz"))
    assert window.files.save_as() is False
    assert dialogs.errors and "could not be written" in dialogs.errors[-1][1]
    assert window.isWindowModified()


def test_a_dirty_stack_is_autosaved_and_offered_back(make_window, window, dialogs, tmp_path):
    window.history.push_edit(SetInput(InputSpec(3, 32, 32)))
    assert window.files.write_recovery()
    recovery = window.files.recovery_path
    assert files.load(recovery) == window.document.stack
    wanted = window.document.stack
    window.settings.mark_clean_close(time.time() - 60)
    # the crashed session's window never closes cleanly; a new one starts
    dialogs.yes_no_answers.append(True)
    again = make_window()
    assert again.files.offer_recovery() is True
    assert "Recover unsaved stack \u2018LeNet-5\u2019 from" in dialogs.questions[-1][1]
    assert again.document.stack == wanted and again.isWindowModified()


def test_recovery_of_a_saved_file_goes_on_top_of_it_so_undo_returns_to_the_file(make_window, dialogs, tmp_path,
                                                                                   examples):
    path = tmp_path / "net.cnnviz"
    files.save(files.load(examples["lenet5"]), path)
    first = make_window(path)
    first.history.push_edit(SetInput(InputSpec(1, 40, 40)))
    first.files.write_recovery()
    first.settings.mark_clean_close(0)
    dialogs.yes_no_answers.append(True)
    second = make_window(path)
    assert second.files.offer_recovery()
    assert second.document.stack.input == InputSpec(1, 40, 40) and second.files.path == path.resolve()
    second.undo_action.trigger()
    assert second.document.stack == files.load(path) and not second.isWindowModified()


def test_declining_recovery_deletes_the_copy(make_window, window, dialogs):
    dirty(window)
    window.files.write_recovery()
    window.settings.mark_clean_close(0)
    dialogs.yes_no_answers.append(False)
    again = make_window()
    assert again.files.offer_recovery() is False
    assert not again.files.recovery_path.exists()


def test_a_recovery_file_older_than_the_last_clean_close_is_not_offered(make_window, window, dialogs):
    dirty(window)
    window.files.write_recovery()
    window.settings.mark_clean_close(time.time() + 5)
    again = make_window()
    assert again.files.offer_recovery() is False and not dialogs.questions


def test_saving_or_closing_cleanly_removes_the_recovery_file(window, dialogs, tmp_path):
    dirty(window)
    window.files.write_recovery()
    assert window.files.recovery_path.exists()
    dialogs.save_answers.append(str(tmp_path / "s.cnnviz"))
    window.files.save()
    assert not window.files.recovery_path.exists()
    dirty(window)
    window.files.write_recovery()
    dialogs.unsaved_answers.append("discard")
    window.close()
    assert not window.files.recovery_path.exists()
    assert window.settings.last_clean_close() > time.time() - 60


def test_edits_trigger_a_debounced_autosave(make_window, qtbot):
    w = make_window(autosave_debounce_ms=20)
    w.add_layer("ReLU")
    qtbot.waitUntil(lambda: bool(w.files.recovery_path.exists()), timeout=2000)
    meta = json.loads(w.files.recovery_meta_path.read_text())
    assert meta["name"] == "LeNet-5" and meta["path"] is None


def test_close_guards_can_refuse(window, dialogs):
    reasons = []
    window.files.guards.append(lambda reason: reasons.append(reason) or False)
    assert window.close() is False and reasons == ["closing"]
    window.files.guards.clear()
    assert window.close() is True


def test_the_title_shows_the_name_file_and_unsaved_mark(window, dialogs, tmp_path):
    assert window.windowTitle() == "LeNet-5[*] — cnnviz" and not window.isWindowModified()
    dirty(window)
    assert window.isWindowModified()
    dialogs.save_answers.append(str(tmp_path / "t.cnnviz"))
    window.files.save()
    assert window.windowTitle() == "LeNet-5 (t.cnnviz)[*] — cnnviz"
    assert os.path.exists(tmp_path / "t.cnnviz")
