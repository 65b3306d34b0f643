"""The data as the network gets it: the images after resizing and RGB → grey, a folder's classes, counts and split.

:class:`DataPreview` is a non-modal window opened from the data picker ("Show the images…") or
Run → Show the Data…. For a data set (bundled, generated or a folder) it shows the first
images of each class of the training split exactly as the engine holds them (``data.load`` with
the stack's input shape and the run's seed, the call the engine makes, and usually a hit in its
cache), a table of each class's training and held-out counts (the engine's split, not a
recomputed one) and what the reading left out. For the person's own image it shows that image
converted to the input shape, with its original size.

Reading happens on a thread of its own; the window stays responsive, shows how far the reading
is, and a newer request (or closing the window) stops an older one. Class and folder names are
shown as plain text: they come from the person's files.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnviz.app.plain_text import tooltip
from cnnviz.core import data

log = logging.getLogger("cnnviz.window")

PER_CLASS = 8
"""Thumbnails shown per class (the first of each class in the training split)."""
MAX_CLASSES_SHOWN = 40
"""Classes with thumbnails; the table lists every class."""
THUMB = 56
"""The side, in pixels, a thumbnail is scaled to (up by whole pixels, so each input pixel shows)."""


class _Cancelled(Exception):
    pass


@dataclass(frozen=True)
class PreviewRequest:
    """What to show: the data set ``name`` (or the person's ``image``) at the stack's input ``shape``."""

    name: str
    shape: tuple[int, int, int]
    seed: int = 0
    image: str | None = None
    conversion: str = ""
    """What is done to the data set's images to fit the input, in words ("resized from 32×32 to 8×8, RGB → grey")."""


def to_pixmap(image: np.ndarray, side: int = THUMB) -> QPixmap:
    """A (C, H, W) float image in [0, 1] as a pixmap about ``side`` pixels across, each input pixel a square."""
    c, h, w = image.shape
    pixels = np.clip(np.asarray(image, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if c == 1:
        buf = np.ascontiguousarray(pixels[0])
        qimage = QImage(buf.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    else:
        rgb = pixels[:3] if c >= 3 else np.repeat(pixels[:1], 3, axis=0)
        buf = np.ascontiguousarray(np.transpose(rgb, (1, 2, 0)))
        qimage = QImage(buf.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    longest = max(h, w)
    if longest <= side:
        scale = max(1, side // longest)
        mode = Qt.TransformationMode.FastTransformation
        size = (w * scale, h * scale)
    else:
        mode = Qt.TransformationMode.SmoothTransformation
        size = (max(1, round(w * side / longest)), max(1, round(h * side / longest)))
    return QPixmap.fromImage(qimage.scaled(size[0], size[1], Qt.AspectRatioMode.IgnoreAspectRatio, mode))


def split_counts(split) -> list[tuple[str, int, int]]:
    """(class, training images, held-out images) for every class of the engine's split."""
    classes = split.classes
    train = np.bincount(np.asarray(split.train.labels, dtype=np.int64), minlength=len(classes))
    test = np.bincount(np.asarray(split.test.labels, dtype=np.int64), minlength=len(classes))
    return [(name, int(train[i]), int(test[i])) for i, name in enumerate(classes)]


def first_per_class(labels: np.ndarray, n_classes: int, per_class: int = PER_CLASS) -> list[np.ndarray]:
    """The indices of the first ``per_class`` images of each class, in the split's order."""
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == k)[:per_class] for k in range(n_classes)]


def _plain(text: str, parent: QWidget, *, wrap: bool = True, bold: bool = False) -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)  # names from the person's files are never markup
    label.setText(text)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)
    return label


class _Reader(QObject):
    """Reads on a thread of its own; ``done`` and ``progressed`` arrive on the GUI thread (queued)."""

    done = Signal(int, object, str)       # token, result (a DataSplit, or (image, original size text)), error
    progressed = Signal(int, int, int)    # token, images read, images to read

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.token = 0

    def start(self, request: PreviewRequest) -> int:
        self.token += 1
        token = self.token
        threading.Thread(target=self._run, args=(token, request), name="cnnviz-data-preview", daemon=True).start()
        return token

    def cancel(self) -> None:
        self.token += 1

    def _run(self, token: int, request: PreviewRequest) -> None:
        def progress(done: int, total: int) -> None:
            if token != self.token:
                raise _Cancelled
            self.progressed.emit(token, int(done), int(total))

        try:
            if request.image:
                result = (data.load_image(request.image, request.shape), _original_size(request.image))
            else:
                result = data.load(request.name, request.shape, request.seed, progress=progress)
        except _Cancelled:
            return
        except (data.DataError, OSError, ValueError) as exc:
            self._emit_done(token, None, str(exc) or type(exc).__name__)
            return
        except Exception as exc:  # never a traceback on screen: a sentence, the details in the log
            log.exception("data preview failed")
            self._emit_done(token, None, f"the images could not be read ({type(exc).__name__})")
            return
        self._emit_done(token, result, "")

    def _emit_done(self, token: int, result, error: str) -> None:
        if token == self.token:
            try:
                self.done.emit(token, result, error)
            except RuntimeError:  # the window was deleted while reading
                pass


def _original_size(path: str) -> str:
    """"32×32 RGB" from the file's header, or "" when it cannot be read (the image itself says why)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return f"{image.width}×{image.height} {image.mode}"
    except Exception:  # noqa: BLE001 - a header that cannot be read: load_image has said why already
        return ""


class DataPreview(QDialog):
    """The data as the network gets it; :meth:`show_for` a :class:`PreviewRequest`."""

    def __init__(self, parent: QWidget | None = None, per_class: int = PER_CLASS) -> None:
        super().__init__(parent)
        self.setObjectName("data_preview")
        self.setWindowTitle("The data as the network gets it")
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
        self.per_class = per_class
        self.request: PreviewRequest | None = None
        self.split = None
        self.error = ""
        self._token = 0
        self._reader = _Reader(self)
        self._reader.done.connect(self._done)
        self._reader.progressed.connect(self._progressed)

        self.heading = _plain("", self, bold=True)
        self.heading.setObjectName("data_preview_heading")
        self.conversion = _plain("", self)
        self.conversion.setObjectName("data_preview_conversion")
        self.state = _plain("", self)
        self.state.setObjectName("data_preview_state")

        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("data_preview_counts")
        self.table.setHorizontalHeaderLabels(["class", "training", "held out", "total"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.split_note = _plain("", self)
        self.split_note.setObjectName("data_preview_split")
        self.notes = _plain("", self)
        self.notes.setObjectName("data_preview_notes")

        self.grid_host = QWidget(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(4, 4, 4, 4)
        self.grid.setHorizontalSpacing(4)
        self.grid.setVerticalSpacing(6)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        self.thumbs: list[QLabel] = []

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.table)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.conversion)
        layout.addWidget(self.state)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.split_note)
        layout.addWidget(self.notes)
        layout.addWidget(buttons)
        self.resize(900, 600)
        self.splitter.setSizes([600, 300])

    # ---------------------------------------------------------------- API
    @property
    def loading(self) -> bool:
        return self._token != 0

    def follow(self, request: PreviewRequest) -> None:
        """While shown, follow a new data set, input shape, seed or image (after an edit or an undo)."""
        if self.isVisible() and request != self.request:
            self.show_for(request, bring_up=False)

    def show_for(self, request: PreviewRequest, bring_up: bool = True) -> None:
        """Show ``request``'s images (read on a thread; the window shows how far the reading is)."""
        if request == self.request and (self.loading or self.split is not None or self.error):
            self.show()
            self.raise_()
            return
        self.request = request
        self.split = None
        self.error = ""
        c, h, w = request.shape
        shape = f"{c}×{h}×{w}"
        if request.image:
            self.heading.setText(f"Your image {Path(request.image).name}, as the network gets it: {shape}")
        else:
            self.heading.setText(f"{_data_name(request.name)}: the images as the network gets them, {shape}")
        self.heading.setToolTip(tooltip(request.image or request.name))
        self.conversion.setText(f"Each image is {request.conversion} to fit the input." if request.conversion
                                else "Each image is used as it is: it has the input's size and channels.")
        self.conversion.setVisible(not request.image)
        self._clear()
        self.state.setText("Reading the images…")
        self.state.show()
        self._token = self._reader.start(request)
        if bring_up:
            self.show()
            self.raise_()

    def closeEvent(self, event) -> None:
        self._reader.cancel()  # a folder still being read stops at its next image
        self._token = 0
        self.request = None
        super().closeEvent(event)

    # ---------------------------------------------------------------- results
    def _progressed(self, token: int, done: int, total: int) -> None:
        if token == self._token and total:
            self.state.setText(f"Reading the images… {done:,} of {total:,}")

    def _done(self, token: int, result, error: str) -> None:
        if token != self._token:
            return
        self._token = 0
        request = self.request
        if request is None:
            return
        if error:
            self.error = error
            self.state.setText(f"The images cannot be shown: {error}")
            return
        self.state.hide()
        if request.image:
            image, original = result
            self._show_image(image, original, request)
        else:
            self.split = result
            self._show_split(result)

    def _clear(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.thumbs = []
        self.table.setRowCount(0)
        self.split_note.setText("")
        self.notes.setText("")
        self.notes.hide()

    def _thumb(self, image: np.ndarray, tip: str, side: int = THUMB) -> QLabel:
        label = QLabel(self.grid_host)
        label.setPixmap(to_pixmap(image, side))
        label.setToolTip(tooltip(tip))
        label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        label.setStyleSheet("border: 1px solid palette(mid);")
        self.thumbs.append(label)
        return label

    def _show_image(self, image: np.ndarray, original: str, request: PreviewRequest) -> None:
        c, h, w = image.shape
        what = f"{original} → " if original else ""
        self.grid.addWidget(_plain(f"{Path(request.image).name}: {what}{c}×{h}×{w}", self.grid_host), 0, 0)
        self.grid.addWidget(self._thumb(image, f"{c}×{h}×{w}, as the network gets it", side=max(THUMB * 4, 64)),
                            1, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.grid.setRowStretch(2, 1)
        self.split_note.setText("Your image has no class: the gradients are taken for the predicted class.")

    def _show_split(self, split) -> None:
        counts = split_counts(split)
        self.table.setRowCount(len(counts) + 1)
        for row, (name, n_train, n_test) in enumerate(counts):
            for col, value in enumerate((name, f"{n_train:,}", f"{n_test:,}", f"{n_train + n_test:,}")):
                item = QTableWidgetItem(value)  # plain text: a class name is never markup here
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        n_train, n_test = len(split.train), len(split.test)
        for col, value in enumerate(("all classes", f"{n_train:,}", f"{n_test:,}", f"{n_train + n_test:,}")):
            item = QTableWidgetItem(value)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
            if col:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(len(counts), col, item)
        self.split_note.setText(_split_rule(split.name, n_train, n_test))
        notes = list(split.notes)
        if notes:
            self.notes.setText("Left out or reduced: " + "; ".join(notes) + ".")
            self.notes.show()

        indices = first_per_class(split.train.labels, len(split.classes), self.per_class)
        images = split.train.images
        row = 0
        for k, (name, picks) in enumerate(zip(split.classes, indices)):
            if k >= MAX_CLASSES_SHOWN:
                self.grid.addWidget(_plain(f"… and {len(split.classes) - k:,} more classes (see the table)",
                                           self.grid_host), row, 0, 1, self.per_class + 1)
                row += 1
                break
            caption = _plain(name, self.grid_host, wrap=True)
            caption.setMaximumWidth(120)
            caption.setToolTip(tooltip(name))
            self.grid.addWidget(caption, row, 0, Qt.AlignmentFlag.AlignVCenter)
            for col, i in enumerate(picks, 1):
                self.grid.addWidget(self._thumb(np.asarray(images[i]), f"{name}: training image {int(i):,}"),
                                    row, col)
            if len(picks) == 0:
                self.grid.addWidget(_plain("no training images", self.grid_host), row, 1, 1, self.per_class)
            row += 1
        self.grid.setRowStretch(row, 1)
        self.grid.setColumnStretch(self.per_class + 1, 1)


def _data_name(name: str) -> str:
    if name.startswith(data.FOLDER_PREFIX):
        return f"The folder {name[len(data.FOLDER_PREFIX):]}"
    return name


def _split_rule(name: str, n_train: int, n_test: int) -> str:
    """How the engine split the images, in words (the rule of ``core.data``, not a new one)."""
    if name.startswith(data.FOLDER_PREFIX):
        return (f"{n_train:,} for training, {n_test:,} held out: {data.TEST_FRACTION:.0%} of each class (at least "
                f"one) is held out, chosen by a hash of each file's path, so adding images does not move the others. "
                f"Training never sees the held-out images; the accuracy and the samples are theirs.")
    if name == "shapes":
        return (f"{n_train:,} for training, {n_test:,} held out: the held-out shapes are drawn from a seed of their "
                f"own, the training shapes from the run's seed. Training never sees the held-out images; the "
                f"accuracy and the samples are theirs.")
    return (f"{n_train:,} for training, {n_test:,} held out: {data.TEST_FRACTION:.0%} of each class, the same "
            f"images for every seed. Training never sees the held-out images; the accuracy and the samples are "
            f"theirs.")


__all__ = ["DataPreview", "PreviewRequest", "first_per_class", "split_counts", "to_pixmap"]
