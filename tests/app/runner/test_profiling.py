"""``Profiling``: a real profile measured off the GUI thread and shown by the view; on the run's worker at a
step boundary while training (training waits, then carries on, its random stream untouched); cancel (waiting
or measuring), an edit of the network, shutdown; one at a time; no session: a thread of its own, which
training cancels; an EngineError as the view's sentence; no torch on import."""
from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from cnnviz.app.runner import profiling as pr
from cnnviz.app.runner.profiling import Profiling
from cnnviz.app.views import profile_view as pv
from cnnviz.app.views.profile_view import ProfileView
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec as Input
from cnnviz.core.model.stack import Layer, Stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LENET = files.load(assets.path("examples", "lenet5.cnnviz"))
WAIT_MS = 60_000


def _profiling(qtbot, **kw):
    """A shown ProfileView and its Profiling of what ``current["answer"]`` names (LeNet-5 on the CPU)."""
    view = ProfileView()
    qtbot.addWidget(view)
    view.show()
    current = {"answer": (LENET, LENET.training, "cpu")}
    return view, Profiling(view, lambda: current["answer"], **kw), current


@pytest.fixture
def setup(qtbot):
    view, p, current = _profiling(qtbot)
    yield view, p, current
    assert p.shutdown(30)


def test_a_real_profile_runs_off_the_gui_thread_and_is_shown(qtbot, setup):
    view, p, _ = setup
    p.sync_batch()
    assert view.batch_size == LENET.training.batch_size == 64
    view.set_batch_size(4)
    p.sync_batch()  # the same training block: the batch the person chose stays
    assert view.batch_size == 4
    gui = threading.get_ident()
    threads = []
    real = pr.measure

    def spy(*args):
        threads.append(threading.get_ident())
        return real(*args)

    pr.measure = spy
    try:
        with qtbot.waitSignal(p.finished, timeout=WAIT_MS) as got:
            view.profile_button.click()
            assert p.busy and view.cancel_button.isVisible() and not view.profile_button.isEnabled()
    finally:
        pr.measure = real
    result = got.args[0]
    assert threads and threads[0] != gui
    assert result.batch_size == 4 and result.device == "cpu" and len(result.layers) == 12
    assert view.profile is result and view.proxy.rowCount() == 12
    assert view.progress.maximum() == 13 and view.progress.value() == 13  # every row, then the step
    assert view.profile_button.isEnabled() and not view.cancel_button.isVisible()
    assert not p.busy
    assert view.copy_button.isEnabled() and '"format": "cnnviz.profile"' in view.profile_json()


def test_cancel_ends_the_profile_with_a_message(qtbot, setup):
    view, p, _ = setup
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        assert p.request(4)
        view.cancel_button.click()
    assert got.args == [pr.CANCELLED]
    assert view.message_text == pr.CANCELLED and view.profile is None
    assert view.profile_button.isEnabled() and not p.busy


def test_training_that_starts_cancels_a_profile_on_a_thread_of_its_own(qtbot, setup):
    _view, p, _ = setup
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        assert p.request(4)
        p.set_training(True)
    assert got.args == [pr.CANCELLED]


def test_one_at_a_time(qtbot, setup):
    view, p, _ = setup
    with qtbot.waitSignal(p.finished, timeout=WAIT_MS):
        assert p.request(2)
        with qtbot.waitSignal(p.refused, timeout=2000) as busy:
            assert not p.request(2)  # one at a time
        assert busy.args == [pr.BUSY_REFUSAL]
        assert view.message_text == pv.RUNNING_TEXT  # the running profile's line is left as it is
    assert not hasattr(pr, "TRAINING_REFUSAL")   # training is no reason to refuse any more


def test_a_stack_that_cannot_run_is_the_engine_errors_sentence(qtbot, setup):
    view, p, current = setup
    current["answer"] = (Stack(name="t", input=Input(1, 4, 4),
                               layers=(Layer("Conv2d", {"out_channels": 2, "kernel_size": 3}),)), None, "cpu")
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        assert p.request(2)
    assert "not one score per class" in got.args[0]
    assert view.message_text == got.args[0] and "Traceback" not in view.message_text
    current["answer"] = "Fix layer 2 to run the network"
    with qtbot.waitSignal(p.refused, timeout=2000):
        assert not p.request(2)
    assert view.message_text == "Fix layer 2 to run the network"


def test_out_of_memory_suggests_a_batch(qtbot, setup, monkeypatch):
    from cnnviz.core.run import memory

    view, p, _ = setup
    monkeypatch.setattr(memory, "cpu_free_bytes", lambda: 8 * 1024 * 1024)
    view.set_batch_size(4096)
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        view.profile_button.click()
    assert "use a batch of at most" in got.args[0] and view.message_text == got.args[0]
    assert 1 <= view.batch_size < 4096


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, cnnviz.app.runner.profiling, cnnviz.app.views.profile_view; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0


# ---------------------------------------------------------------- on the worker (a stand-in)
SESSION = object()


class Boundary:
    """``call_at_boundary`` as the worker's control keeps it: jobs wait until :meth:`run_pending` (the next
    boundary); a cancelled future is skipped; ``session=None`` resolves at once to None, as with no session."""

    def __init__(self, session=SESSION):
        self.session = session
        self.pending: list[tuple] = []

    def __call__(self, fn):
        future = concurrent.futures.Future()
        if self.session is None:
            future.set_result(None)
        else:
            self.pending.append((fn, future))
        return future

    def run_pending(self):
        jobs, self.pending = self.pending, []
        for fn, future in jobs:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(self.session))
                except BaseException as exc:  # noqa: BLE001
                    future.set_exception(exc)


@pytest.fixture
def on_worker(qtbot):
    boundary = Boundary()
    view, p, current = _profiling(qtbot, call_at_boundary=boundary)
    yield view, p, current, boundary
    boundary.run_pending()
    assert p.shutdown(30)


def test_a_request_waits_for_the_boundary_and_says_training_waits(qtbot, on_worker):
    view, p, _, boundary = on_worker
    assert p.request(2)
    assert p.busy and p.on_worker and len(boundary.pending) == 1
    assert view.message_text == f"{pv.RUNNING_TEXT} {pv.WAITS_NOTE}" and view.cancel_button.isVisible()
    p.set_training(True)   # training simply waits for it: not cancelled
    with qtbot.waitSignal(p.refused, timeout=2000):
        assert not p.request(2)
    with qtbot.waitSignal(p.finished, timeout=WAIT_MS) as got:
        boundary.run_pending()   # on this thread here: the signal is queued all the same
    assert got.args[0].batch_size == 2 and view.profile is got.args[0] and not p.busy


def test_cancel_while_waiting_for_the_boundary_is_at_once_and_the_job_never_runs(qtbot, on_worker):
    view, p, _, boundary = on_worker
    ran = []
    real = pr.measure
    pr.measure = lambda *args: ran.append(args)
    try:
        assert p.request(2)
        with qtbot.waitSignal(p.failed, timeout=2000) as got:
            view.cancel_button.click()
        boundary.run_pending()
    finally:
        pr.measure = real
    assert got.args == [pr.CANCELLED] and not ran and not p.busy
    assert view.message_text == pr.CANCELLED and view.profile_button.isEnabled()


def test_an_edit_of_the_network_or_device_cancels_and_a_batch_edit_does_not(qtbot, on_worker):
    _view, p, current, _boundary = on_worker
    assert p.request(2)
    current["answer"] = (replace(LENET, training=replace(LENET.training, batch_size=8)), LENET.training, "cpu")
    p.stack_changed()
    assert p.busy   # the same network on the same device: it goes on
    current["answer"] = (replace(LENET, layers=LENET.layers[:-1] + LENET.layers[-1:]), LENET.training, "cuda")
    with qtbot.waitSignal(p.failed, timeout=2000) as got:
        p.stack_changed()
    assert got.args == [pr.CANCELLED] and not p.busy
    assert p.request(2)
    current["answer"] = "Fix layer 2 to run the network"
    with qtbot.waitSignal(p.failed, timeout=2000):
        p.stack_changed()


def test_an_unexpected_failure_on_the_worker_is_one_line(qtbot, on_worker, monkeypatch):
    view, p, _, boundary = on_worker

    def broken(_session):
        raise RuntimeError("no stream\nsecond line")

    monkeypatch.setattr(pr, "keeping_random_stream", broken)
    assert p.request(2)
    with qtbot.waitSignal(p.failed, timeout=2000) as got:
        boundary.run_pending()
    assert "RuntimeError: no stream" in got.args[0] and "second line" not in got.args[0]
    assert view.message_text == got.args[0] and not p.busy


def test_with_no_session_it_runs_on_a_thread_of_its_own(qtbot):
    view = ProfileView()
    qtbot.addWidget(view)
    p = Profiling(view, lambda: (LENET, LENET.training, "cpu"), call_at_boundary=Boundary(session=None))
    try:
        with qtbot.waitSignal(p.finished, timeout=WAIT_MS) as got:
            assert p.request(2)
            assert p.busy and not p.on_worker and view.message_text == pv.RUNNING_TEXT
        assert got.args[0].batch_size == 2 and not p.busy
    finally:
        assert p.shutdown(30)


# ---------------------------------------------------------------- on a real worker, training
DIGITS = files.load(assets.path("examples", "digits.cnnviz"))


@pytest.fixture
def training(qtbot):
    from cnnviz.app.runner.messages import Build
    from cnnviz.app.runner.worker import RunWorker

    config = replace(DIGITS.training, batch_size=16, device="cpu")
    worker = RunWorker(threads=1, report_every=1, report_seconds=0.0, eval_every=None)
    built, steps = [], [0]
    worker.ready.connect(built.append)
    worker.progressed.connect(lambda progress: steps.__setitem__(0, progress.step))
    view = ProfileView()
    qtbot.addWidget(view)
    p = Profiling(view, lambda: (DIGITS, config, "cpu"), call_at_boundary=worker.call_at_boundary)
    worker.start()
    try:
        worker.submit(Build(1, DIGITS, config))
        qtbot.waitUntil(lambda: bool(built), timeout=WAIT_MS)
        yield view, p, worker, steps
    finally:
        assert p.shutdown(30)
        assert worker.shutdown(timeout_ms=60_000)


def test_a_profile_asked_for_while_training_runs_on_the_worker_and_training_carries_on(qtbot, training,
                                                                                        monkeypatch):
    view, p, worker, steps = training
    worker_thread = worker.call_at_boundary(lambda _session: threading.get_ident()).result(timeout=60)
    worker.train()
    p.set_training(True)
    qtbot.waitUntil(lambda: steps[0] >= 5, timeout=WAIT_MS)
    seen = {}
    keep, real = pr.keeping_random_stream, pr.measure

    def spy_keep(session):
        seen["session"], seen["before"] = session, session.step_count
        return keep(session)

    def spy_measure(*args):
        result = real(*args)
        seen["thread"], seen["after"] = threading.get_ident(), seen["session"].step_count
        return result

    monkeypatch.setattr(pr, "keeping_random_stream", spy_keep)
    monkeypatch.setattr(pr, "measure", spy_measure)
    with qtbot.waitSignal(p.finished, timeout=WAIT_MS) as got:
        assert p.request(4)
        assert p.on_worker and view.message_text == f"{pv.RUNNING_TEXT} {pv.WAITS_NOTE}"
    result = got.args[0]
    assert result.device == "cpu" and result.batch_size == 4 and len(result.layers) == len(DIGITS.layers)
    assert seen["thread"] == worker_thread != threading.get_ident()
    assert seen["before"] == seen["after"] >= 5    # training waited while the profile was measured
    assert view.profile is result and view.progress.maximum() == len(DIGITS.layers) + 1
    qtbot.waitUntil(lambda: steps[0] >= seen["after"] + 5, timeout=WAIT_MS)   # and then carried on
    worker.pause()


def measuring(monkeypatch) -> threading.Event:
    """Set once the profile asks its should_stop (it is being measured, on the worker)."""
    started = threading.Event()
    real = pr.measure

    def spy(request, should_stop, progress):
        def stop() -> bool:
            started.set()
            return should_stop()
        return real(request, stop, progress)

    monkeypatch.setattr(pr, "measure", spy)
    return started


def test_cancel_while_training_ends_the_profile_and_training_carries_on(qtbot, training, monkeypatch):
    view, p, worker, steps = training
    worker.train()
    p.set_training(True)
    qtbot.waitUntil(lambda: steps[0] >= 2, timeout=WAIT_MS)
    started = measuring(monkeypatch)
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        assert p.request(64)
        qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
        view.cancel_button.click()
    assert got.args == [pr.CANCELLED] and view.message_text == pr.CANCELLED and not p.busy
    assert view.profile is None and view.profile_button.isEnabled()
    at = steps[0]
    qtbot.waitUntil(lambda: steps[0] >= at + 3, timeout=WAIT_MS)
    worker.pause()


def test_a_profile_on_the_worker_leaves_the_sessions_random_stream_as_it_was(qtbot, training):
    import torch

    _view, p, worker, _steps = training   # paused: jobs run at the boundary, inside the session's stream
    before = worker.call_at_boundary(lambda _session: torch.random.get_rng_state().clone())
    with qtbot.waitSignal(p.finished, timeout=WAIT_MS):
        assert p.request(4)   # Dropout and the random gradients draw from the stream
    after = worker.call_at_boundary(lambda _session: torch.random.get_rng_state().clone())
    assert torch.equal(before.result(timeout=60), after.result(timeout=60))


def test_shutdown_cancels_a_running_profile_on_the_worker(qtbot, training, monkeypatch):
    _view, p, _worker, _steps = training
    started = measuring(monkeypatch)
    assert p.request(64)
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)
    assert p.shutdown(30)   # the window closing: before the worker stops
    with qtbot.waitSignal(p.failed, timeout=5000) as got:
        pass   # the answer was queued while the GUI thread waited
    assert got.args == [pr.CANCELLED] and not p.busy


def test_in_the_live_window_the_profile_tab_profiles_while_training(make_window, examples, qtbot):
    """The workbench's wiring: the tab's profile runs on the window's worker, on the session's device and the
    box's batch, while training; training carries on after it."""
    from cnnviz.app.runner.messages import RunState
    from tests.app.run_helpers import digits_stack

    window = make_window(stack=digits_stack(examples, batch_size=16, device="cpu"), live=True)
    runner = window.runner
    qtbot.waitUntil(lambda: runner.built is not None, timeout=WAIT_MS)
    profiling, view = runner.workbench.profiling, runner.workbench.profile_view
    assert view.batch_size == 16   # the training block's
    view.set_batch_size(4)
    runner.train()
    qtbot.waitUntil(lambda: runner.state is RunState.RUNNING and runner.last_progress is not None
                    and runner.last_progress.step >= 3, timeout=WAIT_MS)
    with qtbot.waitSignal(profiling.finished, timeout=WAIT_MS) as got:
        view.profile_button.click()
        assert profiling.on_worker
    result = got.args[0]
    assert result.device == runner.built.device.id == "cpu" and result.batch_size == 4
    at = runner.last_progress.step
    qtbot.waitUntil(lambda: runner.last_progress.step >= at + 3, timeout=WAIT_MS)
    assert runner.state is RunState.RUNNING
    runner.pause()
