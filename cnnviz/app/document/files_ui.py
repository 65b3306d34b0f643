"""Opening, saving, recent files, examples, dropped files, autosave and recovery.

:class:`FileController` owns the current file's path and the "unsaved"
state (the undo history's clean index); every way of replacing the stack
(new, open, recent, example, drop, close) first asks the close guards and,
for unsaved changes, the person. Reading and writing go through
:mod:`cnnviz.core.model.files` (validated, atomic); a refused file leaves the
current stack untouched and shows the core's located message.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from cnnviz.app.document.services import Answer, Asks, Remembers
from cnnviz.app.document.undo import History
from cnnviz.core.model import files, outputs
from cnnviz.core.model.stack import SetStack, Stack, StackDocument

log = logging.getLogger("cnnviz.files")

RECOVERY_NAME = "recovery.cnnviz"
RECOVERY_META = "recovery.json"
AUTOSAVE_INTERVAL_MS = 30_000
AUTOSAVE_DEBOUNCE_MS = 2_000

Guard = Callable[[str], bool]  # guard(reason) -> True to go on ("closing", "opening another stack", …)


def suggested_file_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.").lower()
    return (slug or "stack") + files.SUFFIX


class FileController(QObject):
    """The current file, its unsaved state, and every way of replacing or writing the stack."""

    stackReplaced = Signal()       # after new/open/example/recover: the history was cleared
    stateChanged = Signal()        # path or unsaved state changed: update the title
    recentChanged = Signal()
    saved = Signal(object)         # the Path just written by save/save as (the runner writes the weights beside it)

    def __init__(self, document: StackDocument, history: History, settings: Remembers, dialogs: Asks,
                 autosave_dir: str | Path, parent: QObject | None = None,
                 autosave_interval_ms: int = AUTOSAVE_INTERVAL_MS,
                 autosave_debounce_ms: int = AUTOSAVE_DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.document = document
        self.history = history
        self.settings = settings
        self.dialogs = dialogs
        self.autosave_dir = Path(autosave_dir)
        self.path: Path | None = None
        self.guards: list[Guard] = []
        self._forced_dirty = False
        history.cleanChanged.connect(lambda _clean: self.stateChanged.emit())

        self._interval = QTimer(self)
        self._interval.setInterval(autosave_interval_ms)
        self._interval.timeout.connect(self.write_recovery)
        self._interval.start()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(autosave_debounce_ms)
        self._debounce.timeout.connect(self.write_recovery)
        unsubscribe = document.subscribe(lambda change: self._debounce.start())
        self.destroyed.connect(lambda *_: unsubscribe())
        # Read what an earlier session left before this one opens anything (opening clears the recovery file).
        self._pending: tuple[Stack, dict] | None = None
        self._pending = self._find_recovery()

    # ----------------------------------------------------------------- state
    @property
    def recovery_path(self) -> Path:
        return self.autosave_dir / RECOVERY_NAME

    @property
    def recovery_meta_path(self) -> Path:
        return self.autosave_dir / RECOVERY_META

    def is_dirty(self) -> bool:
        return self._forced_dirty or not self.history.isClean()

    def display_name(self) -> str:
        return self.document.stack.name or "Untitled"

    # ----------------------------------------------------------------- asking
    def may_replace(self, reason: str) -> bool:
        """True if the stack may be closed or replaced: every guard agrees and unsaved work is saved or discarded."""
        for guard in list(self.guards):
            if not guard(reason):
                return False
        if not self.is_dirty():
            return True
        answer = self.dialogs.ask_unsaved(self.display_name(), reason)
        if answer == Answer.SAVE:
            return self.save()
        return answer == Answer.DISCARD

    # ----------------------------------------------------------------- replacing
    def _replace(self, stack: Stack, path: Path | None) -> None:
        self.history.replace_all(stack)
        self._forced_dirty = False
        self.path = path
        self.remove_recovery()
        self.stackReplaced.emit()
        self.stateChanged.emit()

    def new_stack(self, stack: Stack | None = None) -> bool:
        if not self.may_replace("starting a new stack"):
            return False
        self._replace(stack if stack is not None else Stack(), None)
        return True

    def read(self, path: str | Path) -> Stack | None:
        """The stack in ``path``, or None after telling the person why it cannot be used."""
        try:
            return files.load(path)
        except files.StackFileError as exc:
            self.dialogs.error("Cannot open this stack file", f"{Path(path).name} was not opened.\n\n{exc}")
            return None

    def open_dialog(self) -> bool:
        if not self.may_replace("opening another stack"):
            return False
        folder = self.settings.last_folder() or (str(self.path.parent) if self.path else str(Path.home()))
        chosen = self.dialogs.open_path("Open stack", folder)
        if not chosen:
            return False
        return self.open_path(chosen, ask=False)

    def open_path(self, path: str | Path, ask: bool = True) -> bool:
        """Open ``path`` in place of the current stack; False (stack untouched) if refused or cancelled."""
        path = Path(path)
        if ask and not self.may_replace("opening another stack"):
            return False
        stack = self.read(path)
        if stack is None:
            if not path.exists():
                self.settings.remove_recent_file(path)
                self.recentChanged.emit()
            return False
        self._replace(stack, path.resolve())
        self.settings.add_recent_file(path)
        self.settings.set_last_folder(path.resolve().parent)
        self.recentChanged.emit()
        log.info("opened %s", path)
        return True

    def open_example(self, path: str | Path, ask: bool = True) -> bool:
        """An example opens as an unsaved copy, so Save asks where (the bundled file stays as it is)."""
        if ask and not self.may_replace("opening an example"):
            return False
        stack = self.read(path)
        if stack is None:
            return False
        self._replace(stack, None)
        return True

    # ----------------------------------------------------------------- saving
    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.write(self.path)

    def save_as(self) -> bool:
        folder = Path(self.settings.last_folder() or (self.path.parent if self.path else Path.home()))
        name = self.path.name if self.path else suggested_file_name(self.display_name())
        chosen = self.dialogs.save_path("Save stack as", str(folder / name))
        if not chosen:
            return False
        target = Path(chosen)
        if target.suffix.lower() != files.SUFFIX:
            target = target.with_name(target.name + files.SUFFIX)
        return self.write(target)

    def write(self, path: str | Path) -> bool:
        path = Path(path)
        try:
            files.save(self.document.stack, path)
        except outputs.OutputRefused as exc:
            self.dialogs.error("Cannot save", f"{exc}.\n\nYour stack is still open; choose another name.")
            return False
        except OSError as exc:
            self.dialogs.error("Cannot save", f"{path} could not be written: {exc.strerror or exc}.\n\n"
                                              f"Your stack is still open; try another folder.")
            return False
        self.path = path.resolve()
        self._forced_dirty = False
        self.history.setClean()
        self.remove_recovery()
        self.settings.add_recent_file(self.path)
        self.settings.set_last_folder(self.path.parent)
        self.recentChanged.emit()
        self.stateChanged.emit()
        log.info("saved %s", path)
        self.saved.emit(self.path)
        return True

    # ----------------------------------------------------------------- autosave
    def write_recovery(self) -> bool:
        """Write the unsaved stack to the recovery file (or remove it when there is nothing unsaved)."""
        if not self.is_dirty():
            self.remove_recovery()
            return False
        try:
            self.autosave_dir.mkdir(parents=True, exist_ok=True)
            files.save(self.document.stack, self.recovery_path)
            meta = {"path": str(self.path) if self.path else None, "name": self.display_name(), "time": time.time()}
            tmp = self.recovery_meta_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp, self.recovery_meta_path)
        except OSError as exc:
            log.warning("autosave to %s failed: %s", self.recovery_path, exc)
            return False
        return True

    def remove_recovery(self) -> None:
        if self._pending is not None:
            return  # an earlier session's copy stays until the person has answered whether to recover it
        for p in (self.recovery_path, self.recovery_meta_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", p, exc)

    def _find_recovery(self) -> tuple[Stack, dict] | None:
        if not self.recovery_path.is_file():
            return None
        try:
            written = self.recovery_path.stat().st_mtime
        except OSError:
            return None
        if written <= self.settings.last_clean_close():
            self._pending = None
            self.remove_recovery()
            return None
        try:
            stack = files.load(self.recovery_path)
        except files.StackFileError as exc:
            log.warning("ignoring an unreadable recovery file: %s", exc)
            self._pending = None
            self.remove_recovery()
            return None
        try:
            meta = json.loads(self.recovery_meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                meta = {}
        except (OSError, ValueError):
            meta = {}
        meta.setdefault("time", written)
        return stack, meta

    def offer_recovery(self) -> bool:
        """Ask whether to bring back an autosaved stack; True if it was recovered."""
        found, self._pending = self._pending, None
        if found is None:
            return False
        stack, meta = found
        try:
            when = time.strftime("%H:%M", time.localtime(float(meta.get("time", 0))))
            day = time.strftime("%Y-%m-%d", time.localtime(float(meta.get("time", 0))))
        except (TypeError, ValueError, OverflowError):
            when, day = "?", ""
        if day and day != time.strftime("%Y-%m-%d"):
            when = f"{day} {when}"
        original = meta.get("path") if isinstance(meta.get("path"), str) else None
        where = f"Its file was {original}." if original else "It had never been saved."
        if not self.dialogs.ask_yes_no("Recover unsaved stack",
                                       f"Recover unsaved stack \u2018{stack.name}\u2019 from {when}?",
                                       f"cnnviz closed without saving it. {where} "
                                       f"No deletes the autosaved copy."):
            self.remove_recovery()
            return False
        self.recover(stack, original)
        return True

    def recover(self, stack: Stack, original: str | None) -> None:
        """Show ``stack`` as unsaved changes: on top of its saved file (so undo goes back to it) when that opens."""
        base = None
        if original and Path(original).is_file():
            try:
                base = files.load(original)
            except files.StackFileError:
                base = None
        if base is not None:
            self._replace(base, Path(original).resolve())
            self.history.push_edit(SetStack(stack, "Recover unsaved changes"))
        else:
            self._replace(stack, None)
            self._forced_dirty = True
        self.write_recovery()
        self.stateChanged.emit()

    def closed_cleanly(self) -> None:
        """The window closes with nothing unsaved kept: forget the recovery file."""
        self._interval.stop()
        self._debounce.stop()
        self.remove_recovery()
        self.settings.mark_clean_close()


__all__ = ["FileController", "Guard", "suggested_file_name"]
