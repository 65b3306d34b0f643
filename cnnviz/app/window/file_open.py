"""Files handed to a running cnnviz by the desktop (macOS sends a QFileOpenEvent on double-click)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject


class FileOpenFilter(QObject):
    """Opens the file of each ``QEvent.FileOpen`` in the window, asking first about unsaved changes."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched, event) -> bool:  # noqa: N802  (Qt's name)
        if event.type() == QEvent.Type.FileOpen:
            path = event.file()
            if path:
                self._window.files.open_path(path)
                return True
        return False
