"""A status bar label whose width follows its widest text, so that new text does not lay out the window."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel


class SteadyLabel(QLabel):
    """A label of a fixed size that grows to fit a wider text and never shrinks while it shows text.

    A plain label asks its parent for a new layout at every new text, and
    a status bar's new layout asks the main window for one: while training,
    the run field's text changes a few times a second ("step 1,234 ·
    140 steps/s · forward 0.5 ms"), and each change repainted the whole
    window under the docks (1400×785 pixels, measured). A widget of a fixed
    size tells no one when its text changes, so this one only asks when the
    text needs more room. Emptied, it lets go of its width: the next text
    sets it afresh.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._width = 0

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        if not text:
            self._width = 0
            self.setMinimumSize(0, 0)
            self.setMaximumSize(16777215, 16777215)   # QWIDGETSIZE_MAX: free again
            return
        hint = self.sizeHint()
        if hint.width() > self._width or self.maximumHeight() != hint.height():
            self._width = max(self._width, hint.width())
            self.setFixedSize(self._width, hint.height())
