"""The *Profile* tab's glue: :func:`~cnnviz.core.run.profile.profile_stack` off the GUI thread.

:class:`Profiling` is handed the :class:`~cnnviz.app.views.profile_view.ProfileView` and a
``source()`` that answers, on the GUI thread, what to profile now: ``(stack, config, device)`` (the
stack is a value, so the reference is the snapshot), or a sentence saying why there is nothing to
profile. The view's *Profile* button (or :meth:`Profiling.request`) starts one profile on a
``threading.Thread`` of its own; progress and the result come back to the GUI thread by queued
signals, never by the view being touched from the thread.

* **One at a time.** A request while a profile runs (or while a cancelled one is still ending) is
  refused with a message; *Cancel* sets the profile's ``should_stop`` and it ends at its next
  measurement with "Profiling cancelled".
* **Not while training.** The caller says whether the window trains (:meth:`set_training`): a
  request then is refused ("Pause training to profile…"): both would share the device, and each
  would time the other. Training that starts during a profile cancels it.
* **Failures** are sentences: an :class:`~cnnviz.core.run.faults.EngineError`'s message (out of
  memory, refused before allocating, a stack that cannot run, a layer that failed); the batch an
  out-of-memory suggests is put in the view's batch box. Anything else is logged with its traceback
  and shown as one line.

GUI thread only; torch is imported by the profiling thread, not by importing this module.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from cnnviz.core.model.stack import Stack, TrainingConfig
from cnnviz.core.run.faults import EngineError

log = logging.getLogger("cnnviz.runner")

TRAINING_REFUSAL = "Pause training to profile: both would share the device, and each would time the other."
BUSY_REFUSAL = "A profile is already running: wait for it, or cancel it."
CANCELLED = "Profiling cancelled."

Source = Callable[[], "tuple[Stack, TrainingConfig | None, str | None] | str"]


@dataclass(frozen=True)
class ProfileRequest:
    """One profile to measure, snapshotted on the GUI thread."""

    stack: Stack
    config: TrainingConfig | None
    device: str | None
    batch_size: int | None


@dataclass(frozen=True)
class Failed:
    """Why a profile ended without a result, as the view says it."""

    message: str
    kind: str = "failed"
    suggested_batch: int | None = None


def measure(request: ProfileRequest, should_stop: Callable[[], bool],
            progress: Callable[[int, int], None]) -> Any:
    """The profile of ``request`` (a :class:`~cnnviz.core.run.profile.Profile`), or a :class:`Failed`.
    Runs on the profiling thread; imports torch."""
    try:
        from cnnviz.core.run import profile

        return profile.profile_stack(request.stack, request.config, batch_size=request.batch_size,
                                     device=request.device, should_stop=should_stop, progress=progress)
    except EngineError as exc:
        if exc.kind == "cancelled":
            return Failed(CANCELLED, kind="cancelled")
        suggested = getattr(exc, "suggested_batch", None)
        return Failed(str(exc), kind=str(exc.kind), suggested_batch=int(suggested) if suggested else None)
    except Exception as exc:  # a programming error: logged in full, shown as a sentence
        log.exception("profiling failed")
        first = (str(exc).splitlines() or [""])[0][:300]
        return Failed(f"Profiling failed unexpectedly ({type(exc).__name__}: {first}); the log has the details.")


class Profiling(QObject):
    """Runs profiles for a :class:`~cnnviz.app.views.profile_view.ProfileView`; see the module docstring."""

    finished = Signal(object)    # the Profile shown
    failed = Signal(str)         # the sentence shown (cancelled included)
    refused = Signal(str)        # a request that was not started, and why
    _progressed = Signal(int, int, int)   # token, done, total (from the profiling thread)
    _done = Signal(int, object)           # token, Profile or Failed (from the profiling thread)

    def __init__(self, view, source: Source, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._source = source
        self._training = False
        self._synced_batch: int | None = None
        self._token = 0
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._progressed.connect(self._on_progress)
        self._done.connect(self._on_done)
        view.profileRequested.connect(self.request)
        view.cancelRequested.connect(self.cancel)

    # ------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """A profiling thread is running (measuring, or ending after a cancel)."""
        return self._thread is not None and self._thread.is_alive()

    def set_training(self, training: bool) -> None:
        """The window trains (or no longer does). Training that starts cancels a running profile."""
        self._training = bool(training)
        if self._training and self.busy:
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

    # ------------------------------------------------------------ requests
    def request(self, batch_size: int | None = None) -> bool:
        """Profile what ``source()`` names now, at ``batch_size`` (else the view's); False when refused."""
        if self._training:
            return self._refuse(TRAINING_REFUSAL)
        if self.busy:
            return self._refuse(BUSY_REFUSAL)
        answer = self._source()
        if isinstance(answer, str):
            return self._refuse(answer or "Nothing to profile.")
        stack, config, device = answer
        batch = int(batch_size) if batch_size is not None else self.view.batch_size
        return self.start(ProfileRequest(stack, config, device, batch))

    def start(self, request: ProfileRequest) -> bool:
        """Start measuring ``request`` on a thread of its own (refused while training or busy)."""
        if self._training:
            return self._refuse(TRAINING_REFUSAL)
        if self.busy:
            return self._refuse(BUSY_REFUSAL)
        self._token += 1
        token = self._token
        stop = threading.Event()
        self._stop = stop

        def work() -> None:
            result = measure(request, stop.is_set, lambda done, total: self._progressed.emit(token, done, total))
            self._done.emit(token, result)

        self.view.set_running(True)
        self._thread = threading.Thread(target=work, name="cnnviz-profile", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Ask the running profile to stop at its next measurement."""
        if self._stop is not None:
            self._stop.set()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel and wait for the profiling thread (the window closing); True when it ended."""
        self.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
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

    def _on_done(self, token: int, result: object) -> None:
        if token != self._token:
            return
        self._stop = None
        if self._thread is not None:
            self._thread.join(5.0)   # it has nothing left to do but return
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
