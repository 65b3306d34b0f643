"""The window's folder of run records: listing (hostile files included), the cap, deleting, and stack diffs."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack, TrainingConfig, concat, residual
from cnnviz.core.run import records, run_store
from cnnviz.core.run.run_store import UNSET, KeywordChange


def net(name="net", out=8, hidden=None) -> Stack:
    layers = [Layer("Conv2d", {"out_channels": out, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
              Layer("Flatten")]
    if hidden:
        layers += [Layer("Linear", {"out_features": hidden}), Layer("ReLU")]
    layers.append(Layer("Linear", {"out_features": 10}))
    return Stack(name, InputSpec(1, 8, 8), tuple(layers))


def confusion_done(steps=30, accuracy=0.5):
    return {"event": "done", "steps": steps, "test_accuracy": accuracy, "confusion": [[1, 1], [0, 2]],
            "per_class_accuracy": [0.5, 1.0], "classes": ["a", "b"]}


def write_record(folder: Path, name: str, started: str, *, stack=None, done=True, steps=(10, 20, 30),
                 evals=((20, 0.25),), mtime=None) -> Path:
    head = records.header(stack or net(), TrainingConfig(steps=30), "cpu", started)
    events = [{"event": "step", "step": s, "loss": 1.0 / s, "accuracy": 0.5} for s in steps]
    events += [{"event": "eval", "step": s, "loss": 0.9, "accuracy": a, "split": "test", "n": 4} for s, a in evals]
    events.sort(key=lambda e: e["step"])
    if done:
        events.append(confusion_done(steps[-1], 0.75))
    path = records.write(folder / name, head, events)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# ------------------------------------------------------------------ listing
def test_lists_newest_first_with_their_summary(tmp_path):
    old = write_record(tmp_path, "a.run.jsonl", "2026-11-01T10:00:00Z", stack=net("old one"))
    new = write_record(tmp_path, "b.run.jsonl", "2026-12-01T10:00:00Z", stack=net("new one"), done=False,
                       steps=(5, 10, 15), evals=((10, 0.4), (15, 0.6)))
    entries = run_store.list_runs(tmp_path)
    assert [e.path for e in entries] == [new, old]
    first, second = entries
    assert (first.stack_name, first.started, first.steps, first.accuracy, first.finished) == \
        ("new one", "2026-12-01T10:00:00Z", 15, 0.6, False)   # unfinished: the last held-out evaluation
    assert (second.stack_name, second.steps, second.accuracy, second.finished) == ("old one", 30, 0.75, True)
    assert second.readable and second.size == old.stat().st_size and second.record.done["confusion"]


def test_broken_and_hostile_files_are_listed_with_a_reason(tmp_path):
    good = write_record(tmp_path, "good.run.jsonl", "2026-12-01T10:00:00Z")
    (tmp_path / "pickle.run.jsonl").write_bytes(pickle.dumps({"format": "cnnviz.run"}))
    (tmp_path / "json.run.jsonl").write_text("{not json\n")
    (tmp_path / "other.run.jsonl").write_text('{"format": "something else"}\n')
    (tmp_path / "empty.run.jsonl").write_bytes(b"")
    (tmp_path / "dir.run.jsonl").mkdir()
    (tmp_path / "link.run.jsonl").symlink_to(good)
    (tmp_path / "notes.txt").write_text("not a record's name: not listed")
    (tmp_path / ".b.run.jsonl.cnnviz-1-x.tmp").write_text("a temporary file: not listed")
    entries = {e.name: e for e in run_store.list_runs(tmp_path)}
    assert set(entries) == {"good.run.jsonl", "pickle.run.jsonl", "json.run.jsonl", "other.run.jsonl",
                            "empty.run.jsonl", "dir.run.jsonl", "link.run.jsonl"}
    assert entries["good.run.jsonl"].readable
    reasons = {name: e.problem for name, e in entries.items() if name != "good.run.jsonl"}
    assert all(reasons.values())
    assert "UTF-8" in reasons["pickle.run.jsonl"] and "never read" in reasons["pickle.run.jsonl"]
    assert "not valid JSON" in reasons["json.run.jsonl"]
    assert "not a cnnviz run record" in reasons["other.run.jsonl"]
    assert "empty" in reasons["empty.run.jsonl"]
    assert "regular file" in reasons["dir.run.jsonl"]
    assert "link" in reasons["link.run.jsonl"]
    assert str(tmp_path) not in reasons["json.run.jsonl"]   # the list names the file already


def test_a_missing_folder_lists_nothing(tmp_path):
    assert run_store.list_runs(tmp_path / "absent") == []


def test_the_cache_reads_only_what_changed(tmp_path, monkeypatch):
    write_record(tmp_path, "a.run.jsonl", "2026-11-01T10:00:00Z")
    cache: dict = {}
    run_store.list_runs(tmp_path, cache)
    reads = []
    real = records.read
    monkeypatch.setattr(records, "read", lambda p, *a, **k: reads.append(Path(p).name) or real(p, *a, **k))
    run_store.list_runs(tmp_path, cache)
    assert reads == []
    write_record(tmp_path, "b.run.jsonl", "2026-11-02T10:00:00Z")
    assert len(run_store.list_runs(tmp_path, cache)) == 2
    assert reads == ["b.run.jsonl"]
    (tmp_path / "a.run.jsonl").unlink()
    assert [e.name for e in run_store.list_runs(tmp_path, cache)] == ["b.run.jsonl"]
    assert set(cache) == {tmp_path / "b.run.jsonl"}


def test_summaries_without_the_records(tmp_path):
    write_record(tmp_path, "a.run.jsonl", "2026-11-01T10:00:00Z")
    (entry,) = run_store.list_runs(tmp_path, keep_records=False)
    assert entry.record is None and entry.readable and entry.accuracy == 0.75 and entry.finished


# ------------------------------------------------------------------ the cap
def test_prune_removes_the_oldest_first_and_never_the_one_kept(tmp_path):
    paths = [write_record(tmp_path, f"r{i}.run.jsonl", f"2026-11-0{i + 1}T10:00:00Z", mtime=1_000_000 + i)
             for i in range(5)]
    removed = run_store.prune(tmp_path, max_runs=3, keep=[paths[0]])
    assert removed == [paths[1], paths[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r0.run.jsonl", "r3.run.jsonl", "r4.run.jsonl"]
    size = paths[4].stat().st_size
    removed = run_store.prune(tmp_path, max_bytes=size * 2 + 1, keep=[paths[0]])
    assert removed == [paths[3]]
    assert run_store.prune(tmp_path) == []


def test_prune_leaves_other_files_alone(tmp_path):
    (tmp_path / "mine.cnnviz").write_text("{}")
    (tmp_path / "dir.run.jsonl").mkdir()
    write_record(tmp_path, "r.run.jsonl", "2026-11-01T10:00:00Z")
    assert run_store.prune(tmp_path, max_runs=0) == [tmp_path / "r.run.jsonl"]
    assert (tmp_path / "mine.cnnviz").exists() and (tmp_path / "dir.run.jsonl").is_dir()


# ------------------------------------------------------------------ deleting
def test_delete_removes_a_record_and_nothing_else(tmp_path):
    path = write_record(tmp_path, "r.run.jsonl", "2026-11-01T10:00:00Z")
    run_store.delete(path, tmp_path)
    assert not path.exists()
    with pytest.raises(run_store.RunStoreError, match="already gone"):
        run_store.delete(path, tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    outside = write_record(other, "x.run.jsonl", "2026-11-01T10:00:00Z")
    with pytest.raises(run_store.RunStoreError, match="not in the runs folder"):
        run_store.delete(outside, tmp_path)
    with pytest.raises(run_store.RunStoreError, match="not in the runs folder"):
        run_store.delete(tmp_path / ".." / tmp_path.name / "elsewhere" / "x.run.jsonl", tmp_path)
    stack_file = tmp_path / "net.cnnviz"
    stack_file.write_text("{}")
    with pytest.raises(run_store.RunStoreError, match="not a run record's name"):
        run_store.delete(stack_file, tmp_path)
    (tmp_path / "d.run.jsonl").mkdir()
    with pytest.raises(run_store.RunStoreError, match="not a file"):
        run_store.delete(tmp_path / "d.run.jsonl", tmp_path)
    link = tmp_path / "l.run.jsonl"
    link.symlink_to(outside)
    run_store.delete(link, tmp_path)
    assert not link.exists() and outside.exists() and stack_file.exists()


def test_default_folder_is_the_platform_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = run_store.default_folder()
    assert folder.name == "runs" and tmp_path in folder.parents and not folder.exists()


# ------------------------------------------------------------------ what differs
def test_identical_stacks_differ_in_nothing():
    diff = run_store.stack_diff(net(), net())
    assert diff.empty and diff.lines() == []


def test_a_changed_keyword_names_both_values_by_path():
    diff = run_store.stack_diff(net(out=8), net(out=16))
    (change,) = diff.layers
    assert (change.kind, change.a_path, change.b_path, change.b_type) == ("changed", LayerPath(0), LayerPath(0),
                                                                          "Conv2d")
    assert change.keywords == (KeywordChange("out_channels", 8, 16),)
    assert diff.lines() == ["changed layer 0 (Conv2d): out_channels: 8 → 16"]


def test_an_inserted_layer_is_one_added_not_every_one_after_it_changed():
    diff = run_store.stack_diff(net(), net(hidden=32))
    assert [(c.kind, c.b_path, c.b_type) for c in diff.layers] == [("added", LayerPath(3), "Linear"),
                                                                   ("added", LayerPath(4), "ReLU")]
    back = run_store.stack_diff(net(hidden=32), net())
    assert [(c.kind, c.a_path, c.a_type) for c in back.layers] == [("removed", LayerPath(3), "Linear"),
                                                                   ("removed", LayerPath(4), "ReLU")]


def test_a_keyword_set_on_one_side_only_and_a_label():
    a = Stack("n", InputSpec(), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),))
    b = Stack("n", InputSpec(), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1},
                                       name="first"),))
    (change,) = run_store.stack_diff(a, b).layers
    assert change.keywords == (KeywordChange("label", UNSET, "first"), KeywordChange("padding", UNSET, 1))
    assert "padding: (default) → 1" in change.text() and "label: (default) → 'first'" in change.text()
    # true is not 1: the file says which
    c = Stack("n", InputSpec(), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "bias": 1}),))
    d = Stack("n", InputSpec(), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "bias": True}),))
    assert run_store.stack_diff(c, d).layers[0].keywords == (KeywordChange("bias", 1, True),)


def test_input_loss_and_name():
    a = Stack("one", InputSpec(1, 28, 28), (), Loss("CrossEntropyLoss"))
    b = Stack("two", InputSpec(3, 32, 32), (), Loss("CrossEntropyLoss", {"label_smoothing": 0.1}))
    diff = run_store.stack_diff(a, b)
    assert diff.input == ((1, 28, 28), (3, 32, 32))
    assert diff.loss == (KeywordChange("label_smoothing", UNSET, 0.1),)
    assert diff.name == ("one", "two")
    assert diff.lines() == ["name: 'one' → 'two'", "input: 1×28×28 → 3×32×32",
                            "loss label_smoothing: (default) → 0.1"]
    assert not run_store.stack_diff(a, b).empty
    assert run_store.stack_diff(a, Stack("other", a.input, a.layers, a.loss)).empty   # a name is no network


def test_inside_blocks_by_path():
    conv = lambda c: Layer("Conv2d", {"out_channels": c, "kernel_size": 3, "padding": 1})
    a = Stack("r", InputSpec(), (conv(4), residual([conv(4), Layer("ReLU")]), concat([conv(2)], [conv(2)])))
    b = Stack("r", InputSpec(), (conv(4), residual([conv(4), Layer("ReLU"), conv(4)], [conv(4)]),
                                 concat([conv(2)], [conv(3)], [])))
    lines = run_store.stack_diff(a, b).lines()
    assert lines == [
        "added layer 1 → body → 2: Conv2d",
        "added layer 1 → shortcut → 0: Conv2d",
        "changed layer 2 (Concat): branches: 2 → 3",
        "changed layer 2 → branches → 1 → 0 (Conv2d): out_channels: 2 → 3",
    ]
    removed = run_store.stack_diff(b, Stack("r", InputSpec(), (conv(4),)))
    assert [(c.kind, str(c.a_path)) for c in removed.layers] == [
        ("removed", "1"), ("removed", "1.body.0"), ("removed", "1.body.1"), ("removed", "1.body.2"),
        ("removed", "1.shortcut.0"), ("removed", "2"), ("removed", "2.branches.0.0"),
        ("removed", "2.branches.1.0")]


def test_a_record_with_or_without_a_schedule_is_read(tmp_path):
    events = [confusion_done()]
    old = records.write(tmp_path / "old.jsonl", records.header(net(), TrainingConfig(steps=30), "cpu",
                                                              "2026-01-01T00:00:00Z"), events)
    assert b"schedule" not in old.read_bytes()  # a constant rate is written as records were before schedules
    assert records.read(old).config == TrainingConfig(steps=30)
    cosine = TrainingConfig(steps=30, schedule="cosine")
    new = records.write(tmp_path / "new.jsonl", records.header(net(), cosine, "cpu", "2026-01-01T00:00:01Z"),
                        events)
    assert records.read(new).config == cosine
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(new.read_bytes().replace(b'"schedule": "cosine"', b'"schedule": "linear"', 1))
    with pytest.raises(records.RecordError, match="config.schedule: expected one of constant, cosine"):
        records.read(bad)


def test_config_diff():
    assert run_store.config_diff(TrainingConfig(), TrainingConfig()) == ()
    assert run_store.config_diff(TrainingConfig(lr=1e-3), TrainingConfig(lr=0.01, optimizer="sgd")) == (
        KeywordChange("lr", 1e-3, 0.01), KeywordChange("optimizer", "adam", "sgd"))
    assert run_store.config_diff(TrainingConfig(), TrainingConfig(schedule="cosine")) == (
        KeywordChange("schedule", "constant", "cosine"),)


def test_hostile_text_in_a_diff_is_one_printable_line():
    a = Stack("n\x1b[31m\nx", InputSpec(), ())
    b = Stack("m" * 500, InputSpec(), ())
    (line,) = run_store.stack_diff(a, b).lines()
    assert "\n" not in line and "\x1b" not in line and len(line) < 200
