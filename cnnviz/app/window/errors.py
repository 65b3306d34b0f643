"""The one place where unexpected errors reach the person (STYLE habit 7).

:class:`ErrorReporter` installs ``sys.excepthook`` (which PySide6 also calls
for an exception raised in a slot), ``threading.excepthook`` and
``faulthandler``. Every unexpected exception is written with its traceback to
``cnnviz.log`` in the log folder and shown through :class:`Dialogs` as a short
message with the traceback behind "Show Details…". An exception raised in a
worker thread is handed to the GUI thread by a queued signal first. The app
keeps running.

A user's mistake (a refused file, an invalid export) is not an exception for
this path: the code that catches it calls :meth:`Dialogs.error` with the
core's message.
"""
from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QObject, QThread, QtMsgType, Signal, qInstallMessageHandler

from cnnviz.app.window.dialogs import Dialogs

log = logging.getLogger("cnnviz")

LOG_NAME = "cnnviz.log"
CRASH_NAME = "crash.log"
REPEAT_WINDOW_S = 3.0  # the same error again within this many seconds is logged, not shown again


def short_message(exc: BaseException, where: str = "") -> str:
    """One or two lines for the dialog: the exception's type and message, never a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 300:
        text = text[:297] + "…"
    head = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"{head}\n(in {where})" if where else head


class ErrorReporter(QObject):
    """Catches what nobody else caught, logs it and tells the person once."""

    _handOver = Signal(str, str)  # message, traceback text: from any thread to the GUI thread

    def __init__(self, dialogs: Dialogs, log_dir: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dialogs = dialogs
        self.log_dir = Path(log_dir)
        self.log_path = self.log_dir / LOG_NAME
        self.crash_path = self.log_dir / CRASH_NAME
        self._handOver.connect(self._show)
        self._showing = False
        self._last: tuple[str, float] = ("", 0.0)
        self._installed = False
        self._previous: dict[str, object] = {}
        self._handler: logging.Handler | None = None
        self._crash_file = None

    # ----------------------------------------------------------------- install
    def install(self, crash_log: bool = True) -> "ErrorReporter":
        if self._installed:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(self.log_path, maxBytes=1 << 20, backupCount=3,
                                                             encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
        log.addHandler(self._handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        self._previous = {"sys": sys.excepthook, "threading": threading.excepthook,
                          "faulthandler": faulthandler.is_enabled()}
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook
        self._previous["qt"] = qInstallMessageHandler(_qt_message)
        if crash_log:
            self._crash_file = open(self.crash_path, "a", encoding="utf-8")  # noqa: SIM115 - must stay open
            self._crash_file.write(f"--- cnnviz started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            self._crash_file.flush()
            faulthandler.enable(file=self._crash_file, all_threads=True)
        self._installed = True
        return self

    def uninstall(self) -> None:
        if not self._installed:
            return
        if sys.excepthook == self.excepthook:
            sys.excepthook = self._previous["sys"]  # type: ignore[assignment]
        if threading.excepthook == self.thread_excepthook:
            threading.excepthook = self._previous["threading"]  # type: ignore[assignment]
        qInstallMessageHandler(self._previous.get("qt"))  # type: ignore[arg-type]
        if self._crash_file is not None:
            faulthandler.disable()
            if self._previous.get("faulthandler"):
                faulthandler.enable(file=sys.__stderr__, all_threads=True)
            self._crash_file.close()
            self._crash_file = None
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        self._installed = False

    # ----------------------------------------------------------------- hooks
    def excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            app = QCoreApplication.instance()
            if app is not None:
                app.quit()
            return
        self.report(exc, tb)

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a worker thread"
        self.report(args.exc_value, args.exc_traceback, where=f"thread {name}")

    def report(self, exc: BaseException, tb: TracebackType | None = None, where: str = "") -> None:
        """Log ``exc`` and show it; safe to call from any thread."""
        tb = tb if tb is not None else exc.__traceback__
        details = "".join(traceback.format_exception(type(exc), exc, tb))
        message = short_message(exc, where)
        try:
            log.error("unexpected error%s\n%s", f" in {where}" if where else "", details.rstrip())
        except Exception:  # noqa: BLE001 - a broken log must not hide the error
            pass
        if self._on_gui_thread():
            self._show(message, details)
        else:
            self._handOver.emit(message, details)

    # ----------------------------------------------------------------- showing
    @staticmethod
    def _on_gui_thread() -> bool:
        app = QCoreApplication.instance()
        return app is not None and QThread.currentThread() == app.thread()

    def _show(self, message: str, details: str) -> None:
        now = time.monotonic()
        if self._showing or (message == self._last[0] and now - self._last[1] < REPEAT_WINDOW_S):
            return
        self._last = (message, now)
        self._showing = True
        try:
            self.dialogs.exception(message, details, str(self.log_path))
        finally:
            self._showing = False


_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message(kind: QtMsgType, context, message: str) -> None:
    log.getChild("qt").log(_QT_LEVELS.get(kind, logging.WARNING), message)
