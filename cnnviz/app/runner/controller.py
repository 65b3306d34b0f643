"""The GUI-thread side of running a stack: requests to the worker, results to the views.

:class:`RunController` listens to the document and the toolbar, snapshots
what the worker needs (the immutable ``Stack`` is its own snapshot), and turns
the worker's signals into views, status-bar text and messages. It never waits
on the worker.

What an edit does:

* a stack with a shape or loss error is not sent to run: the worker drops its
  session and the views say which layer to fix;
* a change of layers, input, loss, optimizer, data set, device or seed builds a
  new session (training stops at the next step boundary and stays paused; the
  status bar says so). Once trained, every layer whose parameter shapes are
  unchanged keeps its trained weights, found by its identity (through moves,
  keyword edits, an invalid stack in between, undo and redo:
  :class:`~cnnviz.core.run.kept.KeptWeights` on the worker), unless the seed or
  the data set changed; a layer whose shape changed starts from the seed and
  gets its trained weights back when the edit is undone; an untrained network
  starts from the seed, exactly as ``cnnviz train`` would build it;
* a new learning rate or batch size goes to the running session at its next
  step, without a rebuild (and so does ``steps``, the horizon of a cosine
  schedule); a new ``schedule`` builds again, keeping the trained weights and
  the step count, as the optimizer does. Training runs until paused, and on
  the cosine schedule it pauses by itself where the rate reaches 0
  (:data:`SCHEDULE_ENDED`).

Training settings live in the stack's ``training`` block: a toolbar change is
an undoable :class:`~cnnviz.core.model.stack.SetStack` edit, so it marks the file
dirty and is saved with it.

The controller is handed what it uses, not the window: the document and its
history, and the small protocols of :mod:`.services` for the rest (the
window's places for views and actions, its selection and status bar, the
dialogs, the settings, the close guards). Its names: ``built`` is the
:class:`~.messages.Built` of the session the views show (the engine's session
lives on the worker thread only); ``target`` the
:class:`~cnnviz.core.run.training.ProbeRequest` the views follow; a merge
token groups the undo steps of one toolbar field.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer

from cnnviz.app.document.undo import History
from cnnviz.app.document.undo import new_session as new_merge_token
from cnnviz.app.runner.data_fit import DataFit
from cnnviz.app.runner.debugging import Debugging
from cnnviz.app.runner.hub import ViewsHub, network_key
from cnnviz.app.runner.messages import Build, Built, RunState, cannot_run_message  # noqa: F401 (also here)
from cnnviz.app.runner.services import Asks, Guard, Places, Remembers, Shell
from cnnviz.app.runner.toolbar import RunToolbar
from cnnviz.app.runner.trained_weights import TrainedWeights
from cnnviz.app.runner.workbench import Workbench
from cnnviz.app.runner.worker import EVAL_EVERY, RunWorker
from cnnviz.core.model.stack import SetStack, Stack, StackDocument, TrainingConfig
from cnnviz.core.run.live import Snapshot
from cnnviz.core.run.training import ProbeRequest, State

log = logging.getLogger("cnnviz.runner")

START_DELAY_MS = 50
"""The worker starts importing torch this long after the window is first shown, so the first paint comes first."""

SHOW_HZ = 12.0
"""While training, probes are shown at most this often: above the rate the loop takes them
(:data:`~cnnviz.core.run.training.PROBE_HZ`), so that every one is shown and the views refresh at least ten
times a second, however the step boundaries fall (LeNet-5: a step every 7-15 ms)."""
STATUS_HZ = 4.0
"""While training, the status bar's run field changes at most this often."""

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"

EDIT_LABELS = {
    "lr": "Change learning rate", "batch_size": "Change batch size", "optimizer": "Change optimizer",
    "data": "Change data set", "device": "Change device", "seed": "Change seed", "schedule": "Change schedule",
}
PAUSED_BY_EDIT = "Training paused: the stack changed, so the network is built again. Press Train to go on."
SCHEDULE_ENDED = "The cosine schedule ended at step {step:,} (lr 0). Reset to train again, or choose constant."
"""What the status bar says when training paused by itself at the end of the cosine schedule."""
LIVE_SETTINGS = ("lr", "batch_size", "steps")
"""Training settings a running session takes at its next step (``steps``: the cosine schedule's horizon); any
other change builds a new session."""


def same_session(a: TrainingConfig, b: TrainingConfig) -> bool:
    """Whether ``b`` can be applied to a session built for ``a`` without building a new one."""
    ignore = dict.fromkeys(LIVE_SETTINGS + ("steps",), None)
    return replace(a, **ignore) == replace(b, **ignore)


class RunController(QObject):
    """Runs the document's stack live; see the module docstring. ``window.runner`` holds it.

    ``shell`` and ``places`` are the window (:mod:`.services`); ``show_message(text, ms)``
    writes the status bar's transient message; ``guards`` is the list of close guards the
    controller adds its own to while it runs; ``stack_path()`` is the current file's path (None when unsaved).

    **Weights beside the stack.** ``weights``, a :class:`~.trained_weights.TrainedWeights`, keeps track of
    them: whether they are trained and saved, the questions before they are lost, ``NAME.safetensors`` written
    beside a saved stack (:meth:`stack_saved`) and loaded beside an opened one (:meth:`stack_opened`).
    ``trained``, ``weights_unsaved`` and the close guard :meth:`weights_guard` are its, here too.
    """

    def __init__(self, document: StackDocument, history: History, *, shell: Shell, places: Places,
                 dialogs: Asks, settings: Remembers, guards: list[Guard],
                 show_message: Callable[[str, int], None], parent: QObject | None = None,
                 threads: int | None = None, eval_every: int | None = EVAL_EVERY,
                 start_delay_ms: int = START_DELAY_MS,
                 stack_path: Callable[[], Path | None] | None = None, runs_folder: Path | None = None) -> None:
        super().__init__(parent)
        self._stack_path = stack_path or (lambda: None)
        self.document = document
        self.history = history
        self.shell = shell
        self.dialogs = dialogs
        self.settings = settings
        self._guards = guards
        self._show_message = show_message
        self.hub = ViewsHub(document, places, self)
        self.toolbar = RunToolbar(places, self)
        self.data_fit = DataFit(self.toolbar, history)
        self.worker = RunWorker(self, threads=threads, eval_every=eval_every)
        self.weights = TrainedWeights(self.worker, document, dialogs=dialogs, show_message=show_message,
                                      stack_path=self._stack_path, last_progress=lambda: self.last_progress,
                                      parent=self)
        self.start_delay_ms = start_delay_ms
        self.generation = 0
        self.state = RunState.LOADING
        self.built: Built | None = None  # of the session the views show
        self.target = replace(ProbeRequest(), **self.hub.needs())   # only what the shown views draw
        self.worker.request_probe(self.target)   # (what the first session's first probe takes)
        self.last_progress = None
        self.forward_ms: float | None = None
        self._posted_key: tuple | None = None
        self._posted_config: TrainingConfig | None = None
        self._refused_message: str | None = None
        self._merge_field: str | None = None
        self._merge_token: int | None = None
        self._closed = False
        self._start_scheduled = False
        self._paused_by_edit = False
        self._schedule_end: int | None = None  # the step where the cosine schedule ended and training paused
        self._pending: tuple | None = None
        self._data_shown: str | None = None   # the data set the toolbar's labels and the curves are of
        self._post_timer = QTimer(self)
        self._post_timer.setSingleShot(True)
        self._post_timer.setInterval(0)
        self._post_timer.timeout.connect(self._send_stack)
        self._shown_at = 0.0
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.timeout.connect(self._show_snapshot)
        self._status_step: int | None = None
        self._status_timer = QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(int(1000 / STATUS_HZ))
        self._status_timer.timeout.connect(lambda: self.state is RunState.RUNNING and self._write_run_status())

        w = self.worker
        w.loading.connect(self._loading)
        w.devicesFound.connect(self.toolbar.set_devices)
        w.ready.connect(self._ready)
        w.refused.connect(self._refused)
        w.probed.connect(self._probed)
        w.progressed.connect(self._progressed)
        w.evaluated.connect(self.hub.add_evaluation)
        w.stateChanged.connect(self._state_changed)
        w.faulted.connect(self._faulted)
        w.scheduleEnded.connect(self._schedule_ended)
        w.crashed.connect(shell.report_exception)
        self.debugging = Debugging(self, places)  # the Confusion and Saliency tabs
        w.evaluated.connect(self.debugging.add_evaluation)
        self.workbench = Workbench(self, places, show_message=show_message, stack_path=self._stack_path,
                                   runs_folder=runs_folder)   # the Profile, Receptive field and Runs tabs

        t = self.toolbar
        t.forward_action.triggered.connect(lambda _=False: self.forward())
        t.train_action.triggered.connect(lambda _=False: self.train())
        t.pause_action.triggered.connect(lambda _=False: self.pause())
        t.step_action.triggered.connect(lambda _=False: self.step())
        t.reset_action.triggered.connect(lambda _=False: self.reset())
        t.trainingEdited.connect(self.edit_training)
        t.sampleChanged.connect(lambda i: self.set_target(replace(self.target, index=i, image=None)))
        t.modeChanged.connect(lambda mode: self.set_target(replace(self.target, mode=mode)))
        t.imageRequested.connect(self.open_image)
        t.folderRequested.connect(self.open_folder)
        t.imageCleared.connect(lambda: self.set_target(replace(self.target, image=None)))
        t.adaptRequested.connect(lambda: self.data_fit.apply(self.document.stack))
        t.adaptDismissed.connect(self.data_fit.dismiss)

        self.hub.filtersWanted.connect(lambda: self.forward())
        self.hub.needsChanged.connect(self._needs_changed)
        self.hub.layerActivated.connect(shell.select_layer)
        self.hub.pathActivated.connect(shell.select_path)
        shell.selectionChanged.connect(self._selection_changed)
        # The document's change events: the one subscription.
        self._unsubscribe = document.subscribe(lambda change: self._stack_changed(change.new))
        guards.append(self.guard)
        guards.append(self.weights_guard)
        shell.closing.connect(self.shutdown)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

        self.hub.show_message("Loading torch…")
        self._set_run_status("loading torch…")
        self.stack_opened()
        self._stack_changed(document.stack)
        self._selection_changed(*shell.selection())
        if shell.isVisible():
            self._schedule_start()
        else:
            shell.installEventFilter(self)

    @property
    def edit_pending(self) -> bool:
        """An edit not yet sent to the worker (edits are gathered for one pass of the event loop)."""
        return self._pending is not None

    @property
    def trained(self) -> bool:
        """The session's weights are not the seed's (trained, or loaded from a file): Save writes them."""
        return self.weights.trained

    @property
    def weights_unsaved(self) -> bool:
        """Trained since the last build from the seed, reset, load or save: Reset, New, Open and Quit ask first."""
        return self.weights.unsaved

    @weights_unsaved.setter
    def weights_unsaved(self, value: bool) -> None:
        self.weights.unsaved = value

    @property
    def _weights_saving(self) -> int:
        return self.weights.saving

    # ================================================================ start and stop
    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.shell and event.type() == QEvent.Type.Show:
            self.shell.removeEventFilter(self)
            self._schedule_start()
        return False

    def _schedule_start(self) -> None:
        if not self._start_scheduled:
            self._start_scheduled = True
            QTimer.singleShot(self.start_delay_ms, self, self.start)  # not after the window is gone

    def start(self) -> None:
        """Start the worker thread (it imports torch, then builds and probes the stack)."""
        if not self._closed:
            self.worker.start()

    def shutdown(self) -> None:
        """Stop training at the next step boundary and join the worker thread (window closing, app quitting)."""
        if self._closed:
            return
        self._closed = True
        self.weights.close()
        for timer in (self._post_timer, self._show_timer, self._status_timer):
            timer.stop()
        self._unsubscribe()
        for guard in (self.guard, self.weights_guard):
            if guard in self._guards:
                self._guards.remove(guard)
        self.workbench.shutdown()
        if not self.worker.shutdown(wait=True):
            log.warning("the runner's thread did not end in time")
        self.workbench.close_runs()

    def guard(self, reason: str) -> bool:
        """The window's close guard: training is running, so ask before closing or replacing the stack."""
        if self.state is not RunState.RUNNING:
            return True
        if not self.dialogs.ask_yes_no(
                "Training is running", "Training is running: stop it?",
                f"Training stops at the end of the current step before {reason}." if reason else ""):
            return False
        self.pause()
        return True

    def weights_guard(self, reason: str) -> bool:
        """The window's close guard for trained weights not saved: ask before closing or replacing the stack."""
        return self.weights.guard(reason)

    # ================================================================ weights beside the stack
    def stack_opened(self) -> None:
        """A stack was opened (or replaced): load the weights file beside it, if any, into the session built next."""
        self.weights.stack_opened()

    def stack_saved(self, stack_path) -> None:
        """The stack was written to ``stack_path``: write the trained weights beside it (on the worker thread)."""
        if not self._closed:
            self.weights.stack_saved(stack_path, runs=self.built is not None)

    # ================================================================ the stack
    def _stack_changed(self, stack: Stack) -> None:
        report = self.document.report  # of this stack: the document infers once per change
        self.hub.set_report(stack, report)
        config = stack.training or TrainingConfig()
        self.toolbar.show_config(config)
        if self._data_shown is not None and config.data != self._data_shown:
            # Another data set: its samples' labels and the curves of the old one describe nothing now.
            self.toolbar.clear_session()
            self.hub.clear_curves()
            self.last_progress = None
            self.data_fit.chosen(config.data)
        self._data_shown = config.data
        self.data_fit.show(stack, config)
        self.workbench.stack_changed()
        self._pending = (stack, report, config)
        self._post_timer.start()

    def _send_stack(self) -> None:
        """Send the newest stack to the worker: edits within one pass of the event loop make one request."""
        if self._pending is None or self._closed:
            return
        stack, report, config = self._pending
        self._pending = None
        keep = not self.weights.take_fresh()
        if not report.ok:
            message = cannot_run_message(report)
            self.weights.take_load()  # a stack that cannot run loads no weights
            if message != self._refused_message:
                self._refused_message = message
                self._posted_key = self._posted_config = None
                self._post(Build(self.generation + 1, None, config, message, keep_weights=keep))
                self._refused(self.generation, "stack", message)  # at once: no need to wait for the worker
            return
        self._refused_message = None
        key = network_key(stack)
        load = self.weights.take_load()
        if load is not None:
            self._posted_key, self._posted_config = key, config
            self._post(Build(self.generation + 1, stack, config, weights=str(load)))
            return
        if keep and key == self._posted_key and self._posted_config is not None and same_session(self._posted_config, config):
            changes = {k: getattr(config, k) for k in LIVE_SETTINGS
                       if getattr(config, k) != getattr(self._posted_config, k)}
            self._posted_config = config
            if changes:
                self.worker.configure(**changes)
            return
        self._posted_key, self._posted_config = key, config
        self._post(Build(self.generation + 1, stack, config, keep_weights=keep))

    def _post(self, build: Build) -> None:
        self.generation = build.generation
        was_running = self.state is RunState.RUNNING
        self.worker.submit(build)
        if self.state.has_session:
            self._set_state(RunState.PAUSED)
        self._paused_by_edit = was_running or (self._paused_by_edit and self.built is None)
        if was_running:
            self._show_message(PAUSED_BY_EDIT, 10000)

    def edit_training(self, field: str, value) -> None:
        """Change one training setting as an undoable edit of the stack's ``training`` block.

        Changes of one field in a row merge into one undo step (one merge token per field).
        """
        stack = self.document.stack
        config = stack.training or TrainingConfig()
        if getattr(config, field) == value:
            return
        if field != self._merge_field:
            self._merge_field, self._merge_token = field, new_merge_token()
        new = replace(stack, training=replace(config, **{field: value}))
        self.history.push_edit(SetStack(new, EDIT_LABELS.get(field, "Change training settings")),
                               session=self._merge_token)

    # ================================================================ requests
    def forward(self) -> None:
        """Run the chosen sample through the network again (F5)."""
        self.worker.request_probe(self.target)

    def train(self) -> None:
        self.worker.train()

    def pause(self) -> None:
        self.worker.pause()

    def step(self) -> None:
        self.worker.step(1)

    def reset(self, ask: bool = True) -> None:
        """Weights back to the seed's; asks first when trained weights are not saved."""
        if ask and not self.weights.may_reset():
            return
        self.worker.reset()

    def _needs_changed(self) -> None:
        """A view that draws gradients was shown or hidden (or the selection moved under it): probes take
        what the shown views draw and no more; one is taken now when the last one lacks it."""
        self.set_target(replace(self.target, **self.hub.needs()))

    def set_target(self, target: ProbeRequest) -> None:
        if target == self.target:
            return
        self.target = target
        self.toolbar.show_image(Path(target.image).name if target.image else "")
        self.worker.request_probe(target)

    def open_image(self) -> None:
        folder = self.settings.last_folder() or str(Path.home())
        path = self.dialogs.open_path("Run an image of yours", folder, IMAGE_FILTER)
        if path:
            self.set_target(replace(self.target, image=str(path)))

    def open_folder(self) -> None:
        folder = self.settings.last_folder() or str(Path.home())
        path = self.dialogs.open_folder("Train on a folder of images (one subfolder per class)", folder)
        if path:
            from cnnviz.core.data import FOLDER_PREFIX

            self.edit_training("data", FOLDER_PREFIX + str(path))

    def live_model(self):
        """A future resolving to a CPU copy of the trained model, or None when it does not run the current stack.

        For threads that export the model (ONNX): wait on it there, never on the GUI thread.
        """
        if self.built is None or network_key(self.built.stack) != network_key(self.document.stack):
            return None
        return self.worker.call_at_boundary(lambda session: copy.deepcopy(session.model).cpu().eval())

    def _selection_changed(self, kind: str, index: int) -> None:
        path = self.shell.selected_path() if kind == "layer" else None   # a layer inside block ``index``, perhaps
        inner = str(path) if path is not None and not path.top_level else None
        # first: a probe the hub asks for carries its weights
        self.worker.select(inner or (index if kind == "layer" else None))
        self.hub.select(kind, index, inner)
        self.workbench.select(kind, index)

    # ================================================================ results
    def _loading(self, text: str) -> None:
        if self.state is RunState.REFUSED:
            return  # the views say what to fix; loading torch meanwhile is no news
        self._set_run_status(text[:1].lower() + text[1:])
        self.hub.show_message(text, keep=True)

    def _ready(self, info: Built) -> None:
        if info.generation != self.generation:
            return
        self.built = info
        self._schedule_end = None
        self.toolbar.set_session(info.classes, info.test_labels)
        if self.target.index >= len(info.test_labels):
            self.target = replace(self.target, index=max(0, len(info.test_labels) - 1))
            self.toolbar.set_sample(self.target.index)
        device = info.device
        self.shell.set_status("device", f"{device.id} · {device.name}", f"{device.label}\n{info.description}")
        if not info.kept:
            self.hub.clear_curves()
            self.last_progress = None
        self.weights.session_built(info)
        notes = self.weights.kept_notes(info) + list(info.notes)
        if self._paused_by_edit:
            notes.insert(0, PAUSED_BY_EDIT)
            self._paused_by_edit = False
        if notes:
            self._show_message(" ".join(notes), 10000)
        if not self.state.has_session:
            self._set_state(RunState.PAUSED)
        self._show_run_status()

    def _refused(self, generation: int, kind: str, message: str) -> None:
        if generation != self.generation or (self.state is RunState.REFUSED and self.hub.message == message):
            return
        self.built = None
        self.toolbar.clear_session()  # no samples now: no "true:" label of the dropped session's
        self.weights.session_refused()
        self._set_state(RunState.REFUSED)
        self.hub.show_message(message)
        self._set_run_status("cannot run", message)
        if kind in ("data", "device", "config"):
            titles = {"data": "Cannot use this data set", "device": "Cannot use this device",
                      "config": "Cannot use these training settings"}
            self.dialogs.error(titles[kind], f"{message}\n\nChoose another in the toolbar, or undo "
                                             f"the change (Ctrl+Z).")

    def _probed(self) -> None:
        """A probe is waiting. While training, show at most SHOW_HZ a second (the newest when the time comes)."""
        if self.state is RunState.RUNNING:
            wait_ms = int(1000 / SHOW_HZ - 1000 * (time.monotonic() - self._shown_at))
            if wait_ms > 0:
                if not self._show_timer.isActive():
                    self._show_timer.start(wait_ms)
                return
        self._show_snapshot()

    def _show_snapshot(self) -> None:
        self._shown_at = time.monotonic()
        snap: Snapshot | None = self.worker.take_snapshot()
        if snap is None or snap.generation != self.generation or self._closed:
            return
        if snap.error and snap.target.image and snap.target == self.target:
            self.dialogs.error("Cannot run this image", snap.error)
            self.set_target(replace(self.target, image=None))
            return
        self.hub.show_snapshot(snap)
        self.debugging.snapshot_shown(snap)
        self.workbench.snapshot_shown(snap)
        if snap.probe is not None:
            self.forward_ms = snap.probe.forward_ms
        self._show_run_status()

    def _progressed(self, progress) -> None:
        self.last_progress = progress
        self.weights.training(progress.step)
        self.hub.add_progress(progress)
        self._show_run_status()

    def _state_changed(self, state: State, step: int) -> None:
        if self.built is None:
            return
        if state is not State.PAUSED:
            self._schedule_end = None
        if state is State.RESET:
            self.hub.clear_curves()
            self.last_progress = None
            self.weights.was_reset()
        elif state is State.RUNNING:
            self._set_state(RunState.RUNNING)
        elif state is State.PAUSED:
            self._set_state(RunState.PAUSED)
        if state is not State.RESET:  # training: before its first progress report
            self.weights.training(step, running=state is State.RUNNING)
        self._show_run_status(step)

    def _faulted(self, error) -> None:
        from cnnviz.core.run.faults import NonFiniteError, OutOfMemory

        self._set_state(RunState.PAUSED)
        dialogs = self.dialogs
        config = self.document.stack.training or TrainingConfig()
        if isinstance(error, NonFiniteError):
            if error.layer is not None and 0 <= error.layer < len(self.document.stack.layers):
                self.shell.select_layer(error.layer)
            lower = config.lr / 10
            if dialogs.ask_yes_no("Training stopped: NaN or Inf", str(error),
                                  f"Lower the learning rate to {lower:g} and reset the weights?"):
                self.edit_training("lr", lower)
                self.reset(ask=False)  # NaN weights are nothing to keep
        elif isinstance(error, OutOfMemory):
            if dialogs.ask_yes_no("Out of memory", str(error),
                                  f"Train with a batch of {error.suggested_batch} instead?"):
                self.edit_training("batch_size", int(error.suggested_batch))
        else:
            dialogs.error("Training stopped", str(error))

    def _schedule_ended(self, step: int) -> None:
        """The worker paused training where the cosine schedule reached 0 (or refused a step past it)."""
        if self._closed:
            return
        self._schedule_end = step
        self._show_message(SCHEDULE_ENDED.format(step=step), 10000)
        self._show_run_status(step)

    # ================================================================ state and status
    def _set_state(self, state: RunState) -> None:
        self.state = state
        self.toolbar.set_state(state)
        self.workbench.set_state(state)

    def _set_run_status(self, text: str, tooltip: str = "") -> None:
        self.shell.set_status("run", text, tooltip)

    def _show_run_status(self, step: int | None = None) -> None:
        """The status bar's run field, at most STATUS_HZ a second while training (each change lays out the bar)."""
        if step is not None:
            self._status_step = step
        if self.state is RunState.RUNNING and self._status_timer.isActive():
            return
        self._status_timer.start()
        self._write_run_status()

    def _write_run_status(self) -> None:
        step, self._status_step = self._status_step, None
        if self.built is None:
            return
        p = self.last_progress
        step = step if step is not None else (p.step if p is not None else self.built.step)
        parts = [f"step {step:,}"]
        if p is not None and self.state is RunState.RUNNING and p.steps_per_second > 0:
            parts.append(f"{p.steps_per_second:,.0f} steps/s")
        if self.forward_ms is not None:
            parts.append(f"forward {self.forward_ms:.1f} ms")
        if self.state is RunState.PAUSED:
            parts.append("paused: the cosine schedule ended" if step == self._schedule_end else "paused")
        tip = self.built.description
        if p is not None:
            tip += f"\nlast {p.window} steps: loss {p.loss:.4g}, accuracy {100 * p.accuracy:.1f}%"
        self._set_run_status(" · ".join(parts), tip)
