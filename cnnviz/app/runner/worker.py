"""The worker thread that owns the torch session; the GUI talks to it only through this object.

STYLE habit 4, as Orange3's ``concurrent.py`` and napari's ``_layer_slicer.py``
do it: the GUI thread snapshots a request (a :class:`Build` holding the
immutable core ``Stack``, a :class:`Target` sample) and hands it over; the
worker computes; results come back as queued signals. Nothing here blocks the
GUI thread: every method the GUI calls takes one short lock and returns.

**One thread, one loop.** The thread imports torch (never the GUI thread),
then waits for a :class:`Build`. With a session built it runs the core's
:class:`~cnnviz.core.training.Trainer`, paused: the trainer's own loop is the
worker's idle loop, so Forward, Train, Pause, Step, Reset, a new sample and a
new learning rate are all :class:`~cnnviz.core.training.Control` requests,
honoured at the next step boundary, paused or not. A new build cancels the
trainer (at a boundary), and the loop comes round to build again.

**Latest wins**, both ways. Builds: only the newest is kept, and a session
finished while a newer build waits is thrown away before it is probed, so a
burst of edits costs one or two builds. Results: a probe is put in a one-slot
box (:class:`Latest`) and announced only if the box was empty, so a busy GUI
reads the newest probe once instead of a backlog.

Faults a person can cause (:class:`~cnnviz.core.faults.EngineError`: shape,
device, data, class count, NaN, out of memory, a layer failing) come back as
messages; anything else goes to ``crashed`` for the error reporter.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from cnnviz.app.runner.live import LiveSession, _optimizer_imports_warmed, _warm_optimizer_imports, carry_weights
from cnnviz.app.runner.messages import Build, Latest, SessionInfo, Snapshot, Target

log = logging.getLogger("cnnviz.runner")

REPORT_EVERY = 1000
REPORT_SECONDS = 0.2
"""Training progress is reported five times a second (each report is a point on the curves and a redraw)."""
EVAL_EVERY = 250
PROBE_HZ = 30.0


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
    ready = Signal(object)              # SessionInfo
    refused = Signal(int, str, str)     # generation, kind ("stack", "data", "device", ...), message
    probed = Signal()                   # a Snapshot is waiting: take_snapshot()
    progressed = Signal(object)         # training.Progress
    evaluated = Signal(object)          # engine.Evaluation
    stateChanged = Signal(str, int)     # "running", "paused", "reset", state and step
    faulted = Signal(object)            # an EngineError that stopped training (NaN, out of memory)
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
        self._control = None
        self._has_session = False
        self._want_running = False
        self._pending_steps = 0
        self._pending_reset = False
        self._probe_wanted = False
        self._config: dict[str, Any] = {}
        self._target = Target()
        self._selected = -1
        self._jobs: list[tuple[Callable[[Any], Any], concurrent.futures.Future]] = []
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

    def submit(self, build: Build) -> None:
        """Replace the session (latest wins); training stops at its next step boundary and stays paused."""
        with self._cond:
            self._build = build
            self._want_running = False
            self._pending_steps = 0
            self._pending_reset = False
            self._config.clear()
            if self._control is not None:
                self._control.cancel()
            self._cond.notify_all()

    def train(self) -> None:
        with self._cond:
            self._want_running = True
            if self._control is not None:
                self._control.resume()

    def pause(self) -> None:
        with self._cond:
            self._want_running = False
            if self._control is not None:
                self._control.pause()

    def step(self, n: int = 1) -> None:
        with self._cond:
            self._want_running = False
            if self._control is not None:
                self._control.step(n)
            else:
                self._pending_steps += n

    def reset(self) -> None:
        """Weights from the seed, a fresh optimizer, step 0; paused afterwards."""
        with self._cond:
            self._want_running = False
            if self._control is not None:
                self._control.pause()
                self._control.reset()
            else:
                self._pending_reset = True

    def configure(self, *, lr: float | None = None, batch_size: int | None = None) -> None:
        """A new learning rate or batch size for the running session, from the next step on."""
        with self._cond:
            changes = {k: v for k, v in (("lr", lr), ("batch_size", batch_size)) if v is not None}
            if self._control is not None:
                self._control.configure(**changes)
            else:
                self._config.update(changes)

    def request_probe(self, target: Target | None = None) -> None:
        """Probe ``target`` (or the current one again) at the next boundary, paused or not."""
        with self._cond:
            if target is not None:
                self._target = target
            self._poke_probe()

    def select(self, layer: int) -> None:
        """The selected layer: its weights travel with every probe, however large."""
        with self._cond:
            self._selected = layer

    def call_at_boundary(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future:
        """Run ``fn(session)`` on the worker thread at the next step boundary; the future has its result.

        Resolves to None at once when there is no session. For another thread
        that needs the live model (the ONNX export): never wait on it on the GUI thread.
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if not self._has_session or self._shutdown:
                future.set_result(None)
                return future
            self._jobs.append((fn, future))
            self._poke_probe()
        return future

    def take_snapshot(self) -> Snapshot | None:
        return self._box.take()

    def shutdown(self, wait: bool = True, timeout_ms: int = 60_000) -> bool:
        """Stop at the next boundary, drop the session, end the thread; True once it has ended."""
        with self._cond:
            self._shutdown = True
            self._build = None
            if self._control is not None:
                self._control.cancel()
            jobs, self._jobs = self._jobs, []
            self._cond.notify_all()
        for _fn, future in jobs:
            future.cancel()
        if not wait or not self._thread.isRunning():
            return not self._thread.isRunning()
        return self._thread.wait(timeout_ms)

    def _poke_probe(self) -> None:
        if self._control is not None:
            self._control.request_probe()
        else:
            self._probe_wanted = True

    # ================================================================ worker thread
    def _main(self) -> None:
        live = None
        lower_priority()
        try:
            self.loading.emit("Loading torch…")
            import torch

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
                    with self._cond:
                        self._want_running = False
                        self._probe_wanted = False  # no automatic retry of what just failed
                    self.crashed.emit(exc)
                    if build is not None:
                        self._drop(live.session if live is not None else None)
                        live = None
                        self.refused.emit(build.generation, "bug", f"The network could not be run: {exc}")
                    else:
                        self.stateChanged.emit("paused", live.step_count)
        except BaseException as exc:  # noqa: BLE001 - torch failed to import, or worse
            log.exception("the runner's thread failed")
            self.crashed.emit(exc)
        finally:
            with self._cond:
                self._has_session = False
                self._control = None
                jobs, self._jobs = self._jobs, []
            for _fn, future in jobs:
                future.cancel()
            if live is not None:
                try:
                    live.session.close()
                except Exception:  # noqa: BLE001 - closing must not hide why the thread ended
                    log.exception("closing the session failed")

    def _superseded(self) -> bool:
        with self._cond:
            return self._build is not None or self._shutdown

    def _rebuild(self, live, build: Build):
        from cnnviz.core.run import engine

        old = live.session if live is not None else None
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
        kept = ""
        if old is not None and build.keep_weights and old.step_count > 0 \
                and old.config.seed == config.seed and old.data_name == session.data_name:
            kept = carry_weights(old, session)
        self._drop(old)
        new = LiveSession(session, self, build.generation)
        with self._cond:
            self._has_session = True
            self._probe_wanted = True
            last = session.test_split.n - 1
            if self._target.index > last:
                self._target = Target(max(0, last), self._target.split, self._target.mode, self._target.image)
        test = session.data.test
        self.ready.emit(SessionInfo(
            generation=build.generation, stack=build.stack, config=config, device=session.device_info,
            data_name=session.data_name, classes=session.classes, test_labels=np.asarray(test.labels).copy(),
            train_size=len(session.data.train.labels), notes=tuple(getattr(session.data, "notes", ())) + session.notes,
            description=session.describe(), kept=kept, step=session.step_count))
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

    def _serve(self, live) -> None:
        """Run the trainer on ``live`` until a build, a shutdown or a fault; paused unless Train was pressed."""
        from cnnviz.core.run import training
        from cnnviz.core.run.faults import EngineError

        control = training.Control(paused=True)
        with self._cond:
            if self._build is not None or self._shutdown:
                return
            if self._want_running:
                control.resume()
            if self._pending_reset:
                control.reset()
                self._pending_reset = False
            if self._pending_steps:
                control.step(self._pending_steps)
                self._pending_steps = 0
            if self._config:
                control.configure(**self._config)
                self._config.clear()
            if self._probe_wanted or self._jobs:
                control.request_probe()
                self._probe_wanted = False
            self._control = control

        def on_state(state: str, step: int) -> None:
            if state == "running" and control.paused:
                return  # the loop starting paused, or one single step: not "training" for the GUI
            if state not in ("cancelled", "done"):
                self.stateChanged.emit(state, step)

        def deliver(snapshot: Snapshot) -> None:
            self._deliver(snapshot)
            if not _optimizer_imports_warmed.is_set():
                _optimizer_imports_warmed.set()
                threading.Thread(target=_warm_optimizer_imports, name="cnnviz warm-up", daemon=True).start()

        trainer = training.Trainer(
            live, control, on_progress=self.progressed.emit, on_eval=self.evaluated.emit,
            on_probe=deliver, on_state=on_state, report_every=self.report_every,
            report_seconds=self.report_seconds, eval_every=self.eval_every, probe_hz=self.probe_hz)
        try:
            trainer.run()
        except EngineError as exc:
            with self._cond:
                self._want_running = False
            self.faulted.emit(exc)
            self.stateChanged.emit("paused", live.step_count)
        finally:
            with self._cond:
                self._control = None

    def _deliver(self, snapshot: Snapshot) -> None:
        if self._box.put(snapshot):
            self.probed.emit()

    # ------------------------------------------------------------ read by LiveSession on the worker thread
    def _probe_state(self) -> tuple[Target, int, list]:
        with self._cond:
            jobs, self._jobs = self._jobs, []
            return self._target, self._selected, jobs


