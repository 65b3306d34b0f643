"""``Profiling``: a real profile measured off the GUI thread and shown by the view; cancel; one at a time;
refused while training; an EngineError as the view's sentence; no torch on import."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from cnnviz.app.runner import profiling as pr
from cnnviz.app.runner.profiling import Profiling
from cnnviz.app.views.profile_view import ProfileView
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec as Input
from cnnviz.core.model.stack import Layer, Stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LENET = files.load(assets.path("examples", "lenet5.cnnviz"))
WAIT_MS = 60_000


@pytest.fixture
def setup(qtbot):
    view = ProfileView()
    qtbot.addWidget(view)
    view.show()
    current = {"answer": (LENET, LENET.training, "cpu")}
    p = Profiling(view, lambda: current["answer"])
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


def test_training_that_starts_cancels_a_running_profile(qtbot, setup):
    _view, p, _ = setup
    with qtbot.waitSignal(p.failed, timeout=WAIT_MS) as got:
        assert p.request(4)
        p.set_training(True)
    assert got.args == [pr.CANCELLED]


def test_refused_while_training_and_while_busy(qtbot, setup):
    view, p, _ = setup
    p.set_training(True)
    with qtbot.waitSignal(p.refused, timeout=2000) as got:
        assert not p.request(4)
    assert got.args == [pr.TRAINING_REFUSAL] and view.message_text == pr.TRAINING_REFUSAL
    assert "share the device" in pr.TRAINING_REFUSAL
    assert not p.busy and view.profile_button.isEnabled()

    p.set_training(False)
    with qtbot.waitSignal(p.finished, timeout=WAIT_MS):
        assert p.request(2)
        with qtbot.waitSignal(p.refused, timeout=2000) as busy:
            assert not p.request(2)  # one at a time
        assert busy.args == [pr.BUSY_REFUSAL]
        assert view.message_text == "Profiling…"  # the running profile's line is left as it is


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
