"""The worker thread that owns the torch session; the GUI talks to it only through this object.

STYLE habit 4, as Orange3's ``concurrent.py`` and napari's ``_layer_slicer.py``
do it: the GUI thread snapshots a request (a :class:`Build` holding the
immutable core ``Stack``, a :class:`~cnnviz.core.run.training.ProbeRequest`)
and hands it over; the worker computes; results come back as queued signals.
Nothing here blocks the GUI thread: every method the GUI calls takes one short
lock and returns.

**One thread, one loop, one task object.** The thread imports torch (never
the GUI thread), then waits for a :class:`Build`. With a session built it runs
the core's :class:`~cnnviz.core.run.training.Trainer`, paused: the trainer's
own loop is the worker's idle loop. Forward, Train, Pause, Step, Reset, a new
sample, a new learning rate and work for another thread (the ONNX export's
copy of the model) are all requests to :attr:`RunWorker.control`, the one
:class:`~cnnviz.core.run.training.Control` the worker keeps for its lifetime,
honoured at the next step boundary, paused or not, by whichever session runs
then. A new build interrupts the trainer (at a boundary), and the loop comes
round to build again. The trainer takes its probes with a
:class:`~cnnviz.core.run.live.LiveProbe` of the session, handed the request
by the loop.

**Latest wins**, both ways. Builds: only the newest is kept, and a session
finished while a newer build waits is thrown away before it is probed, so a
burst of edits costs one or two builds. Results: a probe is put in a one-slot
box (:class:`~cnnviz.core.run.live.Latest`) and announced only if the box was
empty, so a busy GUI reads the newest probe once instead of a backlog.

Faults a person can cause (:class:`~cnnviz.core.run.faults.EngineError`: shape,
device, data, class count, NaN, out of memory, a layer failing) come back as
messages; anything else goes to ``crashed`` for the error reporter.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
from dataclasses import replace
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from cnnviz.app.runner.messages import Build, Built
from cnnviz.core.run.kept import KeptWeights
from cnnviz.core.run.live import Latest, LiveProbe, Snapshot, import_set_aside, warm_up_optimizer_once
from cnnviz.core.run.training import PROBE_HZ, Control, ProbeRequest, State, Trainer

log = logging.getLogger("cnnviz.runner")

REPORT_EVERY = 1000
REPORT_SECONDS = 0.2
"""Training progress is reported five times a second (each report is a point on the curves and a redraw)."""
EVAL_EVERY = 250


def default_threads() -> int:
    """torch's intra-op threads in the worker: all cores but one, which the GUI thread keeps.

    ``CNNVIZ_TORCH_THREADS`` overrides it. On a two-core machine that is one
    thread: torch's OpenMP threads spin, and two of them starve the event loop.
    """
    env = os.environ.get("CNNVIZ_TORCH_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


WORKER_NICE = 5


def lower_priority(nice: int | None = None) -> None:
    """Make the calling thread yield the CPU to the GUI thread (Linux: per-thread nice; elsewhere nothing).

    ``QThread.Priority`` is ignored by Linux's default scheduler, and on a busy
    machine the GUI thread then competes with training for every slice. Nice 5
    gives the worker a third of the weight of a normal thread when they compete
    (nice 10 a tenth: the GUI barely gains more, and training crawls whenever
    another program is busy). ``CNNVIZ_WORKER_NICE`` overrides it.
    """
    env = os.environ.get("CNNVIZ_WORKER_NICE", "").strip()
    nice = int(env) if env.lstrip("-").isdigit() else (WORKER_NICE if nice is None else nice)
    if nice > 0 and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass


class _Superseded(Exception):
    """A newer build or a shutdown arrived while data was being read."""


class _Trainer(Trainer):
    """The core's trainer, whose held-out evaluations also keep each sample's prediction and confidence
    (``Evaluation.samples``: one max per sample on the device, one copy), for the window's mistakes gallery."""

    def evaluate(self):
        self.last_eval = self.session.evaluate("test", per_sample=True)
        if self.on_eval is not None:
            self.on_eval(self.last_eval)
        return self.last_eval


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written through (handed to the GUI thread without a copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


class _Thread(QThread):
    def __init__(self, target: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._target = target
        self.setObjectName("cnnviz runner")

    def run(self) -> None:
        self._target()


class RunWorker(QObject):
    """Owns the thread, the session and the trainer. Construct, connect, then :meth:`start`.

    Every public method is for the GUI thread and returns at once. Signals are
    emitted on the worker thread and delivered queued to receivers on the GUI thread.
    """

    loading = Signal(str)               # what the worker is doing before a session is ready
    devicesFound = Signal(object)       # list[DeviceInfo], once torch is imported
    ready = Signal(object)              # Built
    refused = Signal(int, str, str)     # generation, kind ("stack", "data", "device", ...), message
    probed = Signal()                   # a Snapshot is waiting: take_snapshot()
    progressed = Signal(object)         # training.Progress
    evaluated = Signal(object)          # engine.Evaluation
    stateChanged = Signal(object, int)  # training.State (RUNNING, PAUSED or RESET) and step
    faulted = Signal(object)            # an EngineError that stopped training (NaN, out of memory)
    scheduleEnded = Signal(int)         # the step where the cosine schedule reached 0: training paused there
    crashed = Signal(object)            # an unexpected exception, for the error reporter

    def __init__(self, parent: QObject | None = None, *, threads: int | None = None,
                 report_every: int = REPORT_EVERY, report_seconds: float = REPORT_SECONDS,
                 eval_every: int | None = EVAL_EVERY, probe_hz: float = PROBE_HZ) -> None:
        super().__init__(parent)
        self.threads = threads or default_threads()
        self.report_every = report_every
        self.report_seconds = report_seconds
        self.eval_every = eval_every
        self.probe_hz = probe_hz
        self._cond = threading.Condition()
        self._build: Build | None = None
        self._shutdown = False
        self._has_session = False
        self._selected: int | str | None = None
        self.kept = KeptWeights()
        """The trained weights of every layer by identity and shape, kept across rebuilds, invalid stacks and undo."""
        self.control = Control(paused=True)
        """Every request for the loop (any thread), kept across sessions: the task object."""
        self._box = Latest()
        self.builds = 0
        """Sessions built (read by tests: a burst of edits must cost one or two)."""
        self._thread = _Thread(self._main, self)

    # ================================================================ GUI-thread API
    def start(self) -> None:
        if not self._thread.isRunning() and not self._shutdown:
            self._thread.start(QThread.Priority.LowPriority)

    @property
    def started(self) -> bool:
        return self._thread.isRunning() or self._thread.isFinished()

    @property
    def running(self) -> bool:
        """Whether the thread is running now (started and not yet ended)."""
        return self._thread.isRunning()

    def submit(self, build: Build) -> None:
        """Replace the session (latest wins); training stops at its next step boundary and stays paused."""
        with self._cond:
            self._build = build
            self.control.interrupt()
            self._cond.notify_all()

    def train(self) -> None:
        self.control.resume()

    def pause(self) -> None:
        self.control.pause()

    def step(self, n: int = 1) -> None:
        self.control.step(n)

    def reset(self) -> None:
        """Weights from the seed, a fresh optimizer, step 0; paused afterwards. Nothing trained is kept."""
        self.control.pause()
        self.kept.forget()
        self.control.reset()

    def forget_weights(self) -> None:
        """Another stack is opened: the trained weights kept for this one's layers are dropped."""
        self.kept.forget()

    def configure(self, *, lr: float | None = None, batch_size: int | None = None,
                  steps: int | None = None) -> None:
        """A new learning rate, batch size or number of steps (the schedule's horizon) for the running session,
        from the next step on."""
        self.control.configure(lr=lr, batch_size=batch_size, steps=steps)

    def request_probe(self, target: ProbeRequest | None = None) -> None:
        """Probe ``target`` (or the current one again) at the next boundary, paused or not."""
        self.control.request_probe(target)

    def select(self, layer: int | str | None) -> None:
        """The selected layer (an index, an inner layer's path string; None: none): its weights travel with every
        probe, however large."""
        self._selected = layer

    def call_at_boundary(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future:
        """Run ``fn(session)`` on the worker thread at the next step boundary; the future has its result.

        Resolves to None at once when there is no session. For another thread
        that needs the live model (the ONNX export): never wait on it on the GUI thread.
        """
        with self._cond:
            if not self._has_session or self._shutdown:
                future: concurrent.futures.Future = concurrent.futures.Future()
                future.set_result(None)
                return future
            return self.control.call_at_boundary(fn)

    def take_snapshot(self) -> Snapshot | None:
        return self._box.take()

    def shutdown(self, wait: bool = True, timeout_ms: int = 60_000) -> bool:
        """Stop at the next boundary, drop the session, end the thread; True once it has ended."""
        with self._cond:
            self._shutdown = True
            self._build = None
            self.control.cancel()  # for good: the jobs waiting are cancelled too
            self._cond.notify_all()
        if not wait or not self._thread.isRunning():
            return not self._thread.isRunning()
        return self._thread.wait(timeout_ms)

    # ================================================================ worker thread
    def _main(self) -> None:
        live: LiveProbe | None = None  # the session being served, with its probe for the views
        lower_priority()
        try:
            self.loading.emit("Loading torch…")
            torch = import_set_aside("torch")

            torch.set_num_threads(self.threads)
            from cnnviz.core.run import devices

            self.devicesFound.emit(devices.list_devices())
            while True:
                with self._cond:
                    while self._build is None and not self._shutdown and live is None:
                        self._cond.wait()
                    if self._shutdown:
                        break
                    build, self._build = self._build, None
                try:
                    if build is not None:
                        live = self._rebuild(live, build)
                    else:
                        self._serve(live)
                except Exception as exc:  # noqa: BLE001 - a bug: to the error reporter, and keep serving
                    log.exception("the runner failed")
                    self.control.pause()  # no automatic retry of what just failed
                    self.crashed.emit(exc)
                    if build is not None:
                        self._drop(live.session if live is not None else None)
                        live = None
                        self.refused.emit(build.generation, "bug", f"The network could not be run: {exc}")
                    else:
                        self.stateChanged.emit(State.PAUSED, live.session.step_count)
        except BaseException as exc:  # noqa: BLE001 - torch failed to import, or worse
            log.exception("the runner's thread failed")
            self.crashed.emit(exc)
        finally:
            with self._cond:
                self._has_session = False
                self.control.cancel()  # the jobs still waiting are cancelled
            if live is not None:
                try:
                    live.session.close()
                except Exception:  # noqa: BLE001 - closing must not hide why the thread ended
                    log.exception("closing the session failed")

    def _superseded(self) -> bool:
        with self._cond:
            return self._build is not None or self._shutdown

    def _rebuild(self, live: LiveProbe | None, build: Build) -> LiveProbe | None:
        from cnnviz.core.run import engine

        old = live.session if live is not None else None
        if build.keep_weights:
            self.kept.remember(old)  # before anything drops it: an invalid stack, a refusal, a new build
        if build.stack is None:
            self._drop(old)
            self.refused.emit(build.generation, "stack", build.message)
            return None
        config = build.config
        try:
            engine.check_memory(build.stack, config)  # a run that cannot fit is refused before its data is read
            data = self._load_data(build)
            session = engine.Session(build.stack, config, data=data)
        except _Superseded:
            return live
        except engine.EngineError as exc:
            self._drop(old)
            self.refused.emit(build.generation, exc.kind, str(exc))
            return None
        except ValueError as exc:  # data.DataError (a folder that cannot be read), config values
            self._drop(old)
            self.refused.emit(build.generation, "data", str(exc))
            return None
        self.builds += 1
        if self._superseded():
            session.close()
            return live
        kept, loaded, refused, weight_notes = "", "", "", ()
        if build.weights is not None:
            self.kept.forget()
            from cnnviz.core.run.faults import EngineError

            try:
                weight_notes = tuple(session.load_weights(build.weights))
                loaded = str(build.weights)
            except EngineError as exc:  # a WeightsError: the file does not fit; the session keeps the seed's
                refused = str(exc)
        elif build.keep_weights:
            kept = self.kept.restore(session).sentence(build.stack)
        self._drop(old)
        new = LiveProbe(session, build.generation, selected=lambda: self._selected)
        with self._cond:
            self._has_session = True
            last = session.test_split.n - 1
            target = self.control.probe_request
            if target.index > last:  # a smaller data set: its last sample
                self.control.request_probe(replace(target, index=max(0, last)))
            else:
                self.control.request_probe()
        test = session.data.test
        self.ready.emit(Built(
            generation=build.generation, stack=build.stack, config=config, device=session.device_info,
            data_name=session.data_name, classes=session.classes, test_labels=np.asarray(test.labels).copy(),
            notes=tuple(getattr(session.data, "notes", ())) + session.notes + weight_notes,
            description=session.describe(), kept=kept, step=session.step_count,
            weights_loaded=loaded, weights_error=refused, remembered_step=self.kept.step,
            test_images=read_only(np.asarray(test.images))))
        return new

    def _drop(self, session) -> None:
        with self._cond:
            self._has_session = False
        if session is not None:
            session.close()

    def _load_data(self, build: Build):
        from cnnviz.core import data

        name = build.config.data

        def progress(done: int, total: int) -> None:
            if self._superseded():
                raise _Superseded
            self.loading.emit(f"Reading images: {done:,} of {total:,}…")

        if name.startswith(data.FOLDER_PREFIX):
            self.loading.emit(f"Reading the images in {name[len(data.FOLDER_PREFIX):]}…")
        try:
            return data.load(name, build.stack.input.shape, build.config.seed, progress=progress)
        except data.DataError as exc:
            from cnnviz.core.run.faults import DataUnavailable

            raise DataUnavailable(str(exc)) from None

    def _serve(self, live: LiveProbe) -> None:
        """Run the trainer on ``live``'s session until a build, a shutdown or a fault; paused unless Train was
        pressed. The trainer reads every request from :attr:`control`, and probes with ``live``."""
        from cnnviz.core.run.faults import EngineError

        with self._cond:
            if self._build is not None or self._shutdown:
                return
        control = self.control

        def on_state(state: State, step: int) -> None:
            if state is State.RUNNING and control.paused:
                return  # the loop starting paused, or one single step: not "training" for the GUI
            if state not in (State.CANCELLED, State.DONE):
                self.stateChanged.emit(state, step)

        def deliver(snapshot: Snapshot) -> None:
            if self._box.put(snapshot):
                self.probed.emit()
            warm_up_optimizer_once()

        trainer = _Trainer(
            live.session, control, probe=live, on_progress=self.progressed.emit, on_eval=self.evaluated.emit,
            on_probe=deliver, on_state=on_state, report_every=self.report_every,
            report_seconds=self.report_seconds, eval_every=self.eval_every, probe_hz=self.probe_hz,
            pause_at_schedule_end=True, on_schedule_end=self.scheduleEnded.emit)
        try:
            trainer.run()
        except EngineError as exc:
            control.pause()
            self.faulted.emit(exc)
            self.stateChanged.emit(State.PAUSED, live.session.step_count)
