"""A form of :mod:`fields` for a list of catalogue parameters, with reset buttons and edit sessions."""
from __future__ import annotations

from typing import Any, Iterable

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from cnnviz.app.document.undo import is_history_key, new_session
from cnnviz.app.sidebar.fields import Field, make_field
from cnnviz.core.model.layers import DEFAULT, REQUIRED, Param


def shown_value(p: Param, given: dict[str, Any]) -> Any:
    """What the field shows: the given value, None for an omitted inferable count, else torch's default."""
    if p.name in given:
        return given[p.name]
    if p.inferred:
        return None
    return p.default if p.default is not REQUIRED else p.suggest


class ParamForm(QWidget):
    """Label, field and reset button per parameter; ``edited(key, value, session)``.

    The reset button sends :data:`~cnnviz.core.model.layers.DEFAULT`; the edits
    (``set_param``, ``set_loss_param``) decide what "back to default" means.
    """

    edited = Signal(str, object, int)

    def __init__(self, params: Iterable[Param], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.params = {p.name: p for p in params}
        self.fields: dict[str, Field] = {}
        self.labels: dict[str, QLabel] = {}
        self.resets: dict[str, QToolButton] = {}
        self.sessions: dict[str, int] = {}
        self._focus_owner: dict[QObject, str] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # side by side where they fit: _fit_rows
        layout.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.setHorizontalSpacing(8)
        layout.setVerticalSpacing(5)
        for p in self.params.values():
            label = QLabel(p.name, self)
            label.setToolTip(p.doc)
            field = make_field(p, self)
            field.setObjectName(f"field_{p.name}")
            reset = QToolButton(self)
            reset.setText("↺")
            reset.setAutoRaise(True)
            default = "" if p.default is REQUIRED else f" ({p.default!r})"
            reset.setToolTip(f"Back to torch's default{default}: leave {p.name} out of the file")
            reset.setVisible(False)
            reset.clicked.connect(lambda _=False, key=p.name: self._emit(key, DEFAULT))
            row = QWidget(self)
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            h.setSpacing(2)
            h.addWidget(field, 1)
            h.addWidget(reset)
            layout.addRow(label, row)
            field.edited.connect(lambda value, key=p.name: self._emit(key, value))
            for w in field.inputs():
                w.installEventFilter(self)
                self._focus_owner[w] = p.name
            self.fields[p.name] = field
            self.labels[p.name] = label
            self.resets[p.name] = reset
            self.sessions[p.name] = new_session()
        self._rows_side_by_side: bool | None = None

    # ------------------------------------------------------------------ rows: side by side, or labels above
    def _widths(self) -> tuple[int, int, int]:
        """(widest label, widest field at its minimum, margins) of the rows shown."""
        layout = self.layout()
        labels = max((label.sizeHint().width() for label in self.labels.values() if not label.isHidden()), default=0)
        fields = 0
        for row in range(layout.rowCount()):
            item = layout.itemAt(row, QFormLayout.ItemRole.FieldRole)
            if item is not None and item.widget() is not None and not item.widget().isHidden():
                fields = max(fields, item.widget().minimumSizeHint().width())
        margins = layout.contentsMargins()
        return labels, fields, margins.left() + margins.right()

    def _side_by_side_width(self) -> int:
        """The width that holds every label beside its field at the field's minimum (Qt's WrapLongRows
        decides with other sizes and can give a field a few pixels less than it needs)."""
        labels, fields, margins = self._widths()
        return labels + self.layout().horizontalSpacing() + fields + margins

    def minimumSizeHint(self) -> QSize:
        """As narrow as the form is with every label above its field: side by side is for widths that hold it."""
        labels, fields, margins = self._widths()
        return QSize(max(labels, fields) + margins, super().minimumSizeHint().height())

    def _fit_rows(self, width: int) -> None:
        side_by_side = width >= self._side_by_side_width()
        if side_by_side != self._rows_side_by_side:
            self._rows_side_by_side = side_by_side
            self.layout().setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows if side_by_side
                                           else QFormLayout.RowWrapPolicy.WrapAllRows)

    def resizeEvent(self, event) -> None:
        self._fit_rows(event.size().width())
        super().resizeEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # a field shown or widened: decide again
            self._fit_rows(self.width())
        return super().event(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and not isinstance(watched, QLineEdit) and is_history_key(event):
            return True  # a spin box would take Ctrl+Z for its text; let the window's Undo have it
        if event.type() == QEvent.Type.FocusOut and watched in self._focus_owner:
            self.sessions[self._focus_owner[watched]] = new_session()  # leaving a field ends its merge window
        return False

    def end_sessions(self) -> None:
        for key in self.sessions:
            self.sessions[key] = new_session()

    def _emit(self, key: str, value: Any) -> None:
        session = self.sessions[key]
        if value is DEFAULT:
            self.sessions[key] = new_session()
        self.edited.emit(key, value, session)

    def show_values(self, given: dict[str, Any], contexts: dict[str, dict[str, Any]] | None = None,
                    error_param: str | None = None, error: str | None = None) -> None:
        contexts = contexts or {}
        for name, p in self.params.items():
            self.fields[name].set_value(shown_value(p, given), contexts.get(name, {}))
            self.resets[name].setVisible(name in given and p.default is not REQUIRED and not p.inferred)
            label = self.labels[name]
            if name == error_param:
                label.setText(f"<b style='color:#c62828'>{name}</b>")
                label.setToolTip(f"✗ {error}\n\n{p.doc}" if error else p.doc)
            else:
                label.setText(name)
                label.setToolTip(p.doc)
