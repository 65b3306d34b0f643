"""The stack panel: the stack list (:mod:`.stack_list`) with its edit actions (add, delete, duplicate, move,
rename, wrap in a block), their keys, and what is selected, said as the kind of row and the layer's path."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QVBoxLayout, QWidget

from cnnviz.app.sidebar.stack_list import StackListView
from cnnviz.app.sidebar.stack_model import INPUT, LAYER, StackListModel
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Batch, InsertLayer, MoveLayer, RemoveLayer, ReplaceLayer, concat, residual
from cnnviz.core.shapes.inference import fix_edit
from cnnviz.core.shapes.reports import Fix


class StackPanel(QWidget):
    """The stack list with its actions: add, delete, duplicate, move up/down, rename."""

    selectionChanged = Signal(str, int)  # kind ("input", "layer", "loss", ""), top-level layer index (-1 if none)
    pathChanged = Signal(object)  # the selected layer's LayerPath at any depth, or None

    def __init__(self, model: StackListModel, push, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._push = push
        self.view = StackListView(self)
        self.view.setModel(model)
        self.view.setObjectName("stack_list")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

        self.delete_action = self._action("Delete layer", [QKeySequence(Qt.Key.Key_Delete),
                                                           QKeySequence(Qt.Key.Key_Backspace)], self.delete_selected,
                                          "Remove the selected layer (Del)", scoped=True)
        self.duplicate_action = self._action("Duplicate layer", [QKeySequence("Ctrl+D")], self.duplicate_selected,
                                             "Insert a copy of the selected layer after it (Ctrl+D)")
        self.move_up_action = self._action("Move layer up", [QKeySequence("Alt+Up"), QKeySequence("Ctrl+Up")],
                                           lambda: self.move_selected(-1), "Move the selected layer up (Alt+Up)")
        self.move_down_action = self._action("Move layer down", [QKeySequence("Alt+Down"), QKeySequence("Ctrl+Down")],
                                             lambda: self.move_selected(+1), "Move the selected layer down (Alt+Down)")
        self.rename_action = self._action("Rename…", [QKeySequence(Qt.Key.Key_F2)], self.rename_selected,
                                          "Give the selected layer a label, or rename the stack on the input row (F2)",
                                          scoped=True)
        self.wrap_residual_action = self._action(
            "Wrap in Residual block", [QKeySequence("Ctrl+Shift+R")], lambda: self.wrap_selected("Residual"),
            "Put the selected layer in the body of a new Residual block: x + layer(x) (Ctrl+Shift+R)")
        self.wrap_concat_action = self._action(
            "Wrap in parallel branches (Concat)", [], lambda: self.wrap_selected("Concat"),
            "Put the selected layer in a branch of a new Concat block, beside an identity branch")
        self.add_branch_action = self._action("Add branch", [], self.add_branch,
                                              "Add an empty (identity) branch to the selected Concat block")
        self.unwrap_action = self._action("Take layers out of block", [], self.unwrap_selected,
                                          "Replace the selected block by its layers, where that computes the same")
        self.view.context_actions = [self.rename_action, self.duplicate_action, None, self.move_up_action,
                                     self.move_down_action, None, self.wrap_residual_action, self.wrap_concat_action,
                                     self.add_branch_action, self.unwrap_action, None, self.delete_action]
        self.view.row_actions = self.fix_actions

        self.view.selectionModel().selectionChanged.connect(self._selection_model_changed)
        model.requestSelect.connect(self.select_row)
        model.requestSelectPath.connect(self.select_path)
        model.removingRow.connect(self._before_row_removed)
        model.rowsRemoved.connect(self._after_rows_removed)
        model.modelAboutToBeReset.connect(self._before_reset)
        model.modelReset.connect(self._after_reset)
        model.dataChanged.connect(self._update_actions)
        for signal in (model.rowsInserted, model.rowsRemoved, model.rowsMoved, model.modelReset):
            signal.connect(self._sync_selection)
        self._last_row = 0
        self._selected_before: LayerPath | None = None
        self._emitted: tuple = (("", -1), None)
        self._removing_selected = False
        self._update_actions()

    def _action(self, text: str, keys: list[QKeySequence], slot, tip: str, scoped: bool = False) -> QAction:
        action = QAction(text, self)
        action.setShortcuts(keys)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        if scoped:  # Del and F2 belong to text fields elsewhere: only the list hears them
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(action)
        else:
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        return action

    def fix_actions(self, where, parent=None) -> list[QAction]:
        """One action per fix the core proposes for the layer on a row (a top-level row number or an index):
        its error's, its warnings' (a Softmax's dim, a shortcut that could be the identity)."""
        index = self.model.index(where) if isinstance(where, int) else where
        path = self.model.path_of(index)
        if path is None:
            return []
        try:
            report = self.model.document.report.at(path)
        except IndexError:
            return []
        actions = []
        for fix in report.fixes:
            action = QAction(f"Apply fix: {fix.label}", parent if parent is not None else self)
            action.setToolTip(f"Use {fix} (undo with Ctrl+Z)")
            action.setStatusTip(action.toolTip())
            action.triggered.connect(lambda _=False, path=path, fix=fix: self.apply_fix(path, fix))
            actions.append(action)
        return actions

    def apply_fix(self, where, fix: Fix) -> bool:
        """Apply one proposed fix to the layer at ``where`` (an index or a path) as one undoable edit."""
        return self._push(fix_edit(self.model.document.stack, where, fix))

    # ------------------------------------------------------------- selection
    def selected_index(self) -> QModelIndex:
        rows = self.view.selectionModel().selectedRows()
        return rows[0] if rows else QModelIndex()

    def selected_row(self) -> int:
        """The selected top-level row (a row inside a block counts as its outermost block's row); -1 if none."""
        index = self.selected_index()
        while index.isValid() and index.parent().isValid():
            index = index.parent()
        return index.row() if index.isValid() else -1

    def selected_path(self) -> LayerPath | None:
        """The selected layer's path, at any depth (None for the input, the loss, a block's list or nothing)."""
        return self.model.path_of(self.selected_index())

    def selected_layer(self) -> int | None:
        """The selected top-level layer's index (None inside a block: see :meth:`selected_path`)."""
        path = self.selected_path()
        return path.index if path is not None and path.top_level else None

    def selection(self) -> tuple[str, int]:
        """(kind, top-level layer index) for the window's views: a row inside a block shows its outermost
        block (whose output the probe holds)."""
        index = self.selected_index()
        if not index.isValid():
            return ("", -1)
        kind = self.model.kind(self.selected_row())
        return (kind or "", self.selected_row() - 1 if kind == LAYER else -1)

    def select_index(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.view.follow(index)

    def select_row(self, row: int) -> None:
        row = max(0, min(self.model.rowCount() - 1, row))
        self.select_index(self.model.index(row))

    def select_layer(self, i: int) -> None:
        self.select_row(self.model.row_of_layer(i))

    def select_path(self, path) -> None:
        """Select the layer at ``path`` (inside blocks too)."""
        try:
            self.select_index(self.model.index_of(LayerPath.of(path)))
        except (IndexError, ValueError, TypeError):
            pass

    def show_from_top(self) -> None:
        """Scroll to the input row (row 0), then as little as needed to keep the selected row in view too."""
        self.view.scrollToTop()
        current = self.view.currentIndex()
        if current.isValid():
            self.view.scrollTo(current)

    def _selection_model_changed(self, *args) -> None:
        row = self.selected_row()
        if row >= 0:
            self._last_row = row
        self._sync_selection()

    def _sync_selection(self, *args) -> None:
        """Tell listeners the selected layer's index whenever it changes, also when rows shift under it."""
        self._update_actions()
        selection = self.selection()
        path = self.selected_path()
        if (selection, path) != self._emitted:
            self._emitted = (selection, path)
            self.selectionChanged.emit(*selection)
            self.pathChanged.emit(path)

    def _before_row_removed(self, row: int) -> None:
        self._removing_selected = row >= 0 and self.selected_row() == row and self.selected_path() is not None \
            and self.selected_path().top_level

    def _after_rows_removed(self, parent, first: int, last: int) -> None:
        if parent.isValid():
            if not self.selected_index().isValid():
                n = self.model.rowCount(parent)
                self.select_index(self.model.index(min(first, n - 1), 0, parent) if n else parent)
            return
        if self._removing_selected or self.selected_row() < 0:
            # Qt would move on to the next row (perhaps the loss); the layer that took its place, or the one before
            self.select_row(first if self.model.kind(first) == LAYER else first - 1)
        self._removing_selected = False

    def _after_reset(self) -> None:
        if self._selected_before is not None:
            self.select_path(self._selected_before)
            if self.selected_path() == self._selected_before:
                return
        self.select_row(min(self._last_row, self.model.rowCount() - 1))

    def _before_reset(self) -> None:
        self._selected_before = self.selected_path()

    def _update_actions(self, *args) -> None:
        path = self.selected_path()
        has = path is not None
        n = len(self._siblings(path)) if has else 0
        self.delete_action.setEnabled(has)
        self.duplicate_action.setEnabled(has)
        self.move_up_action.setEnabled(has and path.index > 0)
        self.move_down_action.setEnabled(has and path.index < n - 1)
        self.wrap_residual_action.setEnabled(has)
        self.wrap_concat_action.setEnabled(has)
        layer = self.model.stack.layer_at(path) if has else None
        self.add_branch_action.setEnabled(layer is not None and layer.type == "Concat")
        self.unwrap_action.setEnabled(layer is not None and self._unwrapped(layer) is not None)
        kind = self.model.kind_of(self.selected_index())
        self.rename_action.setEnabled(kind in (LAYER, INPUT))

    def _siblings(self, path: LayerPath):
        return self.model._container(path)  # noqa: SLF001 - the model's own list lookup, same package

    # ------------------------------------------------------------- actions
    def insert_position(self) -> LayerPath:
        """Where a layer added from the palette goes: after the selected layer (in its own list), at the end of a
        selected block's list, first after the input, else last."""
        index = self.selected_index()
        node = self.model.node(index)
        if node[0] == "layer":
            return node[1].sibling(node[1].index + 1)
        if node[0] == "list":
            return self.model.drop_place(-1, index)
        if node[0] == INPUT:
            return LayerPath(0)
        return LayerPath(len(self.model.stack.layers))

    def add_layer(self, type_name: str) -> bool:
        return self.model.insert_layer(type_name, self.insert_position())

    def delete_selected(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        self._push(RemoveLayer(path))

    def duplicate_selected(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        if self._push(InsertLayer(path.sibling(path.index + 1), self.model.stack.layer_at(path).copy())):
            self.select_path(path.sibling(path.index + 1))

    def move_selected(self, step: int) -> None:
        path = self.selected_path()
        if path is None:
            return
        j = path.index + step
        if 0 <= j < len(self._siblings(path)) and self._push(MoveLayer(path, path.sibling(j))):
            self.select_path(path.sibling(j))

    def wrap_selected(self, kind: str) -> None:
        """Put the selected layer inside a new block in its place: a Residual's body, or a Concat's one branch
        (with an identity branch beside it). One undoable step; the layer keeps its trained weights."""
        path = self.selected_path()
        if path is None:
            return
        layer = self.model.stack.layer_at(path)
        block = residual([layer]) if kind == "Residual" else concat([layer], [])
        label = f"Wrap {layer.label} in a {'Residual block' if kind == 'Residual' else 'Concat'}"
        if self._push(Batch((RemoveLayer(path), InsertLayer(path, block)), label)):
            inner = LayerPath(*path, "body", 0) if kind == "Residual" else LayerPath(*path, "branches", 0, 0)
            self.select_path(inner)

    @staticmethod
    def _unwrapped(block):
        """The layers a block stands for when taken apart (a Residual with an identity shortcut: its body; a
        Concat of one branch: that branch), or None when that would change what it computes."""
        if block.type == "Residual" and not block.shortcut:
            return None  # body(x) + x is not body(x)
        if block.type == "Concat" and len(block.branches) == 1:
            return block.branches[0]
        return None

    def unwrap_selected(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        block = self.model.stack.layer_at(path)
        layers = self._unwrapped(block)
        if layers is None:
            return
        edits = (RemoveLayer(path), *(InsertLayer(path.sibling(path.index + j), x) for j, x in enumerate(layers)))
        self._push(Batch(edits, f"Take the layers out of {block.label}"))

    def add_branch(self) -> None:
        path = self.selected_path()
        block = self.model.stack.layer_at(path) if path is not None else None
        if block is None or block.type != "Concat":
            return
        grown = replace(block, branches=block.branches + ((),))
        self._push(Batch((ReplaceLayer(path, grown),), f"Add a branch to {block.label}"))

    def rename_selected(self) -> None:
        index = self.selected_index()
        if index.isValid() and self.model.kind_of(index) in (LAYER, INPUT):
            self.view.edit(index)
