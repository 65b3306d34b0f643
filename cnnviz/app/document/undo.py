"""Undo/redo as a thin adapter over the core's edits (STYLE habit 3).

Every change to the stack is a core :class:`~cnnviz.core.stack.Edit`, applied
through :meth:`History.push_edit`; :class:`EditCommand` only remembers the
edit and the inverse the core returned. Consecutive edits from one editing
*session* (one spin box while it keeps the focus) merge into a single undo
step when the core says they merge.
"""
from __future__ import annotations

import itertools

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoCommand, QUndoStack

from cnnviz.core.model.stack import (
    Edit,
    InsertLayer,
    MoveLayer,
    RemoveLayer,
    ReplaceLayer,
    SetInput,
    SetLoss,
    SetStack,
    Stack,
    StackDocument,
)

_MERGE_ID = 0x636E76  # any fixed id: Qt only asks commands with equal ids to merge
_sessions = itertools.count(1)


def new_session() -> int:
    """A fresh token: edits pushed with the same token may merge into one undo step."""
    return next(_sessions)


def describe(edit: Edit, before: Stack) -> str:
    """The undo text of ``edit`` applied to ``before`` ("Change kernel_size of Conv2d")."""
    def label(i: int) -> str:
        return before.layers[i].label if 0 <= i < len(before.layers) else "layer"

    if isinstance(edit, InsertLayer):
        return f"Add {edit.layer.label}"
    if isinstance(edit, RemoveLayer):
        return f"Delete {label(edit.index)}"
    if isinstance(edit, MoveLayer):
        return f"Move {label(edit.source)}"
    if isinstance(edit, ReplaceLayer):
        key = (edit.key or "").partition(".")[2]
        if key == "name":
            return f"Rename {label(edit.index)}"
        return f"Change {key} of {label(edit.index)}" if key else f"Change {label(edit.index)}"
    if isinstance(edit, SetInput):
        return "Change input"
    if isinstance(edit, SetLoss):
        return "Change loss" if edit.loss.type == before.loss.type else f"Use {edit.loss.type}"
    return edit.text


def merge_edits(first: Edit, later: Edit) -> Edit | None:
    """What the core's ``merge`` gives; whole-value edits (loss, stack) of one session also merge."""
    merged = first.merge(later)
    if merged is None and type(first) is type(later) and isinstance(first, (SetLoss, SetStack)):
        merged = later
    return merged


class EditCommand(QUndoCommand):
    """One undo step: a core edit and the inverse the core gave when it was applied."""

    def __init__(self, document: StackDocument, edit: Edit, inverse: Edit, before: Stack, text: str,
                 session: int | None) -> None:
        super().__init__(text)
        self.document = document
        self.edit = edit
        self.inverse = inverse
        self.before = before
        self.session = session
        self._applied = True  # the edit was applied before the push, so the first redo() does nothing

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self.inverse = self.document.apply(self.edit)

    def undo(self) -> None:
        self.document.apply(self.inverse)

    def id(self) -> int:
        return _MERGE_ID if self.session is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditCommand) or other.session != self.session or self.session is None:
            return False
        merged = merge_edits(self.edit, other.edit)
        if merged is None:
            return False
        self.edit = merged
        self.setText(other.text())
        if self.document.stack == self.before:
            self.setObsolete(True)
        return True


class History(QUndoStack):
    """The undo stack of one :class:`StackDocument`: the only way the window changes the stack."""

    def __init__(self, document: StackDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document

    def push_edit(self, edit: Edit, session: int | None = None, text: str | None = None) -> bool:
        """Apply ``edit`` and record it; False (nothing changed) if the result is the same stack."""
        before = self.document.stack
        new, inverse = edit.apply(before)
        if new == before:
            return False
        self.document.apply(edit)  # the same edit again, so subscribers hear of it exactly once
        command = EditCommand(self.document, edit, inverse, before, text or describe(edit, before), session)
        self.push(command)
        return True

    def replace_all(self, stack: Stack) -> None:
        """A new stack outside the history (open, new): the history is cleared and marked clean."""
        self.clear()
        self.document.reset(stack)
        self.setClean()



def is_history_key(event) -> bool:
    """Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y: keys that should reach the stack's history even from a number field."""
    from PySide6.QtGui import QKeySequence

    return (event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)
            or event.keyCombination().toCombined() == QKeySequence("Ctrl+Y")[0].toCombined())
