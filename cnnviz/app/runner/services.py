"""What the runner needs from the window around it, as small protocols: the controller, the views hub and the
toolbar are handed these (and the document and its history), and never reach into the window for them.

The main window satisfies :class:`Places` and :class:`Shell` as it is, its
:class:`~cnnviz.app.window.dialogs.Dialogs` satisfies :class:`Asks` and its
:class:`~cnnviz.app.window.settings.Settings` :class:`Remembers`;
:func:`cnnviz.app.runner.attach` picks them out of the window.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu, QToolBar, QWidget

Guard = Callable[[str], bool]
"""Asked before the stack is closed or replaced, with the reason ("closing", …): False keeps it."""


class Places(Protocol):
    """Where the runner's views, actions and toolbars go (the main window's integration points)."""

    run_toolbar: QToolBar
    run_menu: QMenu
    view_menu: QMenu

    def add_view(self, widget: QWidget, area: str = "center", title: str = "") -> QWidget: ...

    def add_run_action(self, action: QAction, toolbar: bool = True) -> None: ...

    def addToolBar(self, area: Qt.ToolBarArea, toolbar: QToolBar) -> None: ...

    def addToolBarBreak(self, area: Qt.ToolBarArea = ...) -> None: ...

    def resizeDocks(self, docks: Sequence[QDockWidget], sizes: Sequence[int],
                    orientation: Qt.Orientation) -> None: ...


class Shell(Protocol):
    """The rest of the window the runner reads and tells: the selected row, the status bar's fields, the error
    reporter, and when it is shown (the worker starts then) and closing (it stops then)."""

    selectionChanged: Any  # Signal(str, int): kind ("input", "layer", "loss", ""), layer index (-1 unless a layer)
    closing: Any           # Signal(): the close was accepted

    def selection(self) -> tuple[str, int]: ...

    def select_layer(self, index: int) -> None: ...

    def selected_path(self) -> Any: ...   # the LayerPath of the selected layer, inside a block too (None: none)

    def select_path(self, path: Any) -> None: ...

    def set_status(self, field: str, text: str, tooltip: str = "") -> None: ...

    def report_exception(self, exc: BaseException) -> None: ...

    def isVisible(self) -> bool: ...

    def installEventFilter(self, watcher: QObject) -> None: ...

    def removeEventFilter(self, watcher: QObject) -> None: ...


class Asks(Protocol):
    """The dialogs the runner opens (``Dialogs`` in the window)."""

    def error(self, title: str, message: str, details: str = "") -> None: ...

    def ask_yes_no(self, title: str, question: str, details: str = "") -> bool: ...

    def open_path(self, title: str, folder: str = "", filters: str = ...) -> str | None: ...

    def open_folder(self, title: str, folder: str = "") -> str | None: ...


class Remembers(Protocol):
    """The settings the runner reads (``Settings`` in the window)."""

    def last_folder(self) -> str: ...
