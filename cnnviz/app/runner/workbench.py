"""The run's other tabs, each a feature that owns its views: Profile, Receptive field, Runs.

:class:`Workbench` creates them beside the controller's own views and is the one place
the controller tells about what they follow: the selected row (:meth:`select`), each
snapshot shown (:meth:`snapshot_shown`), the run state (:meth:`set_state`), a changed
stack (:meth:`stack_changed`) and the window closing (:meth:`shutdown`). Each feature
reads the rest from the controller it is handed (the document, the session shown, the
worker), so adding one is a file of its own and a line here, not lines in the controller.

* **Profile** (:mod:`.profiling`): per-layer times and memory of a training step of the
  document's stack on the session's device, measured on the worker at a step boundary
  (training waits while it runs); an edit of the network or the window closing cancels it.
* **Receptive field** (:mod:`.receptive`): the selected map pixel's field, measured on
  the worker from torch's gradients, beside the theoretical one and its growth by layer.
* **Runs** (:mod:`.run_log`, :mod:`~cnnviz.app.views.runs`): every run of weights is
  recorded as JSON lines under the platform's data folder; the Runs tab lists, compares,
  re-opens and deletes them.

GUI thread only; no torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QCoreApplication, QObject, Signal

from cnnviz.app.runner.messages import RunState, cannot_run_message
from cnnviz.app.runner.profiling import Profiling
from cnnviz.app.runner.receptive import ReceptiveFields
from cnnviz.app.runner.run_log import RunLog
from cnnviz.app.views.profile_view import ProfileView
from cnnviz.app.views.runs import RunsView
from cnnviz.core.model.stack import TrainingConfig
from cnnviz.core.run import run_store


class Workbench(QObject):
    """The Profile, Receptive field and Runs tabs of the running network; see the module docstring."""

    reopenRequested = Signal(object)   # a Stack (its training block the run's settings), to open as new

    def __init__(self, runner, places, *, show_message: Callable[[str, int], None],
                 stack_path: Callable[[], Path | None], runs_folder: Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent or runner)
        self.runner = runner
        self.profile_view = ProfileView()
        self.profile_view.setObjectName("view_profile")
        places.add_view(self.profile_view, "center", "Profile")
        self.profiling = Profiling(self.profile_view, self._profile_source, self,
                                   call_at_boundary=runner.worker.call_at_boundary)
        self.profile_view.layerActivated.connect(runner.shell.select_layer)

        self.receptive = ReceptiveFields(runner, places, self)

        folder = Path(runs_folder) if runs_folder is not None else run_store.default_folder()
        self.run_log = RunLog(runner.worker, self._run_context, folder, self, source=stack_path)
        self.run_log.failed.connect(lambda text: show_message(text, 10000))
        self.runs = RunsView(folder, lambda title, question: runner.dialogs.ask_yes_no(title, question))
        self.runs.setObjectName("view_runs")
        places.add_view(self.runs, "center", "Runs")
        self.run_log.written.connect(self.runs.refresh_soon)
        self.runs.message.connect(lambda text: show_message(text, 10000))
        self.runs.reopenRequested.connect(lambda stack, config: self.reopenRequested.emit(stack))

    # ================================================================ what the controller tells
    def select(self, kind: str, index: int) -> None:
        self.receptive.select(kind, index)

    def snapshot_shown(self, snap) -> None:
        self.receptive.snapshot_shown(snap)

    def set_state(self, state: RunState) -> None:
        self.profiling.set_training(state is RunState.RUNNING)

    def stack_changed(self) -> None:
        self.profiling.stack_changed()   # a profile of another network (or device) is cancelled
        self.profiling.sync_batch()   # the box follows the training block's batch size when that changes

    def shutdown(self) -> None:
        """Before the worker stops: cancel a profile; after it stopped, :meth:`close_runs`."""
        self.profiling.shutdown()

    def close_runs(self) -> None:
        """The worker has stopped: record its last queued progress and evaluation, and end the run."""
        QCoreApplication.sendPostedEvents(self.run_log)
        self.run_log.close()

    # ================================================================ what the features read
    def _profile_source(self):
        """What the Profile tab measures: the document's stack and training block on the session's device."""
        stack, report = self.runner.document.stack, self.runner.document.report
        if not report.ok:
            return cannot_run_message(report)
        config = stack.training or TrainingConfig()
        built = self.runner.built
        device = built.device.id if built is not None else config.device
        return stack, config, device

    def _run_context(self):
        """The stack, settings and device of the session being trained, for its run record."""
        built = self.runner.built
        if built is not None:
            return built.stack, built.config, built.device.id
        stack = self.runner.document.stack
        return stack, stack.training or TrainingConfig(), "cpu"
