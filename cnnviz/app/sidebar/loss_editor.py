"""Choosing the loss (CrossEntropyLoss or NLLLoss) and its keywords."""
from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from cnnviz.app.document.undo import History, new_session
from cnnviz.app.sidebar.form import ParamForm
from cnnviz.core.model.layers import LOSSES
from cnnviz.core.model.stack import Loss, SetLoss, Stack, set_loss_param


def switch_loss(loss: Loss, type_name: str) -> SetLoss:
    """Another loss type, keeping the keywords it shares with the old one."""
    spec = LOSSES[type_name]
    return SetLoss(Loss(type_name, {k: v for k, v in loss.params.items() if k in spec.param_index}))


class LossEditor(QWidget):
    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(8, 8, 8, 8)
        self.layout_.setSpacing(6)
        title = QLabel("<span style='font-size:large'><b>Loss</b></span>", self)
        self.combo = QComboBox(self)
        self.combo.setObjectName("loss_type")
        for i, (name, spec) in enumerate(LOSSES.items()):
            self.combo.addItem(name)
            self.combo.setItemData(i, spec.doc, Qt.ItemDataRole.ToolTipRole)
        self.combo.activated.connect(self._type_chosen)
        self.doc = QLabel(self)
        self.doc.setWordWrap(True)
        self.doc.setStyleSheet("color: palette(placeholder-text);")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.layout_.addWidget(title)
        self.layout_.addWidget(self.combo)
        self.layout_.addWidget(self.doc)
        self.layout_.addWidget(self.status)
        self.form: ParamForm | None = None
        self.form_type = ""
        self.layout_.addStretch(1)

    def show_stack(self, stack: Stack) -> None:
        loss = stack.loss
        spec = LOSSES.get(loss.type)
        if spec is None:
            return
        self.combo.setCurrentText(loss.type)
        self.combo.setToolTip(spec.doc)
        self.doc.setText(spec.doc)
        if self.form is None or self.form_type != loss.type:
            if self.form is not None:
                self.form.deleteLater()
            self.form = ParamForm(spec.params, self)
            self.form.edited.connect(self._param_edited)
            self.layout_.insertWidget(self.layout_.count() - 1, self.form)
            self.form_type = loss.type
        report = self.history.document.report.loss  # inferred once per change by the document
        self.form.show_values(dict(loss.params), {}, "weight" if report.error and "weight" in report.error else None,
                              report.error)
        lines = []
        if report.error:
            lines.append(f"<p style='color:#c62828'><b>✗</b> {escape(report.error)}</p>")
        lines.extend(f"<p style='color:#9a6700'><b>⚠</b> {escape(w)}</p>" for w in report.warnings)
        self.status.setText("".join(lines))
        self.status.setVisible(bool(lines))

    def _type_chosen(self, i: int) -> None:
        stack = self.history.document.stack
        name = self.combo.itemText(i)
        if name != stack.loss.type:
            self.history.push_edit(switch_loss(stack.loss, name), new_session())

    def _param_edited(self, key: str, value: Any, session: int) -> None:
        stack = self.history.document.stack
        if not self.history.push_edit(set_loss_param(stack.loss, key, value), session):
            self.show_stack(stack)
