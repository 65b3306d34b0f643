"""A thin Qt item model over :class:`~cnnviz.core.model.stack.StackDocument` (napari's item-model adapter).

Rows: 0 is the input, 1..n the layers, n+1 the loss. The model is a tree model
whose rows have no children yet: a layer is addressed by its
:class:`~cnnviz.core.model.paths.LayerPath` (``(3,)`` is row 4 under the
root), so blocks will add child rows under their layer without another
redesign. It keeps its own snapshot of the stack and the report the document
handed over, and maps the edit of each change one to one onto Qt's row
signals (:class:`InsertLayer` onto ``beginInsertRows``, :class:`RemoveLayer`
onto ``beginRemoveRows``, :class:`MoveLayer` onto ``beginMoveRows``; selections
follow the moved layer). Every change it makes (a drop, a move, a rename) is an
edit handed to ``push``.
"""
from __future__ import annotations

import enum
import json
from dataclasses import replace
from typing import Any, Callable

from PySide6.QtCore import QAbstractItemModel, QByteArray, QMimeData, QModelIndex, QPersistentModelIndex, Qt, Signal

from cnnviz.app.plain_text import tooltip
from cnnviz.app.sidebar import display as fmt
from cnnviz.core.model.layers import CATALOGUE, LOSSES
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import (
    Batch,
    Edit,
    InsertLayer,
    Layer,
    MoveLayer,
    RemoveLayer,
    ReplaceLayer,
    SetInput,
    SetLoss,
    SetStack,
    Stack,
    StackChange,
    StackDocument,
)
from cnnviz.core.shapes import StackReport, fmt_shape, infer

ROWS_MIME = "application/x-cnnviz-layer-rows"
TYPE_MIME = "application/x-cnnviz-layer-type"

class RowKind(str, enum.Enum):
    """What a row of the stack list stands for: the input, a layer, or the loss."""

    INPUT = "input"
    LAYER = "layer"
    LOSS = "loss"


INPUT, LAYER, LOSS = RowKind.INPUT, RowKind.LAYER, RowKind.LOSS

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
LAYER_INDEX_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3
TITLE_ROLE = Qt.ItemDataRole.UserRole + 4
SUMMARY_ROLE = Qt.ItemDataRole.UserRole + 5
SHAPE_ROLE = Qt.ItemDataRole.UserRole + 6
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 7
REPORT_ROLE = Qt.ItemDataRole.UserRole + 8

AnyIndex = QModelIndex | QPersistentModelIndex


def new_layer(type_name: str) -> Layer:
    """A layer as the palette adds it: required keywords at their suggested values, counts inferred."""
    return Layer(type_name, CATALOGUE[type_name].initial_params())


class StackListModel(QAbstractItemModel):
    """Input, layers and loss as rows, with shapes, status and the core's sentences."""

    requestSelect = Signal(int)  # a row to select after a drop added or moved a layer
    removingRow = Signal(int)    # before rowsAboutToBeRemoved, so a selection can be noted before views move it

    def __init__(self, document: StackDocument, push: Callable[[Edit], bool], parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self._push = push
        self._stack: Stack = document.stack
        self._report: StackReport = self._report_of(document.report, self._stack)
        unsubscribe = document.subscribe(self._on_change)
        self.destroyed.connect(lambda *_: unsubscribe())

    @staticmethod
    def _report_of(report: StackReport | None, stack: Stack) -> StackReport:
        # The document's report (inferred once per change); a document made without ``analyse`` gets one here.
        return report if report is not None else infer(stack)

    # ------------------------------------------------------------------ reading
    @property
    def stack(self) -> Stack:
        return self._stack

    @property
    def report(self) -> StackReport:
        return self._report

    def index(self, row: int, column: int = 0, parent: AnyIndex = QModelIndex()) -> QModelIndex:
        if parent.isValid() or column != 0 or not 0 <= row < self.rowCount():
            return QModelIndex()  # no row has children yet (a block's layers will)
        return self.createIndex(row, column)

    def parent(self, child: AnyIndex | None = None):
        if child is None:  # Qt's other overload: the QObject's parent
            return super().parent()
        return QModelIndex()  # every row sits under the root today

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._stack.layers) + 2

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 1

    def kind(self, row: int) -> str | None:
        n = len(self._stack.layers)
        if row == 0:
            return INPUT
        if 1 <= row <= n:
            return LAYER
        if row == n + 1:
            return LOSS
        return None

    @staticmethod
    def row_of_layer(index: int) -> int:
        return index + 1

    def path_of(self, index: AnyIndex) -> LayerPath | None:
        """The layer path of a row, or None for the input and loss rows."""
        if not index.isValid() or index.parent().isValid() or self.kind(index.row()) != LAYER:
            return None
        return LayerPath(index.row() - 1)

    def index_of(self, path: LayerPath | int) -> QModelIndex:
        """The row of the layer at ``path``."""
        parent, row = self._place(LayerPath.of(path))
        return self.index(row, 0, parent)

    @staticmethod
    def _place(path: LayerPath) -> tuple[QModelIndex, int]:
        """(parent index, row) of ``path``: top-level layers come after the input row."""
        if not path.top_level:
            raise IndexError(f"no row for {path}: the list shows no blocks yet")
        return QModelIndex(), path.index + 1

    def loss_row(self) -> int:
        return len(self._stack.layers) + 1

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = index.row()
        kind = self.kind(row)
        if kind is None:
            return None
        if role == KIND_ROLE:
            return kind
        if kind == INPUT:
            return self._input_data(role)
        if kind == LOSS:
            return self._loss_data(role)
        return self._layer_data(row - 1, role)

    def _input_data(self, role: int) -> Any:
        shape = fmt_shape(self._stack.input.shape)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"input {shape}"
        if role == Qt.ItemDataRole.EditRole:
            return self._stack.name
        if role == TITLE_ROLE:
            return "input"
        if role == SUMMARY_ROLE:
            return ""
        if role == SHAPE_ROLE:
            return shape
        if role == STATUS_ROLE:
            return "input"
        if role == LAYER_INDEX_ROLE:
            return -1
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"The images fed to the network: {self._stack.input.channels} channel(s), "
                    f"{self._stack.input.height}×{self._stack.input.width} pixels (the batch dimension is left out).")
        return None

    def _loss_data(self, role: int) -> Any:
        loss = self._report.loss
        if role in (Qt.ItemDataRole.DisplayRole, TITLE_ROLE):
            return f"loss {self._stack.loss.type}" if role == Qt.ItemDataRole.DisplayRole else "loss"
        if role == SUMMARY_ROLE:
            return self._stack.loss.type
        if role == SHAPE_ROLE:
            classes = self._report.num_classes
            return f"{classes} classes" if classes else ""
        if role == STATUS_ROLE:
            return fmt.ERROR if loss.error else fmt.WARNING if loss.warnings else fmt.OK
        if role == MESSAGE_ROLE:
            return loss.error or (loss.warnings[0] if loss.warnings else "")
        if role == LAYER_INDEX_ROLE:
            return -2
        if role == Qt.ItemDataRole.ToolTipRole:
            spec = LOSSES.get(self._stack.loss.type)
            lines = [f"{spec.type}: {spec.doc}" if spec else ""]
            if loss.error:
                lines.insert(0, f"✗ {loss.error}")
            lines[0:0] = [f"⚠ {w}" for w in loss.warnings]
            return tooltip("\n\n".join(line for line in lines if line))
        return None

    def _layer_data(self, i: int, role: int) -> Any:
        layer = self._stack.layers[i]
        report = self._report.layers[i] if i < len(self._report.layers) else None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{i} {self._title(layer)} {fmt.param_summary(layer, report)} {fmt.shape_flow(report)}"
        if role == Qt.ItemDataRole.EditRole:
            return layer.name or ""
        if role == TITLE_ROLE:
            return self._title(layer)
        if role == SUMMARY_ROLE:
            return fmt.param_summary(layer, report)
        if role == SHAPE_ROLE:
            return fmt.shape_flow(report)
        if role == STATUS_ROLE:
            return fmt.status(report)
        if role == MESSAGE_ROLE:
            if report is None:
                return ""
            if report.error:
                return report.error
            if not report.reachable:
                return "not reachable: an earlier layer fails"
            return report.warnings[0] if report.warnings else ""
        if role == LAYER_INDEX_ROLE:
            return i
        if role == REPORT_ROLE:
            return report
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._layer_tooltip(layer, report)
        return None

    @staticmethod
    def _title(layer: Layer) -> str:
        return f"{layer.type} \u201c{layer.name}\u201d" if layer.name else layer.type

    @staticmethod
    def _layer_tooltip(layer: Layer, report) -> str:
        parts = []
        if report is not None and report.error:
            parts.append(f"✗ {report.error}")
        elif report is not None and not report.reachable:
            parts.append("Not reachable: an earlier layer fails, so this one has no input shape.")
        if report is not None:
            parts.extend(f"⚠ {w}" for w in report.warnings)
        spec = CATALOGUE.get(layer.type)
        if spec is not None:
            parts.append(f"{layer.type}: {spec.doc}")
        return tooltip("\n\n".join(parts))

    # ------------------------------------------------------------------ editing
    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDropEnabled
        kind = self.kind(index.row())
        if kind == LAYER:
            return base | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemIsEditable
        if kind == INPUT:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Renaming: a layer's label, or the stack's name on the input row."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        text = str(value).strip()
        kind = self.kind(index.row())
        if kind == LAYER:
            path = self.path_of(index)
            layer = self._stack.layer_at(path)
            renamed = replace(layer, name=text or None)
            return self._push(ReplaceLayer(path, renamed, key="name"))
        if kind == INPUT and text:
            return self._push(SetStack(replace(self._stack, name=text), "Rename stack"))
        return False

    # ------------------------------------------------------------ drag and drop
    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [ROWS_MIME, TYPE_MIME]

    def mimeData(self, indexes) -> QMimeData:
        """The dragged layers' paths, as JSON lists of parts (``[[3]]``; ``[[3, "body", 1]]`` once blocks land)."""
        paths = sorted({path for path in map(self.path_of, indexes) if path is not None})
        data = QMimeData()
        data.setData(ROWS_MIME, QByteArray(json.dumps([list(path) for path in paths]).encode()))
        return data

    def canDropMimeData(self, data: QMimeData, action, row: int, column: int, parent: AnyIndex) -> bool:
        return data.hasFormat(ROWS_MIME) or data.hasFormat(TYPE_MIME)

    def drop_position(self, row: int, parent: AnyIndex) -> int:
        """The layer position (0..n, "insert before") of a drop at ``row`` under ``parent``, Qt's convention.

        Dropping *on* a row puts the new layer after it; between rows, there; on
        the input row, first; on or after the loss row, last.
        """
        n = len(self._stack.layers)
        if row < 0:
            if parent.isValid():
                kind = self.kind(parent.row())
                return 0 if kind == INPUT else n if kind == LOSS else parent.row()
            return n
        return max(0, min(n, row - 1))

    def dropMimeData(self, data: QMimeData, action, row: int, column: int, parent: AnyIndex) -> bool:
        pos = self.drop_position(row, parent)
        if data.hasFormat(TYPE_MIME):
            type_name = bytes(data.data(TYPE_MIME).data()).decode("utf-8", "replace")
            if type_name not in CATALOGUE:
                return False
            return self.insert_layer(type_name, pos)
        if data.hasFormat(ROWS_MIME):
            try:
                paths = [LayerPath.of(p) for p in json.loads(bytes(data.data(ROWS_MIME).data()).decode())]
            except (ValueError, TypeError):
                return False
            if len(paths) != 1 or not paths[0].top_level:
                return False
            return self.move_layer_to(paths[0].index, pos)
        return False

    def moveRows(self, source_parent: AnyIndex, source_row: int, count: int, dest_parent: AnyIndex,
                 dest_child: int) -> bool:
        if count != 1 or source_parent.isValid() or dest_parent.isValid() or self.kind(source_row) != LAYER:
            return False
        return self.move_layer_to(source_row - 1, self.drop_position(dest_child, QModelIndex()))

    def insert_layer(self, type_name: str, pos: int) -> bool:
        pos = max(0, min(len(self._stack.layers), pos))
        if not self._push(InsertLayer(pos, new_layer(type_name))):
            return False
        self.requestSelect.emit(self.row_of_layer(pos))
        return True

    def move_layer_to(self, source: int, pos: int) -> bool:
        """Move layer ``source`` so that it lands before the layer now at ``pos``."""
        n = len(self._stack.layers)
        if not 0 <= source < n:
            return False
        dest = max(0, min(n - 1, pos - 1 if pos > source else pos))
        if dest == source:
            return False
        if not self._push(MoveLayer(source, dest)):
            return False
        self.requestSelect.emit(self.row_of_layer(dest))
        return True

    # ------------------------------------------------------------ following
    def _on_change(self, change: StackChange) -> None:
        report = self._report_of(change.report, change.new)
        # The edit turns the shown stack into the new one (always, for a model subscribed when it was made).
        self._follow(change.edit if change.old is self._stack else None, change.new, report)
        self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1))  # shapes and marks below change too

    def _follow(self, edit: Edit | None, new: Stack, report: StackReport | None) -> None:
        """Show ``new`` (with ``report``, or the shown one if None), announcing ``edit`` with its row signals."""
        if isinstance(edit, InsertLayer):
            parent, row = self._place(edit.path)
            self.beginInsertRows(parent, row, row)
            self._show(new, report)
            self.endInsertRows()
        elif isinstance(edit, RemoveLayer):
            parent, row = self._place(edit.path)
            self.removingRow.emit(row)
            self.beginRemoveRows(parent, row, row)
            self._show(new, report)
            self.endRemoveRows()
        elif isinstance(edit, MoveLayer):
            source_parent, source = self._place(edit.source)
            dest_parent, dest = self._place(edit.dest)  # where it ends; Qt wants the row it goes before, now
            if dest > source and dest_parent == source_parent:
                dest += 1
            self.beginMoveRows(source_parent, source, source, dest_parent, dest)
            self._show(new, report)
            self.endMoveRows()
        elif isinstance(edit, Batch):
            for part in edit.edits:  # each part's own signal, through the stacks in between
                self._follow(part, part.apply(self._stack)[0], None)
            self._follow(None, new, report)
        elif isinstance(edit, (ReplaceLayer, SetInput, SetLoss)) or new.layers == self._stack.layers:
            self._show(new, report)  # the same rows (a keyword, a rename, the input, the loss): their data changes
        else:
            self.beginResetModel()  # a whole new stack (open, new, a paste)
            self._show(new, report)
            self.endResetModel()

    def _show(self, stack: Stack, report: StackReport | None) -> None:
        self._stack = stack
        if report is not None:
            self._report = report
