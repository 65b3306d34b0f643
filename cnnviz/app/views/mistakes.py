"""A gallery of held-out examples: those of one cell of the confusion matrix, or every mistake, most confident first.

Fed plain arrays on the GUI thread (the held-out labels, the last evaluation's
predictions and confidences, the images); no torch. Clicking an example emits
its index (``exampleClicked``): the window makes it the current sample.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views._common import ViewPanel, status_label, title_label

MAX_SHOWN = 120
"""Thumbnails drawn at most (the most confident first); the title says how many there are in all."""
THUMB = 48


def select_examples(labels: np.ndarray, predictions: np.ndarray, confidences: np.ndarray,
                    cell: tuple[int, int] | None = None, ignore_index: int | None = None) -> np.ndarray:
    """The indices of the held-out samples of ``cell`` (true, predicted), or of every mistake when None,
    sorted by confidence, highest first (ties by index). Samples whose target is the loss's
    ``ignore_index`` are none of them: the confusion matrix and the accuracy do not count them either."""
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if cell is None:
        keep = predictions != labels
    else:
        keep = (labels == cell[0]) & (predictions == cell[1])
    if ignore_index is not None:
        keep &= labels != ignore_index
    chosen = np.flatnonzero(keep)
    order = np.lexsort((chosen, -confidences[chosen]))  # the last key sorts first
    return chosen[order]


def thumbnail(image: np.ndarray, size: int = THUMB) -> QtGui.QPixmap:
    """A (C, H, W) image in [0, 1] (C 1 or 3) as a pixmap ``size`` pixels on its longer side."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] != 3 else np.moveaxis(a, 0, -1)
    a = np.ascontiguousarray(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 2:
        qimage = QtGui.QImage(a.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8)
    else:
        qimage = QtGui.QImage(a.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
    mode = QtCore.Qt.TransformationMode.FastTransformation if max(h, w) < size else \
        QtCore.Qt.TransformationMode.SmoothTransformation
    scaled = qimage.scaled(size, size, QtCore.Qt.AspectRatioMode.KeepAspectRatio, mode)  # a copy: `a` may go
    return QtGui.QPixmap.fromImage(scaled)


class MistakesView(ViewPanel):
    """Thumbnails of held-out examples with their prediction and confidence, most confident first.

    Data API (GUI thread):

    - ``set_examples(indices, images, labels, predictions, confidences, classes, title)``: ``indices``
      in the order to show (:func:`select_examples`); ``images`` the split's (N, C, H, W), or None
      (captions only); at most :data:`MAX_SHOWN` are drawn.
    - ``set_current(index)``: mark the current sample, when it is listed.
    - ``clear(message)``.

    ``exampleClicked(index)`` when an example is clicked; ``allRequested`` from the *All mistakes* button.
    """

    EMPTY_HINT = "Click a cell of the confusion matrix to see its examples"
    exampleClicked = QtCore.Signal(int)
    allRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._indices: list[int] = []
        self._total = 0
        self._thumbs: dict[int, QtGui.QIcon] = {}  # of the images in self._thumbs_of: one per sample, made once
        self._thumbs_of: np.ndarray | None = None
        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        # The title on its own line: the gallery is often a narrow column beside the matrix.
        self._title = title_label(content)
        outer.addWidget(self._title)
        header = QtWidgets.QHBoxLayout()
        self.all_button = QtWidgets.QPushButton("All mistakes", content)
        self.all_button.setToolTip("Every misclassified held-out example, most confident first")
        self.all_button.clicked.connect(lambda _=False: self.allRequested.emit())
        header.addWidget(self.all_button)
        header.addStretch(1)
        outer.addLayout(header)
        self.list = QtWidgets.QListWidget(content)
        self.list.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.list.setIconSize(QtCore.QSize(THUMB, THUMB))
        self.list.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)
        self.list.setMovement(QtWidgets.QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setWordWrap(True)
        self.list.setSpacing(4)
        fm = self.list.fontMetrics()
        self.list.setGridSize(QtCore.QSize(max(THUMB + 16, fm.horizontalAdvance("#0000 · 100%") + 12),
                                           THUMB + 2 * fm.height() + 12))
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        outer.addWidget(self.list, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        outer.addWidget(self.caption)
        self._set_content(content)

    # ------------------------------------------------------------ API
    def set_examples(self, indices: Sequence[int], images: np.ndarray | None, labels: np.ndarray,
                     predictions: np.ndarray, confidences: np.ndarray, classes: Sequence[str],
                     title: str) -> None:
        indices = [int(i) for i in indices]
        self._total = len(indices)
        shown = indices[:MAX_SHOWN]
        self._indices = shown
        self._title.setText(f"{title}: {len(indices):,}")
        self.list.setUpdatesEnabled(False)
        try:
            self.list.clear()
            for i in shown:
                t, p, c = int(labels[i]), int(predictions[i]), float(confidences[i])
                item = QtWidgets.QListWidgetItem(f"#{i} · {100 * c:.0f}%\n{classes[p]}")
                if images is not None:
                    item.setIcon(self._icon(images, i))
                item.setToolTip(tooltip(f"sample {i}: true {classes[t]}, predicted {classes[p]} ({100 * c:.1f}% "
                                        f"confident)"))
                item.setData(QtCore.Qt.ItemDataRole.UserRole, i)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
                self.list.addItem(item)
        finally:
            self.list.setUpdatesEnabled(True)
        self._show_content()
        if not shown:
            self.caption.setText("None: no held-out example falls in this cell.")
        else:
            more = f" ({len(shown)} of {len(indices):,})" if len(indices) > len(shown) else ""
            self.caption.setText(f"Most confident first{more}. Click one: it becomes the current sample.")

    def _icon(self, images: np.ndarray, i: int) -> QtGui.QIcon:
        if images is not self._thumbs_of:
            self._thumbs, self._thumbs_of = {}, images
        icon = self._thumbs.get(i)
        if icon is None:
            icon = self._thumbs[i] = QtGui.QIcon(thumbnail(images[i]))
        return icon

    def set_current(self, index: int | None) -> None:
        with QtCore.QSignalBlocker(self.list):
            self.list.clearSelection()
            if index is not None and index in self._indices:
                self.list.setCurrentRow(self._indices.index(index))

    def flush(self) -> None:
        pass

    # ------------------------------------------------------------ readings
    def indices(self) -> list[int]:
        """The examples listed, in order."""
        return list(self._indices)

    @property
    def total(self) -> int:
        """How many examples the cell holds (more than are drawn when over :data:`MAX_SHOWN`)."""
        return self._total

    @property
    def title(self) -> str:
        return self._title.text()

    def item_rect(self, row: int) -> QtCore.QRect:
        """Where example ``row`` lies on the list's viewport (for a click)."""
        return self.list.visualItemRect(self.list.item(row))

    def _clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        index = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if index is not None:
            self.exampleClicked.emit(int(index))
