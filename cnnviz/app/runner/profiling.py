"""The *Profile* tab's glue: :func:`~cnnviz.core.run.profile.profile_stack` on the run's worker.

:class:`Profiling` is handed the :class:`~cnnviz.app.views.profile_view.ProfileView`, a ``source()`` that
answers, on the GUI thread, what to profile now: ``(stack, config, device)`` (the stack is a value, so the
reference is the snapshot; the device is the session's), or a sentence saying why there is nothing to
profile; and the worker's ``call_at_boundary`` (:meth:`~cnnviz.app.runner.worker.RunWorker.call_at_boundary`).
The view's *Profile* button (or :meth:`Profiling.request`) snapshots a :class:`ProfileRequest` (that stack,
that device, the view's batch size) and hands it to the worker, which measures it at its next step
boundary, on its own thread, as it runs everything else; progress and the result come back to the GUI
thread by queued signals, never by the view being touched from another thread.

* **While training, too.** The worker does one thing at a time: a profile asked for while training runs at
  the next step boundary, training waits while it is measured (so nothing else runs on the device and the
  timings are honest), then carries on from the step it had reached. The profile builds a model of its own
  from the stack (the session's weights are not touched) and draws its random numbers without moving the
  session's random stream.
* **One at a time.** A request while a profile runs (or waits for its boundary, or is ending after a cancel)
  is refused with a message. *Cancel* sets the profile's ``should_stop``: a profile waiting for its boundary
  is dropped at once, one being measured ends at its next measurement; either way with "Profiling
  cancelled". An edit of the network or of the device (:meth:`stack_changed`; it also means a new build,
  which waits for the worker) and closing the window (:meth:`shutdown`) cancel it the same way.
* **No session** (the stack cannot be built, its data are refused, the worker has not started yet, or is
  building one): ``call_at_boundary`` resolves to None, and the profile runs on a ``threading.Thread`` of its
  own instead. Nothing trains then; training that starts while such a profile runs (:meth:`set_training`)
  cancels it, as both would share the device and each would time the other.
* **Failures** are sentences: an :class:`~cnnviz.core.run.faults.EngineError`'s message (out of memory,
  refused before allocating, a stack that cannot run, a layer that failed); the batch an out-of-memory
  suggests is put in the view's batch box. Anything else is logged with its traceback and shown as one line.

GUI thread only; torch is imported by the worker (or the profiling thread), not by importing this module.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from cnnviz.app.runner.hub import network_key
from cnnviz.core.model.stack import Stack, TrainingConfig
from cnnviz.core.run.faults import EngineError

log = logging.getLogger("cnnviz.runner")

BUSY_REFUSAL = "A profile is already running: wait for it, or cancel it."
CANCELLED = "Profiling cancelled."

Source = Callable[[], "tuple[Stack, TrainingConfig | None, str | None] | str"]
CallAtBoundary = Callable[[Callable[[Any], Any]], concurrent.futures.Future]


@dataclass(frozen=True)
class ProfileRequest:
    """One profile to measure, snapshotted on the GUI thread."""

    stack: Stack
    config: TrainingConfig | None
    device: str | None
    batch_size: int | None

    def key(self) -> tuple:
        """What makes another profile: the network, the device asked for and the training block's device."""
        return _key(self.stack, self.config, self.device)


def _key(stack: Stack, config: TrainingConfig | None, device: str | None) -> tuple:
    config = config or stack.training
    return network_key(stack), device, config.device if config is not None else None


@dataclass(frozen=True)
class Failed:
    """Why a profile ended without a result, as the view says it."""

    message: str
    kind: str = "failed"
    suggested_batch: int | None = None


def measure(request: ProfileRequest, should_stop: Callable[[], bool],
            progress: Callable[[int, int], None]) -> Any:
    """The profile of ``request`` (a :class:`~cnnviz.core.run.profile.Profile`), or a :class:`Failed`.
    Runs on the worker (or the profiling thread); imports torch."""
    try:
        from cnnviz.core.run import profile

        return profile.profile_stack(request.stack, request.config, batch_size=request.batch_size,
                                     device=request.device, should_stop=should_stop, progress=progress)
    except EngineError as exc:
        if exc.kind == "cancelled":
            return Failed(CANCELLED, kind="cancelled")
        suggested = getattr(exc, "suggested_batch", None)
        return Failed(str(exc), kind=str(exc.kind), suggested_batch=int(suggested) if suggested else None)
    except Exception as exc:  # noqa: BLE001 - a programming error: logged in full, shown as a sentence
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> Failed:
    log.error("profiling failed", exc_info=exc)
    first = (str(exc).splitlines() or [""])[0][:300]
    return Failed(f"Profiling failed unexpectedly ({type(exc).__name__}: {first}); the log has the details.")


def keeping_random_stream(session) -> contextlib.AbstractContextManager:
    """Draw freely inside without moving ``session``'s random stream (the worker runs jobs inside it), as a
    train-mode probe does; nothing to keep for a session without one."""
    forked = getattr(session, "forked_rng", None)
    return forked() if callable(forked) else contextlib.nullcontext()


@dataclass
class _Task:
    """The profile being measured: its token, request and stop flag; where it runs."""

    token: int
    request: ProfileRequest
    stop: threading.Event = field(default_factory=threading.Event)
    future: concurrent.futures.Future | None = None   # on the worker (None: not, or not yet)
    thread: threading.Thread | None = None            # on a thread of its own (no session)


class Profiling(QObject):
    """Runs profiles for a :class:`~cnnviz.app.views.profile_view.ProfileView`; see the module docstring."""

    finished = Signal(object)    # the Profile shown
    failed = Signal(str)         # the sentence shown (cancelled included)
    refused = Signal(str)        # a request that was not started, and why
    _progressed = Signal(int, int, int)   # token, done, total (from the worker or the profiling thread)
    _done = Signal(int, object)           # token, Profile or Failed (from the profiling thread)
    _resolved = Signal(int, object)       # token, the worker's finished future (from the worker thread)

    def __init__(self, view, source: Source, parent: QObject | None = None, *,
                 call_at_boundary: CallAtBoundary | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._source = source
        self._call = call_at_boundary
        self._training = False
        self._synced_batch: int | None = None
        self._token = 0
        self._task: _Task | None = None
        self._progressed.connect(self._on_progress)
        self._done.connect(self._on_done)
        self._resolved.connect(self._on_resolved)
        view.profileRequested.connect(self.request)
        view.cancelRequested.connect(self.cancel)

    # ------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """A profile is waiting for its boundary, being measured, or ending after a cancel."""
        return self._task is not None

    @property
    def on_worker(self) -> bool:
        """The running profile was handed to the worker (not to a thread of its own)."""
        return self._task is not None and self._task.future is not None

    def set_training(self, training: bool) -> None:
        """The window trains (or no longer does). On the worker, training simply waits for a profile; one on
        a thread of its own (there was no session) is cancelled: both would share the device."""
        self._training = bool(training)
        task = self._task
        if self._training and task is not None and task.thread is not None:
            self.cancel()

    def sync_batch(self) -> None:
        """Put the training block's batch size in the view's batch box when it is not the one last put there
        (call it with every change of the stack: a batch the person chose stays until the block's changes)."""
        answer = self._source()
        if isinstance(answer, str):
            return
        stack, config, _device = answer
        config = config or stack.training
        if config is not None and config.batch_size != self._synced_batch:
            self._synced_batch = config.batch_size
            self.view.set_batch_size(config.batch_size)

    def stack_changed(self) -> None:
        """The document changed: a running profile of another network or device is cancelled (what it
        measures is gone, and the new build waits for the worker)."""
        task = self._task
        if task is None or task.stop.is_set():
            return
        answer = self._source()
        if isinstance(answer, str) or _key(*answer) != task.request.key():
            self.cancel()

    # ------------------------------------------------------------ requests
    def request(self, batch_size: int | None = None) -> bool:
        """Profile what ``source()`` names now, at ``batch_size`` (else the view's); False when refused."""
        if self.busy:
            return self._refuse(BUSY_REFUSAL)
        answer = self._source()
        if isinstance(answer, str):
            return self._refuse(answer or "Nothing to profile.")
        stack, config, device = answer
        batch = int(batch_size) if batch_size is not None else self.view.batch_size
        return self.start(ProfileRequest(stack, config, device, batch))

    def start(self, request: ProfileRequest) -> bool:
        """Hand ``request`` to the worker (to a thread of its own when there is no worker or no session);
        refused while another runs."""
        if self.busy:
            return self._refuse(BUSY_REFUSAL)
        self._token += 1
        task = self._task = _Task(self._token, request)
        if self._call is None:
            self._start_thread(task)
            return True
        token, stop = task.token, task.stop

        def work(session) -> Any:
            if session is None:
                return None   # no session: the GUI thread falls back to a thread of its own
            if stop.is_set():
                return Failed(CANCELLED, kind="cancelled")
            with keeping_random_stream(session):
                return measure(request, stop.is_set, lambda done, total: self._progressed.emit(token, done, total))

        self.view.set_running(True, waits=True)
        task.future = self._call(work)
        task.future.add_done_callback(lambda future: self._resolved.emit(token, future))
        return True

    def _start_thread(self, task: _Task) -> None:
        token, stop, request = task.token, task.stop, task.request

        def work() -> None:
            result = measure(request, stop.is_set, lambda done, total: self._progressed.emit(token, done, total))
            self._done.emit(token, result)

        task.future = None
        self.view.set_running(True)
        task.thread = threading.Thread(target=work, name="cnnviz-profile", daemon=True)
        task.thread.start()

    def cancel(self) -> None:
        """Stop the running profile: at once while it waits for its boundary, else at its next measurement."""
        task = self._task
        if task is None:
            return
        task.stop.set()
        if task.future is not None:
            task.future.cancel()   # only one not yet started: its callback says so, now

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel and wait for the running profile to end (the window closing, before the worker stops);
        True when it ended."""
        task = self._task
        self.cancel()
        if task is None:
            return True
        if task.thread is not None:
            task.thread.join(timeout)
            return not task.thread.is_alive()
        if task.future is not None:
            done, _ = concurrent.futures.wait([task.future], timeout)
            return bool(done)
        return True

    # ------------------------------------------------------------ results (GUI thread)
    def _refuse(self, message: str) -> bool:
        if not self.busy:
            self.view.show_message(message)
        self.refused.emit(message)
        return False

    def _on_progress(self, token: int, done: int, total: int) -> None:
        if token == self._token:
            self.view.set_progress(done, total)

    def _on_resolved(self, token: int, future: concurrent.futures.Future) -> None:
        task = self._task
        if task is None or token != task.token:
            return
        if future.cancelled():
            self._on_done(token, Failed(CANCELLED, kind="cancelled"))
            return
        error = future.exception()
        if error is not None:
            self._on_done(token, _unexpected(error))
            return
        result = future.result()
        if result is None:   # no session on the worker
            if task.stop.is_set():
                self._on_done(token, Failed(CANCELLED, kind="cancelled"))
            else:
                self._start_thread(task)
            return
        self._on_done(token, result)

    def _on_done(self, token: int, result: object) -> None:
        task = self._task
        if task is None or token != task.token:
            return
        self._task = None
        if task.thread is not None:
            task.thread.join(5.0)   # it has nothing left to do but return
        if isinstance(result, Failed):
            if result.suggested_batch:
                self.view.set_batch_size(result.suggested_batch)
            if result.kind == "cancelled":
                self.view.show_message(result.message)
            else:
                self.view.show_error(result.message)
            self.failed.emit(result.message)
            return
        self.view.set_profile(result)
        self.finished.emit(result)
