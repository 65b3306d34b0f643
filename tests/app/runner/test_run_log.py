"""Every training run in the window is recorded: RunLog turns the worker's signals into run records."""
from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from PySide6.QtCore import QObject, Signal

from cnnviz.app.runner.run_log import RunLog, serialise
from cnnviz.core.model import files
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import records
from cnnviz.core.run.engine import Evaluation
from cnnviz.core.run.training import Progress, State

STACK = Stack("tiny", InputSpec(1, 8, 8), (Layer("Flatten"), Layer("Linear", {"out_features": 3})))
CONFIG = TrainingConfig(data="digits", lr=0.01, steps=100)


class FakeWorker(QObject):
    """The worker's signals, emitted here on the GUI thread with the core's real objects."""

    ready = Signal(object)
    progressed = Signal(object)
    evaluated = Signal(object)
    stateChanged = Signal(object, int)
    refused = Signal(int, str, str)


class FakeBuilt:
    def __init__(self, kept=""):
        self.kept = kept


def progress(step, loss=1.0, accuracy=0.5):
    return Progress(step=step, loss=loss, accuracy=accuracy, window=10, steps_per_second=100.0, elapsed=step / 100)


def evaluation(step, matrix=((3, 1, 0), (0, 2, 2), (1, 0, 5)), classes=("cat", "dog", "<b>bird</b>")):
    counted = sum(map(sum, matrix))
    accuracy = sum(matrix[i][i] for i in range(len(matrix))) / counted
    per_class = tuple(row[i] / sum(row) if sum(row) else None for i, row in enumerate(matrix))
    return Evaluation(step=step, split="test", loss=0.75, accuracy=accuracy, n=counted, counted=counted,
                      confusion=tuple(tuple(r) for r in matrix), per_class_accuracy=per_class, classes=classes)


@pytest.fixture
def worker(qtbot):
    return FakeWorker()


def make_log(worker, folder, context=None, **kw):
    context = context or {"stack": STACK, "config": CONFIG}
    return RunLog(worker, lambda: (context["stack"], context["config"], "cpu"), folder, **kw)


def only_record(folder):
    (path,) = sorted(folder.glob("*" + records.SUFFIX))
    return records.read(path)


def test_a_run_is_recorded_with_its_points_and_final_confusion(worker, tmp_path, qtbot):
    folder = tmp_path / "data" / "runs"   # made when the first record is written
    log = make_log(worker, folder, source=lambda: tmp_path / "my net.cnnviz")
    worker.ready.emit(FakeBuilt())
    assert not log.active and not folder.exists()   # nothing trained yet: no record
    for step in (10, 20, 30):
        worker.progressed.emit(progress(step, loss=1.0 / step, accuracy=step / 100))
    with qtbot.waitSignal(log.written, timeout=5000):
        worker.evaluated.emit(evaluation(30))
    assert log.flush()
    path = log.path
    assert path.parent == folder and path.name.startswith("my_net-") and path.name.endswith(records.SUFFIX)
    partial = records.read(path)
    assert partial.done is None and [e["step"] for e in partial.steps] == [10, 20, 30]
    assert partial.stack == STACK and partial.config == CONFIG and partial.device == "cpu"

    worker.progressed.emit(progress(40, loss=0.2, accuracy=0.9))
    final = evaluation(40, matrix=((4, 0, 0), (0, 3, 1), (0, 0, 6)))
    worker.evaluated.emit(final)
    worker.stateChanged.emit(State.RESET, 0)
    assert not log.active and log.flush()
    record = records.read(path)
    assert [(e["step"], e["loss"], e["accuracy"]) for e in record.steps] == [
        (10, 0.1, 0.1), (20, 0.05, 0.2), (30, round(1 / 30, 6), 0.3), (40, 0.2, 0.9)]
    assert [(e["step"], e["accuracy"]) for e in record.evals] == [(30, 0.7143), (40, 0.9286)]
    assert [e["event"] for e in record.events] == ["step", "step", "step", "eval", "step", "eval", "done"]
    done = record.done
    assert done["confusion"] == [[4, 0, 0], [0, 3, 1], [0, 0, 6]]
    assert done["classes"] == ["cat", "dog", "<b>bird</b>"]
    assert done["per_class_accuracy"] == [1.0, 0.75, 1.0]
    assert (done["steps"], done["test_accuracy"], done["ended"], done["final_loss"]) == (40, 0.9286, "reset", 0.2)


def test_a_reset_or_a_build_from_the_seed_starts_another_run_and_a_kept_build_goes_on(worker, tmp_path, qtbot):
    context = {"stack": STACK, "config": CONFIG}
    log = make_log(worker, tmp_path, context)
    worker.progressed.emit(progress(10))
    first = log.path
    worker.stateChanged.emit(State.RESET, 0)
    worker.progressed.emit(progress(10))
    second = log.path
    assert second != first
    edited = replace(STACK, layers=(Layer("Flatten"), Layer("Linear", {"out_features": 3, "bias": False})))
    context["stack"] = edited
    worker.ready.emit(FakeBuilt(kept="the trained weights of 2 layers kept"))
    worker.progressed.emit(progress(20))
    assert log.path == second   # the same weights, edited: the same run
    worker.ready.emit(FakeBuilt())   # from the seed: the run ends
    worker.progressed.emit(progress(5))
    third = log.path
    worker.progressed.emit(progress(3))   # steps went back: another line of weights
    fourth = log.path
    log.close()
    assert len({first, second, third, fourth}) == 4
    two = records.read(second)
    assert [e["step"] for e in two.steps] == [10, 20] and two.stack == edited and two.done["ended"] == "rebuilt"
    assert records.read(first).done["ended"] == "reset" and records.read(first).done["test_accuracy"] is None
    assert records.read(third).done["ended"] == "restarted"
    assert records.read(fourth).done["ended"] == "closed"
    worker.progressed.emit(progress(50))   # after close: nothing
    assert len(list(tmp_path.iterdir())) == 4


def test_evaluations_before_any_training_start_no_run(worker, tmp_path):
    log = make_log(worker, tmp_path)
    worker.evaluated.emit(evaluation(0))
    worker.stateChanged.emit(State.RESET, 0)
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_points_are_thinned_to_the_cap_keeping_first_and_last(worker, tmp_path):
    log = make_log(worker, tmp_path, max_step_points=100, max_eval_points=10)
    for step in range(1, 1001):
        worker.progressed.emit(progress(step))
        if step % 20 == 0:
            worker.evaluated.emit(evaluation(step))
    assert log.points[0] <= 100 and log.points[1] <= 10
    log.close()
    record = only_record(tmp_path)
    steps = [e["step"] for e in record.steps]
    assert steps[0] == 1 and steps[-1] == 1000 and 50 <= len(steps) <= 100 and steps == sorted(steps)
    assert [e["step"] for e in record.evals][-1] == 1000 and len(record.evals) <= 10
    assert record.done["confusion"]


def test_a_record_is_kept_under_its_byte_cap(worker, tmp_path):
    log = make_log(worker, tmp_path, max_run_bytes=6000)
    for step in range(1, 2001):
        worker.progressed.emit(progress(step))
    worker.evaluated.emit(evaluation(2000))
    log.close()
    path = next(tmp_path.iterdir())
    assert path.stat().st_size <= 6000
    record = records.read(path)
    assert record.steps[0]["step"] == 1 and record.steps[-1]["step"] == 2000 and record.done["confusion"]
    huge = {"event": "done", "steps": 1, "test_accuracy": 0.5, "confusion": [[1] * 400] * 400,
            "per_class_accuracy": [0.0025] * 400, "classes": ["c"] * 400}
    data = serialise(records.header(STACK, CONFIG, "cpu"), [], [], huge, max_bytes=20_000)
    assert len(data) <= 20_000 and "confusion" not in records.loads(data).done


def test_the_folder_cap_removes_old_records_never_the_one_being_written(worker, tmp_path):
    log = make_log(worker, tmp_path, max_runs=2)
    paths = []
    for run in range(4):
        worker.progressed.emit(progress(10))
        paths.append(log.path)
        worker.evaluated.emit(evaluation(10))
        assert log.flush()
        os.utime(log.path, (1_000_000 + run, 1_000_000 + run))
        if run < 3:
            worker.stateChanged.emit(State.RESET, 0)
            assert log.flush()
            os.utime(paths[-1], (1_000_000 + run, 1_000_000 + run))
    os.utime(paths[-1], (1, 1))   # the oldest by time now, but being written: never removed
    worker.progressed.emit(progress(20))
    worker.evaluated.emit(evaluation(20))
    assert log.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths[2].name, paths[3].name])


def test_a_folder_that_cannot_be_written_is_one_message_never_an_exception(worker, tmp_path, qtbot):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the folder should be")
    log = make_log(worker, blocker)
    messages = []
    log.failed.connect(messages.append)
    worker.progressed.emit(progress(10))
    worker.evaluated.emit(evaluation(10))
    qtbot.waitUntil(lambda: bool(messages), timeout=5000)
    worker.progressed.emit(progress(20))
    worker.evaluated.emit(evaluation(20))
    assert log.close()
    qtbot.wait(50)
    assert len(messages) == 1 and "not recorded" in messages[0]
    assert blocker.read_text() == "a file where the folder should be"


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 1)() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_reported(worker, tmp_path, qtbot):
    folder = tmp_path / "runs"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        log = make_log(worker, folder)
        with qtbot.waitSignal(log.failed, timeout=5000) as got:
            worker.progressed.emit(progress(10))
            worker.evaluated.emit(evaluation(10))
        assert "not writable" in got.args[0]
    finally:
        folder.chmod(0o700)


def test_the_gui_thread_never_waits_on_the_disk(worker, tmp_path):
    """Each signal costs the GUI thread well under 5 ms of work, however long the run, however slow the disk.

    Measured as the GUI thread's own CPU time: on a shared machine its wall-clock time also counts other
    programs' turns (calls of a few ms happen here with the writing switched off)."""
    log = make_log(worker, tmp_path)
    real = log._writer._write
    log._writer._write = lambda job: (time.sleep(0.05), real(job))   # a slow disk
    cpu, wall = [], []
    for step in range(1, 20_001):
        t, c = time.perf_counter(), time.thread_time()
        worker.progressed.emit(progress(step))
        if step % 500 == 0:
            worker.evaluated.emit(evaluation(step))
            worker.stateChanged.emit(State.PAUSED, step)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    assert max(cpu) < 0.005, f"a signal took {max(cpu) * 1e3:.1f} ms of the GUI thread's time"
    assert sorted(wall)[len(wall) // 2] < 0.0002
    t = time.perf_counter()
    worker.stateChanged.emit(State.RESET, 0)   # the run ends: its last write is the writer's too
    assert time.perf_counter() - t < 0.025   # not one of the slow disk's 50 ms writes
    assert log.close(timeout=10)
    record = only_record(tmp_path)
    assert record.steps[-1]["step"] == 20_000 and record.done["steps"] == 20_000
    assert len(record.steps) <= 20_000 and len(record.evals) == 40


def test_a_real_worker_run_is_recorded(examples, tmp_path, qtbot):
    from cnnviz.app.runner.messages import Build
    from cnnviz.app.runner.worker import RunWorker

    stack = files.load(examples["digits"])
    config = replace(stack.training, batch_size=32, device="cpu")
    worker = RunWorker(threads=1, report_every=5, report_seconds=0.0, eval_every=10)
    built = []
    worker.ready.connect(built.append)
    log = RunLog(worker, lambda: (built[-1].stack, built[-1].config, built[-1].device.id), tmp_path,
                 source=lambda: examples["digits"])
    evaluations, points = [], []
    worker.evaluated.connect(evaluations.append)
    worker.progressed.connect(points.append)
    worker.start()
    try:
        worker.submit(Build(1, stack, config))
        qtbot.waitUntil(lambda: bool(built), timeout=60_000)
        worker.step(20)
        qtbot.waitUntil(lambda: bool(evaluations) and evaluations[-1].step >= 20, timeout=60_000)
        states = []
        worker.stateChanged.connect(lambda s, n: states.append(s))
        worker.reset()
        qtbot.waitUntil(lambda: State.RESET in states, timeout=60_000)
        assert log.flush()
    finally:
        worker.shutdown()
    log.close()
    record = only_record(tmp_path)
    assert record.stack == stack and record.config == config and record.device == "cpu"
    assert [(e["step"], e["loss"]) for e in record.steps] == [(p.step, round(p.loss, 6)) for p in points]
    assert points[-1].step == 20
    assert [e["step"] for e in record.evals] == [e.step for e in evaluations] and record.evals[-1]["step"] == 20
    last = evaluations[-1]
    assert record.done["confusion"] == [list(r) for r in last.confusion]
    assert record.done["test_accuracy"] == round(last.accuracy, 4) and record.done["ended"] == "reset"
    assert record.done["classes"] == list(last.classes) and record.done["steps"] == 20


def test_signals_queued_from_the_worker_thread_are_recorded_at_close(tmp_path, qtbot):
    """What the controller does at shutdown: the worker has stopped, its last signals wait in the queue;
    delivering them (``sendPostedEvents``) before ``close`` puts them in the record."""
    import threading

    from PySide6.QtCore import QCoreApplication

    worker = FakeWorker()
    log = make_log(worker, tmp_path)

    def emit():
        for step in (10, 20):
            worker.progressed.emit(progress(step))
        worker.evaluated.emit(evaluation(20))

    thread = threading.Thread(target=emit)
    thread.start()
    thread.join()
    assert not log.active   # queued, not yet delivered
    QCoreApplication.sendPostedEvents(log)
    log.close()
    record = only_record(tmp_path)
    assert [e["step"] for e in record.steps] == [10, 20] and record.done["ended"] == "closed"


def test_a_context_that_fails_is_a_message_not_an_exception(worker, tmp_path, qtbot):
    def broken():
        raise RuntimeError("no session")

    log = RunLog(worker, broken, tmp_path)
    messages = []
    log.failed.connect(messages.append)
    worker.progressed.emit(progress(1))
    worker.progressed.emit(progress(2))
    log.close()
    assert messages == ["The run was not recorded: no session"] and list(tmp_path.iterdir()) == []
