"""The convolution lab's table of the current output cell's taps: input, weight and product per row, drawn
only for the rows in sight (a 512-channel 3x3 window has 4,608). Part of :mod:`.conv_lab`.
"""
from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views.lab_steps import fmt
from cnnviz.core.lab.taps import Arithmetic


class TapRows(Sequence):
    """The taps of an :class:`Arithmetic` as table rows, each formatted when it is read (the panel reads the
    visible ones only: a frame of a 4608-tap window formats 30)."""

    def __init__(self, arith: Arithmetic) -> None:
        self.arith = arith

    def __len__(self) -> int:
        return len(self.arith.taps)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a = self.arith
        t = a.taps[i]
        line = f"{t.channel:>3} {t.y:>3} {t.x:>3} {fmt(t.input, 5):>10}"
        if t.weight is not None:
            line += f" {fmt(t.weight, 5):>10} {fmt(t.product, 5):>10}"
        if a.argmax == (i if i >= 0 else len(self) + i):
            line += " ← max"
        if t.padding:
            line += " (pad)"
        return line


class TapsPanel(QtWidgets.QAbstractScrollArea):
    """The taps of the current output cell, a monospace row each, and the sum under them; only the visible
    rows are painted (a frame of the animation redraws this panel, so it must be cheap)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.header = ""
        self.lines: Sequence[str] = []     # a sequence that formats its rows when they are read (see TapRows)
        self.marks: dict[int, str] = {}    # row → colour (the max)
        self.footer: list[str] = []
        self.set_columns(46)
        self.viewport().setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.verticalScrollBar().valueChanged.connect(lambda _v: self.viewport().update())
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self.viewport().update())

    def set_columns(self, chars: int) -> None:
        """Asks to be as wide as ``chars`` monospace characters (a pool's rows are shorter than a convolution's);
        in a narrow window it gets less and scrolls sideways."""
        self._hint_width = self.fontMetrics().horizontalAdvance("M" * chars) + 24
        self.updateGeometry()

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(self._hint_width, 240)

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(min(self._hint_width, self.fontMetrics().horizontalAdvance("M" * 22) + 24), 80)

    def set_rows(self, header: str, lines: Sequence[str], footer: list[str], marks: dict[int, str]) -> None:
        self.header, self.lines, self.footer, self.marks = header, lines, footer, marks
        self._ranges()
        self.viewport().update()

    def text(self) -> str:
        return "\n".join([self.header, *self.lines, "", *self.footer])

    def _row_h(self) -> int:
        return self.fontMetrics().height()

    def _body_rows(self) -> int:
        return max(1, (self.viewport().height() - (len(self.footer) + 2) * self._row_h() - 6) // self._row_h())

    def _ranges(self) -> None:
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, len(self.lines) - self._body_rows()))
        bar.setPageStep(self._body_rows())
        longest = max([len(self.header) + 12, *(len(t) for t in self.footer)])
        width = self.fontMetrics().horizontalAdvance("M") * longest
        self.horizontalScrollBar().setRange(0, max(0, width + 8 - self.viewport().width()))
        self.horizontalScrollBar().setPageStep(self.viewport().width())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._ranges()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        p = QtGui.QPainter(self.viewport())
        pal = self.palette()
        p.fillRect(self.viewport().rect(), pal.color(QtGui.QPalette.ColorRole.Base))
        fg = pal.color(QtGui.QPalette.ColorRole.Text)
        h = self._row_h()
        x = 4 - self.horizontalScrollBar().value()
        ascent = self.fontMetrics().ascent()
        font = p.font()
        bold = QtGui.QFont(font)
        bold.setBold(True)
        p.setFont(bold)
        p.setPen(fg)
        p.drawText(x, 2 + ascent, self.header)
        p.setFont(font)
        first = self.verticalScrollBar().value()
        last = min(len(self.lines), first + self._body_rows())
        width = self.viewport().width() + self.horizontalScrollBar().value()
        flags = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
        rows = [self.lines[i] for i in range(first, last)]
        for i in self.marks:   # a marked row is drawn in its colour, the others in one call
            if first <= i < last:
                rows[i - first] = ""
        p.setPen(fg)
        p.drawText(QtCore.QRectF(x, 2 + h, width, h * len(rows) + 2), flags, "\n".join(rows))
        for i, colour in self.marks.items():
            if first <= i < last:
                p.setPen(QtGui.QColor(colour))
                p.drawText(QtCore.QRectF(x, 2 + h + (i - first) * h, width, h + 2), flags, self.lines[i])
        y = self.viewport().height() - len(self.footer) * h - 4
        p.setPen(pal.color(QtGui.QPalette.ColorRole.Mid))
        p.drawLine(0, y - 3, self.viewport().width(), y - 3)
        p.setPen(fg)
        p.setFont(bold)
        p.drawText(QtCore.QRectF(x, y, width, h * len(self.footer) + 2), flags, "\n".join(self.footer))
        p.end()
