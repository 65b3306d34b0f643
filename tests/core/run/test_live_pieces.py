"""What the window's worker runs around the training loop, tested headless (no Qt): the probe for the views,
the one-slot mailbox, weights carried from one build to the next, the optimizer warm-up, and one
:class:`Control` serving run after run (interrupted by a new build, with work to do at a boundary)."""
import gc
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import engine, live, training
from cnnviz.core.run.training import Control, ProbeRequest, State, Trainer
from tests.core.run.threads import start, wait_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[3]

STACK = Stack("tiny", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"),
    Layer("Linear", {"out_features": 10})))
"""Conv2d weights 4×1×3×3 (36 values), Linear 10×64 (640 values)."""


def session(stack=STACK, **kw):
    base = dict(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0)
    base.update(kw)
    return engine.Session(stack, TrainingConfig(**base))




def weights(s, i):
    return s.model[i].weight.detach().cpu().numpy().copy()


# ------------------------------------------------------------------ imports
def test_the_live_pieces_and_the_loop_import_without_torch_or_qt():
    """The window's GUI thread imports them (the probe rate, the requests, the snapshot type) and never torch."""
    code = ("import sys; import cnnviz.core.run.live, cnnviz.core.run.training; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'pyqtgraph')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ Latest
def test_latest_keeps_only_the_newest_and_says_when_the_reader_must_be_told():
    box = live.Latest()
    assert box.take() is None
    assert box.put(1) is True   # empty: tell the reader
    assert box.put(2) is False  # full: the reader has been told already
    assert box.put(3) is False
    assert box.take() == 3 and box.take() is None
    assert box.put(None) is True and box.put(4) is False and box.take() == 4


def test_latest_between_two_threads_loses_no_announcement_and_ends_with_the_newest():
    box = live.Latest()
    announced, taken = [], []
    done = threading.Event()

    def writer():
        for i in range(2000):
            if box.put(i):
                announced.append(i)
        done.set()

    def reader():
        while not done.is_set() or taken[-1:] != [1999]:
            value = box.take()
            if value is not None:
                taken.append(value)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert taken[-1] == 1999 and taken == sorted(taken) and len(set(taken)) == len(taken)
    assert len(announced) == len(taken)  # one announcement per value the reader found: none lost, none extra


# ------------------------------------------------------------------ the warm-up
def test_the_optimizer_warm_up_starts_once(monkeypatch):
    monkeypatch.setattr(live, "_optimizer_warmed", threading.Event())
    first = live.warm_up_optimizer_once()
    assert isinstance(first, threading.Thread) and first.daemon
    first.join(60)
    assert not first.is_alive()
    assert live.warm_up_optimizer_once() is None
    assert live.warm_up_optimizer_once() is None


def test_a_failing_warm_up_is_only_logged(monkeypatch, caplog):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no optimizer today")

    monkeypatch.setattr(torch.optim, "Adam", broken)
    with caplog.at_level("DEBUG", logger="cnnviz.runner"):
        live.warm_up_optimizer()  # does not raise
    assert "optimizer warm-up failed" in caplog.text


# ------------------------------------------------------------------ the collector set aside
@pytest.fixture
def thawed():
    """Undo this test's freezes when nothing was frozen before it (the suite's own heap stays collectable)."""
    before = gc.get_freeze_count()
    yield
    if before == 0:
        gc.unfreeze()
    gc.enable()


def test_the_collector_makes_no_pass_inside_and_sets_aside_what_lives_at_the_end(thawed):
    gc.collect()
    frozen = gc.get_freeze_count()
    with live.collector_set_aside():
        assert not gc.isenabled()
        with live.collector_set_aside():   # nested: the inner end does not start the collector again
            pass
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]   # objects the collector tracks
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(made)
    assert not any(o is made for o in gc.get_objects())   # out of the generations the collector walks


def test_the_collector_comes_back_when_the_import_fails(thawed):
    with pytest.raises(ModuleNotFoundError):
        live.import_set_aside("cnnviz_no_such_module")
    assert gc.isenabled()


def test_a_library_already_imported_is_returned_without_setting_anything_aside(thawed, tmp_path, monkeypatch):
    (tmp_path / "cnnviz_big_library.py").write_text("TABLE = [[i] for i in range(500)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cnnviz_big_library", raising=False)
    before = gc.get_freeze_count()
    first = live.import_set_aside("cnnviz_big_library")
    assert gc.get_freeze_count() >= before + len(first.TABLE)   # the first import: its objects set aside
    if before == 0:
        gc.unfreeze()
    before = gc.get_freeze_count()
    assert live.import_set_aside("cnnviz_big_library") is first
    assert gc.get_freeze_count() == before   # the second: nothing frozen (a closed window's garbage would be)


def test_a_session_made_before_a_freeze_is_still_freed_when_dropped(thawed):
    """The freeze's promise: a session holds no reference cycles, so dropping it frees it, frozen or not."""
    s = session()
    control, got = Control(), []
    control.request_probe(ProbeRequest(health=True))
    trainer = Trainer(s, control, probe=live.LiveProbe(s), on_probe=got.append, probe_hz=1000, probe_budget=1.0,
                      health_budget=1.0)
    trainer.run(12)
    assert any(snap.health is not None for snap in got)   # the health monitor's hooks were on the model
    model, s_ref, t_ref = weakref.ref(s.model), weakref.ref(s), weakref.ref(trainer)
    del trainer, got
    with live.collector_set_aside():
        pass   # s and its model are frozen now
    gc.disable()   # freed by their counts alone (the fixture starts the collector again)
    s.close()
    del s
    assert model() is None and s_ref() is None and t_ref() is None


# ------------------------------------------------------------------ LiveProbe
def test_live_probe_answers_the_request_with_its_generation_and_the_small_weights():
    s = session()
    probe = live.LiveProbe(s, generation=3)
    snap = probe(ProbeRequest(index=2, mode="train"))
    assert isinstance(snap, live.Snapshot)
    assert snap.generation == 3 and snap.target == ProbeRequest(index=2, mode="train") and not snap.error
    assert snap.probe.index == 2 and snap.probe.mode == "train" and snap.probe.identities is not None
    assert set(snap.weights) == {0, 4}
    np.testing.assert_array_equal(snap.weights[0], weights(s, 0))
    assert snap.weights[0].dtype == np.float32
    snap.weights[0][:] = 0  # a copy: the views may keep it while training goes on
    assert np.abs(weights(s, 0)).sum() > 0


def test_large_weights_travel_only_for_the_selected_layer(monkeypatch):
    monkeypatch.setattr(live, "SMALL_WEIGHTS", 100)  # the Conv2d's 36 values are small, the Linear's 640 not
    selected = [None]
    probe = live.LiveProbe(session(), selected=lambda: selected[0])
    assert set(probe(ProbeRequest()).weights) == {0}
    selected[0] = 4
    assert set(probe(ProbeRequest()).weights) == {0, 4}
    selected[0] = 1  # a ReLU has no weights
    assert set(probe(ProbeRequest()).weights) == {0}


def test_a_sample_that_is_not_there_is_the_snapshots_error():
    s = session()
    snap = live.LiveProbe(s, generation=1)(ProbeRequest(index=10**6))
    assert snap.error and snap.probe is None and snap.weights == {} and snap.generation == 1


def test_an_image_of_ones_own_is_read_once_and_probed_for_its_predicted_class(monkeypatch, tmp_path):
    from PIL import Image

    from cnnviz.core import data

    path = tmp_path / "seven.png"
    Image.fromarray((np.eye(32, dtype=np.uint8) * 255)).save(path)
    reads = []
    real = data.load_image

    def load_image(*args, **kwargs):
        reads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "load_image", load_image)
    probe = live.LiveProbe(session())
    request = ProbeRequest(image=str(path))
    first, second = probe(request), probe(replace(request, mode="train"))
    assert not first.error and first.probe.image.shape == (1, 8, 8)
    assert first.probe.label == first.probe.prediction and first.probe.split == "image"
    assert second.probe.mode == "train" and len(reads) == 1  # read once for every probe of it


def test_an_image_that_cannot_be_read_is_the_snapshots_error(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    snap = live.LiveProbe(session())(ProbeRequest(image=str(bad)))
    assert "notes.png" in snap.error and snap.probe is None


def test_the_loops_own_probe_follows_an_image_too(tmp_path):
    from PIL import Image

    path = tmp_path / "dot.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(path)
    p = training.take_probe(session(), ProbeRequest(image=str(path)))
    assert p.split == "image" and p.image.shape == (1, 8, 8)


# ------------------------------------------------------------------ one Control, many runs
def test_the_trainer_probes_with_the_given_probe_and_the_controls_request():
    s = session()
    control = Control(paused=True)
    asked, shown = [], []
    trainer = Trainer(s, control, probe=lambda r: asked.append(r) or ("probe of", r.index),
                      on_probe=shown.append, report_every=1000)
    thread, box = start(trainer)
    control.request_probe(ProbeRequest(index=5, image=None))
    assert wait_for(lambda: shown == [("probe of", 5)])
    control.request_probe(index=6)  # changes of the current request
    assert wait_for(lambda: shown[-1] == ("probe of", 6))
    assert asked[-1] == ProbeRequest(index=6) and control.probe_request == ProbeRequest(index=6)
    control.cancel()
    thread.join(10)
    assert box["result"].status is State.CANCELLED and box["result"].status == "cancelled"


def test_an_interrupt_ends_the_run_paused_and_the_same_control_serves_the_next():
    s = session()
    control = Control()
    states = []
    first = Trainer(s, control, on_state=lambda state, step: states.append(state), report_every=1000)
    thread, box = start(first)
    assert wait_for(lambda: s.step_count >= 3)
    control.interrupt()
    thread.join(10)
    assert box["result"].status is State.CANCELLED and states[-1] is State.CANCELLED
    assert control.paused and not control.cancelled

    other = session()
    probes = []
    second = Trainer(other, control, on_probe=probes.append, report_every=1000)
    thread, box = start(second)
    control.request_probe(index=4)
    assert wait_for(lambda: probes and probes[-1].index == 4)
    control.step(3)
    assert wait_for(lambda: other.step_count == 3)
    time.sleep(0.1)
    assert other.step_count == 3 and thread.is_alive()  # paused after the steps, serving
    control.cancel()
    thread.join(10)
    assert box["result"].status is State.CANCELLED


def test_an_interrupt_drops_what_was_asked_for_the_replaced_session_but_not_the_sample():
    control = Control()
    control.configure(lr=0.5)
    control.reset()
    control.step(7)
    control.request_probe(index=4)
    done = control.call_at_boundary(lambda session: session.step_count)
    control.interrupt()  # a new build: made between runs, it ends the next run at once
    s = session()
    probes = []
    result = Trainer(s, control, on_probe=probes.append).run()
    assert result.status is State.CANCELLED and result.steps_run == 0 and not probes
    assert control.paused and not done.done()
    states = []
    thread, box = start(Trainer(s, control, on_probe=probes.append,  # the next run, paused:
                                on_state=lambda state, step: states.append(state)))
    assert done.result(10) == 0 and wait_for(lambda: [p.index for p in probes] == [4])  # the work and the probe
    time.sleep(0.1)
    assert s.lr == 0.01 and s.step_count == 0 and State.RESET not in states  # but no settings, reset, steps
    control.cancel()
    thread.join(10)
    assert box["result"].steps_run == 0


def test_pause_drops_the_single_steps_not_yet_run():
    s = session()
    control = Control(paused=True)
    control.step(1000)
    control.pause()
    control.step(2)
    assert Trainer(s, control).run(2).status is State.DONE
    assert s.step_count == 2
    control.step(5)
    control.resume()  # resume drops them as well, and runs
    assert Trainer(s, control).run(3).steps_run == 3


def test_work_runs_on_the_loops_thread_at_a_boundary_paused_or_not():
    s = session()
    control = Control(paused=True)
    states = []
    thread, box = start(Trainer(s, control, on_state=lambda state, step: states.append(state)))
    assert wait_for(lambda: State.PAUSED in states)
    done = control.call_at_boundary(lambda session: (threading.current_thread() is thread, session.step_count))
    assert done.result(10) == (True, 0)

    def broken(session):
        raise ValueError("the job failed")

    failed = control.call_at_boundary(broken)
    with pytest.raises(ValueError, match="the job failed"):
        failed.result(10)
    control.resume()
    assert wait_for(lambda: s.step_count >= 3)
    while_running = control.call_at_boundary(lambda session: session.step_count)
    assert while_running.result(10) >= 3
    assert thread.is_alive()  # a job, even a failing one, does not end the run
    control.cancel()
    thread.join(10)
    assert box["result"].status is State.CANCELLED


def test_cancel_cancels_the_work_not_yet_run_and_refuses_more():
    control = Control(paused=True)
    waiting = control.call_at_boundary(lambda session: 1)
    control.cancel()
    assert waiting.cancelled()
    assert control.call_at_boundary(lambda session: 2).cancelled()


def test_states_are_their_strings():
    assert State.RUNNING == "running" and str(State.PAUSED) == "paused" and f"{State.RESET}" == "reset"
    assert [s.value for s in State] == ["running", "paused", "reset", "done", "cancelled"]


def test_a_job_at_a_boundary_is_not_counted_as_training_time():
    s = session()
    control = Control()
    t0 = time.perf_counter()
    thread, box = start(Trainer(s, control, report_every=1000))
    assert wait_for(lambda: s.step_count >= 3)
    assert control.call_at_boundary(lambda session: time.sleep(0.6)).result(10) is None   # a profile, say
    assert wait_for(lambda: s.step_count >= 8)
    control.cancel()
    thread.join(10)
    wall = time.perf_counter() - t0
    result = box["result"]
    assert result.status is State.CANCELLED
    # the 0.6 s the job took is not running time: the run's steps/s is the training's own
    assert 0 < result.seconds <= wall - 0.55, (result.seconds, wall)


# ------------------------------------------------------------------ the probes' rate
class _Clock:
    """A clock the test moves: the loop's wall clock and its CPU clock at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __getattr__(self, name):   # the rest of the time module as it is
        return getattr(time, name)

    def perf_counter(self) -> float:
        return self.now

    thread_time = perf_counter


@pytest.mark.parametrize("step_ms", [30, 7])
def test_probes_come_at_their_rate_however_the_step_boundaries_fall(monkeypatch, step_ms):
    """A probe is due a period after the last one was due, not after it came: with steps of 30 ms and a
    period of 100 ms each probe waits up to a step for its boundary, and counting the period from the probe
    gave one every 120 ms (8.3 a second for 10); counted from when it was due, 10 a second."""
    clock = _Clock()
    monkeypatch.setattr(training, "time", clock)
    s = session()
    real_step = s.step

    def step():
        real_step()
        clock.now += step_ms / 1000

    monkeypatch.setattr(s, "step", step)
    probes = []
    trainer = Trainer(s, Control(), probe=lambda r: clock.now, on_probe=probes.append, report_every=1000,
                      probe_hz=10.0, probe_budget=1.0)
    steps = int(3.0 / (step_ms / 1000))   # three seconds of the clock
    assert trainer.run(steps).status is State.DONE
    gaps = np.diff(probes)
    assert len(probes) in (30, 31), (len(probes), gaps)   # 10 a second (the first at the first step)
    assert gaps.max() < 0.1 + step_ms / 1000 + 1e-9 and gaps.min() > 0.1 - step_ms / 1000 - 1e-9
    s.close()
