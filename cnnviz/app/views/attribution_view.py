"""Which pixels a class score depends on, for the current sample: saliency and Grad-CAM over the input image.

Fed the arrays the worker computed (:mod:`cnnviz.core.run.attribution`) on the
GUI thread; no torch. The class (default: the predicted one) and the Grad-CAM
layer (default: the last C×H×W output before the scores) are chosen here;
``choiceChanged`` asks for the maps again.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.app.views._common import (
    ViewPanel,
    graphics_widget,
    lut,
    make_throttler,
    palette_colors,
    status_label,
)

HEAT = "inferno"
OVERLAY_OPACITY = 0.6


def _as_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) as (H, W) or (H, W, 3) for an ImageItem."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] != 3 else np.moveaxis(a, 0, -1)
    return np.ascontiguousarray(np.nan_to_num(a))


class AttributionView(ViewPanel):
    """The input, its saliency |∂z_c/∂x| and its Grad-CAM, each map laid over the image.

    Data API (GUI thread):

    - ``set_choices(classes, layers, default_layer)``: the classes to explain and the layers Grad-CAM
      may weigh, as ``(index, label)``; keeps the person's choices where they still exist.
    - ``set_result(image, saliency, cam, caption, cam_note="")``: (C, H, W) in [0, 1], (H, W), (H, W) or None.
    - ``clear(message)``.

    ``chosen_class`` (None: the predicted one) and ``chosen_layer`` (None: the default) are what the
    boxes say; ``choiceChanged`` is emitted when either changes.
    """

    EMPTY_HINT = "Saliency and Grad-CAM of the current sample appear once the network has run"
    choiceChanged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._saliency: np.ndarray | None = None
        self._cam: np.ndarray | None = None
        self._image: np.ndarray | None = None
        self._cam_note = ""
        self._choices_key: tuple | None = None
        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        header.addStretch(1)
        header.addWidget(QtWidgets.QLabel("Class:", content))
        self.class_box = QtWidgets.QComboBox(content)
        self.class_box.setToolTip("The class score z_c explained (the logit before any Softmax)")
        self.class_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(10)
        header.addWidget(self.class_box)
        header.addWidget(QtWidgets.QLabel("Grad-CAM layer:", content))
        self.layer_box = QtWidgets.QComboBox(content)
        self.layer_box.setToolTip("The layer whose feature maps Grad-CAM weighs (a C×H×W output before the scores)")
        self.layer_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_box.setMinimumContentsLength(16)
        header.addWidget(self.layer_box)
        outer.addLayout(header)
        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(240, 120)
        outer.addWidget(self.graphics, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)  # class and layer names are not markup
        outer.addWidget(self.caption)
        self._set_content(content)

        _, fg = palette_colors(self)
        layout = self.graphics.ci
        self.boxes: dict[str, pg.ViewBox] = {}
        self._base: dict[str, pg.ImageItem] = {}
        self._heat: dict[str, pg.ImageItem] = {}
        self._labels: dict[str, pg.LabelItem] = {}
        titles = {"input": "input", "saliency": "saliency |∂z_c/∂x|", "cam": "Grad-CAM"}
        for col, name in enumerate(("input", "saliency", "cam")):
            label = pg.LabelItem(titles[name], color=fg.name())
            layout.addItem(label, row=0, col=col)
            vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
            base = pg.ImageItem(axisOrder="row-major")
            vb.addItem(base)
            layout.addItem(vb, row=1, col=col)
            self.boxes[name], self._base[name], self._labels[name] = vb, base, label
            if name != "input":
                heat = pg.ImageItem(axisOrder="row-major")
                heat.setOpacity(OVERLAY_OPACITY)
                heat.setZValue(1)
                vb.addItem(heat)
                self._heat[name] = heat
            layout.layout.setColumnStretchFactor(col, 1)
            vb.setMinimumWidth(40)
        self.graphics.ci.geometryChanged.connect(self._equal_columns)
        self._throttle = make_throttler(self, self._render)
        self.class_box.currentIndexChanged.connect(lambda _: self._choice_changed())
        self.layer_box.currentIndexChanged.connect(lambda _: self._choice_changed())
        self._quiet = False

    # ------------------------------------------------------------ API
    def set_choices(self, classes: Sequence[str], layers: Sequence[tuple[int, str]],
                    default_layer: int | None) -> None:
        key = (tuple(classes), tuple(layers), default_layer)
        if key == self._choices_key:
            return
        self._choices_key = key
        chosen_class, chosen_layer = self.chosen_class, self.chosen_layer
        self._quiet = True
        try:
            self.class_box.clear()
            self.class_box.addItem("predicted", None)
            for i, name in enumerate(classes):
                self.class_box.addItem(f"{i} · {name}", i)
            k = self.class_box.findData(chosen_class) if chosen_class is not None else 0
            self.class_box.setCurrentIndex(max(0, k))
            self.layer_box.clear()
            label = dict(layers).get(default_layer)
            self.layer_box.addItem(f"default: {label}" if label else "default", None)
            for i, text in layers:
                self.layer_box.addItem(text, i)
            j = self.layer_box.findData(chosen_layer) if chosen_layer is not None else 0
            self.layer_box.setCurrentIndex(max(0, j))
        finally:
            self._quiet = False

    def choose_class(self, class_index: int | None) -> None:
        """Explain ``class_index`` (None: the predicted class), as the class box does."""
        self.class_box.setCurrentIndex(max(0, self.class_box.findData(class_index)) if class_index is not None else 0)

    def choose_layer(self, layer: int | None) -> None:
        self.layer_box.setCurrentIndex(max(0, self.layer_box.findData(layer)) if layer is not None else 0)

    @property
    def chosen_class(self) -> int | None:
        data = self.class_box.currentData()
        return None if data is None else int(data)

    @property
    def chosen_layer(self) -> int | None:
        data = self.layer_box.currentData()
        return None if data is None else int(data)

    def set_result(self, image: np.ndarray, saliency: np.ndarray, cam: np.ndarray | None, caption: str,
                   cam_note: str = "") -> None:
        self._image = _as_display(image)
        self._saliency = np.asarray(saliency, dtype=np.float32)
        self._cam = None if cam is None else np.asarray(cam, dtype=np.float32)
        self._cam_note = cam_note
        self.caption.setText(caption)
        self._show_content()
        self._throttle.throttle()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._saliency = self._cam = self._image = None
        super().clear(message)

    # ------------------------------------------------------------ readings
    def saliency_map(self) -> np.ndarray | None:
        return None if self._saliency is None else self._saliency.copy()

    def cam_map(self) -> np.ndarray | None:
        return None if self._cam is None else self._cam.copy()

    def shown_heat(self, name: str) -> np.ndarray | None:
        """The array the ``saliency`` or ``cam`` overlay was last drawn from."""
        image = self._heat[name].image
        return None if image is None else np.asarray(image)

    # ------------------------------------------------------------ drawing
    def _equal_columns(self) -> None:
        """Three panels of one width, whatever their titles' lengths."""
        layout = self.graphics.ci.layout
        m = layout.getContentsMargins()
        width = (self.graphics.ci.geometry().width() - m[0] - m[2] - 2 * layout.horizontalSpacing()) / 3
        if width > 0:
            for col in range(3):
                layout.setColumnFixedWidth(col, width)

    def _choice_changed(self) -> None:
        if not self._quiet:
            self.choiceChanged.emit()

    def _render(self) -> None:
        if self._image is None or self._saliency is None:
            return
        img = self._image
        lo, hi = float(img.min()), float(img.max())
        levels = (lo, hi if hi > lo else lo + 1.0)
        h, w = img.shape[:2]
        for name, base in self._base.items():
            if img.ndim == 2:
                base.setImage(img, levels=levels, lut=lut("CET-L1"), autoLevels=False)
            else:
                base.setImage(img, levels=levels, lut=None, autoLevels=False)
            # The input alone at full strength; under a map, dimmed so the map reads.
            base.setOpacity(1.0 if name == "input" else 0.55)
            self.boxes[name].setRange(QtCore.QRectF(0, 0, w, h), padding=0)
        for name, values in (("saliency", self._saliency), ("cam", self._cam)):
            heat = self._heat[name]
            if values is None:
                heat.clear()
                continue
            top = float(np.nanmax(values)) if values.size else 0.0
            heat.setImage(np.ascontiguousarray(values), levels=(0.0, top if top > 0 else 1.0), lut=lut(HEAT),
                          autoLevels=False)
        self._labels["cam"].setText("Grad-CAM" if self._cam is not None else f"Grad-CAM: {self._cam_note}")
