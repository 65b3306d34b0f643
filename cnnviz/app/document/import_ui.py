"""File → Import ONNX…: an ONNX model read into a stack (SPEC §3.2), saved where the person chooses as
``NAME.cnnviz`` with its weights beside it (``NAME.safetensors``), then opened through the file
controller, so the runner loads those weights into the session it builds (``stackReplaced`` →
``RunController.stack_opened``).

Reading a large model and writing its weights (which imports torch) runs on a worker thread; the result
comes back to the GUI thread as a signal. A model that cannot be imported leaves the open stack as it was
and writes nothing, and the dialog says which node and why.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cnnviz.app.document.files_ui import FileController, suggested_file_name
from cnnviz.app.document.services import Asks, Remembers
from cnnviz.core.model import files, outputs

log = logging.getLogger("cnnviz.window")

ONNX_FILTERS = "ONNX models (*.onnx);;All files (*)"
STACK_FILTERS = "cnnviz stacks (*.cnnviz);;All files (*)"


class OnnxImporter(QObject):
    """Imports ONNX models for the window; ``busy`` while one import runs.

    Handed what it uses: the file controller (which asks about unsaved work and opens the result), the
    dialogs and settings (:mod:`.services`), and callables for the status line, the busy state and
    reporting a bug.
    """

    finished = Signal(object, object)  # the stack path written (None on failure), the error (None on success)
    _done = Signal(object, object, str)

    def __init__(self, file_controller: FileController, dialogs: Asks, settings: Remembers, *,
                 status: Callable[[str, int], None] = lambda text, ms: None,
                 set_busy: Callable[[bool], None] = lambda busy: None,
                 report_exception: Callable[[BaseException], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.files, self.dialogs, self.settings = file_controller, dialogs, settings
        self._status, self._set_busy = status, set_busy
        self._report_exception = report_exception
        self.busy = False
        self._done.connect(self._finish)

    def import_onnx(self) -> bool:
        """Ask for the model and where its stack goes, then import it in the background; False if cancelled
        or refused at once."""
        if self.busy:
            self.dialogs.error("Import in progress", "Another import is still running; try again when it is done.")
            return False
        if not self.files.may_replace("importing an ONNX model"):
            return False
        folder = self.settings.last_folder() or (str(self.files.path.parent) if self.files.path else str(Path.home()))
        chosen = self.dialogs.open_path("Import ONNX model", folder, ONNX_FILTERS)
        if not chosen:
            return False
        model_path = Path(chosen)
        suggested = Path(model_path).with_name(suggested_file_name(model_path.stem))
        target = self.dialogs.save_path("Save the imported stack as", str(suggested), STACK_FILTERS)
        if not target:
            return False
        stack_path = Path(target)
        if stack_path.suffix.lower() != files.SUFFIX:
            stack_path = stack_path.with_name(stack_path.name + files.SUFFIX)
        from cnnviz.core import importer

        try:  # the save dialog asked before replacing the stack; its weights beside it go with it
            importer.check_targets(stack_path, model_path, force=True)
        except (outputs.OutputRefused, ValueError) as exc:
            self.dialogs.error("Cannot import there", str(exc))
            return False
        self.start(model_path, stack_path)
        return True

    def start(self, model_path: Path, stack_path: Path, input_shape: tuple[int, int, int] | None = None) -> None:
        """Read ``model_path`` and write ``stack_path`` (and its weights) on a worker thread."""
        self.busy = True
        self._set_busy(True)
        self._status(f"Importing {model_path.name}…", 0)

        def run() -> None:
            from cnnviz.core import importer

            error: BaseException | None = None
            try:
                imported = importer.read(model_path, input_shape)
                importer.write(imported, stack_path, model_path, force=True)
            except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread, which decides
                error = exc
            self._done.emit(stack_path if error is None else None, error, model_path.name)

        threading.Thread(target=run, name="import onnx", daemon=True).start()

    def _finish(self, stack_path: Path | None, error: BaseException | None, model_name: str) -> None:
        self.busy = False
        self._set_busy(False)
        self._status("", 0)
        if error is None and stack_path is not None:
            if self.files.open_path(stack_path, ask=False):  # the runner loads NAME.safetensors beside it
                self._status(f"Imported {model_name} as {stack_path.name}", 8000)
            self.finished.emit(stack_path, None)
            return
        self.finished.emit(None, error)
        if _is_users(error):
            log.info("import of %s refused: %s", model_name, error)
            self.dialogs.error("Cannot import this model", f"{model_name} was not imported; nothing was "
                                                           f"written.\n\n{_text(error)}")
        elif self._report_exception is not None:
            self._report_exception(error)
        else:
            raise error


def _is_users(error: BaseException | None) -> bool:
    """A refusal the person can act on (the model, the target, memory), not a bug."""
    from cnnviz.core import importer
    from cnnviz.core.run.faults import EngineError

    return isinstance(error, (importer.ImportRefused, outputs.OutputRefused, OSError, EngineError))


def _text(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, outputs.OutputRefused):
        return f"It could not be written: {error.strerror or error}"
    return str(error)
