"""Undo/redo as a thin adapter over the core's edits (STYLE habit 3).

Every change to the stack is a core :class:`~cnnviz.core.model.stack.Edit`,
pushed through :meth:`History.push_edit`: ``QUndoStack.push`` runs the
command's ``redo``, which applies the edit once (so subscribers hear of it
once), and a command whose edit changed nothing marks itself obsolete, so the
stack drops it. :class:`EditCommand` only remembers the edit and the inverse
the core returned; its text is the edit's ``describe``. Consecutive edits from
one editing *session* (one spin box while it keeps the focus) merge into a
single undo step when the core says they merge.
"""
from __future__ import annotations

import itertools

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoCommand, QUndoStack

from cnnviz.core.model.stack import Edit, SetLoss, SetStack, Stack, StackDocument

_MERGE_ID = 0x636E76  # any fixed id: Qt only asks commands with equal ids to merge
_sessions = itertools.count(1)


def new_session() -> int:
    """A fresh token: edits pushed with the same token may merge into one undo step."""
    return next(_sessions)


def merge_edits(first: Edit, later: Edit) -> Edit | None:
    """What the core's ``merge`` gives; whole-value edits (loss, stack) of one session also merge."""
    merged = first.merge(later)
    if merged is None and type(first) is type(later) and isinstance(first, (SetLoss, SetStack)):
        merged = later
    return merged


class EditCommand(QUndoCommand):
    """One undo step: a core edit and the inverse the core gave when it was applied."""

    def __init__(self, document: StackDocument, edit: Edit, text: str, session: int | None) -> None:
        super().__init__(text)
        self.document = document
        self.edit = edit
        self.inverse: Edit | None = None
        self.before = document.stack
        self.session = session
        self.failure: Exception | None = None

    def redo(self) -> None:
        try:
            inverse = self.document.apply(self.edit)
        except Exception as exc:  # noqa: BLE001 - a bad edit changed nothing: the stack drops it, push_edit raises
            self.failure = exc
            inverse = None
        if inverse is None:
            self.setObsolete(True)  # the edit changed nothing: QUndoStack.push drops the command
        else:
            self.inverse = inverse

    def undo(self) -> None:
        if self.inverse is not None:
            self.document.apply(self.inverse)

    def id(self) -> int:
        return _MERGE_ID if self.session is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if (not isinstance(other, EditCommand) or other.session != self.session or self.session is None
                or other.isObsolete()):
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
        """Apply ``edit`` (``push`` runs the command's ``redo``) and record it; False if it changed nothing."""
        before = self.document.stack
        command = EditCommand(self.document, edit, text or edit.describe(before), session)
        self.push(command)  # Qt may delete an obsolete command here; its Python attributes stay readable
        if command.failure is not None:
            raise command.failure
        return self.document.stack is not before

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
