"""A one-line rich-text reading painted by one QWidget (the softmax view's caption).

A new reading ten times a second while training is a few ``drawStaticText`` calls (the names and words laid
out once and kept), not a rich-text layout of a QLabel and of the layouts around it: the GUI thread shares
the GIL with the training thread, and every Python call made per refresh slows the training down.
"""
from __future__ import annotations

from typing import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import escaped, tooltip

Segment = tuple[str, bool, str | None]   # a caption's run: (text, bold, colour name or None for the text colour)
SEPARATOR = "  ·  "
"""A run of this text between two parts of a reading: where the line breaks when the reading needs two."""


class CaptionLine(QtWidgets.QWidget):
    """One line of text in runs of plain, bold or coloured text, painted: a reading that changes at every
    probe costs a few ``drawStaticText`` calls, where a rich-text QLabel lays its text out again (about a
    millisecond) and asks the layouts around it to do the same.

    The line keeps its height whatever it reads: one line, or two where the reading does not fit in one
    and has a :data:`SEPARATOR` to break at (decided when the width or the reading's words change, with room
    for its numbers to grow, so a new probe does not change the height); text that still does not fit is
    elided, and its tooltip then shows all of it. Its context menu copies the reading (a painted line cannot be selected). :meth:`text`
    gives the reading as rich text (the runs' text escaped: a class name is never markup), as a QLabel's
    ``text()`` would.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        self._segments: tuple[Segment, ...] = ()
        self._runs: dict[tuple[str, bool, str | None], list] = {}
        self._elided = False
        self._lines = 1
        self._words: tuple[str, ...] = ()   # the reading's texts without digits: its names and words
        self._set_fonts()

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(100, self._lines * self.fontMetrics().lineSpacing() + 4)

    @property
    def lines(self) -> int:
        """The lines the reading takes: 1, or 2 when it is broken at its separator."""
        return self._lines

    def _fit(self) -> None:
        """One line or two for this width and reading (see the class docstring); a change asks for a layout."""
        if SEPARATOR not in (text for text, _, _ in self._segments):
            return   # nothing to break (a hover's reading): the height stays as the last reading set it
        needed = sum(self._run(text, bold, colour)[1] for text, bold, colour in self._segments)
        room = float(self.width() - 4)
        slack = 3 * self._metrics[False].horizontalAdvance("0")   # the numbers may grow ("7.0" → "100.0")
        lines = 2 if needed + slack > room else 1
        if self._lines == 2 and lines == 1 and needed + 2 * slack > room:
            lines = 2   # just fits again: stay, lest the height flip from one probe to the next
        if lines != self._lines:
            self._lines = lines
            self.updateGeometry()
            self.update()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(0, self.sizeHint().height())

    def set_segments(self, segments: Sequence[Segment]) -> None:
        """Show these runs of text (repaints only; the size stays)."""
        segments = tuple(segments)
        if segments != self._segments:
            self._segments = segments
            words = tuple(text for text, _, _ in segments if not any(c.isdigit() for c in text))
            if words != self._words:
                self._words = words
                self._fit()   # other names or words: perhaps another number of lines (numbers alone: never)
            self.update()

    def is_elided(self) -> bool:
        """True when the last paint could not show the whole reading (its tooltip then does)."""
        return self._elided

    def plain_text(self) -> str:
        return "".join(text for text, _, _ in self._segments)

    def text(self) -> str:
        """The reading as rich text: bold runs in ``<b>``, coloured ones in a ``<span>``, all text escaped."""
        out = []
        for text, bold, colour in self._segments:
            part = escaped(text)
            if bold:
                part = f"<b>{part}</b>"
            if colour is not None:
                part = f"<span style='color:{colour}'>{part}</span>"
            out.append(part)
        return "".join(out)

    def textFormat(self) -> QtCore.Qt.TextFormat:  # noqa: N802 (QLabel's name)
        """Rich text, as :meth:`text` is (for code that reads a label)."""
        return QtCore.Qt.TextFormat.RichText

    def changeEvent(self, event: QtCore.QEvent) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        kind = event.type()
        if kind in (QtCore.QEvent.Type.FontChange, QtCore.QEvent.Type.PaletteChange):
            self._runs.clear()      # laid out again in the new font or colour
        if kind == QtCore.QEvent.Type.FontChange:
            self._set_fonts()
            self.updateGeometry()   # a new font: a new height (not a new reading)

    def _set_fonts(self) -> None:
        """The bold font and both fonts' metrics (kept: a paint asks for them at every run)."""
        self._bold = QtGui.QFont(self.font())
        self._bold.setBold(True)
        self._metrics = {False: QtGui.QFontMetricsF(self.font()), True: QtGui.QFontMetricsF(self._bold)}
        self._line = self._metrics[False].height()

    def _run(self, text: str, bold: bool, colour: str | None) -> list:
        """A run's [static text or None, width, colour]. A run seen again (a name, a word: they stay from
        one reading to the next) is laid out once as a QStaticText; one seen the first time (this probe's
        numbers, most often never seen again) is drawn as it is, which costs fewer calls."""
        key = (text, bold, colour)
        run = self._runs.get(key)
        if run is None:
            if len(self._runs) > 64:
                self._runs.clear()
            if colour is None:
                pen = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
            else:
                pen = QtGui.QColor(colour)
            run = self._runs[key] = [None, self._metrics[bold].horizontalAdvance(text), pen]
        elif run[0] is None:
            static = QtGui.QStaticText(text)
            static.setTextFormat(QtCore.Qt.TextFormat.PlainText)
            static.prepare(QtGui.QTransform(), self._bold if bold else self.font())
            run[0] = static
        return run

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QtGui.QPalette.ColorRole.Window))
        right = float(self.width() - 2)
        spacing = self._metrics[False].lineSpacing()
        x, y = 2.0, (self.height() - self._line - (self._lines - 1) * spacing) / 2
        bold = None
        self._elided = False
        for text, is_bold, colour in self._segments:
            if text == SEPARATOR and self._lines == 2:
                x, y = 2.0, y + spacing   # the second part on the second line
                continue
            static, width, pen = self._run(text, is_bold, colour)
            if bold is not is_bold:
                bold = is_bold
                painter.setFont(self._bold if is_bold else self.font())
            painter.setPen(pen)
            if x + width > right:   # the rest does not fit: this run elided, the ones after it left out
                fm = self._metrics[is_bold]
                painter.drawText(QtCore.QPointF(x, y + fm.ascent()),
                                 fm.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, max(right - x, 0)))
                self._elided = True
                break
            if static is None:
                painter.drawText(QtCore.QPointF(x, y + self._metrics[is_bold].ascent()), text)
            else:
                painter.drawStaticText(QtCore.QPointF(x, y), static)
            x += width
        painter.end()

    def contextMenuEvent(self, event: QtGui.QContextMenuEvent) -> None:  # noqa: N802 (Qt's name)
        menu = QtWidgets.QMenu(self)
        copy = menu.addAction("Copy")
        copy.setEnabled(bool(self._segments))
        if menu.exec(event.globalPos()) is copy:
            QtGui.QGuiApplication.clipboard().setText(self.plain_text())

    def event(self, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            if self._elided:
                QtWidgets.QToolTip.showText(event.globalPos(), tooltip(self.plain_text()), self)
            else:
                QtWidgets.QToolTip.hideText()
            return True
        return super().event(event)
