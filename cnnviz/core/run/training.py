"""The training loop with controls, for the window's worker thread and the command line alike.

:class:`Control` is the task object, as Orange3's ``TaskState`` is: the
thread-safe token the GUI thread (or a signal handler) pokes, holding every
request for the loop: pause, resume, single step, reset, cancel or interrupt,
new settings, work to run at a boundary, and which sample to probe (one
:class:`ProbeRequest`, the only way a probe's target travels). :class:`Trainer`
runs a :class:`~cnnviz.core.run.engine.Session` and honours each request at the
next step boundary, never inside a step. Between requests it only trains:
progress is read from the device at the reporting interval, a held-out
evaluation runs every ``eval_every`` steps, and a probe of the chosen sample is
taken at most ``probe_hz`` times a second by the wall clock, within a share of
the loop's time (``probe_budget``; on the CPU counted in the loop thread's CPU
time), and only when someone listens; training health rides on a probe only
within a share of its own (``health_budget``), so that it never slows the
probes. Callbacks are plain callables, called on the loop's thread;
the Qt side turns them into signals. No Qt, and importing this module imports
no torch (the window's GUI thread reads :data:`PROBE_HZ` and makes requests).
"""
from __future__ import annotations

import concurrent.futures
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnviz.core.run.engine import Evaluation, Session

PROBE_HZ = 10.5
"""At most this many probes a second while training (the one definition; the window's worker uses it too).
Each is due a period after the last one was due, not after it came: a probe waits for the next step boundary,
and counting from its start would lose that wait every time (LeNet-5: 10.7-11.2 a second at a period of
1/12 s). So the window, which shows every one, gets this many a second while the steps are short: at least 10
is the live views' target, and every refresh more costs the training thread the GUI thread's time for it."""
PROBE_BUDGET = 0.04
"""Share of the loop's wall time that probes may take: a slow probe (a big model, a busy CPU) comes less often.
A probe of d seconds is followed by at least d·(1/budget − 1) of training, so probes take at most this share
of the loop, counted in the loop thread's CPU time on the CPU (what the throughput pays; the wall clock
would count other processes' time too) and by the wall clock on a GPU. 10 a second needs d ≤ 0.04/0.96 of
what the loop gets in a tenth of a second: 4.2 ms of CPU with a core to itself. LeNet-5's whole probe takes
about 2.3 ms of CPU on one thread, one that asks only for what the overview and the labs show 0.85 ms. The
other 1 % of the 5 % that everything live may cost is for what the probes cost beyond their own time: the
window redrawing on the other core, the caches."""
HEALTH_BUDGET = 0.04
"""Share of the loop's time training health may take, on top of the probes' own (:data:`PROBE_BUDGET`) and
never out of it: a probe that asks for ``health`` gets it only when the health taken so far is within this
share, counted as the probes' budget is (the loop thread's CPU time on the CPU, the wall clock on a GPU). A
health reading whose own work (the weights' copy before the step, the rectifiers' hooks in it, the read
after it: :attr:`~cnnviz.core.run.health.HealthMonitor.spent`) took d seconds is followed by at least
d·(1/budget − 1) of the loop before the next step is watched; the probes in between come as without health,
at their rate and within their budget. LeNet-5's health costs about 2 ms of CPU, most of it the read: at
4 % one every 50 ms of the loop, more often than the probes come, so most probes carry it (benchmarks/
health.py on a busy CPU: 117 of 147, 1.75 % of the loop; the others followed a step that took longer than
foreseen, see :class:`Trainer`); a big model's, rarer. Its time is not charged to the probes' budget. 4 % of
the 5 % the issue allows, the rest for what the watched step costs beyond the time measured (the caches)."""


class State(str, enum.Enum):
    """What ``on_state`` reports and how a run ended (:attr:`RunResult.status`); equal to its string value."""

    RUNNING = "running"
    PAUSED = "paused"
    RESET = "reset"
    DONE = "done"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ProbeRequest:
    """Which sample the views follow: ``index`` of ``split``, or ``image``, a file of the person's own
    (its class unknown: the loss is taken for the predicted class). The latest request wins."""

    index: int = 0
    split: str = "test"
    mode: str = "eval"
    with_identities: bool = True
    image: str | None = None
    grad_layers: tuple[int | str, ...] | None = None
    """The layers whose activation gradients the open views show (None: every layer; (): none): top-level
    indices, and path strings ("3.body.1") for layers inside blocks."""
    input_grad: bool = True
    """dL/d(input), the saliency map (shown when the input is selected)."""
    param_grads: bool = True
    """The per-sample parameter gradient norms (``Probe.grad_norms``, the gradient view)."""
    health: bool = False
    """Training health (:mod:`~cnnviz.core.run.health`) of the step a probe follows, as the probe's
    ``health``: taken only around that step, so a probe while paused has none, and only within its own
    budget (:data:`HEALTH_BUDGET`), so that some probes between have none."""

    @property
    def needs_backward(self) -> bool:
        """Whether the probe runs a backward pass (False: the forward pass alone, the cheapest probe)."""
        return bool(self.with_identities or self.input_grad or self.param_grads or self.grad_layers is None
                    or self.grad_layers)


def take_probe(session: Session, request: ProbeRequest, image: Any = None):
    """Take the probe ``request`` asks for; ``image``: the pixels of ``request.image`` when already loaded.

    Only the gradients the request names are taken (every one by default); activations, scores and the
    loss always come."""
    from cnnviz.core.run import probes

    with probes.asking(grad_layers=request.grad_layers, input_grad=request.input_grad,
                       param_grads=request.param_grads):
        if request.image:
            if image is None:
                from cnnviz.core import data

                image = data.load_image(request.image, session.stack.input.shape)
            return session.probe_image(image, mode=request.mode, with_identities=request.with_identities)
        return session.probe(request.index, request.split, request.mode, request.with_identities)


def _with_health(result: Any, health: Any) -> Any:
    """``result`` (a Snapshot, a Probe) carrying ``health``; as it is when it has no such field."""
    try:
        return replace(result, health=health)
    except TypeError:
        return result


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
    """How a :meth:`Trainer.run` ended: ``status`` is :attr:`State.DONE` or :attr:`State.CANCELLED`."""

    status: State
    step: int
    steps_run: int
    seconds: float
    steps_per_second: float
    last_progress: Progress | None
    last_eval: Evaluation | None


Job = tuple[Callable[[Any], Any], concurrent.futures.Future]


class Control:
    """Requests for a loop, safe to call from any thread; each is honoured at a step boundary.

    One control may serve many runs, one after another (the window's worker
    keeps one for its lifetime, across sessions): :meth:`interrupt` ends a run
    and leaves the control ready for the next; :meth:`cancel` ends every run.
    """

    def __init__(self, paused: bool = False) -> None:
        self._cond = threading.Condition()
        self._paused = paused
        self._cancelled = False
        self._interrupted = False
        self._reset = False
        self._single = 0
        self._probe_now = False
        self._probe = ProbeRequest()
        self._settings: dict = {}
        self._jobs: list[Job] = []

    def _poke(self) -> None:
        self._cond.notify_all()

    def pause(self) -> None:
        """Stop at the next boundary; single steps asked for and not yet run are dropped."""
        with self._cond:
            self._paused = True
            self._single = 0
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
        """End the run at the next boundary, and every later run at once; jobs not yet run are cancelled."""
        with self._cond:
            self._cancelled = True
            jobs, self._jobs = self._jobs, []
            self._poke()
        for _fn, future in jobs:
            future.cancel()

    def interrupt(self) -> None:
        """End the current run at the next boundary (its status: cancelled), paused, for the session is replaced.

        The steps, the reset and the settings asked for so far are dropped
        (they were for that session); the probe request and the jobs stay, for
        the next run under this control. Honoured by the next run when none runs now.
        """
        with self._cond:
            self._interrupted = True
            self._paused = True
            self._single = 0
            self._reset = False
            self._settings = {}
            self._poke()

    def configure(self, *, lr: float | None = None, batch_size: int | None = None,
                  steps: int | None = None) -> None:
        """Change the learning rate, batch size or run's steps (the schedule's horizon) of the running session
        at the next boundary."""
        with self._cond:
            if lr is not None:
                self._settings["lr"] = lr
            if batch_size is not None:
                self._settings["batch_size"] = batch_size
            if steps is not None:
                self._settings["steps"] = steps
            self._poke()

    def request_probe(self, request: ProbeRequest | None = None, **changes) -> None:
        """Follow another sample (or mode); a probe of it is taken at the next boundary, paused or not.

        With neither argument: probe the current request again.
        """
        with self._cond:
            self._probe = request if request is not None else replace(self._probe, **changes)
            self._probe_now = True
            self._poke()

    def call_at_boundary(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future:
        """Run ``fn(session)`` on the loop's thread at the next step boundary (paused or not); the future has
        its result or its exception. Cancelled, not run, once the control is cancelled."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._cancelled:
                future.cancel()
                return future
            self._jobs.append((fn, future))
            self._poke()
        return future

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def probe_request(self) -> ProbeRequest:
        return self._probe


class _Action(enum.Enum):
    """What the loop does next, decided under the control's lock."""

    CANCEL = enum.auto()     # cancelled or interrupted: end the run
    DONE = enum.auto()       # the steps asked of run() are done
    RESET = enum.auto()
    CONFIGURE = enum.auto()
    SCHEDULE_END = enum.auto()  # the learning-rate schedule has ended: paused instead of a step
    JOBS = enum.auto()
    PROBE = enum.auto()
    ONE = enum.auto()        # one single step, then paused again
    RUN = enum.auto()        # one step of a running loop
    WAIT = enum.auto()       # entering a pause


class Trainer:
    """Runs a session under a :class:`Control`, reporting through plain callbacks.

    ``on_progress(Progress)`` every ``report_every`` steps (and at most every
    ``report_seconds``, when given, whichever comes first), and at every pause,
    single step, cancel and end; ``on_eval(Evaluation)`` every ``eval_every``
    steps on the held-out split; ``on_probe(Probe)`` while training at most
    ``probe_hz`` times a second and so that probes take at most
    ``probe_budget`` of the wall time (a 2 ms probe at 4 %: every 50 ms at most, then ``probe_hz`` limits),
    and also after each single step and on every ``request_probe``; ``on_state(state, step)`` with a
    :class:`State`. ``probe(request)`` takes each probe (default: :func:`take_probe` of the session);
    ``on_probe`` gets what it returns.

    When the request asks for ``health`` and health is within its own share of the loop
    (``health_budget``, :data:`HEALTH_BUDGET`: its last reading's own time d, copy, hooks and read, is
    followed by at least d·(1/health_budget − 1) of the loop by :meth:`_budget_clock`), whether a probe
    will be due after the step is judged before it (by the last step's times), and that step is watched
    (:class:`~cnnviz.core.run.health.HealthMonitor`): its health is read after the probe and handed on as
    ``dataclasses.replace(result, health=...)`` of what ``probe`` returned (a result without a ``health``
    field goes as it is). The read's time is health's, not the probe's: to the probes' budget it is loop
    time, so probes come as often with health on as off. Health never holds a probe back: while it waits
    for its budget, or when a probe is due after a step that was not watched (slower than foreseen), the
    probe comes without it; a step watched for a probe that then is not due yet (faster than foreseen) goes
    unread, its copy and hooks counted to health. A single step is always watched (and counted).

    With ``pause_at_schedule_end`` (the window, whose runs go on until paused), a step asked for once the
    session's learning-rate schedule has ended (:attr:`~cnnviz.core.run.engine.Session.schedule_ended`: a
    cosine schedule at its horizon, where the rate is 0) is not taken: the loop pauses and calls
    ``on_schedule_end(step)``.
    """

    def __init__(self, session: Session, control: Control | None = None, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_eval: Callable[[Evaluation], None] | None = None,
                 on_probe: Callable[[Any], None] | None = None,
                 on_state: Callable[[State, int], None] | None = None,
                 probe: Callable[[ProbeRequest], Any] | None = None,
                 report_every: int = 50, report_seconds: float | None = None,
                 eval_every: int | None = None, probe_hz: float = PROBE_HZ,
                 probe_budget: float = PROBE_BUDGET, health_budget: float = HEALTH_BUDGET,
                 pause_at_schedule_end: bool = False,
                 on_schedule_end: Callable[[int], None] | None = None) -> None:
        self.session = session
        self.control = control or Control()
        self.on_progress = on_progress
        self.on_eval = on_eval
        self.on_probe = on_probe
        self.on_state = on_state
        self.pause_at_schedule_end = pause_at_schedule_end
        self.on_schedule_end = on_schedule_end
        self.probe = probe if probe is not None else (lambda request: take_probe(session, request))
        self.report_every = max(1, int(report_every))
        self.report_seconds = report_seconds
        self.eval_every = eval_every
        self.probe_interval = 1.0 / probe_hz if probe_hz > 0 else float("inf")
        self.probe_budget = min(1.0, max(1e-3, probe_budget))
        self.health_budget = min(1.0, max(1e-3, health_budget))
        self.last_progress: Progress | None = None
        self.last_eval: Evaluation | None = None
        self._running_seconds = 0.0
        self._steps_run = 0
        self._clock: float | None = None
        self._pending: dict = {}
        self._jobs: list[Job] = []
        self._budget_due = 0.0
        self._health_due = 0.0
        self._step_times = (0.0, 0.0)
        self._health = None
        self.health_seconds = 0.0
        """The health's own time so far (by :meth:`_budget_clock`, all runs): what its budget counts."""

    # ------------------------------------------------------------------ pieces
    def _state(self, state: State) -> None:
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

    def _probe(self, watched=None) -> float:
        """Probe now, with the health of the step ``watched`` saw; returns the seconds the health read took
        (by :meth:`_budget_clock`, 0 without), having set when health may come next (:data:`HEALTH_BUDGET`)."""
        listener = self.on_probe   # read once: another thread may take it away meanwhile (a benchmark does)
        if listener is None:
            return 0.0
        result = self.probe(self.control.probe_request)
        read = 0.0
        if watched is not None:
            before = watched.spent
            result = _with_health(result, watched.read(self.session.step_count))
            read = watched.spent - before
            self.health_seconds += watched.spent
            self._health_due = self._budget_clock()() + watched.spent * (1.0 / self.health_budget - 1.0)
        listener(result)
        return read

    def _health_monitor(self):
        """The monitor of the session's model (made at the first probe that asks for health)."""
        if self._health is None or self._health.model is not self.session.model:
            from cnnviz.core.run.health import HealthMonitor

            self._health = HealthMonitor(self.session.model)
        self._health.clock = self._budget_clock()
        return self._health

    def _health_ready(self) -> bool:
        """Whether health is within its own share of the loop (:data:`HEALTH_BUDGET`)."""
        return self._budget_clock()() >= self._health_due

    def _wants_health(self) -> bool:
        return self.on_probe is not None and self.control.probe_request.health

    def _due_after_step(self, next_probe: float) -> bool:
        """Whether a probe will be due once the step about to run is done, judged by the last step's times
        (wall, budget clock) with a quarter to spare: the step to watch is chosen before it runs, and choosing
        it only once the probe is already due would put every probe with health a step later than without."""
        wall, spent = self._step_times
        return (time.perf_counter() + 1.25 * wall >= next_probe
                and self._budget_clock()() + 1.25 * spent >= self._budget_due)

    def _run_jobs(self) -> None:
        jobs, self._jobs = self._jobs, []
        for fn, future in jobs:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(self.session))
                except BaseException as exc:  # noqa: BLE001 - the caller's thread decides
                    future.set_exception(exc)

    def _budget_clock(self) -> Callable[[], float]:
        """What the probe budget is counted in: on the CPU the loop thread's CPU time, elsewhere the wall clock.

        On a shared CPU the wall clock counts the time other processes took
        from a probe as the probe's own, and probes then come several times
        less often than the budget allows; what a probe costs the throughput
        is the share of the loop's CPU time it takes. A GPU probe's time is
        mostly the device's, which the thread's CPU time does not see."""
        device = getattr(getattr(self.session, "device", None), "type", "cpu")
        return time.thread_time if device == "cpu" else time.perf_counter

    def _timed_probe(self, watched=None, due: float | None = None) -> float:
        """Probe now (with the health of the step ``watched`` saw); returns when the next one may come by the
        wall clock (the rate limit), and sets ``_budget_due``: when, by :meth:`_budget_clock`, the loop has
        trained long enough for the budget. The health read's time is health's (it has its own budget), not the
        probe's: to the probes' budget it is loop time, as training is (each takes its share of the whole loop).

        ``due``: when this probe was due by the rate limit (the loop's own probes). The next is due a period
        after that, so the wait for a step boundary is not added to every period; a probe more than a period
        late (a slow step, the budget, a requested probe) starts the count again from now."""
        clock = self._budget_clock()
        began = time.perf_counter()
        start = clock()
        read = self._probe(watched)
        end = clock()
        self._budget_due = end - read + max(0.0, end - start - read) * (1.0 / self.probe_budget - 1.0)
        if due is not None and began - due < self.probe_interval:
            return due + self.probe_interval   # probe_hz a second on average, however late each came
        return began + self.probe_interval

    def _probe_due(self, now: float, next_probe: float) -> bool:
        return now >= next_probe and self._budget_clock()() >= self._budget_due

    def _next(self, until: int | None, waited_state: list[bool]) -> _Action:
        c = self.control
        with c._cond:
            while True:
                if c._cancelled:
                    return _Action.CANCEL
                if c._interrupted:
                    c._interrupted = False
                    return _Action.CANCEL
                if c._reset:
                    c._reset = False
                    return _Action.RESET
                if c._settings:
                    self._pending, c._settings = c._settings, {}
                    return _Action.CONFIGURE
                if c._jobs:
                    self._jobs, c._jobs = c._jobs, []
                    return _Action.JOBS
                if c._probe_now:
                    c._probe_now = False
                    return _Action.PROBE
                if until is not None and self.session.step_count >= until:
                    return _Action.DONE
                if (self.pause_at_schedule_end and (c._single > 0 or not c._paused)
                        and self.session.schedule_ended):
                    c._paused = True
                    c._single = 0
                    return _Action.SCHEDULE_END
                if c._single > 0:
                    c._single -= 1
                    return _Action.ONE
                if not c._paused:
                    return _Action.RUN
                if not waited_state[0]:
                    return _Action.WAIT
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
        self._budget_due = self._health_due = 0.0  # a thread's CPU clock: this run's thread may not be the last's
        self._clock = time.perf_counter()
        since_report = since_eval = 0
        next_probe = 0.0
        report_at = self._clock + (self.report_seconds or float("inf"))
        waiting = [False]
        status = State.DONE
        self._state(State.RUNNING)
        with session.rng_scope():
            try:
                while True:
                    action = self._next(until, waiting)
                    if action is _Action.DONE:
                        break
                    if action is _Action.CANCEL:
                        status = State.CANCELLED
                        break
                    if action is _Action.WAIT:  # entering a pause: show where we are, then sleep
                        self._tick()
                        self._clock = None
                        self._report()
                        waiting[0] = True
                        self._state(State.PAUSED)
                        continue
                    if action is _Action.RESET:
                        self._report()
                        session.reset()
                        since_report = since_eval = 0
                        if steps is not None:
                            until = int(steps)
                        self._state(State.RESET)
                        self._probe()
                        continue
                    if action is _Action.PROBE:
                        next_probe = self._timed_probe()
                        continue
                    if action is _Action.JOBS:   # another thread's work (a profile, an export): not training time
                        self._tick()
                        self._run_jobs()
                        if self._clock is not None:
                            self._clock = time.perf_counter()
                        continue
                    if action is _Action.CONFIGURE:
                        if "lr" in self._pending:
                            session.set_lr(self._pending["lr"])
                        if "batch_size" in self._pending:
                            session.set_batch_size(self._pending["batch_size"])
                        if "steps" in self._pending:
                            session.horizon = int(self._pending["steps"])
                        continue
                    if action is _Action.SCHEDULE_END:  # paused now; the next pass says so (WAIT)
                        if self.on_schedule_end is not None:
                            self.on_schedule_end(session.step_count)
                        continue
                    if waiting[0]:
                        waiting[0] = False
                        self._clock = time.perf_counter()
                        self._state(State.RUNNING)
                    watched = None
                    wanted = self._wants_health()
                    health = wanted and (action is _Action.ONE or self._health_ready())
                    if health and (action is _Action.ONE or self._due_after_step(next_probe)):
                        watched = self._health_monitor()
                    if wanted:
                        started = (time.perf_counter(), self._budget_clock()())
                    if watched is None:
                        session.step()
                    else:
                        with watched.watching():
                            session.step()
                    if wanted:
                        self._step_times = (time.perf_counter() - started[0], self._budget_clock()() - started[1])
                    self._steps_run += 1
                    since_report += 1
                    since_eval += 1
                    now = time.perf_counter()
                    if action is _Action.ONE or since_report >= self.report_every or now >= report_at:
                        self._tick()
                        self._report()
                        since_report = 0
                        report_at = now + (self.report_seconds or float("inf"))
                    if self.eval_every and since_eval >= self.eval_every:
                        self.evaluate()
                        since_eval = 0
                    if watched is not None and (action is _Action.ONE or self._probe_due(now, next_probe)):
                        next_probe = self._timed_probe(watched, due=next_probe)
                    elif self.on_probe is not None and (action is _Action.ONE or self._probe_due(now, next_probe)):
                        next_probe = self._timed_probe(due=next_probe)   # without health: it never holds a probe back
                    elif watched is not None:   # the step ran faster than the last: the probe is not due yet
                        self.health_seconds += watched.spent
                        self._health_due = self._budget_clock()() + watched.spent * (1.0 / self.health_budget - 1.0)
            finally:
                self._tick()
                self._clock = None
                try:
                    self._report()
                except Exception:  # noqa: BLE001, S110  (the failure being raised matters more)
                    pass
        self._state(status)
        rate = self._steps_run / self._running_seconds if self._running_seconds > 0 else 0.0
        return RunResult(status, session.step_count, self._steps_run, self._running_seconds, rate,
                         self.last_progress, self.last_eval)
