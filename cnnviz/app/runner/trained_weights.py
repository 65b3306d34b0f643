"""The trained weights' bookkeeping on the GUI thread: are they saved, the questions before they are lost,
and the ``NAME.safetensors`` file beside the stack.

:class:`TrainedWeights` belongs to the :class:`~.controller.RunController`, which tells it what the worker
reports (a session built, refused, stepped, reset) and when the stack is opened or saved. It asks through the
dialogs, writes the status bar's messages and runs its save job on the worker; it knows nothing else of the
run. No torch here: the save job imports it on the worker thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from cnnviz.app.runner.hub import network_key
from cnnviz.app.runner.messages import Built
from cnnviz.app.runner.services import Asks
from cnnviz.app.runner.worker import RunWorker
from cnnviz.core.model.stack import StackDocument

WEIGHTS_SUFFIX = ".safetensors"
"""Trained weights are saved beside the stack, ``NAME.safetensors`` (:func:`cnnviz.core.run.weights.beside`,
not imported here: it imports torch, which only the worker thread does)."""


def weights_beside(stack_path) -> Path:
    return Path(stack_path).with_suffix(WEIGHTS_SUFFIX)


class TrainedWeights(QObject):
    """Whether the session's weights are trained and saved; ``runner.weights`` holds it.

    ``worker`` runs the save job; ``dialogs`` asks and tells; ``document`` is the stack saved;
    ``show_message(text, ms)`` writes the status bar's transient message; ``stack_path()`` is the current
    file's path (None when unsaved); ``last_progress()`` the controller's last progress report (None: none).

    **Weights beside the stack.** :meth:`stack_saved` (the file controller's
    ``saved``) writes the session's weights to ``NAME.safetensors`` beside the
    saved stack, on the worker thread at its next step boundary, when they are
    not the seed's (trained, or loaded from a file); a network that has not
    trained writes nothing and leaves an older file there as it is (the status
    bar says so). :meth:`stack_opened` (``stackReplaced``) loads
    ``NAME.safetensors`` beside an opened stack into the session built for it,
    before its first probe. ``unsaved`` is true once the network has
    trained since the last build from the seed, reset, load or save; Reset and
    the close guard (New, Open, Quit) ask first then.
    """

    _weightsSaved = Signal(object, object, object)  # the weights file, the step saved (or None), the error

    def __init__(self, worker: RunWorker, document: StackDocument, *, dialogs: Asks,
                 show_message: Callable[[str, int], None], stack_path: Callable[[], Path | None],
                 last_progress: Callable[[], object | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.document = document
        self.dialogs = dialogs
        self._show_message = show_message
        self._stack_path = stack_path
        self._last_progress = last_progress
        self._load_next: Path | None = None  # the weights file to load into the next build
        self._fresh_next = False  # the next build keeps nothing of the session it replaces (another stack)
        self.trained = False
        """The session's weights are not the seed's (trained, or loaded from a file): Save writes them."""
        self.unsaved = False
        """Trained since the last build from the seed, reset, load or save: Reset, New, Open and Quit ask first."""
        self._saved_step = 0   # the step count of the weights last saved or loaded (0: the seed's)
        self.saving = 0
        """Save jobs sent to the worker and not yet written."""
        self._closed = False
        self._weightsSaved.connect(self._weights_written)

    def close(self) -> None:
        """The runner is shutting down: ask nothing more, and say nothing of a save that ends after."""
        self._closed = True

    # ================================================================ questions
    def guard(self, reason: str) -> bool:
        """The window's close guard for trained weights not saved: ask before closing or replacing the stack."""
        if self._closed or not self.unsaved:
            return True
        return self.dialogs.ask_yes_no(
            "Trained weights not saved", "The trained weights are not saved: discard them?",
            f"Save (Ctrl+S) writes them beside the stack as NAME{WEIGHTS_SUFFIX}. "
            f"Yes discards them{' before ' + reason if reason else ''}; No keeps everything as it is.")

    def may_reset(self) -> bool:
        """Whether Reset may put the weights back to the seed's: asks first when trained weights are not saved."""
        return not self.unsaved or self.dialogs.ask_yes_no(
            "Trained weights not saved", "The trained weights are not saved: reset them anyway?",
            f"Save (Ctrl+S) writes them beside the stack as NAME{WEIGHTS_SUFFIX}.")

    # ================================================================ what the next build takes
    def take_fresh(self) -> bool:
        """Whether the build being sent keeps nothing of the session it replaces (another stack); asked once."""
        fresh, self._fresh_next = self._fresh_next, False
        return fresh

    def take_load(self) -> Path | None:
        """The weights file to load into the build being sent (None: none); asked once."""
        load, self._load_next = self._load_next, None
        return load

    # ================================================================ what the worker reports
    def session_built(self, info: Built) -> None:
        """A session was built for the current stack (the controller's ``ready``)."""
        if not info.kept:
            self.trained = False
            # Weights trained for layers this network does not have now are kept for undo: still unsaved work.
            self.unsaved = info.remembered_step > self._saved_step
            if not info.remembered_step:
                self._saved_step = 0
        if info.weights_loaded:
            self.trained, self.unsaved, self._saved_step = True, False, info.step
            self._show_message(f"Loaded the trained weights in {Path(info.weights_loaded).name}.", 10000)
        if info.weights_error:
            self.dialogs.error("Cannot load the trained weights",
                               f"The stack is open with its seed's weights; the weights beside it were not "
                               f"loaded.\n\n{info.weights_error}")

    @staticmethod
    def kept_notes(info: Built) -> list[str]:
        """The status bar's note on what the session kept of the trained weights (none: nothing kept)."""
        return [info.kept[:1].upper() + info.kept[1:] + "."] if info.kept else []

    def session_refused(self) -> None:
        """The worker dropped the session but keeps its trained weights for undo: still unsaved if they were."""
        self.trained = False

    def training(self, step: int, running: bool = False) -> None:
        """The session is at ``step`` (``running``: it trains); past the weights last saved, they are unsaved."""
        if running or step > self._saved_step:
            self.trained = self.unsaved = True

    def was_reset(self) -> None:
        """The worker put the weights back to the seed's."""
        self.trained = self.unsaved = False
        self._saved_step = 0
        self._show_message("Weights back to the seed's: step 0.", 5000)

    # ================================================================ weights beside the stack
    def stack_opened(self) -> None:
        """A stack was opened (or replaced): load the weights file beside it, if any, into the session built next."""
        self.worker.forget_weights()  # another stack's layers: nothing kept for undo applies to it
        self._fresh_next = True  # and the session of the stack it replaces is not remembered either
        self.unsaved = False
        path = self._stack_path()
        beside = weights_beside(path) if path is not None else None
        self._load_next = beside if beside is not None and beside.exists() else None

    def stack_saved(self, stack_path, *, runs: bool) -> None:
        """The stack was written to ``stack_path``: write the trained weights beside it (on the worker thread).

        ``runs``: a session of the stack is built (the views show one).
        """
        if self._closed:
            return
        target = weights_beside(stack_path)
        if not runs and self.unsaved:
            self._show_message(f"The stack cannot run as it is, so its trained weights were not written to "
                               f"{target.name}: undo to a stack that runs (Ctrl+Z) and save again.", 15000)
            return
        if not self.trained or not runs:
            if target.exists():
                self._show_message(f"The network has not trained, so {target.name} beside the stack was left "
                                   f"as it was.", 10000)
            return
        stack = self.document.stack
        key = network_key(stack)

        def save(session):
            if session is None or network_key(session.stack) != key:
                raise RuntimeError("the network was being built again for the edited stack; save again once "
                                   "it has been built")
            from cnnviz.core.run import weights

            weights.save(session.model, stack, target, stack_path=stack_path)
            return session.step_count

        future = self.worker.call_at_boundary(save)
        self.saving += 1

        def done(f) -> None:
            if f.cancelled():
                return
            error = f.exception()
            result = None if error is not None else f.result()
            if result is None and error is None:
                error = RuntimeError("no network is running")
            self._weightsSaved.emit(target, result, error)

        future.add_done_callback(done)

    def _weights_written(self, target: Path, step, error) -> None:
        self.saving = max(0, self.saving - 1)
        if self._closed:
            return
        if error is not None:
            self.dialogs.error("Trained weights not saved",
                               f"The stack was saved, but the trained weights were not written to "
                               f"{target}.\n\n{error}")
            return
        self._saved_step = int(step)
        p = self._last_progress()
        self.unsaved = p is not None and p.step > self._saved_step
        self._show_message(f"Saved the trained weights (step {self._saved_step:,}) to {target.name}.", 10000)
