"""What the document's controllers need from the window, as small protocols: they are handed a
dialog router and the settings, and never reach into the window for them.

The window's :class:`~cnnviz.app.window.dialogs.Dialogs` and
:class:`~cnnviz.app.window.settings.Settings` satisfy these; the tests hand
in a scripted stand-in.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Protocol


class Answer(str, enum.Enum):
    """What the person chose when asked about unsaved changes."""

    SAVE = "save"
    DISCARD = "discard"
    CANCEL = "cancel"


class Asks(Protocol):
    """The dialogs a controller may open (``Dialogs`` in the window)."""

    def error(self, title: str, message: str, details: str = "") -> None: ...

    def ask_unsaved(self, name: str, reason: str = "") -> Answer | str: ...

    def ask_yes_no(self, title: str, question: str, details: str = "") -> bool: ...

    def open_path(self, title: str, folder: str = "", filters: str = ...) -> str | None: ...

    def save_path(self, title: str, suggested: str = "", filters: str = ...) -> str | None: ...


class Remembers(Protocol):
    """The settings a controller reads and writes (``Settings`` in the window)."""

    def last_folder(self) -> str: ...

    def set_last_folder(self, folder: str | Path) -> None: ...

    def add_recent_file(self, path: str | Path) -> list[str]: ...

    def remove_recent_file(self, path: str | Path) -> None: ...

    def last_clean_close(self) -> float: ...

    def mark_clean_close(self, when: float | None = None) -> None: ...
