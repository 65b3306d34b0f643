"""A one-line plain-text label that elides its text ("layer 3 · Conv2d · a very long na…") instead of cutting it.

``text()`` stays the whole text; what is painted fits the label's width, the
whole text in the tooltip whenever it does not. Beside another widget in a
header row it never runs under that widget, however long a layer's name is.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip

ELLIPSIS = "\u2026"


class ElidedLabel(QtWidgets.QLabel):
    """A single-line, plain-text QLabel whose painted text is elided at the right to fit."""

    def __init__(self, text: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.setWordWrap(False)
        self._own_tip = ""
        self._tip_is_text = False
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        if text:
            self.setText(text)

    # ---------------------------------------------------------------- what is shown
    def displayed_text(self) -> str:
        """The text as painted: ``text()`` elided to the label's width."""
        width = self.contentsRect().width() - 2 * self.margin()
        return self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideRight, max(0, width))

    def is_elided(self) -> bool:
        return self.displayed_text() != self.text()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._update_tip()

    def setToolTip(self, tip: str) -> None:
        self._own_tip = tip
        super().setToolTip(tip)
        self._update_tip()

    def minimumSizeHint(self) -> QtCore.QSize:
        hint = super().minimumSizeHint()
        return QtCore.QSize(min(hint.width(), self.fontMetrics().horizontalAdvance(ELLIPSIS * 3)), hint.height())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_tip()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        rect = self.contentsRect().adjusted(self.margin(), self.margin(), -self.margin(), -self.margin())
        align = self.alignment()
        if not (align & QtCore.Qt.AlignmentFlag.AlignVertical_Mask):
            align |= QtCore.Qt.AlignmentFlag.AlignVCenter
        self.style().drawItemText(painter, rect, int(align), self.palette(), self.isEnabled(), self.displayed_text(),
                                  self.foregroundRole())

    def _update_tip(self) -> None:
        """The whole text as the tooltip while it is elided (a tooltip set by the caller wins)."""
        if self._own_tip and not self._tip_is_text:
            return
        elided = self.is_elided()
        tip = tooltip(self.text()) if elided else ""
        self._tip_is_text = elided
        QtWidgets.QLabel.setToolTip(self, tip)


__all__ = ["ELLIPSIS", "ElidedLabel"]
