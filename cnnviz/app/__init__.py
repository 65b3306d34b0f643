"""The Qt side of cnnviz: the explorer window.

``run(path)`` is what ``cnnviz`` and ``cnnviz FILE`` call. Importing this
package imports no Qt; :mod:`cnnviz.app.window.main_window` does (but never torch: the
runner's worker thread imports it once the window is shown).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def prepare_qt_environment() -> None:
    """What the process needs before Qt makes its first thread; call before the ``QApplication``.

    ``QT_NO_GUI_THREADPOOL``: Qt's raster engine hands every fill and blit of more than about 96 lines to
    a pool of one thread per core and waits for them. Here the other core is the training thread's: a
    paint of the live views woke the pool there, pre-empting the step (the worker runs at a lower
    priority) for a fill that costs less than the hand-off. Painting stays on the GUI thread. A value the
    person set is kept.
    """
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")


def run(path: str | None = None, argv: list[str] | None = None) -> int:
    """Create the application, install the error hooks, open the window on ``path`` (or LeNet-5) and run."""
    prepare_qt_environment()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from cnnviz import __version__
    from cnnviz.app.window.dialogs import Dialogs
    from cnnviz.app.window.errors import ErrorReporter
    from cnnviz.app.window.main_window import MainWindow, app_icon
    from cnnviz.app.window.settings import APP_NAME, ORG_NAME, Locations, Settings

    QApplication.setOrganizationName(ORG_NAME)
    QApplication.setApplicationName(APP_NAME)
    QApplication.setApplicationVersion(__version__)
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationDisplayName("cnnviz")
    app.setDesktopFileName("cnnviz")
    icon = app_icon()
    if not icon.isNull():
        app.setWindowIcon(icon)

    locations = Locations.default().ensure()
    dialogs = Dialogs()
    reporter = ErrorReporter(dialogs, locations.log).install()
    previous_sigint = None
    window = None
    try:
        window = MainWindow(Path(path) if path else None, settings=Settings(locations.config / "cnnviz.ini"),
                            autosave_dir=locations.state, dialogs=dialogs, live=True)
        dialogs.parent = window
        window.error_reporter = reporter
        window.show()
        from cnnviz.app.window.file_open import FileOpenFilter

        app.installEventFilter(FileOpenFilter(window))
        QTimer.singleShot(0, window.files.offer_recovery)
        previous_sigint = _close_on_interrupt(window)
        return app.exec()
    finally:
        if window is not None:
            _delete_now(window)
        if previous_sigint is not None:
            import signal
            signal.signal(signal.SIGINT, previous_sigint)
        reporter.uninstall()


def _delete_now(window) -> None:
    """The closed window's Qt objects deleted while Python still runs (:meth:`MainWindow.delete_closed`, the
    crash it prevents). Closing it ran its close event, which asked about unsaved changes and stopped the
    worker; a window still open (the loop ended some other way) is left alone, its changes with it."""
    import shiboken6

    if shiboken6.isValid(window) and not window.isVisible():
        window.delete_closed()


def _close_on_interrupt(window):
    """Ctrl+C in the terminal closes the window the usual way (asking about unsaved changes).

    Returns the handler it replaced, or None if signals cannot be set here.
    """
    import signal

    from PySide6.QtCore import QTimer

    try:
        previous = signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, window.close))
    except ValueError:  # not the main thread: leave signals alone
        return None
    tick = QTimer(window)  # Python runs signal handlers only between bytecodes: wake it now and then
    tick.timeout.connect(lambda: None)
    tick.start(300)
    return previous


__all__ = ["prepare_qt_environment", "run"]
