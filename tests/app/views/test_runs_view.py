"""The Runs panel: records listed, one shown, two compared (curves, matrices, stacks), opened and deleted."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnviz.app.views.runs import RunsView
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import records


def stack(out=8, name="net"):
    return Stack(name, InputSpec(1, 8, 8), (Layer("Conv2d", {"out_channels": out, "kernel_size": 3}),
                                            Layer("Flatten"), Layer("Linear", {"out_features": 2})))


def write(folder: Path, name: str, started: str, net: Stack, config: TrainingConfig, points, matrix=None) -> Path:
    head = records.header(net, config, "cpu", started)
    events = [{"event": "step", "step": s, "loss": loss, "accuracy": acc} for s, loss, acc in points]
    events.append({"event": "eval", "step": points[-1][0], "loss": 0.5, "accuracy": 0.75, "split": "test", "n": 8})
    if matrix is not None:
        per_class = [row[i] / sum(row) for i, row in enumerate(matrix)]
        events.append({"event": "done", "steps": points[-1][0], "test_accuracy": 0.75, "confusion": matrix,
                       "per_class_accuracy": per_class, "classes": ["<i>cat</i>", "dog"]})
    return records.write(folder / name, head, events)


class Answers:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.questions = []

    def __call__(self, title, question):
        self.questions.append(question)
        return self.answers.pop(0)


@pytest.fixture
def two_runs(tmp_path):
    a = write(tmp_path, "a.run.jsonl", "2026-12-01T10:00:00Z", stack(8, "first"), TrainingConfig(lr=0.001),
              [(10, 2.0, 0.25), (20, 1.0, 0.5), (30, 0.5, 0.75)], [[3, 1], [1, 3]])
    b = write(tmp_path, "b.run.jsonl", "2026-12-01T11:00:00Z", stack(16, "second"), TrainingConfig(lr=0.01),
              [(5, 3.0, 0.125), (15, 1.5, 0.625)], [[3, 1], [0, 4]])
    return a, b


def make_view(qtbot, folder, ask=None):
    view = RunsView(folder, ask or Answers())
    qtbot.addWidget(view)
    view.resize(1100, 700)
    with qtbot.waitSignal(view.listed, timeout=10_000):   # the folder is read on a thread once shown
        view.show()
    return view


def test_two_records_are_listed_newest_first(qtbot, tmp_path, two_runs):
    a, b = two_runs
    view = make_view(qtbot, tmp_path)
    assert [e.path for e in view.entries] == [b, a]
    assert view.cell(0, "Stack") == "second" and view.cell(0, "Steps") == "15" and view.cell(0, "Accuracy") == "75.0%"
    assert view.cell(1, "Status") == "finished" and view.cell(1, "File") == "a.run.jsonl"
    assert not view.open_button.isEnabled() and not view.delete_button.isEnabled()


def test_one_run_selected_shows_its_curves(qtbot, tmp_path, two_runs):
    view = make_view(qtbot, tmp_path)
    view.select_rows(view.row_of(two_runs[0]))
    (loss,) = view.loss_curves
    x, y = loss.getData()
    assert list(x) == [10, 20, 30] and list(y) == [2.0, 1.0, 0.5]
    assert list(view.acc_curves[0].getData()[1]) == [0.25, 0.5, 0.75]
    assert view.confusions[0].counts().tolist() == [[3, 1], [1, 3]] and not view.confusions[1].isVisible()
    assert "first" in view.diff_text.toPlainText()


def test_two_runs_overlay_their_curves_and_say_what_differs(qtbot, tmp_path, two_runs):
    a, b = two_runs
    view = make_view(qtbot, tmp_path)
    view.select_rows(view.row_of(a), view.row_of(b))
    assert len(view.loss_curves) == 2 and len(view.acc_curves) == 2
    data = {tuple(c.getData()[0]): list(c.getData()[1]) for c in view.loss_curves}
    assert data == {(5.0, 15.0): [3.0, 1.5], (10.0, 20.0, 30.0): [2.0, 1.0, 0.5]}
    pens = {c.opts["pen"].color().name() for c in view.loss_curves}
    assert len(pens) == 2   # each run its colour
    labels = [label.text for _, label in view.legend.items]
    assert len(labels) == 2 and any("second" in t for t in labels) and any("first" in t for t in labels)
    text = view.diff_text.toPlainText()
    assert text.startswith("A: first") and "\nB: second" in text   # A the earlier run
    assert "changed layer 0 (Conv2d): out_channels: 8 → 16" in text
    assert "setting lr: 0.001 → 0.01" in text and "name: 'first' → 'second'" in text
    assert view.confusions[1].isVisible()
    matrices = [v.counts().tolist() for v in view.confusions]
    assert sorted(matrices) == [[[3, 1], [0, 4]], [[3, 1], [1, 3]]]
    assert view.changed_cells() == [(1, 0), (1, 1)]
    assert not view._marks[0].path().isEmpty()
    assert "2 cells of the confusion matrix changed" in text


def test_open_emits_the_records_stack_and_settings(qtbot, tmp_path, two_runs):
    view = make_view(qtbot, tmp_path)
    view.select_rows(view.row_of(two_runs[1]))
    with qtbot.waitSignal(view.reopenRequested) as reopened, qtbot.waitSignal(view.openRequested) as opened:
        view.open_button.click()
    net, config = reopened.args
    assert opened.args == [two_runs[1]]
    assert net.name == "second" and net.layers == stack(16).layers and config == TrainingConfig(lr=0.01)
    assert net.training == config


def test_delete_asks_and_removes_only_on_yes(qtbot, tmp_path, two_runs):
    a, b = two_runs
    ask = Answers(False, True)
    view = make_view(qtbot, tmp_path, ask)
    view.select_rows(view.row_of(a))
    view.delete_button.click()
    assert a.exists() and len(view.entries) == 2 and ask.questions == [
        "Delete the run record a.run.jsonl? This cannot be undone."]
    view.delete_button.click()
    assert not a.exists() and b.exists()
    assert [e.path for e in view.entries] == [b]


def test_hostile_names_and_unreadable_records_are_listed_with_a_reason(qtbot, tmp_path, two_runs):
    hostile = tmp_path / "<img src=x>\u202e.run.jsonl"
    hostile.write_bytes(b"\x80\x04\x95pickle")
    write(tmp_path, "c.run.jsonl", "2026-12-01T12:00:00Z", stack(4, "<b>bold</b>"), TrainingConfig(),
          [(1, 1.0, 0.5)])
    view = make_view(qtbot, tmp_path)
    row = view.row_of(hostile)
    assert row >= 0
    assert view.cell(row, "Stack") == "(unreadable)"
    assert view.cell(row, "Status").startswith("unreadable: ") and "UTF-8" in view.cell(row, "Status")
    assert view.cell(row, "File").startswith("<img src=x>")
    assert view.table.item(row, 5).toolTip().startswith("<qt>")   # escaped: Qt shows it as text
    view.select_rows(row)
    assert "cannot be read" in view.caption.text() and not view.open_button.isEnabled()
    assert view.delete_button.isEnabled()
    bold = view.row_of(tmp_path / "c.run.jsonl")
    assert view.cell(bold, "Stack") == "<b>bold</b>" and view.cell(bold, "Status") == "unfinished"
    view.select_rows(bold, view.row_of(two_runs[0]))
    labels = [label.text for _, label in view.legend.items]
    assert any("&lt;b&gt;bold&lt;/b&gt;" in t for t in labels)   # shown as text, not made bold
    assert view.confusions[0].is_empty or view.confusions[1].is_empty   # a run without a done line: no matrix


def test_refresh_picks_up_new_records_and_keeps_the_selection(qtbot, tmp_path, two_runs):
    a, _ = two_runs
    view = make_view(qtbot, tmp_path)
    view.select_rows(view.row_of(a))
    new = write(tmp_path, "n.run.jsonl", "2026-12-02T10:00:00Z", stack(), TrainingConfig(), [(1, 1.0, 0.5)])
    with qtbot.waitSignal(view.listed, timeout=10_000):
        view.refresh_button.click()
    assert view.entries[0].path == new and [e.path for e in view.selected_entries()] == [a]
    assert np.allclose(view.loss_curves[0].getData()[1], [2.0, 1.0, 0.5])


def test_an_empty_folder_says_how_runs_appear(qtbot, tmp_path):
    view = make_view(qtbot, tmp_path / "absent")
    assert view.entries == [] and "press Train" in view.caption.text()


def test_a_failed_run_and_a_record_gone_since_the_listing(qtbot, tmp_path, two_runs):
    head = records.header(stack(), TrainingConfig(), "cpu", "2026-12-03T10:00:00Z")
    failed = records.write(tmp_path / "f.run.jsonl", head, [
        {"event": "step", "step": 1, "loss": 1.0, "accuracy": 0.5},
        {"event": "error", "kind": "nan", "message": "the loss is NaN at step 2"}])
    view = make_view(qtbot, tmp_path)
    assert view.cell(view.row_of(failed), "Status") == "failed: the loss is NaN at step 2"
    two_runs[0].unlink()
    view.select_rows(view.row_of(two_runs[0]))
    assert "cannot be read" in view.caption.text() and "no such file" in view.caption.text()
    assert view.loss_curves == [] and not view.open_button.isEnabled()


def test_matrices_of_other_classes_are_not_compared_cell_by_cell(qtbot, tmp_path, two_runs):
    head = records.header(stack(), TrainingConfig(), "cpu", "2026-12-03T10:00:00Z")
    three = records.write(tmp_path / "t.run.jsonl", head, [
        {"event": "step", "step": 1, "loss": 1.0, "accuracy": 0.5},
        {"event": "done", "steps": 1, "test_accuracy": 1.0, "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
         "per_class_accuracy": [1.0, 1.0, 1.0], "classes": ["x", "y", "z"]}])
    view = make_view(qtbot, tmp_path)
    view.select_rows(view.row_of(three), view.row_of(two_runs[0]))
    assert view.changed_cells() is None and view._marks[0].path().isEmpty()
    assert "different classes" in view.diff_text.toPlainText()


def test_listing_a_large_folder_never_holds_the_gui_thread(qtbot, tmp_path, monkeypatch):
    import threading

    from cnnviz.core.run import run_store

    points = [(s, 1.0 / s, 0.5) for s in range(1, 2001)]
    for i in range(40):
        write(tmp_path, f"r{i:02}.run.jsonl", f"2026-11-{i % 28 + 1:02}T10:{i:02}:00Z", stack(), TrainingConfig(),
              points, [[1, 0], [0, 1]])
    view = RunsView(tmp_path, Answers())
    qtbot.addWidget(view)
    real, readers, release = run_store.list_runs, [], threading.Event()

    def held_listing(*args, **kwargs):   # the folder's read, held until refresh() has returned
        readers.append(threading.get_ident())
        assert release.wait(10), "refresh() waited for the folder's listing"
        return real(*args, **kwargs)

    monkeypatch.setattr(run_store, "list_runs", held_listing)
    view.refresh()   # returns while the listing is held: the folder is read on a thread
    release.set()
    with qtbot.waitSignal(view.listed, timeout=30_000):
        view.show()
    assert readers and threading.get_ident() not in readers
    assert len(view.entries) == 40 and all(e.record is None for e in view.entries)   # summaries only
