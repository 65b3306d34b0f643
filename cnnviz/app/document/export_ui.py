"""The Export menu's work: PyTorch code or ONNX written in a background thread (ONNX imports torch
and traces the model), the result handed back to the GUI thread as a signal."""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from cnnviz.core.model import outputs
from cnnviz.core.shapes import infer

log = logging.getLogger("cnnviz.window")


class Exporter(QObject):
    """Exports the window's stack; ``busy`` while one export runs (the actions are disabled meanwhile)."""

    _finished_signal = Signal(str, str, object)  # what, path, error (None on success)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.busy = False
        self._finished_signal.connect(self.finish)

    def _target(self, title: str, suffix: str, filters: str) -> Path | None:
        window = self.window
        report = infer(window.document.stack)
        if report.problem:
            window.dialogs.error("Cannot export yet",
                                 f"The stack cannot run, so it cannot be exported.\n\n{report.problem}")
            if report.first_error is not None:
                window.select_layer(report.first_error.index)
            return None
        if self.busy:
            window.dialogs.error("Export in progress", "Another export is still running; try again when it is done.")
            return None
        if window.files.path:
            base = window.files.path.with_suffix(suffix)
        else:
            stem = re.sub(r"[^A-Za-z0-9_]+", "_", window.document.stack.name.lower()).strip("_") or "model"
            base = Path(window.settings.last_folder() or Path.home()) / (stem + suffix)
        chosen = window.dialogs.save_path(title, str(base), filters)
        if not chosen:
            return None
        target = Path(chosen)
        target = target if target.suffix else target.with_suffix(suffix)
        try:  # the save dialog asked before replacing a file; never the open stack, never a device or folder
            return outputs.check_target(target, inputs=(window.files.path,), force=True, what="the export")
        except outputs.OutputRefused as exc:
            window.dialogs.error("Cannot export there", str(exc))
            return None

    def export_python(self, style: str = "module") -> None:
        label = "PyTorch code" + (" (functional)" if style == "functional" else "")
        target = self._target(f"Export {label}", ".py", "Python files (*.py);;All files (*)")
        if target is None:
            return
        stack = self.window.document.stack

        def work() -> None:
            from cnnviz.core import export
            outputs.atomic_write(target, export.to_python(stack, style=style).encode("utf-8"))

        self._run(label, target, work)

    def export_onnx(self) -> None:
        target = self._target("Export ONNX", ".onnx", "ONNX models (*.onnx);;All files (*)")
        if target is None:
            return
        stack = self.window.document.stack
        live_model = self.window.runner.live_model() if self.window.runner is not None else None  # a future: the trained weights

        def work() -> None:
            from cnnviz.core import export
            model = None
            if live_model is not None:
                try:
                    model = live_model.result(timeout=60)
                except Exception:  # noqa: BLE001 - no live model in time: export the seed's weights, and say so
                    log.warning("the live model was not available; exporting freshly initialised weights")
            export.to_onnx(stack, target, model=model)

        self._run("ONNX", target, work)

    def _run(self, what: str, target: Path, work: Callable[[], None]) -> None:
        """Export in a worker thread (ONNX imports torch and traces the model); the result comes back as a signal."""
        self.busy = True
        for action in (self.window.export_module_action, self.window.export_functional_action, self.window.export_onnx_action):
            action.setEnabled(False)
        self.window.statusBar().showMessage(f"Exporting {what} to {target.name}…")

        def run() -> None:
            error: BaseException | None = None
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread, which decides
                error = exc
            self._finished_signal.emit(what, str(target), error)

        threading.Thread(target=run, name=f"export {what}", daemon=True).start()

    def finish(self, what: str, path: str, error: BaseException | None) -> None:
        self.busy = False
        for action in (self.window.export_module_action, self.window.export_functional_action, self.window.export_onnx_action):
            action.setEnabled(True)
        if error is None:
            self.window.statusBar().showMessage(f"Exported {what} to {path}", 8000)
            return
        self.window.statusBar().clearMessage()
        if isinstance(error, (ValueError, ImportError, OSError)) and not isinstance(error, UnicodeError):
            name = type(error).__name__
            if isinstance(error, ImportError):
                text = f"Exporting {what} needs a package that is not installed: {error}"
            elif isinstance(error, OSError):
                text = f"{path} could not be written: {error.strerror or error}"
            else:
                text = str(error)
            log.info("export %s failed: %s: %s", what, name, error)
            self.window.dialogs.error(f"Cannot export {what}", text)
        else:
            self.window.report_exception(error)
