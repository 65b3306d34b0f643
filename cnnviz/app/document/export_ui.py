"""The Export menu's work: PyTorch code or ONNX written in a background thread (ONNX imports torch
and traces the model), the result handed back to the GUI thread as a signal."""
from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from cnnviz.app.document.services import Asks, Remembers
from cnnviz.core.model import outputs
from cnnviz.core.model.stack import StackDocument

log = logging.getLogger("cnnviz.window")


class Exporter(QObject):
    """Exports the document's stack; ``busy`` while one export runs.

    It is handed what it uses, not the window: the document, the dialogs and
    the settings (:mod:`.services`), and a few callables for the rest (the
    open file's path, selecting a layer, the live model with its trained
    weights, the status line, enabling the export actions, reporting a bug).
    """

    _finished_signal = Signal(str, str, object)  # what, path, error (None on success)

    def __init__(self, document: StackDocument, dialogs: Asks, settings: Remembers, *,
                 stack_path: Callable[[], Path | None], select_layer: Callable[[int], None],
                 live_model: Callable[[], Future | None], status: Callable[[str, int], None],
                 set_busy: Callable[[bool], None], report_exception: Callable[[BaseException], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document, self.dialogs, self.settings = document, dialogs, settings
        self._stack_path, self._select_layer, self._live_model = stack_path, select_layer, live_model
        self._status, self._set_busy, self._report_exception = status, set_busy, report_exception
        self.busy = False
        self._finished_signal.connect(self.finish)

    def _target(self, title: str, suffix: str, filters: str) -> Path | None:
        report = self.document.report
        if report.problem:
            self.dialogs.error("Cannot export yet",
                               f"The stack cannot run, so it cannot be exported.\n\n{report.problem}")
            if report.first_error is not None:
                self._select_layer(report.first_error.index)
            return None
        if self.busy:
            self.dialogs.error("Export in progress", "Another export is still running; try again when it is done.")
            return None
        opened = self._stack_path()
        if opened:
            # net.cnnviz → net_model.py, whose weights (net_model.safetensors) leave the stack's own
            # net.safetensors alone; ONNX keeps the plain name (net.onnx holds its weights inside).
            base = opened.with_name(f"{opened.stem}_model{suffix}") if suffix == ".py" else opened.with_suffix(suffix)
        else:
            stem = re.sub(r"[^A-Za-z0-9_]+", "_", self.document.stack.name.lower()).strip("_") or "model"
            base = Path(self.settings.last_folder() or Path.home()) / (stem + suffix)
        chosen = self.dialogs.save_path(title, str(base), filters)
        if not chosen:
            return None
        target = Path(chosen)
        target = target if target.suffix else target.with_suffix(suffix)
        try:  # the save dialog asked before replacing a file; never the open stack, never a device or folder
            return outputs.check_target(target, inputs=(opened,), force=True, what="the export")
        except outputs.OutputRefused as exc:
            self.dialogs.error("Cannot export there", str(exc))
            return None

    def export_python(self, style: str = "module") -> None:
        """The code; with a live model, its trained weights beside it (``NAME.safetensors``, loaded by
        ``build_model(WEIGHTS)``) and the training data's class names and normalisation."""
        label = "PyTorch code" + (" (functional)" if style == "functional" else "")
        target = self._target(f"Export {label}", ".py", "Python files (*.py);;All files (*)")
        if target is None:
            return
        stack = self.document.stack
        opened = self._stack_path()
        live_model = self._live_model()  # a future: the trained weights
        if live_model is not None:
            from cnnviz.core import export

            try:  # before any work: the weights beside the code must be writable, and not the stack's own
                export.check_targets(target, inputs=(opened,), force=True, protect=self._saved_weights(opened))
            except outputs.OutputRefused as exc:
                live_model.cancel()
                self.dialogs.error("Cannot export there", str(exc))
                return

        def work() -> None:
            from cnnviz.core import export
            model = None
            if live_model is not None:
                try:
                    model = live_model.result(timeout=60)
                except Exception:  # noqa: BLE001 - no live model in time: export the code alone, and say so
                    log.warning("the live model was not available; exporting the code without weights")
            if model is None:
                outputs.atomic_write(target, export.to_python(stack, style=style).encode("utf-8"))
                return
            classes, mean, std = _training_data(stack)
            export.write_python_with_weights(stack, target, model, style, classes=classes, mean=mean, std=std,
                                             inputs=(opened,), force=True, protect=self._saved_weights(opened))

        self._run(label, target, work)

    @staticmethod
    def _saved_weights(opened: Path | None) -> tuple[Path, ...]:
        """The weights the window saves beside the open stack (``NAME.safetensors``): never replaced by an export."""
        return (opened.with_suffix(".safetensors"),) if opened else ()

    def export_onnx(self) -> None:
        target = self._target("Export ONNX", ".onnx", "ONNX models (*.onnx);;All files (*)")
        if target is None:
            return
        stack = self.document.stack
        live_model = self._live_model()  # a future: the trained weights

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
        self._set_busy(True)
        self._status(f"Exporting {what} to {target.name}…", 0)

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
        self._set_busy(False)
        if error is None:
            self._status(f"Exported {what} to {path}", 8000)
            return
        self._status("", 0)
        if isinstance(error, (ValueError, ImportError, OSError)) and not isinstance(error, UnicodeError):
            name = type(error).__name__
            if isinstance(error, ImportError):
                text = f"Exporting {what} needs a package that is not installed: {error}"
            elif isinstance(error, OSError):
                text = f"{path} could not be written: {error.strerror or error}"
            else:
                text = str(error)
            log.info("export %s failed: %s: %s", what, name, error)
            self.dialogs.error(f"Cannot export {what}", text)
        else:
            self._report_exception(error)


def _training_data(stack) -> tuple[tuple[str, ...] | None, tuple[float, ...] | None, tuple[float, ...] | None]:
    """The class names and normalisation of the data the live model trains on (the stack's ``training``
    block, or the default); (None, None, None) when they cannot be read (the export goes on without them)."""
    from cnnviz.core import data
    from cnnviz.core.model.stack import TrainingConfig

    config = stack.training or TrainingConfig()
    try:
        split = data.load(config.data, stack.input.shape, config.seed)
    except Exception as exc:  # noqa: BLE001 - a folder gone since training: the code and weights are still worth having
        log.info("no class names or normalisation in the export: %s", exc)
        return None, None, None
    return split.classes, split.mean, split.std
