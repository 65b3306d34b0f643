"""A view's frame: :class:`ViewPanel` shows a one-line hint until its content has data, and places its pages
by hand (see its geometry methods: a new reading must not lay out the window around the view)."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import shiboken6
from PySide6 import QtCore, QtGui, QtWidgets

if TYPE_CHECKING:
    from cnnviz.app.views._common import Redraw


class _Pages:
    """A :class:`ViewPanel`'s pages (the hint, the content), one shown at a time, each the panel's size."""

    def __init__(self, panel: QtWidgets.QWidget) -> None:
        # Not a reference: the panel holds its pages, and a cycle through them would leave the panel to the
        # cyclic garbage collector, which may delete it in the middle of a paint.
        self._panel_ref = weakref.ref(panel)
        self._pages: list[QtWidgets.QWidget] = []
        self._current = -1

    @property
    def _panel(self) -> QtWidgets.QWidget:
        return self._panel_ref()

    def addWidget(self, widget: QtWidgets.QWidget) -> int:  # noqa: N802 (QStackedLayout's name)
        widget.setParent(self._panel)
        self._pages.append(widget)
        if self._current < 0:
            self._current = 0
            widget.setVisible(True)
        else:
            widget.setVisible(False)
        self.place()
        self._panel.updateGeometry()
        return len(self._pages) - 1

    def currentIndex(self) -> int:  # noqa: N802 (QStackedLayout's name)
        return self._current

    def setCurrentIndex(self, index: int) -> None:  # noqa: N802 (QStackedLayout's name)
        if not 0 <= index < len(self._pages) or index == self._current:
            return
        old, self._current = self._pages[self._current], index
        new = self._pages[index]
        new.setGeometry(self._panel.rect())
        focused = old.isAncestorOf(QtWidgets.QApplication.focusWidget()) if old.isVisible() else False
        new.setVisible(True)
        old.setVisible(False)
        if focused:
            new.setFocus()

    def _alive(self) -> list[QtWidgets.QWidget]:
        """The pages still there (Qt deletes them before their panel: its size is asked for meanwhile)."""
        return [page for page in self._pages if shiboken6.isValid(page)]

    def place(self) -> None:
        panel = self._panel
        if 0 <= self._current < len(self._pages) and panel is not None and shiboken6.isValid(panel):
            page = self._pages[self._current]
            if shiboken6.isValid(page) and page.geometry() != panel.rect():
                page.setGeometry(panel.rect())

    def hint(self, of) -> QtCore.QSize:
        """The largest of ``of(page)`` over the pages, as a stacked layout's hint is."""
        size = QtCore.QSize(0, 0)
        for page in self._alive():
            size = size.expandedTo(of(page))
        return size


class ViewPanel(QtWidgets.QWidget):
    """A view with an empty state: a one-line hint in place of the content until data arrives.

    Subclasses build their content widget, pass it to :meth:`_set_content`,
    call :meth:`_show_content` when they have something to draw and
    :meth:`clear` to go back to the hint (``hint``, else the class's ``EMPTY_HINT``).
    :meth:`_hint_button` puts a button under the hint (what to do to get data: *Evaluate now*).
    The hint is plain text: a message may hold a file's or a class's name, which is not markup.
    """

    EMPTY_HINT = "No data yet"
    shownChanged = QtCore.Signal(bool)   # the view was shown (its tab came to the front) or hidden

    def __init__(self, parent: QtWidgets.QWidget | None = None, hint: str | None = None) -> None:
        super().__init__(parent)
        self._redraws: list[Redraw] = []   # what this view redraws with: told when the view is shown
        self._default_hint = hint or self.EMPTY_HINT
        self._stack = _Pages(self)
        self._hints_told: tuple | None = None   # the size hints the layouts above were last told
        self._hint_page = QtWidgets.QWidget(self)
        page = QtWidgets.QVBoxLayout(self._hint_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.addStretch(1)
        self._hint = QtWidgets.QLabel(self._default_hint, self._hint_page)
        self._hint.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self._hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._hint.setWordWrap(True)
        self._hint.setObjectName("emptyHint")
        self._hint.setForegroundRole(QtGui.QPalette.ColorRole.PlaceholderText)
        self._hint.setMargin(12)
        page.addWidget(self._hint)
        self._hint_buttons = QtWidgets.QHBoxLayout()
        page.addLayout(self._hint_buttons)
        page.addStretch(1)
        self._stack.addWidget(self._hint_page)

    def _hint_button(self, text: str) -> QtWidgets.QPushButton:
        """A button under the empty view's hint, centred (connect its ``clicked``)."""
        button = QtWidgets.QPushButton(text, self._hint_page)
        if self._hint_buttons.count() == 0:
            self._hint_buttons.addStretch(1)
            self._hint_buttons.addStretch(1)
        self._hint_buttons.insertWidget(self._hint_buttons.count() - 1, button)
        return button

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._stack.place()
        self._tell_if_changed()   # the content's hints may have changed while the panel was hidden
        for redraw in self._redraws:
            redraw.shown()
        if not event.spontaneous():
            self.shownChanged.emit(True)

    def hideEvent(self, event: QtGui.QHideEvent) -> None:  # noqa: N802 (Qt's name)
        super().hideEvent(event)
        if not event.spontaneous():   # (a minimised window hides nothing the probes should stop taking)
            self.shownChanged.emit(False)

    def _set_content(self, widget: QtWidgets.QWidget) -> None:
        self._stack.addWidget(widget)

    # -------------------------------------------------------------- geometry
    # The pages are placed by hand, not by a layout of the panel's own. A reading that changes the text of a
    # label in the content (every probe while training) lays out the content again; through a layout here it
    # would lay out every layout above as well, up to the main window's docks (Qt tells the parent of a laid
    # out widget unconditionally), and that was a tenth of the GUI thread's time. The layouts above are told
    # only when the content's size hints really change.
    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return self._stack.hint(lambda w: w.sizeHint())

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return self._stack.hint(lambda w: w.minimumSizeHint())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._stack.place()

    def event(self, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.LayoutRequest:   # a page was laid out again
            self._tell_if_changed()
            self._stack.place()
            return True
        return super().event(event)

    def _tell_if_changed(self) -> None:
        """Tell the layouts above when the size hints differ from those they were last told."""
        hints = (self.sizeHint(), self.minimumSizeHint())
        if hints != self._hints_told:
            self._hints_told = hints
            self.updateGeometry()

    def _show_content(self) -> None:
        if self._stack.currentIndex() != 1:
            self._stack.setCurrentIndex(1)

    def _show_hint(self, message: str | None) -> None:
        self._hint.setText(message or self._default_hint)
        self._stack.setCurrentIndex(0)

    @property
    def is_empty(self) -> bool:
        """True while the hint is shown instead of data."""
        return self._stack.currentIndex() == 0

    @property
    def hint_text(self) -> str:
        return self._hint.text()

    def clear(self, message: str | None = None) -> None:
        """Drop the data and show ``message`` (or the view's default hint)."""
        self._show_hint(message)
