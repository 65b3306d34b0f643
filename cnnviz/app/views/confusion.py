"""The held-out confusion matrix: rows the true class, columns the predicted one, and each class's accuracy.

Fed an :class:`~cnnviz.core.run.engine.Evaluation`'s plain numbers (the matrix,
the per-class accuracy, the class names) on the GUI thread; no torch. Counts or
row-normalised (each row divided by its class's count: the share of that class
predicted as each class). Redraws at most a few times a second: an evaluation
comes every few hundred training steps.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import (
    SEQUENTIAL,
    ViewPanel,
    class_ticks,
    graphics_widget,
    lut,
    make_throttler,
    palette_colors,
    status_label,
    style_axes,
    title_label,
)

REDRAW_MS = 250
"""At most four redraws a second (a new evaluation, a switch of view)."""
TEXT_UP_TO = 24
"""Cells carry their number up to this many classes; beyond, the hover reads them."""


class ConfusionView(ViewPanel):
    """The confusion matrix as a heat map, a number in each cell, each class's accuracy beside its row.

    Data API (GUI thread):

    - ``set_matrix(confusion, classes, per_class=None, caption="")``: K×K counts, ``confusion[t][p]``
      the samples of true class ``t`` predicted as ``p``.
    - ``set_normalised(on)``: rows divided by their sums (also the combo box).
    - ``select_cell(t, p)`` / ``select_cell(None)``: the frame around the chosen cell.
    - ``clear(message)``.

    ``cellClicked(t, p)`` when a cell is clicked; ``cellClicked(-1, -1)`` when the plot is
    clicked outside the cells. ``evaluateRequested`` from the *Evaluate now* button.
    """

    EMPTY_HINT = "The confusion matrix of the held-out images appears at the first held-out evaluation"
    cellClicked = QtCore.Signal(int, int)
    evaluateRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._counts: np.ndarray | None = None
        self._per_class: list[float | None] = []
        self._classes: list[str] = []
        self._normalised = False
        self._selected: tuple[int, int] | None = None
        self._caption = ""
        self._ticks_key: tuple | None = None

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        self._title = title_label(content)
        self._title.setText("Confusion (held-out)")
        header.addWidget(self._title, 1)
        self.mode_box = QtWidgets.QComboBox(content)
        self.mode_box.addItems(["Counts", "Row-normalised"])
        self.mode_box.setToolTip("Counts, or each row divided by its class's count (the share of that class "
                                 "predicted as each class)")
        self.mode_box.currentIndexChanged.connect(lambda i: self.set_normalised(i == 1))
        header.addWidget(self.mode_box)
        self.evaluate_button = QtWidgets.QPushButton("Evaluate now", content)
        self.evaluate_button.setToolTip("Run the whole held-out split through the network now (training evaluates "
                                        "it by itself every few hundred steps)")
        self.evaluate_button.clicked.connect(lambda _=False: self.evaluateRequested.emit())
        header.addWidget(self.evaluate_button)
        outer.addLayout(header)
        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(200, 160)
        outer.addWidget(self.graphics, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)  # class names are not markup
        outer.addWidget(self.caption)
        self._set_content(content)
        # The hint of the empty view carries the button too: evaluate before training.
        self.empty_button = self._hint_button("Evaluate now")
        self.empty_button.clicked.connect(lambda _=False: self.evaluateRequested.emit())

        self.plot = pg.PlotItem(enableMenu=False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setAspectLocked(False)
        style_axes(self.plot, self, ("left", "top"))
        self.plot.hideAxis("bottom")
        self.graphics.addItem(self.plot)
        self.vb = self.plot.getViewBox()
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        self.acc_item = pg.ImageItem(axisOrder="row-major")  # one column: each class's accuracy
        self.plot.addItem(self.acc_item)
        _, fg = palette_colors(self)
        self._fg = fg
        self._frame = QtWidgets.QGraphicsRectItem()
        pen = pg.mkPen("#D55E00", width=3)
        pen.setCosmetic(True)
        self._frame.setPen(pen)
        self._frame.setZValue(10)
        self._frame.hide()
        self.plot.addItem(self._frame, ignoreBounds=True)
        self._cells = CellTexts()
        self.plot.addItem(self._cells, ignoreBounds=True)
        self._axis_left = self.plot.getAxis("left")
        self._axis_top = self.plot.getAxis("top")
        self._axis_left.setLabel("true class")
        self._axis_top.setLabel("predicted class")

        self._throttle = make_throttler(self, self._render, REDRAW_MS)
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self.vb.sigResized.connect(lambda *_: self._counts is not None and self._update_ticks())
        self.renders = 0
        """How many times the matrix was drawn (read by tests: one per evaluation, not per frame)."""

    # ------------------------------------------------------------ API
    def set_matrix(self, confusion: Sequence[Sequence[int]], classes: Sequence[str] | None = None,
                   per_class: Sequence[float | None] | None = None, caption: str = "") -> None:
        counts = np.asarray(confusion, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
            raise ValueError(f"a confusion matrix must be K×K, not {counts.shape}")
        k = counts.shape[0]
        if classes is not None and len(classes) != k:
            raise ValueError(f"{len(classes)} class names for a {k}×{k} matrix")
        self._counts = counts
        self._classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
        if per_class is None:
            sums = counts.sum(1)
            per_class = [counts[i, i] / sums[i] if sums[i] else None for i in range(k)]
        self._per_class = list(per_class)
        self._caption = caption
        if self._selected is not None and not (self._selected[0] < k and self._selected[1] < k):
            self._selected = None
        self._show_content()
        self._throttle.throttle()

    def set_normalised(self, on: bool) -> None:
        on = bool(on)
        if (self.mode_box.currentIndex() == 1) != on:
            self.mode_box.setCurrentIndex(1 if on else 0)  # re-enters through the combo box
            return
        self._normalised = on
        if self._counts is not None:
            self._throttle.throttle()

    def select_cell(self, cell: tuple[int, int] | None) -> None:
        self._selected = None if cell is None else (int(cell[0]), int(cell[1]))
        self._place_frame()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._counts = None
        self._selected = None
        super().clear(message)

    # ------------------------------------------------------------ readings
    @property
    def normalised(self) -> bool:
        return self._normalised

    @property
    def selected(self) -> tuple[int, int] | None:
        return self._selected

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def counts(self) -> np.ndarray | None:
        """The matrix of counts shown (a copy), or None."""
        return None if self._counts is None else self._counts.copy()

    def values(self) -> np.ndarray | None:
        """What the cells show: counts, or each row's share (a row with no sample is 0)."""
        if self._counts is None:
            return None
        if not self._normalised:
            return self._counts.astype(np.float64)
        sums = self._counts.sum(1, keepdims=True)
        return np.divide(self._counts, sums, out=np.zeros(self._counts.shape), where=sums > 0)

    def per_class_accuracy(self) -> list[float | None]:
        return list(self._per_class)

    def cell_text(self, t: int, p: int) -> str:
        """The number written in cell (t, p) ("" when the matrix is too large for numbers in cells)."""
        return self._cells.text_at(p + 0.5, t + 0.5)

    def image_pixels(self) -> np.ndarray | None:
        """The array the heat map was last drawn from (K×K)."""
        return None if self.image_item.image is None else np.asarray(self.image_item.image)

    # ------------------------------------------------------------ drawing
    def _text(self, t: int, p: int, values: np.ndarray) -> str:
        if not self._normalised:
            return f"{int(self._counts[t, p]):,}"
        v = values[t, p]
        return "0" if v == 0 else f"{100 * v:.0f}%" if v >= 0.01 else "<1%"

    def _render(self) -> None:
        counts = self._counts
        if counts is None:
            return
        self.renders += 1
        k = counts.shape[0]
        values = self.values()
        share = values if self._normalised else None
        top = float(values.max()) if values.size else 1.0
        colour = (values / top if top > 0 else values) if share is None else share
        self.image_item.setImage(np.ascontiguousarray(colour, dtype=np.float32), levels=(0.0, 1.0),
                                 lut=lut(SEQUENTIAL), autoLevels=False)
        self.image_item.setRect(QtCore.QRectF(0, 0, k, k))
        acc = np.array([np.nan if a is None else a for a in self._per_class], dtype=np.float32).reshape(k, 1)
        self.acc_item.setImage(np.nan_to_num(acc, nan=0.0), levels=(0.0, 1.0), lut=lut(SEQUENTIAL),
                               autoLevels=False)
        self.acc_item.setRect(QtCore.QRectF(k + 0.25, 0, 1.1, k))
        labels: list[tuple[float, float, str, QtGui.QColor]] = []
        if k <= TEXT_UP_TO:
            table = lut(SEQUENTIAL)
            for t in range(k):
                for p in range(k):
                    labels.append((p + 0.5, t + 0.5, self._text(t, p, values), _ink(table, colour[t, p])))
            for t in range(k):
                a = self._per_class[t]
                labels.append((k + 0.8, t + 0.5, "–" if a is None else f"{100 * a:.0f}%",
                               _ink(table, 0.0 if a is None else a)))
        font = QtGui.QFont(self.font())
        if k > 5:
            font.setPointSizeF(max(6.0, font.pointSizeF() * (0.85 if k <= 12 else 0.75)))
        self._cells.set_labels(labels, QtCore.QRectF(0, 0, k + 1.35, k), font)
        self.vb.setRange(QtCore.QRectF(0, 0, k + 1.35, k), padding=0.02)
        self._ticks_key = None
        self._update_ticks()
        self._place_frame()
        self.caption.setText(self._caption)

    def _update_ticks(self) -> None:
        if self._counts is None:
            return
        k = self._counts.shape[0]
        rect = self.vb.sceneBoundingRect()
        room_x = rect.width() / (k + 1.4) if rect.width() > 0 else 40.0
        key = (tuple(self._classes), round(room_x))
        if key == self._ticks_key:
            return
        self._ticks_key = key
        fm = QtGui.QFontMetrics(self.font())
        top = [(i + 0.5, text) for i, text in class_ticks(fm, self._classes, room_x)]
        top.append((k + 0.8, fm.elidedText("accuracy", QtCore.Qt.TextElideMode.ElideRight, int(1.6 * room_x))))
        self._axis_top.setTicks([top, []])
        # Rows have a line's height each; names on the left are elided to a fixed width.
        width = max(40, min(140, max(fm.horizontalAdvance(c) for c in self._classes) + 8))
        step = max(1, math.ceil((fm.height() + 1) / max(1.0, rect.height() / k))) if rect.height() > 0 else 1
        left = [(i + 0.5, fm.elidedText(c, QtCore.Qt.TextElideMode.ElideRight, width - 8))
                for i, c in enumerate(self._classes) if i % step == 0]
        self._axis_left.setTicks([left, []])
        self._axis_left.setWidth(width + 28)

    def _place_frame(self) -> None:
        if self._selected is None or self._counts is None:
            self._frame.hide()
            return
        t, p = self._selected
        self._frame.setRect(QtCore.QRectF(p, t, 1, 1))
        self._frame.show()

    # ------------------------------------------------------------ pointer
    def cell_at(self, scene_pos: QtCore.QPointF) -> tuple[int, int] | None:
        """The (true, predicted) cell under a scene position, or None outside the matrix."""
        if self._counts is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        pt = self.vb.mapSceneToView(scene_pos)
        k = self._counts.shape[0]
        x, y = math.floor(pt.x()), math.floor(pt.y())
        return (int(y), int(x)) if 0 <= x < k and 0 <= y < k else None

    def _on_mouse_moved(self, pos: QtCore.QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is None:
            self.caption.setText(self._caption)
            return
        t, p = cell
        n = int(self._counts[t, p])
        row = int(self._counts[t].sum())
        share = f" ({100 * n / row:.1f}% of {self._classes[t]})" if row else ""
        what = "correct" if t == p else "mistaken"
        self.caption.setText(f"true {self._classes[t]}, predicted {self._classes[p]}: {n:,} {what}{share}. "
                             f"Click to see them.")

    def _on_mouse_clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or self._counts is None:
            return
        pos = event.scenePos()
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        cell = self.cell_at(pos)
        if cell is None:
            self.select_cell(None)
            self.cellClicked.emit(-1, -1)
        else:
            self.select_cell(cell)
            self.cellClicked.emit(*cell)


class CellTexts(QtWidgets.QGraphicsObject):
    """Every cell's number as one item: centred at data points, drawn at the font's size in pixels.

    One item painting a hundred strings costs a fraction of a hundred ``pg.TextItem`` (each keeps its
    own transform and document, and re-lays itself out whenever the view changes).
    """

    def __init__(self) -> None:
        super().__init__()
        self._labels: list[tuple[float, float, str, QtGui.QColor]] = []
        self._rect = QtCore.QRectF()
        self._font = QtGui.QFont()
        self.fits = True
        """Whether the numbers fitted their cells when last painted (else they are left out)."""
        self.setZValue(5)

    def set_labels(self, labels: list[tuple[float, float, str, QtGui.QColor]], rect: QtCore.QRectF,
                   font: QtGui.QFont) -> None:
        self.prepareGeometryChange()
        self._labels, self._rect, self._font = labels, QtCore.QRectF(rect), QtGui.QFont(font)
        self.update()

    def text_at(self, x: float, y: float) -> str:
        for lx, ly, text, _ in self._labels:
            if lx == x and ly == y:
                return text
        return ""

    def boundingRect(self) -> QtCore.QRectF:
        return self._rect

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        if not self._labels:
            return
        # Undo the view's scale around each point, keeping whatever offset the painter has (a widget
        # painted into its window's grab is offset; resetting the transform would lose that).
        t = painter.transform()
        sx, sy = t.m11(), t.m22()
        if sx == 0 or sy == 0:
            return
        fm = QtGui.QFontMetricsF(self._font)
        h = fm.height()
        widest = max(fm.horizontalAdvance(text) for _, _, text, _ in self._labels)
        self.fits = widest + 2 <= abs(sx) and h <= abs(sy) + 2
        if not self.fits:
            return  # cells too small for their numbers: the hover reads them
        painter.setFont(self._font)
        colour = None
        for x, y, text, ink in self._labels:
            w = fm.horizontalAdvance(text)
            if ink != colour:
                painter.setPen(ink)
                colour = ink
            painter.save()
            painter.translate(x, y)
            painter.scale(1 / sx, 1 / sy)
            painter.drawText(QtCore.QRectF(-w / 2 - 1, -h / 2, w + 2, h), QtCore.Qt.AlignmentFlag.AlignCenter, text)
            painter.restore()


def _ink(table: np.ndarray, level: float) -> QtGui.QColor:
    """Black or white, whichever reads better on the colour map's colour at ``level`` (0..1)."""
    r, g, b = (int(v) for v in table[int(max(0.0, min(1.0, float(level))) * 255)])
    return QtGui.QColor("#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#FFFFFF")
