"""Small helpers shared by the window tests."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex


def rows(window) -> list[str]:
    """The display text of every row of the stack list."""
    model = window.stack_view.model()
    return [model.index(r).data() for r in range(model.rowCount())]


def layer_row_text(window, i: int) -> str:
    model = window.stack_view.model()
    return model.index(model.row_of_layer(i)).data()


def field(window, name: str):
    """The property editor's field for keyword ``name`` of the selected layer."""
    return window.properties.editor.form.fields[name]


def root() -> QModelIndex:
    return QModelIndex()
