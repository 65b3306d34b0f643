"""The network overview's scene items: a column's image, its labels and their holder, the view of the scene.

:class:`_ColumnItems` are the items of one column, made once and reused from one
snapshot to the next (:mod:`.overview_draw` fills them); :class:`_ImageItem`
paints a column's pixels 1:1; :class:`_Canvas` is the ``QGraphicsView`` that
hands pointer events to the :class:`~.overview.OverviewView`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views.overview_layout import Raster, SteadyLevels

if TYPE_CHECKING:
    from cnnviz.app.views.overview import OverviewView


def short_value(v: float) -> str:
    """A range end for a column's label: 3 significant digits."""
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        return f"{v:.3g}"
    return f"{v:.1e}"


def _text(text: str, font: QtGui.QFont, brush) -> QtWidgets.QGraphicsSimpleTextItem:
    """A plain-text scene item (never markup), painted from a pixmap cache: text is the costly part of a frame."""
    item = QtWidgets.QGraphicsSimpleTextItem(text)
    item.setFont(font)
    item.setBrush(brush)
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item


class _ImageItem(QtWidgets.QGraphicsItem):
    """A QImage drawn 1:1 at its position (the column's pixels are already at display size)."""

    def __init__(self) -> None:
        super().__init__()
        self._image = QtGui.QImage()
        self._buffer: np.ndarray | None = None
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.NoCache)

    def set_pixels(self, pixels: np.ndarray) -> None:
        """``pixels``: (h, w) uint32 ARGB32_Premultiplied, kept by reference (the QImage reads it)."""
        h, w = pixels.shape
        if self._buffer is not pixels or self._image.width() != w or self._image.height() != h:
            if self._image.width() != w or self._image.height() != h:
                self.prepareGeometryChange()
            self._buffer = pixels
            self._image = QtGui.QImage(pixels.data, w, h, w * 4, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        if not self._image.isNull():
            painter.drawImage(0, 0, self._image)


class _Canvas(QtWidgets.QGraphicsView):
    """The scene's view: a horizontal scroll when the flow is wider; pointer events to the overview."""

    def __init__(self, owner: OverviewView, scene: QtWidgets.QGraphicsScene) -> None:
        super().__init__(scene, owner)
        self._owner = owner
        self.setMouseTracking(True)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        self.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        self._owner._hover_at(self.mapToScene(event.position().toPoint()), event.globalPosition().toPoint())
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self._owner._hover_at(None, None)
        super().leaveEvent(event)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._owner._click_at(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mousePressEvent(event)

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        """The flow runs left to right: the wheel scrolls it sideways."""
        delta = event.angleDelta()
        step = delta.x() or delta.y()
        if step:
            self._owner._stop_following()
            bar = self.horizontalScrollBar()
            bar.setValue(bar.value() - step)
            event.accept()
            return
        super().wheelEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._owner._resized()


class _ColumnItems:
    """The scene items of one column, made once and reused while the column exists."""

    def __init__(self, scene: QtWidgets.QGraphicsScene, font: QtGui.QFont, fg: QtGui.QColor,
                 small: QtGui.QFont) -> None:
        self.scene = scene
        self.title = _text("", font, fg)
        self.shape = _text("", small, fg)
        self.range = _text("", small, fg)
        for t in (self.title, self.shape, self.range):
            scene.addItem(t)
        self.image = _ImageItem()
        scene.addItem(self.image)
        self.bar = QtWidgets.QGraphicsPixmapItem()
        self.bar.setTransformationMode(QtCore.Qt.TransformationMode.FastTransformation)
        scene.addItem(self.bar)
        self.extra: list[QtWidgets.QGraphicsItem] = []
        self.extra_key: tuple | None = None
        self.dynamic: list = []     # the items a new snapshot changes (the bars and their values)
        self.bottom = 0.0
        self.raster: Raster | None = None
        self.raster_key: tuple | None = None
        self.levels = SteadyLevels()
        self.u8: np.ndarray | None = None
        self.scratch: np.ndarray | None = None
        self.texts: dict[str, str] = {}
        self.bar_key: tuple | None = None   # (palette, width) of the colour bar drawn

    def set_text(self, item: QtWidgets.QGraphicsSimpleTextItem, name: str, text: str) -> None:
        if self.texts.get(name) != text:
            self.texts[name] = text
            item.setText(text)

    def clear_extra(self) -> None:
        for item in self.extra:
            self.scene.removeItem(item)
        self.extra = []

    def remove(self) -> None:
        self.clear_extra()
        for item in (self.title, self.shape, self.range, self.image, self.bar):
            self.scene.removeItem(item)
