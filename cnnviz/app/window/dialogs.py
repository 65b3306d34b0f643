"""Every dialog the window opens goes through one :class:`Dialogs` object.

Tests replace it with a recorder that answers from a script (see
``tests/app/conftest.py``), so no real modal dialog ever blocks a test run,
and the window's code reads as decisions, not widget plumbing.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QMessageBox,
    QSizePolicy,
    QSpacerItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cnnviz.app.document.services import Answer

STACK_FILTER = "cnnviz stacks (*.cnnviz);;All files (*)"
SAVE, DISCARD, CANCEL = Answer.SAVE, Answer.DISCARD, Answer.CANCEL

TITLE_BAR_ROOM = 160
"""Pixels a window manager's title bar takes beside the title: the icon and the close, maximise, minimise buttons."""


def title_width(title: str) -> int:
    """The width a dialog needs for its title bar to show ``title`` whole (a bold title font, a little larger)."""
    font = QFont(QApplication.font("QMdiSubWindowTitleBar") if QApplication.instance() else QFont())
    font.setBold(True)
    if font.pointSizeF() > 0:
        font.setPointSizeF(font.pointSizeF() * 1.15)
    return QFontMetrics(font).horizontalAdvance(title) + TITLE_BAR_ROOM


def fit_title(box: QMessageBox, title: str) -> QMessageBox:
    """Keep ``box`` at least as wide as its title needs, so the window manager never elides it ("Training is…g").

    A message box sizes itself to its text and ignores ``setMinimumWidth``; a spacer across the bottom of
    its grid layout is what it respects.
    """
    layout = box.layout()
    if isinstance(layout, QGridLayout):
        layout.addItem(QSpacerItem(title_width(title), 0, QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed),
                       layout.rowCount(), 0, 1, layout.columnCount())
    else:
        box.setMinimumWidth(title_width(title))
    return box


class Dialogs:
    """Opens dialogs on behalf of ``parent``; one method per kind of question."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent
        self._text_windows: list[QDialog] = []

    # ----------------------------------------------------------------- telling
    def error(self, title: str, message: str, details: str = "") -> None:
        """A user's mistake or a refused file: the message says what and where."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self.parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        if details:
            box.setDetailedText(details)
        fit_title(box, title)
        box.exec()

    def exception(self, message: str, details: str, log_path: str = "") -> None:
        """A programming error: a short message, the traceback behind "Show Details…"."""
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error", message, QMessageBox.StandardButton.Ok,
                          self.parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        info = "cnnviz keeps running, but what you were doing may not have finished. Saving your work is a good idea."
        if log_path:
            info += f"\n\nThe details are also in {log_path}."
        box.setInformativeText(info)
        box.setDetailedText(details)
        fit_title(box, "Unexpected error")
        box.exec()

    def show_text(self, title: str, html: str) -> QDialog:
        """A non-modal window of rich text (keyboard shortcuts, about)."""
        dialog = QDialog(self.parent)
        dialog.setWindowTitle(title)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(dialog)
        view = QTextBrowser(dialog)
        view.setOpenExternalLinks(True)
        view.setHtml(html)
        layout.addWidget(view)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=dialog)
        buttons.rejected.connect(dialog.close)
        layout.addWidget(buttons)
        dialog.resize(560, 620)
        dialog.show()
        self._text_windows = [d for d in self._text_windows if d.isVisible()] + [dialog]
        return dialog

    # ----------------------------------------------------------------- asking
    def ask_unsaved(self, name: str, reason: str = "") -> str:
        """SAVE, DISCARD or CANCEL for a stack with unsaved changes."""
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"The stack \u201c{name}\u201d has changes that are not saved.",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.parent)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the name comes from the file: never markup
        box.setInformativeText(f"Save them before {reason}?" if reason else "Save them?")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        fit_title(box, "Unsaved changes")
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return SAVE
        if answer == QMessageBox.StandardButton.Discard:
            return DISCARD
        return CANCEL

    def ask_yes_no(self, title: str, question: str, details: str = "") -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        if details:
            box.setInformativeText(details)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        fit_title(box, title)
        return box.exec() == QMessageBox.StandardButton.Yes

    def open_path(self, title: str, folder: str = "", filters: str = STACK_FILTER) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, folder, filters)
        return path or None

    def open_folder(self, title: str, folder: str = "") -> str | None:
        path = QFileDialog.getExistingDirectory(self.parent, title, folder)
        return path or None

    def save_path(self, title: str, suggested: str = "", filters: str = STACK_FILTER) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, suggested, filters)
        return path or None
