"""The property editor: a form for the selected row (input, layer or loss), generated from the catalogue.

Every change becomes a core edit pushed to the undo history. When the stack
changes under the editor (undo, a drop elsewhere) the same widgets are
updated in place, so a person typing in a field keeps the focus and cursor.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QScrollArea, QVBoxLayout, QWidget

from cnnviz.app.document.undo import History, new_session
from cnnviz.app.sidebar.form import ParamForm
from cnnviz.app.sidebar.input_editor import InputEditor
from cnnviz.app.sidebar.loss_editor import LossEditor
from cnnviz.core.model.layers import CATALOGUE, LayerSpec
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Layer, ReplaceLayer, StackDocument, set_param

BLOCK_DOCS = {
    "Residual": "Residual block: body(x) + shortcut(x). An empty shortcut is the identity (x itself), so the body "
                "must keep the shape; otherwise put a projection (a 1×1 Conv2d with the right stride and "
                "channels) on the shortcut. Drag layers into the body and the shortcut in the stack.",
    "Concat": "Parallel branches: torch.cat([branch(x) for branch in branches], dim=1). Every branch sees the "
              "same input; their outputs must agree on all but the channels (or features after Flatten). An "
              "empty branch passes x itself (DenseNet). Drag layers into the branches in the stack; Add "
              "branch is in the stack's context menu.",
}
from cnnviz.core.shapes import LayerReport


def arriving_count(layer: Layer, report: LayerReport | None) -> int | None:
    """The count an inferable keyword would take from the previous layer (channels or features)."""
    if report is None or report.input_shape is None:
        return None
    shape = report.input_shape
    if layer.type == "Linear":
        return shape[-1] if shape else None
    return shape[0] if len(shape) == 3 else None


class LayerEditor(QWidget):
    """Header, label and keyword form of one layer."""

    def __init__(self, spec: LayerSpec | None, parent: QWidget | None = None, block: str = "") -> None:
        super().__init__(parent)
        self.spec = spec if spec is not None else LayerSpec(block, "block", BLOCK_DOCS.get(block, ""), ())
        spec = self.spec
        self.index: int | LayerPath = -1
        """The layer's index when it is one of the stack's own, else its :class:`LayerPath`."""
        self.path: LayerPath | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.doc = QLabel(spec.doc, self)
        self.doc.setWordWrap(True)
        self.doc.setStyleSheet("color: palette(placeholder-text);")
        self.label_edit = QLineEdit(self)
        self.label_edit.setPlaceholderText("label (optional)")
        self.label_edit.setToolTip("A name for this layer, shown in the stack and saved in the file")
        self.label_edit.setClearButtonEnabled(True)
        self.form = ParamForm(spec.params, self)
        layout.addWidget(self.title)
        layout.addWidget(self.doc)
        layout.addWidget(self.label_edit)
        if not spec.params:
            none = QLabel("A block has no keywords of its own: its layers have." if block else
                          "This layer has no keywords.", self)
            none.setWordWrap(True)
            none.setStyleSheet("color: palette(placeholder-text);")
            layout.addWidget(none)
        layout.addWidget(self.form)
        layout.addStretch(1)

    def show_layer(self, where: int | LayerPath, layer: Layer, report: LayerReport | None) -> None:
        path = LayerPath.of(where)
        index = path.index if path.top_level else path
        if index != self.index:
            self.form.end_sessions()
        self.index, self.path = index, path
        self.title.setText(f"<span style='font-size:large'><b>{path} · {layer.type}</b></span>")
        if not self.label_edit.hasFocus() and self.label_edit.text() != (layer.name or ""):
            self.label_edit.setText(layer.name or "")
        contexts: dict[str, dict[str, Any]] = {}
        arriving = arriving_count(layer, report)
        for p in self.spec.params:
            if p.inferred:
                contexts[p.name] = {"arriving": arriving}
            elif p.name == "stride" and p.default is None:
                contexts[p.name] = {"fallback": layer.params.get("kernel_size", self.spec.param("kernel_size").suggest)}
        error_param = report.error_param if report is not None else None
        self.form.show_values(dict(layer.params), contexts, error_param, report.error if report else None)


class PropertyEditor(QScrollArea):
    """Shows the editor for the selected row and turns its changes into edits."""

    def __init__(self, document: StackDocument, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.history = history
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.kind = ""
        self.index = -1
        self.editor: QWidget | None = None
        self._key: tuple = ()
        unsubscribe = document.subscribe(lambda change: self.refresh())
        self.destroyed.connect(lambda *_: unsubscribe())
        self._placeholder()

    # ----------------------------------------------------------------- showing
    def _placeholder(self) -> None:
        label = QLabel("Select a row of the stack to edit it.", self)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("color: palette(placeholder-text);")
        self._install(label, ("none",))

    def _install(self, widget: QWidget, key: tuple) -> None:
        self.editor = widget
        self._key = key
        self.setWidget(widget)

    def show_selection(self, kind: str, index: int | LayerPath = -1) -> None:
        """Show the editor of the selected row: a layer by its index or, inside a block, its path."""
        self.kind, self.index = kind, index
        self.refresh()

    def _selected_layer(self) -> tuple[LayerPath, Layer] | None:
        if self.kind != "layer":
            return None
        try:
            path = LayerPath.of(self.index)
            return path, self.document.stack.layer_at(path)
        except (IndexError, ValueError, TypeError):
            return None

    def refresh(self) -> None:
        stack = self.document.stack
        kind = self.kind
        selected = self._selected_layer()
        if kind == "layer" and selected is None:
            kind = ""
        if kind == "layer":
            path, layer = selected
            key = ("layer", layer.type)
            if self._key != key or not isinstance(self.editor, LayerEditor):
                editor = LayerEditor(CATALOGUE.get(layer.type), block=layer.type if layer.is_block else "")
                editor.form.edited.connect(self._layer_param_edited)
                editor.label_edit.editingFinished.connect(self._layer_renamed)
                self._install(editor, key)
            report = self.document.report  # inferred once per change by the document
            try:
                layer_report = report.at(path)
            except IndexError:
                layer_report = None
            self.editor.show_layer(path, layer, layer_report)
        elif kind == "input":
            if self._key != ("input",):
                editor = InputEditor(self.history)
                self._install(editor, ("input",))
            self.editor.show_stack(stack)
        elif kind == "loss":
            if self._key != ("loss",):
                editor = LossEditor(self.history)
                self._install(editor, ("loss",))
            self.editor.show_stack(stack)
        elif self._key != ("none",):
            self._placeholder()

    # ----------------------------------------------------------------- editing
    def _editor_layer(self) -> tuple[LayerPath, Layer] | None:
        editor = self.editor
        if not isinstance(editor, LayerEditor) or editor.path is None:
            return None
        try:
            return editor.path, self.document.stack.layer_at(editor.path)
        except IndexError:
            return None

    def _layer_param_edited(self, key: str, value: Any, session: int) -> None:
        found = self._editor_layer()
        if found is None:
            return
        edit = set_param(self.document.stack, found[0], key, value)  # the one "back to default" rule
        if not self.history.push_edit(edit, session):
            self.refresh()  # nothing changed (an invalid value snapped back): show the stack's value again

    def _layer_renamed(self) -> None:
        found = self._editor_layer()
        if found is None:
            return
        path, layer = found
        text = self.editor.label_edit.text().strip() or None
        if text != layer.name:
            self.history.push_edit(ReplaceLayer(path, replace(layer, name=text), key="name"), new_session())
