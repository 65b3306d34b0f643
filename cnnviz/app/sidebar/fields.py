"""One editing widget per catalogue parameter kind (``Param.kind``).

A :class:`Field` shows a value in the file's own form (an int, a list of two
ints, "same", None, …), emits :attr:`Field.edited` with a new value when the
person changes it, and takes values back with :meth:`Field.set_value` without
emitting, so an undo updates the editor in place instead of rebuilding it.
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit, QSpinBox, QWidget

from cnnviz.core.model import layers as L
from cnnviz.core.model.layers import Param

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _int_range(p: Param, lo_default: int = 0) -> tuple[int, int]:
    lo = int(p.min) if p.min is not None else lo_default
    hi = int(p.max) if p.max is not None else INT32_MAX
    return max(INT32_MIN, lo), min(INT32_MAX, hi)


def make_spin(p: Param, parent: QWidget | None = None) -> QSpinBox:
    spin = QSpinBox(parent)
    lo, hi = _int_range(p)
    spin.setRange(lo, hi)
    spin.setKeyboardTracking(True)
    spin.setAccelerated(True)
    spin.setMinimumWidth(64)
    spin.setToolTip(f"{p.doc}\nRange {lo}…{hi}.")
    return spin


class FloatSpinBox(QDoubleSpinBox):
    """A spin box that shows numbers as typed (1e-05, 0.5) and steps by factors of ten when ``log_step``."""

    def __init__(self, parent: QWidget | None = None, log_step: bool = False) -> None:
        super().__init__(parent)
        self.setDecimals(12)
        self.log_step = log_step
        self.setKeyboardTracking(True)
        self.setMinimumWidth(72)

    def textFromValue(self, value: float) -> str:
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip().replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        stripped = text.strip().replace(",", ".")
        if stripped in ("", "-", "+", ".", "-.", "e", "1e"):
            return QValidator.State.Intermediate, text, pos
        try:
            value = float(stripped)
        except ValueError:
            if stripped.endswith(("e", "e-", "e+", "E", "E-")):
                return QValidator.State.Intermediate, text, pos
            return QValidator.State.Invalid, text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        if self.log_step and self.value() > 0:
            self.setValue(min(self.maximum(), max(self.minimum(), self.value() * 10.0 ** steps)))
        else:
            super().stepBy(steps)


def make_float_spin(p: Param, parent: QWidget | None = None) -> FloatSpinBox:
    default = p.default if isinstance(p.default, (int, float)) and not isinstance(p.default, bool) else None
    spin = FloatSpinBox(parent, log_step=default is not None and 0 < default < 0.01)
    lo = p.min if p.min is not None else -1e9
    if not p.min_inclusive:
        lo = lo + 1e-12
    hi = p.max if p.max is not None else 1e9
    spin.setRange(lo, hi)
    span = hi - lo
    spin.setSingleStep(0.05 if span <= 1.0001 else 0.01 if span <= 10 else 0.1)
    spin.setToolTip(p.doc)
    return spin


class Field(QWidget):
    """Base of the editing widgets; ``edited`` carries a value in the file's form."""

    edited = Signal(object)

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self.setToolTip(param.doc)
        self._value: Any = None

    def value(self) -> Any:
        return self._value

    def set_value(self, value: Any, context: dict[str, Any] | None = None) -> None:
        self._value = value
        for w in self.inputs():
            w.blockSignals(True)
        try:
            self._show(value, context or {})
        finally:
            for w in self.inputs():
                w.blockSignals(False)

    def _show(self, value: Any, context: dict[str, Any]) -> None:
        raise NotImplementedError

    def inputs(self) -> list[QWidget]:
        """The focusable widgets inside (for the editor's focus tracking and tests)."""
        return []

    def _emit(self, value: Any) -> None:
        if value == self._value and type(value) is type(self._value):
            return
        self._value = value
        self.edited.emit(value)


class IntField(Field):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.spin = make_spin(param, self)
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(lambda v: self._emit(int(v)))

    def _show(self, value, context):
        if isinstance(value, int) and not isinstance(value, bool) and self.spin.value() != value:
            self.spin.setValue(value)  # only when different: setValue rewrites the text under a typing cursor

    def inputs(self):
        return [self.spin]


class FloatField(Field):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.spin = make_float_spin(param, self)
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(lambda v: self._emit(float(v)))

    def _show(self, value, context):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self.spin.value() != float(value):
            self.spin.setValue(float(value))

    def inputs(self):
        return [self.spin]


class BoolField(Field):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.check = QCheckBox(self)
        self.check.setToolTip(param.doc)
        self._layout.addWidget(self.check)
        self._layout.addStretch(1)
        self.check.toggled.connect(lambda on: self._emit(bool(on)))

    def _show(self, value, context):
        self.check.setChecked(bool(value))

    def inputs(self):
        return [self.check]


class ChoiceField(Field):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.combo = QComboBox(self)
        self.combo.addItems(list(param.choices))
        self.combo.setToolTip(param.doc)
        self._layout.addWidget(self.combo, 1)
        self.combo.activated.connect(lambda i: self._emit(self.combo.itemText(i)))

    def _show(self, value, context):
        i = self.combo.findText(str(value))
        if i >= 0:
            self.combo.setCurrentIndex(i)

    def inputs(self):
        return [self.combo]


class PairField(Field):
    """An int, or [height, width] when "H = W" is unticked."""

    def __init__(self, param: Param, parent: QWidget | None = None, keep_none: bool = False) -> None:
        super().__init__(param, parent)
        self.keep_none = keep_none  # SIZE: 0 shows "keep" and means None
        self.h = make_spin(param, self)
        self.w = make_spin(param, self)
        if keep_none:
            for spin in (self.h, self.w):
                spin.setMinimum(0)
                spin.setSpecialValueText("keep")
        self.h.setToolTip(f"Height. {param.doc}")
        self.w.setToolTip(f"Width. {param.doc}")
        self.linked = QCheckBox("H = W", self)
        self.linked.setToolTip("One value for height and width; untick to set them separately")
        self._layout.addWidget(self.h, 1)
        self._layout.addWidget(self.w, 1)
        self._layout.addWidget(self.linked)
        self.h.valueChanged.connect(self._changed)
        self.w.valueChanged.connect(self._changed)
        self.linked.toggled.connect(self._link_toggled)

    def _from_spin(self, spin: QSpinBox) -> int | None:
        v = int(spin.value())
        return None if self.keep_none and v == 0 else v

    def current(self) -> Any:
        h = self._from_spin(self.h)
        if self.linked.isChecked():
            return h if h is not None else [None, None]
        return [h, self._from_spin(self.w)]

    def _changed(self, *_):
        if self.linked.isChecked():
            self.w.blockSignals(True)
            self.w.setValue(self.h.value())
            self.w.blockSignals(False)
        self._emit(self.current())

    def _link_toggled(self, on: bool) -> None:
        self.w.setVisible(not on)
        if on:
            self.w.blockSignals(True)
            self.w.setValue(self.h.value())
            self.w.blockSignals(False)
        self._emit(self.current())

    def _show(self, value, context):
        if isinstance(value, (list, tuple)) and len(value) == 2:
            a, b = value
            self.linked.setChecked(False)
            self.w.setVisible(True)
        else:
            a = b = value
            self.linked.setChecked(True)
            self.w.setVisible(False)
        for spin, v in ((self.h, a), (self.w, b)):
            if v is None and self.keep_none:
                v = 0
            if isinstance(v, int) and not isinstance(v, bool) and spin.value() != v:
                spin.setValue(v)

    def inputs(self):
        return [self.h, self.w, self.linked]


class PaddingField(Field):
    """Conv2d padding: numbers, or "same" / "valid"."""

    MODES = ("numbers", "same", "valid")

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.mode = QComboBox(self)
        self.mode.addItems(list(self.MODES))
        self.mode.setToolTip("numbers: this many pixels on each side; same: keep the size (stride 1); valid: none")
        self.pair = PairField(param, self)
        self._layout.addWidget(self.mode)
        self._layout.addWidget(self.pair, 1)
        self.mode.activated.connect(self._mode_changed)
        self.pair.edited.connect(self._emit)

    def _mode_changed(self, i: int) -> None:
        mode = self.MODES[i]
        self.pair.setVisible(mode == "numbers")
        self._emit(self.pair.current() if mode == "numbers" else mode)

    def _show(self, value, context):
        if isinstance(value, str):
            self.mode.setCurrentIndex(self.MODES.index(value) if value in self.MODES else 0)
            self.pair.setVisible(False)
        else:
            self.mode.setCurrentIndex(0)
            self.pair.setVisible(True)
            self.pair.set_value(value)

    def inputs(self):
        return [self.mode] + self.pair.inputs()


class OptionalField(Field):
    """A value that may be None: a check box ("none", "= kernel", "auto …") beside the value's widget."""

    def __init__(self, param: Param, inner: Field, none_text: str, fallback: Any, parent: QWidget | None = None,
                 ) -> None:
        super().__init__(param, parent)
        self.inner = inner
        inner.setParent(self)
        self.none = QCheckBox(none_text, self)
        self.none.setToolTip(param.doc)
        self.fallback = fallback
        self._layout.addWidget(self.none)
        self._layout.addWidget(inner, 1)
        self.none.toggled.connect(self._none_toggled)
        inner.edited.connect(self._inner_edited)

    def _none_toggled(self, on: bool) -> None:
        self._show_inner(not on)
        self._emit(None if on else self.inner.value() if self.inner.value() is not None else self.fallback)

    def _inner_edited(self, value: Any) -> None:
        if not self.none.isChecked():
            self._emit(value)

    def _show(self, value, context):
        if context.get("fallback") is not None:
            self.fallback = context["fallback"]
        is_none = value is None
        self.none.setChecked(is_none)
        self._show_inner(not is_none)
        self.inner.set_value(self.fallback if is_none else value, context)

    def _show_inner(self, on: bool) -> None:
        self.inner.setEnabled(on)

    def inputs(self):
        return [self.none] + self.inner.inputs()


class InferredField(OptionalField):
    """in_channels, num_features, in_features: "auto (from previous layer: 6)" or a number."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, IntField(param), "auto", 1, parent)
        self.none.setToolTip("Take the number from the previous layer's output (leave it out of the file)")

    def _show_inner(self, on: bool) -> None:
        self.inner.setEnabled(on)
        self.inner.setVisible(on)  # "auto (from previous layer: 6)" already says the number

    def _show(self, value, context):
        arriving = context.get("arriving")
        self.fallback = arriving if isinstance(arriving, int) else (value if isinstance(value, int) else 1)
        self.none.setText(f"auto (from previous layer: {arriving})" if arriving is not None else "auto")
        super()._show(value, context)


class WeightsField(Field):
    """Loss class weights: comma-separated numbers, or empty for all 1."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.line = QLineEdit(self)
        self.line.setPlaceholderText("empty: all 1 (e.g. 1, 2, 0.5, …)")
        self.line.setToolTip(param.doc + "\nComma-separated, one number ≥ 0 per class.")
        self._layout.addWidget(self.line, 1)
        self.problem = ""
        self.line.editingFinished.connect(self._commit)
        self.line.textEdited.connect(lambda _t: self._mark(""))

    @staticmethod
    def parse(text: str) -> list[float] | None:
        """None for empty text; ValueError with a sentence for anything that is not non-negative numbers."""
        parts = [t.strip() for t in text.replace(";", ",").split(",")]
        parts = [t for t in parts if t]
        if not parts:
            return None
        out = []
        for n, t in enumerate(parts, 1):
            try:
                v = float(t)
            except ValueError:
                raise ValueError(f"item {n} ({t!r}) is not a number") from None
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"item {n} ({t}) must be a finite number ≥ 0")
            out.append(int(v) if v.is_integer() and "." not in t and "e" not in t.lower() else v)
        return out

    def _mark(self, problem: str) -> None:
        self.problem = problem
        self.line.setStyleSheet("QLineEdit { border: 1px solid #c62828; }" if problem else "")
        self.line.setToolTip(problem or self.param.doc)

    def _commit(self) -> None:
        try:
            value = self.parse(self.line.text())
        except ValueError as exc:
            self._mark(str(exc))
            return
        self._mark("")
        self._emit(value)

    def _show(self, value, context):
        text = "" if value is None else ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        if self.line.text() != text and not self.line.hasFocus():
            self.line.setText(text)
            self._mark("")

    def inputs(self):
        return [self.line]


def make_field(param: Param, parent: QWidget | None = None) -> Field:
    """The widget for ``param``'s kind."""
    k = param.kind
    if param.inferred:
        return InferredField(param, parent)
    if k == L.INT:
        return IntField(param, parent)
    if k == L.FLOAT:
        return FloatField(param, parent)
    if k == L.BOOL:
        return BoolField(param, parent)
    if k == L.CHOICE:
        return ChoiceField(param, parent)
    if k == L.PAIR:
        return PairField(param, parent)
    if k == L.PADDING:
        return PaddingField(param, parent)
    if k == L.SIZE:
        return PairField(param, parent, keep_none=True)
    if k == L.OPT_PAIR:
        return OptionalField(param, PairField(param), "= kernel_size", 2, parent)
    if k == L.OPT_INT:
        none_text = "not set" if param.name == "dim" else "none"
        fallback = 1 if param.name == "dim" else max(1, int(param.min or 1))
        return OptionalField(param, IntField(param), none_text, fallback, parent)
    if k == L.OPT_FLOAT:
        none_text = "none (plain average)" if param.name == "momentum" else "none"
        fallback = param.default if isinstance(param.default, float) else 0.1
        return OptionalField(param, FloatField(param), none_text, fallback, parent)
    if k == L.WEIGHTS:
        return WeightsField(param, parent)
    label = QLabel(f"({k})")
    field = Field(param, parent)
    field._layout.addWidget(label)
    field._show = lambda value, context: label.setText(repr(value))  # type: ignore[method-assign]
    return field
