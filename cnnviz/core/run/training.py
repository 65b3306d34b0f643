"""The training loop with controls, for the window's worker thread and the command line alike.

:class:`Control` is the thread-safe token the GUI thread (or a signal handler)
pokes: pause, resume, single step, reset, cancel, and which sample to probe.
:class:`Trainer` runs a :class:`~cnnviz.core.engine.Session` and honours each
request at the next step boundary, never inside a step. Between requests it
only trains: progress is read from the device at the reporting interval, a
held-out evaluation runs every ``eval_every`` steps, and a probe of the chosen
sample is taken at most ``probe_hz`` times a second by the wall clock (and only
when someone listens). Callbacks are plain callables, called on the loop's
thread; the Qt side turns them into signals. No Qt.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from cnnviz.core.run.engine import Evaluation, Session

PROBE_HZ = 30.0
PROBE_BUDGET = 0.025
"""Share of the loop's wall time that probes may take: a slow probe (a big model, a busy CPU) comes less often."""


@dataclass(frozen=True)
class ProbeRequest:
    """Which sample the views follow; the latest request wins."""

    index: int = 0
    split: str = "test"
    mode: str = "eval"
    with_identities: bool = True


@dataclass(frozen=True)
class Progress:
    """Training loss (per sample) and accuracy over the ``window`` steps since the last report."""

    step: int
    loss: float
    accuracy: float
    window: int
    steps_per_second: float
    elapsed: float


@dataclass(frozen=True)
class RunResult:
    """How a :meth:`Trainer.run` ended: ``status`` is ``"done"`` or ``"cancelled"``."""

    status: str
    step: int
    steps_run: int
    seconds: float
    steps_per_second: float
    last_progress: Progress | None
    last_eval: Evaluation | None


class Control:
    """Requests for a running loop, safe to call from any thread; each is honoured at a step boundary."""

    def __init__(self, paused: bool = False) -> None:
        self._cond = threading.Condition()
        self._paused = paused
        self._cancelled = False
        self._reset = False
        self._single = 0
        self._probe_now = False
        self._probe = ProbeRequest()
        self._settings: dict = {}
        self._version = 0

    def _poke(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._poke()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._single = 0
            self._poke()

    def step(self, n: int = 1) -> None:
        """While paused: run ``n`` more steps, then stay paused (pauses a running loop first)."""
        with self._cond:
            self._paused = True
            self._single += max(0, int(n))
            self._poke()

    def reset(self) -> None:
        """Weights back to the seed's and a fresh optimizer, at the next boundary (paused or not)."""
        with self._cond:
            self._reset = True
            self._poke()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._poke()

    def configure(self, *, lr: float | None = None, batch_size: int | None = None) -> None:
        """Change the learning rate or batch size of the running session at the next boundary."""
        with self._cond:
            if lr is not None:
                self._settings["lr"] = lr
            if batch_size is not None:
                self._settings["batch_size"] = batch_size
            self._poke()

    def request_probe(self, request: ProbeRequest | None = None, **changes) -> None:
        """Follow another sample (or mode); a probe of it is taken at the next boundary, paused or not."""
        with self._cond:
            self._probe = request if request is not None else replace(self._probe, **changes)
            self._probe_now = True
            self._poke()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def probe_request(self) -> ProbeRequest:
        return self._probe


# What the loop does next, decided under the control's lock.
_CANCEL, _RESET, _PROBE, _ONE, _RUN, _WAIT, _CONFIGURE = range(7)


class Trainer:
    """Runs a session under a :class:`Control`, reporting through plain callbacks.

    ``on_progress(Progress)`` every ``report_every`` steps (and at most every
    ``report_seconds``, when given, whichever comes first), and at every pause,
    single step, cancel and end; ``on_eval(Evaluation)`` every ``eval_every``
    steps on the held-out split; ``on_probe(Probe)`` while training at most
    ``probe_hz`` times a second and so that probes take at most
    ``probe_budget`` of the wall time (a 1.3 ms probe at 2.5 %: every 52 ms),
    and also after each single step and on every ``request_probe``; ``on_state(state, step)`` with ``"running"``,
    ``"paused"``, ``"reset"``, ``"done"``, ``"cancelled"``.
    """

    def __init__(self, session: Session, control: Control | None = None, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_eval: Callable[[Evaluation], None] | None = None,
                 on_probe: Callable[..., None] | None = None,
                 on_state: Callable[[str, int], None] | None = None,
                 report_every: int = 50, report_seconds: float | None = None,
                 eval_every: int | None = None, probe_hz: float = PROBE_HZ,
                 probe_budget: float = PROBE_BUDGET) -> None:
        self.session = session
        self.control = control or Control()
        self.on_progress = on_progress
        self.on_eval = on_eval
        self.on_probe = on_probe
        self.on_state = on_state
        self.report_every = max(1, int(report_every))
        self.report_seconds = report_seconds
        self.eval_every = eval_every
        self.probe_interval = 1.0 / probe_hz if probe_hz > 0 else float("inf")
        self.probe_budget = min(1.0, max(1e-3, probe_budget))
        self.last_progress: Progress | None = None
        self.last_eval: Evaluation | None = None
        self._running_seconds = 0.0
        self._steps_run = 0
        self._clock: float | None = None
        self._pending: dict = {}

    # ------------------------------------------------------------------ pieces
    def _state(self, state: str) -> None:
        if self.on_state is not None:
            self.on_state(state, self.session.step_count)

    def _report(self) -> None:
        stats = self.session.read_stats()
        if stats is None:
            return
        loss, accuracy, window = stats
        rate = self._steps_run / self._running_seconds if self._running_seconds > 0 else 0.0
        self.last_progress = Progress(self.session.step_count, loss, accuracy, window, rate, self._running_seconds)
        if self.on_progress is not None:
            self.on_progress(self.last_progress)

    def evaluate(self) -> Evaluation:
        self.last_eval = self.session.evaluate("test")
        if self.on_eval is not None:
            self.on_eval(self.last_eval)
        return self.last_eval

    def _probe(self) -> None:
        if self.on_probe is None:
            return
        r = self.control.probe_request
        self.on_probe(self.session.probe(r.index, r.split, r.mode, r.with_identities))

    def _timed_probe(self) -> float:
        """Probe now; returns when the next one may come (rate and time-budget limits)."""
        start = time.perf_counter()
        self._probe()
        end = time.perf_counter()
        return end + max(self.probe_interval, (end - start) * (1.0 / self.probe_budget - 1.0))

    def _next(self, until: int | None, waited_state: list[bool]) -> int:
        c = self.control
        with c._cond:
            while True:
                if c._cancelled:
                    return _CANCEL
                if c._reset:
                    c._reset = False
                    return _RESET
                if c._settings:
                    self._pending, c._settings = c._settings, {}
                    return _CONFIGURE
                if c._probe_now:
                    c._probe_now = False
                    return _PROBE
                if until is not None and self.session.step_count >= until:
                    return _CANCEL if c._cancelled else -1
                if c._single > 0:
                    c._single -= 1
                    return _ONE
                if not c._paused:
                    return _RUN
                if not waited_state[0]:
                    return _WAIT
                c._cond.wait(0.5)

    # ------------------------------------------------------------------ the loop
    def _tick(self) -> None:
        """Add the running time since the clock was last read (paused time is not counted)."""
        now = time.perf_counter()
        if self._clock is not None:
            self._running_seconds += now - self._clock
            self._clock = now

    def run(self, steps: int | None = None) -> RunResult:
        """Train until ``steps`` more steps are done (None: until cancelled); see the class docstring.

        After a reset the count starts again from step 0 to ``steps``. Raises
        the session's NonFiniteError or OutOfMemory, after reporting the
        progress up to the failed step.
        """
        session = self.session
        until = None if steps is None else session.step_count + int(steps)
        self._steps_run = 0
        self._running_seconds = 0.0
        self._clock = time.perf_counter()
        since_report = since_eval = 0
        next_probe = 0.0
        report_at = self._clock + (self.report_seconds or float("inf"))
        waiting = [False]
        status = "done"
        self._state("running")
        with session.rng_scope():
            try:
                while True:
                    action = self._next(until, waiting)
                    if action == -1:
                        break
                    if action == _CANCEL:
                        status = "cancelled"
                        break
                    if action == _WAIT:  # entering a pause: show where we are, then sleep
                        self._tick()
                        self._clock = None
                        self._report()
                        waiting[0] = True
                        self._state("paused")
                        continue
                    if action == _RESET:
                        self._report()
                        session.reset()
                        since_report = since_eval = 0
                        if steps is not None:
                            until = int(steps)
                        self._state("reset")
                        self._probe()
                        continue
                    if action == _PROBE:
                        next_probe = self._timed_probe()
                        continue
                    if action == _CONFIGURE:
                        if "lr" in self._pending:
                            session.set_lr(self._pending["lr"])
                        if "batch_size" in self._pending:
                            session.set_batch_size(self._pending["batch_size"])
                        continue
                    if waiting[0]:
                        waiting[0] = False
                        self._clock = time.perf_counter()
                        self._state("running")
                    session.step()
                    self._steps_run += 1
                    since_report += 1
                    since_eval += 1
                    now = time.perf_counter()
                    if action == _ONE or since_report >= self.report_every or now >= report_at:
                        self._tick()
                        self._report()
                        since_report = 0
                        report_at = now + (self.report_seconds or float("inf"))
                    if self.eval_every and since_eval >= self.eval_every:
                        self.evaluate()
                        since_eval = 0
                    if self.on_probe is not None and (action == _ONE or now >= next_probe):
                        next_probe = self._timed_probe()
            finally:
                self._tick()
                self._clock = None
                try:
                    self._report()
                except Exception:  # noqa: BLE001  (the failure being raised matters more)
                    pass
        self._state(status)
        rate = self._steps_run / self._running_seconds if self._running_seconds > 0 else 0.0
        return RunResult(status, session.step_count, self._steps_run, self._running_seconds, rate,
                         self.last_progress, self.last_eval)
