"""The held-out confusion matrix and per-class accuracy, the ``done`` line's new keys, and run records.

The matrix is checked against a count made here from the model's own predictions (numpy, one
``np.add.at``), not against the engine's arithmetic; ignore_index targets are left out of both.
"""
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz import cli
from cnnviz.core import data
from cnnviz.core.model import files, outputs
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack, TrainingConfig
from cnnviz.core.run import engine, records
from cnnviz.core.run.hygiene import model_mode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "format": "cnnviz.stack", "version": 1, "name": "Tiny digits",
    "input": {"channels": 1, "height": 8, "width": 8},
    "layers": [
        {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
        {"type": "ReLU", "params": {"inplace": True}},
        {"type": "MaxPool2d", "params": {"kernel_size": 2}},
        {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}},
    ],
    "training": {"data": "digits", "lr": 0.01, "batch_size": 32, "steps": 30, "device": "cpu"},
}


def tiny(loss=None):
    loss = loss or Loss()
    layers = (Layer("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
              Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"), Layer("Linear", {"out_features": 10}))
    return Stack("tiny", InputSpec(1, 8, 8), layers, loss)


def config(**kw):
    base = {"data": "digits", "device": "cpu", "lr": 0.01, "batch_size": 32, "seed": 0, "steps": 30}
    return TrainingConfig(**{**base, **kw})


def trained(stack, steps=25, **kw):
    session = engine.Session(stack, config(), **kw)
    for _ in range(steps):
        session.step()
    return session


def independent(session, ignore=None):
    """The matrix counted from the model's predictions, in numpy; rows whose target is ``ignore`` left out."""
    split = session.test_split
    with model_mode(session.model, False), torch.no_grad():
        pred = session.model(split.images).argmax(1).numpy()
    y = split.labels.numpy()
    keep = y != ignore if ignore is not None else np.ones(len(y), bool)
    k = len(session.classes)
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y[keep], pred[keep]), 1)
    return m


def check_consistent(e):
    m = np.array(e.confusion)
    assert m.shape == (len(e.classes),) * 2 and m.dtype.kind == "i" and (m >= 0).all()
    assert m.sum() == e.counted
    assert np.trace(m) == round(e.accuracy * e.counted)
    assert e.accuracy == pytest.approx(np.trace(m) / e.counted, abs=1e-12)
    for t, a in enumerate(e.per_class_accuracy):
        if m[t].sum() == 0:
            assert a is None
        else:
            assert a == pytest.approx(m[t, t] / m[t].sum(), abs=1e-12)
    return m


def test_the_matrix_is_the_count_of_the_models_predictions():
    session = trained(tiny())
    e = session.evaluate()
    m = check_consistent(e)
    assert e.counted == e.n == session.test_split.n == 359
    np.testing.assert_array_equal(m, independent(session))
    assert 0.2 < e.accuracy < 1 and np.count_nonzero(m - np.diag(np.diag(m))) > 0  # a real, imperfect model
    assert e.classes == tuple(str(i) for i in range(10))
    # The count does not depend on the chunking, and the matrix-free evaluation agrees.
    chunked = session.evaluate(chunk=7)
    assert (chunked.confusion, chunked.accuracy, chunked.counted) == (e.confusion, e.accuracy, e.counted)
    plain = session.evaluate(confusion=False)
    assert plain.confusion is None and plain.per_class_accuracy is None
    assert (plain.accuracy, plain.loss, plain.counted) == pytest.approx((e.accuracy, e.loss, e.counted), abs=1e-6)


def test_the_training_split_has_a_matrix_too():
    session = trained(tiny(), steps=5)
    e = session.evaluate("train")
    m = check_consistent(e)
    assert m.sum() == session.train_split.n


def test_ignore_index_targets_are_left_out_of_accuracy_and_matrix():
    session = trained(tiny(Loss(params={"ignore_index": 3})))
    e = session.evaluate()
    m = check_consistent(e)
    labels = session.test_split.labels.numpy()
    assert e.n == len(labels) and e.counted == int((labels != 3).sum()) < e.n
    assert m[3].sum() == 0 and e.per_class_accuracy[3] is None
    np.testing.assert_array_equal(m, independent(session, ignore=3))
    plain = session.evaluate(confusion=False)
    assert plain.counted == e.counted and plain.accuracy == pytest.approx(e.accuracy, abs=1e-12)


def test_an_ignore_index_outside_the_classes_ignores_nothing():
    session = trained(tiny(Loss(params={"ignore_index": 12})), steps=3)
    e = session.evaluate()
    assert e.counted == e.n and np.array(e.confusion).sum() == e.n


def test_a_class_without_held_out_examples_has_no_accuracy():
    rng = np.random.default_rng(0)
    names = tuple(str(i) for i in range(10))

    def part(n, no_four):
        y = rng.integers(0, 10, n).astype(np.int64)
        if no_four:
            y[y == 4] = 5
        return data.Dataset(rng.random((n, 1, 8, 8), dtype=np.float32), y, names)

    split = data.DataSplit("synthetic", part(64, False), part(40, True), names, "test data", (0.0,), (1.0,))
    session = engine.Session(tiny(), config(), data=split)
    e = session.evaluate()
    check_consistent(e)
    assert e.per_class_accuracy[4] is None and sum(a is None for a in e.per_class_accuracy) == 1
    np.testing.assert_array_equal(np.array(e.confusion), independent(session))


# ------------------------------------------------------------------ the command line
@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "tiny.cnnviz"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return path


def train(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["train", *map(str, argv)], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_the_done_line_carries_the_matrix(stack_file):
    rc, out, err = train(stack_file, "--json", "--steps", "20")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    done, last_eval = lines[-1], [e for e in lines if e["event"] == "eval"][-1]
    for key, kind in (("steps", int), ("device", str), ("final_loss", float), ("test_accuracy", float),
                      ("steps_per_second", float), ("test_loss", float), ("seconds", float), ("interrupted", bool)):
        assert isinstance(done[key], kind), key  # the keys of SPEC §2, unchanged
    assert done["classes"] == [str(i) for i in range(10)]
    m = np.array(done["confusion"])
    assert m.shape == (10, 10) and m.sum() == last_eval["n"] == 359
    assert np.trace(m) == round(done["test_accuracy"] * m.sum())
    per_class = done["per_class_accuracy"]
    assert len(per_class) == 10
    for t in range(10):
        assert per_class[t] == pytest.approx(m[t, t] / m[t].sum(), abs=5e-5)
    assert "counted" not in done  # nothing ignored


def test_the_done_line_with_ignore_index_counts_what_the_accuracy_counts(tmp_path):
    path = tmp_path / "ignore.cnnviz"
    path.write_text(json.dumps({**TINY, "loss": {"type": "CrossEntropyLoss", "params": {"ignore_index": 3}}}))
    rc, out, err = train(path, "--json", "--steps", "10")
    assert rc == 0, err
    done = json.loads(out.splitlines()[-1])
    m = np.array(done["confusion"])
    assert m.sum() == done["counted"] < 359 and m[3].sum() == 0 and done["per_class_accuracy"][3] is None
    assert np.trace(m) == round(done["test_accuracy"] * done["counted"])


def test_text_mode_prints_a_short_per_class_line_before_the_summary(stack_file):
    rc, out, _ = train(stack_file, "--steps", "10")
    assert rc == 0
    lines = out.splitlines()
    assert lines[-1].startswith("done: 10 steps")
    per_class = lines[-2]
    assert per_class.startswith("per-class held-out accuracy: 0 ") and per_class.count("%") == 10
    assert len(per_class) < 120


def test_record_writes_a_record_that_reads_back(stack_file, tmp_path):
    folder = tmp_path / "runs"  # made by --record; its parent exists
    rc, out, err = train(stack_file, "--json", "--steps", "20", "--record", folder)
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    done = lines[-1]
    written = list(folder.iterdir())
    assert len(written) == 1 and written[0].name.startswith("tiny-") and written[0].name.endswith(".run.jsonl")
    assert done["record"] == str(written[0])
    record = records.read(written[0])
    assert record.header["format"] == "cnnviz.run" and record.header["version"] == 1
    assert record.stack.key() == files.load(stack_file).key()
    assert record.config.steps == 20 and record.config.data == "digits" and record.device == "cpu"
    assert list(record.events) == lines  # the step, eval and done lines, exactly as printed
    assert record.done == done and record.error is None
    assert [s["step"] for s in record.steps] == [s["step"] for s in lines if s["event"] == "step"]
    raw = written[0].read_bytes().splitlines()
    assert json.loads(raw[0])["stack"] == files.load(stack_file).to_dict()
    # A second run in the same folder gets its own file.
    assert train(stack_file, "--json", "--steps", "2", "--record", folder)[0] == 0
    assert len(list(folder.iterdir())) == 2


def test_a_failed_run_is_recorded_with_its_error_line(stack_file, tmp_path):
    rc, out, _ = train(stack_file, "--json", "--optimizer", "sgd", "--lr", "1e12", "--steps", "200",
                       "--record", tmp_path / "runs")
    assert rc == 4
    (path,) = (tmp_path / "runs").iterdir()
    record = records.read(path)
    printed = [json.loads(line) for line in out.splitlines()]
    assert record.done is None and record.error == printed[-1] and record.error["kind"] == "nonfinite"
    assert list(record.events) == printed


def test_record_never_replaces_a_stack_file(stack_file, tmp_path):
    before = stack_file.read_bytes()
    rc, out, err = train(stack_file, "--steps", "2", "--record", stack_file)
    assert rc == 2 and "is a cnnviz stack file; --record takes a folder" in err
    assert stack_file.read_bytes() == before and "training" not in out
    rc, out, _ = train(stack_file, "--json", "--steps", "2", "--record", tmp_path / "absent" / "runs")
    assert rc == 2
    line = json.loads(out.splitlines()[-1])
    assert line["event"] == "error" and line["kind"] == "record" and "does not exist" in line["message"]
    # A stack saved under the very name the record would take is refused, not replaced.
    started = "2026-01-02T03:04:05Z"
    folder = tmp_path / "runs"
    folder.mkdir()
    name = records.file_name(stack_file, started)
    (folder / name).write_text(json.dumps(TINY), encoding="utf-8")
    target = folder / name
    with pytest.raises(outputs.OutputRefused, match="holds a cnnviz stack"):
        outputs.check_target(target, what="the run record")
    with pytest.raises(outputs.OutputRefused, match="holds a cnnviz stack"):
        records.write(target, {"format": "cnnviz.run"}, [])
    assert json.loads((folder / name).read_text()) == TINY
    assert records.target_in(folder, stack_file, started).name == name.replace(".run.jsonl", "-2.run.jsonl")
    with pytest.raises(outputs.OutputRefused, match="is the file being read"):
        records.write(stack_file, {"format": "cnnviz.run"}, [], inputs=(stack_file,))


# ------------------------------------------------------------------ the reader trusts nothing
def good_record(tmp_path) -> bytes:
    stack = files.from_dict(TINY)
    head = records.header(stack, config(), "cpu", "2026-01-02T03:04:05Z")
    done = {"event": "done", "steps": 1, "device": "cpu", "test_accuracy": 0.5,
            "confusion": [[1, 1], [0, 2]], "per_class_accuracy": [0.5, 1.0], "classes": ["a", "b"]}
    return records.dumps(head, [{"event": "step", "step": 1, "loss": 0.5, "accuracy": 0.25}, done])


def test_a_good_record_reads(tmp_path):
    record = records.loads(good_record(tmp_path))
    assert record.done["confusion"] == [[1, 1], [0, 2]] and len(record.steps) == 1


def _last(text: str, old: str, new: str) -> str:
    """``text`` with the last ``old`` replaced (the header's config comes after the stack's own training)."""
    head, sep, tail = text.rpartition(old)
    assert sep
    return head + new + tail


def _with(data: bytes, line: int, change) -> bytes:
    lines = data.decode().splitlines()
    lines[line] = change(lines[line])
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"\x80\x04\x95pickle", "not UTF-8 text (byte 0)"),
    (lambda d: b"", "the record is empty"),
    (lambda d: b'{"format": "cnnviz.stack"}\n', "not a cnnviz run record"),
    (lambda d: _with(d, 0, lambda s: s.replace('"version": 1', '"version": 9')), "version 9: written by a newer"),
    (lambda d: _with(d, 0, lambda s: s.replace('"kernel_size": 3', '"kernel_size": "x"')),
     "line 1: stack.layers[0].params.kernel_size"),
    (lambda d: _with(d, 0, lambda s: s.replace('"type": "Conv2d"', '"type": {}')), "line 1: stack"),
    (lambda d: _with(d, 0, lambda s: _last(s, '"momentum": 0.9', '"momentum": "fast"')),
     "line 1: config.momentum: expected float"),
    (lambda d: _with(d, 1, lambda s: s.replace('"loss": 0.5', '"loss": NaN')), "line 2: NaN is not a number"),
    (lambda d: _with(d, 1, lambda s: s.replace('"loss": 0.5', '"loss": 0.5, "loss": 1')), "appears twice"),
    (lambda d: _with(d, 1, lambda s: s.replace('"step": 1', '"step": ' + "9" * 500)), "a number with 500 digits"),
    (lambda d: _with(d, 1, lambda s: s.replace('"step": 1', '"step": ' + "[" * 50 + "]" * 50)), "nested too deep"),
    (lambda d: _with(d, 1, lambda s: s.replace('"step": 1', '"step": ' + "[" * 100000 + "]" * 100000)),
     "nested too deep"),
    (lambda d: _with(d, 1, lambda s: '{"event": "exec", "code": "import os"}'), "line 2: event: expected one of"),
    (lambda d: _with(d, 2, lambda s: s.replace("[[1, 1], [0, 2]]", "[[1, 1], [0]]")), "confusion[1]: expected a row"),
    (lambda d: _with(d, 2, lambda s: s.replace("[[1, 1], [0, 2]]", "[[1, 1], [0, -2]]")), "confusion[1][1]"),
    (lambda d: _with(d, 2, lambda s: s.replace('["a", "b"]', '["a"]')), "done.classes: expected 2 class names"),
    (lambda d: _with(d, 2, lambda s: s.replace("[0.5, 1.0]", "[0.5, 7]")), "done.per_class_accuracy"),
    (lambda d: d + b'{"event": "step", "step": 2, "loss": 0.1, "accuracy": 0.5}\n', "line 4: a line after the done"),
    (lambda d: d.replace(b"Tiny digits", b"\\ud800"), "half of a UTF-16 surrogate"),
])
def test_a_hostile_record_is_refused_with_a_clear_error(tmp_path, mutate, message):
    data = mutate(good_record(tmp_path))
    with pytest.raises(records.RecordError, match=re.escape(message)):
        records.loads(data)
    path = tmp_path / "r.run.jsonl"
    path.write_bytes(data)
    with pytest.raises(records.RecordError) as info:
        records.read(path)
    assert str(info.value).startswith(str(path))


def test_an_oversized_or_special_file_is_never_read(tmp_path):
    big = tmp_path / "big.run.jsonl"
    with big.open("wb") as fh:
        fh.truncate(records.MAX_RECORD_BYTES + 1)  # sparse: costs no disk, would cost 64 MiB to read
    with pytest.raises(records.RecordError, match="records are at most 67,108,864"):
        records.read(big)
    small = tmp_path / "r.run.jsonl"
    small.write_bytes(good_record(tmp_path))
    with pytest.raises(records.RecordError, match="records are at most 100"):
        records.read(small, max_bytes=100)
    with pytest.raises(records.RecordError, match="is a folder"):
        records.read(tmp_path)
    with pytest.raises(records.RecordError, match="no such file"):
        records.read(tmp_path / "absent")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.run.jsonl"
        os.mkfifo(fifo)
        with pytest.raises(records.RecordError, match="not a regular file"):
            records.read(fifo)  # refused by stat: never opened, so nothing blocks


def test_a_record_too_large_to_write_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 50)
    with pytest.raises(records.RecordError, match="records are at most 50"):
        records.write(tmp_path / "x.run.jsonl", {"format": "cnnviz.run", "pad": "x" * 100}, [])
    assert not list(Path(tmp_path).iterdir())
