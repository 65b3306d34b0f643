"""The dense lab: a Linear's dot product on the real flattened input, and softmax and the loss step by step.

- Linear: the flattened input vector drawn a channel per row (each index's origin under the pointer:
  index 213 → channel 8, row 2, column 3), the selected unit's weight row under it, the dot product plus
  bias next to torch's value (the taps are :func:`cnnviz.core.lab.taps.taps_of`'s).
- Softmax and the loss for the sample's logits z: z, z − max z, exp, the sum, the normalisation, log_softmax;
  a slider that scales z and shows where the naive exp overflows float32 while the shifted one does not;
  CrossEntropyLoss as −log s_y with the stack's own keywords, NLLLoss on log_softmax giving the same loss,
  dL/dz = s − onehot(y) per class (:mod:`.lab_steps`, numpy only).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views._common import (
    BLUE,
    GREEN,
    ORANGE,
    SEQUENTIAL,
    VERMILION,
    ViewPanel,
    lut,
    status_label,
    title_label,
)
from cnnviz.app.views.lab_steps import EXP_LIMIT, fmt, loss_settings, loss_steps, softmax_steps
from cnnviz.core.lab.taps import Arithmetic, LabError, taps_of

TOLERANCE = 1e-5


def _plain(label: QtWidgets.QLabel) -> QtWidgets.QLabel:
    label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _scrolling(widget: QtWidgets.QWidget, parent: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    """``widget`` in a scroll area: in a small window its lines scroll rather than being cut off."""
    area = QtWidgets.QScrollArea(parent)
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


def _rgb(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    idx = np.clip((np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo) - lo) / span * 255, 0, 255).astype(np.uint8)
    rgb = lut(SEQUENTIAL)[idx]
    rgb[~np.isfinite(v)] = (90, 95, 102)
    return rgb


class VectorStrip(QtWidgets.QWidget):
    """The input vector, the weight row and their products as three strips of cells, wrapped a channel per row
    (the flattened C×H×W origin) or at a fixed width; the pointer's index is reported."""

    hovered = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumHeight(90)
        self.n = 0
        self.per_row = 1
        self.cell = 4
        self.hover = -1
        self._pix: QtGui.QPixmap | None = None
        self._rows: list[np.ndarray] = []
        self._names = ("input x (a row per channel)", "weight row w_j", "x_i·w_j,i")

    def set_rows(self, x: np.ndarray, w: np.ndarray, origin: Sequence[int] | None) -> None:
        self._rows = [np.asarray(x, np.float32), np.asarray(w, np.float32), np.asarray(x * w, np.float32)]
        self.n = int(x.size)
        self.per_row = int(origin[1] * origin[2]) if origin is not None else int(min(self.n, 64)) or 1
        self._pix = None
        self.update()

    def _geometry(self) -> tuple[int, int, int]:
        """(rows, cell width, cell height): the three strips side by side, square cells where they fit."""
        rows = math.ceil(self.n / self.per_row) if self.n else 0
        label = self.fontMetrics().height() + 2
        cell_w = max(1, min(24, (self.width() - 8 - 2 * self.GAP) // max(1, 3 * self.per_row)))
        cell_h = max(1, min(max(cell_w, 2), (self.height() - label - 8) // max(1, rows)))
        return rows, cell_w, cell_h

    GAP = 16

    def index_rect(self, index: int, strip: int = 0) -> QtCore.QRectF:
        """Where vector index ``index`` is drawn in strip ``strip`` (0 the input, 1 the weights, 2 products)."""
        _rows, cw, ch = self._geometry()
        label = self.fontMetrics().height() + 2
        left = 4 + strip * (self.per_row * cw + self.GAP)
        r, c = divmod(index, self.per_row)
        return QtCore.QRectF(left + c * cw, 4 + label + r * ch, cw, ch)

    def index_at(self, pos: QtCore.QPointF) -> int:
        rows, cw, ch = self._geometry()
        for strip in range(3):
            first = self.index_rect(0, strip)
            c = math.floor((pos.x() - first.x()) / cw)
            r = math.floor((pos.y() - first.y()) / ch)
            if 0 <= c < self.per_row and 0 <= r < rows:
                i = r * self.per_row + c
                return i if i < self.n else -1
        return -1

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._pix = None

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        i = self.index_at(event.position())
        if i != self.hover:
            self.hover = i
            self.update()
            if i >= 0:
                self.hovered.emit(i)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if not self.n:
            return
        p = QtGui.QPainter(self)
        rows, cw, ch = self._geometry()
        if self._pix is None or self._pix.size() != self.size():
            pix = QtGui.QPixmap(self.size())
            pix.fill(self.palette().color(QtGui.QPalette.ColorRole.Window))
            q = QtGui.QPainter(pix)
            q.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
            for s, values in enumerate(self._rows):
                padded = np.full(rows * self.per_row, np.nan, np.float32)
                padded[:self.n] = values
                rgb = np.ascontiguousarray(_rgb(padded.reshape(rows, self.per_row)))
                image = QtGui.QImage(rgb.data, self.per_row, rows, 3 * self.per_row, QtGui.QImage.Format.Format_RGB888)
                first = self.index_rect(0, s)
                q.drawText(QtCore.QPointF(first.x(), first.y() - 4),
                           self.fontMetrics().elidedText(self._names[s], QtCore.Qt.TextElideMode.ElideRight,
                                                         self.per_row * cw + self.GAP - 4))
                q.drawImage(QtCore.QRectF(first.x(), first.y(), self.per_row * cw, rows * ch), image)
            q.end()
            self._pix = pix
        p.drawPixmap(0, 0, self._pix)
        if self.hover >= 0:
            p.setPen(QtGui.QPen(QtGui.QColor(VERMILION), 2))
            for s in range(3):
                p.drawRect(self.index_rect(self.hover, s).adjusted(-1, -1, 1, 1))
        p.end()


class DenseLabView(ViewPanel):
    """The Linear lab above, the softmax and loss lab below.

    Data API (GUI thread):

    - ``set_linear(x, weight, bias, out, *, origin=None, title="")``: a Linear's 1-D input ``x``, its
      (out_features, in_features) ``weight``, ``bias`` (None without), torch's output ``out``; ``origin`` the
      C×H×W a Flatten made ``x`` from. ``clear_linear(message)`` for any other layer.
    - ``set_logits(z, label, *, loss_type="CrossEntropyLoss", loss_resolved=None, classes=(), torch_loss=None)``.
    - ``set_unit(j)``, ``set_scale(t)``, ``hover_index(i)`` (what the pointer does).
    """

    EMPTY_HINT = "Run a forward pass to see the dot products, the softmax and the loss"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.arithmetic: Arithmetic | None = None
        self.torch_value: float | None = None
        self.unit = 0
        self.origin: tuple[int, ...] | None = None
        self.hovered_origin: tuple[int, int, int] | None = None
        self.scale = 1.0
        self.steps = None
        self.loss = None
        self._lin: tuple | None = None
        self._z: np.ndarray | None = None
        self._label = 0
        self._classes: tuple[str, ...] = ()
        self._settings: dict[str, Any] = loss_settings(None)
        self._loss_type = "CrossEntropyLoss"
        self._torch_loss: float | None = None
        self._dirty = False
        self._pending_linear: tuple | None = None

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, content)
        outer.addWidget(split)

        # ---- Linear
        lin = QtWidgets.QWidget(split)
        lv = QtWidgets.QVBoxLayout(lin)
        lv.setContentsMargins(0, 0, 0, 0)
        head = QtWidgets.QHBoxLayout()
        self.linear_title = title_label(lin)
        head.addWidget(self.linear_title, 1)
        self.unit_box = QtWidgets.QSpinBox(lin)
        self.unit_box.setPrefix("unit j = ")
        self.unit_box.valueChanged.connect(self.set_unit)
        head.addWidget(self.unit_box)
        lv.addLayout(head)
        self.linear_stack = QtWidgets.QStackedWidget(lin)
        self.linear_hint = QtWidgets.QLabel("Select a Linear layer to see its dot products", lin)
        self.linear_hint.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.linear_hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.linear_hint.setWordWrap(True)
        self.linear_stack.addWidget(self.linear_hint)
        body = QtWidgets.QWidget(lin)
        bv = QtWidgets.QVBoxLayout(body)
        bv.setContentsMargins(0, 0, 0, 0)
        self.strip = VectorStrip(body)
        self.strip.hovered.connect(self.hover_index)
        bv.addWidget(self.strip, 1)
        self.index_label = status_label(body)
        bv.addWidget(self.index_label)
        self.features_label = _plain(QtWidgets.QLabel(body))
        bv.addWidget(self.features_label)
        self.dot_label = _plain(QtWidgets.QLabel(body))
        self.dot_label.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        bv.addWidget(self.dot_label)
        self.linear_stack.addWidget(body)
        lv.addWidget(self.linear_stack, 1)
        split.addWidget(_scrolling(lin, split))

        # ---- softmax and loss
        soft = QtWidgets.QWidget(split)
        sv = QtWidgets.QVBoxLayout(soft)
        sv.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        t = title_label(soft)
        t.setText("softmax(t·z) and the loss, step by step")
        row.addWidget(t, 1)
        row.addWidget(QtWidgets.QLabel("scale z by t:", soft))
        self.scale_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, soft)
        self.scale_slider.setRange(0, 400)  # t = 10^(v/100 − 1): 0.1 … 1000
        self.scale_slider.setValue(100)
        self.scale_slider.setMinimumWidth(160)
        self.scale_slider.setToolTip("Multiply the logits: above z ≈ 88.7 the naive exp(z) overflows float32")
        self.scale_slider.valueChanged.connect(lambda v: self.set_scale(10 ** (v / 100 - 1)))
        row.addWidget(self.scale_slider)
        self.scale_label = QtWidgets.QLabel("t = 1", soft)
        self.scale_label.setMinimumWidth(self.scale_label.fontMetrics().horizontalAdvance("t = 1000.0 "))
        row.addWidget(self.scale_label)
        sv.addLayout(row)
        self.overflow_label = _plain(QtWidgets.QLabel(soft))
        sv.addWidget(self.overflow_label)
        self.table = QtWidgets.QTableWidget(soft)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setWordWrap(False)
        sv.addWidget(self.table, 1)
        self.loss_label = _plain(QtWidgets.QLabel(soft))
        sv.addWidget(self.loss_label)
        split.addWidget(_scrolling(soft, split))
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self._set_content(content)

    # ================================================================ Linear
    def clear_linear(self, message: str) -> None:
        if self._lin is None and self._pending_linear is None and self.linear_stack.currentIndex() == 0 \
                and self.linear_hint.text() == message and self.linear_title.text() == "Linear":
            return   # cleared already, with this message (every probe while another layer is selected)
        self._pending_linear = None
        self._lin = None
        self.arithmetic = None
        self.linear_title.setText("Linear")
        self.linear_hint.setText(message)
        self.linear_stack.setCurrentIndex(0)
        self.unit_box.setEnabled(False)

    def set_linear(self, x: np.ndarray | None, weight: np.ndarray | None, bias: np.ndarray | None,
                   out: np.ndarray | None, *, origin: Sequence[int] | None = None, title: str = "",
                   has_bias: bool = True) -> None:
        if not self.isVisible():  # drawn when the tab is shown: a probe while training costs nothing here
            self._pending_linear = (x, weight, bias, out, origin, title, has_bias)
            return
        self._pending_linear = None
        self._set_linear(x, weight, bias, out, origin, title, has_bias)

    def _set_linear(self, x, weight, bias, out, origin, title, has_bias) -> None:
        if x is None or out is None:
            self.clear_linear(f"{title}: no input or output for this sample yet")
            return
        if weight is None or (has_bias and bias is None):
            self.clear_linear(f"{title}: reading the weights…")
            return
        x = np.asarray(x, np.float32).reshape(-1)
        weight = np.asarray(weight, np.float32)
        if weight.ndim != 2 or weight.shape[1] != x.size or np.size(out) != weight.shape[0]:
            self.clear_linear(f"{title}: weights {'×'.join(map(str, weight.shape))} do not fit an input of "
                              f"{x.size} values (the stack changed)")
            return
        origin = tuple(int(v) for v in origin) if origin is not None and math.prod(origin) == x.size else None
        same = self._lin is not None and self._lin[1].shape == weight.shape
        self._lin = (x, weight, None if bias is None else np.asarray(bias, np.float32),
                     np.asarray(out, np.float32).reshape(-1))
        self.origin = origin
        self._show_content()
        self.linear_stack.setCurrentIndex(1)
        self.linear_title.setText(title)
        self.unit_box.setEnabled(True)
        if not same:
            self.unit = 0
        self.unit = min(self.unit, weight.shape[0] - 1)
        self.unit_box.blockSignals(True)
        self.unit_box.setRange(0, weight.shape[0] - 1)
        self.unit_box.setValue(self.unit)
        self.unit_box.blockSignals(False)
        if origin is not None:
            c, h, w = origin
            self.features_label.setText(f"in_features = C·H·W = {c}·{h}·{w} = {x.size}: index i comes from "
                                        f"channel i // {h * w}, row (i mod {h * w}) // {w}, column i mod {w} "
                                        f"(a row of the strip per channel)")
        else:
            self.features_label.setText(f"in_features = {x.size}")
        self.index_label.setText("Point at an index to see where it came from")
        self._show_unit()

    def set_unit(self, j: int) -> None:
        if self._lin is None or not 0 <= j < self._lin[1].shape[0]:
            return
        self.unit = int(j)
        if self.unit_box.value() != j:
            self.unit_box.blockSignals(True)
            self.unit_box.setValue(j)
            self.unit_box.blockSignals(False)
        self._show_unit()

    def _show_unit(self) -> None:
        x, weight, bias, out = self._lin
        try:
            a = taps_of("Linear", {}, x, (self.unit,), weight=weight, bias=bias, origin=self.origin)
        except LabError as exc:
            self.clear_linear(str(exc))
            return
        self.arithmetic = a
        self.torch_value = float(out[self.unit])
        self.strip.set_rows(x, weight[self.unit], self.origin)
        diff = abs(a.value - self.torch_value)
        ok = math.isfinite(diff) and diff <= TOLERANCE * max(1.0, abs(self.torch_value))
        self.dot_label.setText(
            f"Σ x_i·w_{self.unit},i over {len(a.taps)} inputs  {fmt(a.total)}\n"
            f"bias b_{self.unit}                      {fmt(a.bias) if a.has_bias else '(bias=False)'}\n"
            f"value = Σ + b                 {fmt(a.value)}\n"
            f"torch's value                 {fmt(self.torch_value)}\n"
            f"difference                    {diff:.2e}" + ("  within float32 rounding" if ok else "  ✗ they differ"))

    def hover_index(self, i: int) -> None:
        """Say where vector index ``i`` came from and its term of the dot product."""
        if self.arithmetic is None or not 0 <= i < len(self.arithmetic.taps):
            return
        tap = self.arithmetic.taps[i]
        if tap.channel is not None:
            self.hovered_origin = (tap.channel, tap.y, tap.x)
            where = f" → channel {tap.channel}, row {tap.y}, column {tap.x}"
        else:
            self.hovered_origin = None
            where = ""
        self.strip.hover = i
        self.strip.update()
        self.index_label.setText(f"index {i}{where}: x = {fmt(tap.input)}, w = {fmt(tap.weight)}, "
                                 f"x·w = {fmt(tap.product)}")
        self.index_label.setToolTip(tooltip(self.index_label.text()))

    # ================================================================ softmax and loss
    def set_logits(self, z: np.ndarray | None, label: int, *, loss_type: str = "CrossEntropyLoss",
                   loss_resolved: Mapping[str, Any] | None = None, classes: Sequence[str] = (),
                   torch_loss: float | None = None) -> None:
        if z is None or np.size(z) == 0:
            self.loss_label.setText("No logits for this sample")
            return
        self._show_content()
        self._z = np.asarray(z, np.float32).reshape(-1)
        self._label = int(label)
        self._classes = tuple(classes)
        self._loss_type = loss_type
        self._settings = loss_settings(loss_resolved, loss_type)
        self._torch_loss = torch_loss
        if self.isVisible():
            self._show_softmax()
        else:
            self._dirty = True  # drawn when the tab is shown

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self.flush()

    def flush(self) -> None:
        """Apply what was set while hidden."""
        if self._pending_linear is not None:
            pending, self._pending_linear = self._pending_linear, None
            self._set_linear(*pending)
        if self._dirty and self._z is not None:
            self._show_softmax()

    def set_scale(self, t: float) -> None:
        self.scale = float(t)
        v = round((math.log10(max(t, 1e-3)) + 1) * 100)
        if self.scale_slider.value() != v:
            self.scale_slider.blockSignals(True)
            self.scale_slider.setValue(min(400, max(0, v)))
            self.scale_slider.blockSignals(False)
        self.scale_label.setText(f"t = {t:.3g}")
        if self._z is not None:
            self._show_softmax()

    def _show_softmax(self) -> None:
        self._dirty = False
        st = softmax_steps(self._z, self.scale)
        self.steps = st
        loss = loss_steps(st.log_softmax, self._label, self._settings)
        self.loss = loss
        k = st.z.size
        names = [self._classes[i] if i < len(self._classes) else str(i) for i in range(k)]
        cols = ("class", "z", "z − max z", "exp(z − max z)", "s = exp / Σ", "log_softmax", "dL/dz = s − q",
                "target q", "naive exp(z)", "naive s")
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(k)
        for i in range(k):
            values = (names[i], fmt(st.z[i]), fmt(st.shifted[i]), fmt(st.exp_shifted[i]), fmt(st.softmax[i]),
                      fmt(st.log_softmax[i]), fmt(loss.grad[i]), fmt(loss.target[i]), fmt(st.exp_naive[i]),
                      fmt(st.naive[i]))
            for c, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                if i == self._label:
                    item.setForeground(QtGui.QColor(GREEN))
                if c in (8, 9) and not math.isfinite(float(st.exp_naive[i] if c == 8 else st.naive[i])):
                    item.setForeground(QtGui.QColor(VERMILION))
                if c == 6:
                    item.setBackground(QtGui.QColor(BLUE if loss.grad[i] < 0 else ORANGE).lighter(170))
                self.table.setItem(i, c, item)
        zmax = float(np.max(st.z))
        if st.overflow:
            self.overflow_label.setText(
                f"max t·z = {fmt(zmax)} > {EXP_LIMIT:.2f}: the naive exp(z) overflows float32 to inf and "
                f"exp(z) / Σ exp(z) gives nan; the shifted exp(z − max z) ≤ 1 cannot overflow, so softmax stays "
                f"right (Σ exp(z − max z) = {fmt(st.sum_shifted)})")
        elif st.underflow:
            self.overflow_label.setText("every naive exp(z) underflowed to 0: the naive sum is 0 and the division "
                                        "0/0; the shifted one has exp(0) = 1 in its sum")
        else:
            self.overflow_label.setText(
                f"max t·z = {fmt(zmax)} ≤ {EXP_LIMIT:.2f}: no overflow yet, naive and shifted agree "
                f"(Σ exp(z) = {fmt(st.sum_naive)}, Σ exp(z − max z) = {fmt(st.sum_shifted)})")
        r = self._settings
        keywords = (f"{self._loss_type}(weight={'None' if r['weight'] is None else list(np.round(r['weight'], 4))}, "
                    f"label_smoothing={r['label_smoothing']:g}, ignore_index={r['ignore_index']}, "
                    f"reduction='{r['reduction']}')")
        lines = [f"the stack's loss: {keywords}",
                 (f"y = {self._label} ({names[self._label] if 0 <= self._label < k else '?'}): "
                 f"CrossEntropyLoss = −log s_y = −({fmt(st.log_softmax[self._label]) if 0 <= self._label < k else '?'})"
                 f" = {fmt(loss.nll)};  NLLLoss(log_softmax(z), y) = {fmt(loss.nll_loss)}"),
                 loss.formula, f"{loss.grad_formula} (the last column)"]
        if self._loss_type == "NLLLoss":
            lines.append("The stack's loss is NLLLoss: on log_softmax(z) it is CrossEntropyLoss(z)")
        if self._torch_loss is not None and self.scale == 1.0:
            lines.append(f"torch's loss for this sample, as the stack computes it: {fmt(self._torch_loss)}")
        self.loss_label.setText("\n".join(lines))
