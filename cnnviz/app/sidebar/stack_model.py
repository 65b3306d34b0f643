"""A thin Qt item model over :class:`~cnnviz.core.model.stack.StackDocument` (napari's item-model adapter).

Rows under the root: 0 is the input, 1..n the layers, n+1 the loss. A block's
row has one child row per list (a Residual's ``body`` and ``shortcut``, a
Concat's branches), and a list's row has its layers as children, so a layer
anywhere is addressed by its :class:`~cnnviz.core.model.paths.LayerPath`
(``(3,)`` is row 4 under the root; ``3.body.1`` is row 1 under the body row of
that block). An index's internal id names its parent node by the block's
identity (:attr:`~cnnviz.core.model.stack.Layer.uid`), which survives edits
that shift the block, so Qt's persistent indexes stay right. The model keeps
its own snapshot of the stack and the report the document handed over, and
maps the edit of each change onto Qt's row signals (:class:`InsertLayer` onto
``beginInsertRows``, :class:`RemoveLayer` onto ``beginRemoveRows``,
:class:`MoveLayer` within one list onto ``beginMoveRows``; a move between lists,
or a block whose lists change, resets the model). Every change it makes (a
drop, a move, a rename) is an edit handed to ``push``.
"""
from __future__ import annotations

import enum
import json
from dataclasses import replace
from typing import Any, Callable

from PySide6.QtCore import QAbstractItemModel, QByteArray, QMimeData, QModelIndex, QPersistentModelIndex, Qt, Signal

from cnnviz.app.plain_text import tooltip
from cnnviz.app.sidebar import display as fmt
from cnnviz.core.model.layers import BLOCKS, CATALOGUE, LOSSES
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
    concat,
    residual,
)
from cnnviz.core.shapes import StackReport, fmt_shape, infer

ROWS_MIME = "application/x-cnnviz-layer-rows"
TYPE_MIME = "application/x-cnnviz-layer-type"

class RowKind(str, enum.Enum):
    """What a row of the stack list stands for: the input, a layer, or the loss."""

    INPUT = "input"
    LAYER = "layer"
    LOSS = "loss"
    LIST = "list"
    """A block's list of layers: a Residual's body or shortcut, a Concat's branch."""


INPUT, LAYER, LOSS, LIST = RowKind.INPUT, RowKind.LAYER, RowKind.LOSS, RowKind.LIST

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
    """A layer as the palette adds it: required keywords at their suggested values, counts inferred; a block
    empty (a Residual adds x to itself, a Concat of two identity branches) for layers to be dropped in."""
    if type_name == "Residual":
        return residual()
    if type_name == "Concat":
        return concat((), ())
    return Layer(type_name, CATALOGUE[type_name].initial_params())


def list_title(key: tuple) -> str:
    """``("body",)`` → "body"; ``("branches", 1)`` → "branch 1"."""
    return key[0] if key[0] != "branches" else f"branch {key[1]}"


def _after_removal(place: LayerPath, source: LayerPath) -> LayerPath:
    """``place`` (a position in the stack as it is) as a position once the layer at ``source`` is taken out:
    a later position in the same list, or inside a later block of that list, moves up by one."""
    depth = len(source) - 1  # the part of ``place`` that indexes source's list
    parts = list(place)
    if tuple(parts[:depth]) == tuple(source[:depth]) and len(parts) > depth and parts[depth] > source[depth]:
        parts[depth] -= 1
    return LayerPath(*parts)


class StackListModel(QAbstractItemModel):
    """Input, layers and loss as rows, with shapes, status and the core's sentences."""

    requestSelect = Signal(int)  # a row to select after a drop added or moved a layer
    requestSelectPath = Signal(object)  # the same for a layer inside a block: its LayerPath
    removingRow = Signal(int)    # before rowsAboutToBeRemoved, so a selection can be noted before views move it

    def __init__(self, document: StackDocument, push: Callable[[Edit], bool], parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self._push = push
        self._stack: Stack = document.stack
        self._report: StackReport = self._report_of(document.report, self._stack)
        self._ids: dict[tuple, int] = {}
        self._keys: list[tuple] = [("root",)]  # id 0: the root
        self._where: dict[int, LayerPath] = {}  # block uid -> its path in the stack shown
        self._rebuild_places()
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

    # ------------------------------------------------------------------ the tree
    def _id(self, key: tuple) -> int:
        """A stable internal id for a parent node: ("block", uid) or ("list", uid, list key)."""
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._keys)
            self._keys.append(key)
        return found

    def _rebuild_places(self) -> None:
        self._where = {layer.uid: path for path, layer in self._stack.walk() if layer.is_block}

    def node(self, index: AnyIndex) -> tuple:
        """What a row stands for: ("input",), ("loss",), ("layer", path), ("list", block path, key), or ("",)."""
        if not index.isValid():
            return ("",)
        pid = index.internalId()
        if pid == 0:
            kind = self.kind(index.row())
            if kind == LAYER:
                return ("layer", LayerPath(index.row() - 1))
            return (kind,) if kind is not None else ("",)
        key = self._keys[pid]
        path = self._where.get(key[1])
        if path is None:
            return ("",)
        block = self._stack.layer_at(path)
        if key[0] == "block":
            lists = block.lists()
            return ("list", path, lists[index.row()][0]) if index.row() < len(lists) else ("",)
        layers = block.list_at(key[2])
        if index.row() >= len(layers):
            return ("",)
        return ("layer", LayerPath(*path, *key[2], index.row()))

    def kind_of(self, index: AnyIndex) -> str | None:
        """The :class:`RowKind` of any row (:meth:`kind` takes a top-level row number)."""
        kind = self.node(index)[0]
        return RowKind(kind) if kind else None

    def index(self, row: int, column: int = 0, parent: AnyIndex = QModelIndex()) -> QModelIndex:
        if column != 0 or row < 0 or row >= self.rowCount(parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        node = self.node(parent)
        if node[0] == "layer":
            return self.createIndex(row, column, self._id(("block", self._stack.layer_at(node[1]).uid)))
        if node[0] == "list":
            return self.createIndex(row, column, self._id(("list", self._stack.layer_at(node[1]).uid, node[2])))
        return QModelIndex()

    def parent(self, child: AnyIndex | None = None):
        if child is None:  # Qt's other overload: the QObject's parent
            return super().parent()
        if not child.isValid() or child.internalId() == 0:
            return QModelIndex()
        key = self._keys[child.internalId()]
        path = self._where.get(key[1])
        if path is None:
            return QModelIndex()
        if key[0] == "block":
            return self.index_of(path)
        block = self._stack.layer_at(path)
        row = [k for k, _layers in block.lists()].index(key[2])
        return self.createIndex(row, 0, self._id(("block", key[1])))

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._stack.layers) + 2
        if parent.column() != 0:
            return 0
        node = self.node(parent)
        if node[0] == "layer":
            return len(self._stack.layer_at(node[1]).lists())
        if node[0] == "list":
            return len(self._stack.layer_at(node[1]).list_at(node[2]))
        return 0

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: N802 - Qt override
        return self.rowCount(parent) > 0

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 1

    def kind(self, row: int) -> str | None:
        """The kind of top-level row ``row`` (the input, a layer of the stack's own, the loss)."""
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
        """The layer path of a row, or None for the input, loss and list rows."""
        node = self.node(index)
        return node[1] if node[0] == "layer" else None

    def index_of(self, path: LayerPath | int) -> QModelIndex:
        """The row of the layer at ``path``."""
        parent, row = self._place(LayerPath.of(path))
        return self.index(row, 0, parent)

    def list_index(self, block: LayerPath, key: tuple) -> QModelIndex:
        """The row of the list ``key`` of the block at ``block``."""
        layer = self._stack.layer_at(block)
        layer.list_at(key)  # IndexError when there is no such list
        row = [k for k, _layers in layer.lists()].index(tuple(key))
        return self.index(row, 0, self.index_of(block))

    def _place(self, path: LayerPath) -> tuple[QModelIndex, int]:
        """(parent index, row) of ``path`` in the stack shown: top-level layers come after the input row."""
        if path.top_level:
            return QModelIndex(), path.index + 1
        (index, key) = path.segments[-1]
        block = LayerPath(*path.container[:len(path.container) - len(key)])
        return self.list_index(block, key), path.index

    def loss_row(self) -> int:
        return len(self._stack.layers) + 1

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self.node(index)
        kind = node[0]
        if not kind:
            return None
        if role == KIND_ROLE:
            return RowKind(kind)
        if kind == INPUT:
            return self._input_data(role)
        if kind == LOSS:
            return self._loss_data(role)
        if kind == LIST:
            return self._list_data(node[1], node[2], role)
        return self._layer_data(node[1], role)

    def _list_data(self, block_path: LayerPath, key: tuple, role: int) -> Any:
        block = self._stack.layer_at(block_path)
        layers = block.list_at(key)
        try:
            reports = dict(self._report.at(block_path).inner).get(tuple(key), ())
        except IndexError:
            reports = ()
        title = list_title(key)
        identity = not layers
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{title}{' (identity)' if identity else ''}"
        if role == TITLE_ROLE:
            return title
        if role == SUMMARY_ROLE:
            return "identity: x itself" if identity else f"{len(layers)} layer{'s' if len(layers) != 1 else ''}"
        try:
            block_report = self._report.at(block_path)
        except IndexError:
            block_report = None
        if role == SHAPE_ROLE:
            if block_report is None or not block_report.reachable:
                return ""
            first = block_report.input_shape
            last = reports[-1].output_shape if reports and all(r.ok for r in reports) else (first if identity else None)
            return f"{fmt_shape(first)} → {fmt_shape(last) if last is not None else '✗'}"
        if role == STATUS_ROLE:
            if block_report is None or not block_report.reachable:
                return fmt.UNREACHABLE
            if any(r.error for r in reports):
                return fmt.ERROR
            return fmt.WARNING if any(r.warnings for r in reports) else fmt.OK
        if role == MESSAGE_ROLE:
            return ""
        if role == LAYER_INDEX_ROLE:
            return -1
        if role == Qt.ItemDataRole.ToolTipRole:
            what = {"body": "The body: its output is added to the shortcut's.",
                    "shortcut": "The shortcut: an empty one is the identity (x itself); its output is added to "
                                "the body's, so both must have the same shape."}.get(
                key[0], "A branch: the outputs of all branches are concatenated on dimension 1 (channels); an "
                        "empty branch passes x itself.")
            return tooltip(what + " Drop layers here.")
        return None

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

    def _layer_data(self, path: LayerPath, role: int) -> Any:
        layer = self._stack.layer_at(path)
        try:
            report = self._report.at(path)
        except IndexError:
            report = None
        i = path.index
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
        elif layer.type == "Residual":
            parts.append("Residual: body(x) + shortcut(x). Drop layers into its body and shortcut.")
        elif layer.type == "Concat":
            parts.append("Concat: the branches' outputs joined on dimension 1 (channels, or features after "
                         "Flatten). Drop layers into its branches.")
        return tooltip("\n\n".join(parts))

    # ------------------------------------------------------------------ editing
    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDropEnabled
        kind = self.kind_of(index)
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
        kind = self.kind_of(index)
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
        """The top-level layer position (0..n, "insert before") of a drop at ``row`` under ``parent``.

        Dropping *on* a row puts the new layer after it; between rows, there; on
        the input row, first; on or after the loss row, last. (See :meth:`drop_place` for
        drops inside blocks.)
        """
        place = self.drop_place(row, parent)
        return place.index if place.top_level else len(self._stack.layers)

    def drop_place(self, row: int, parent: AnyIndex) -> LayerPath:
        """Where a drop at ``row`` under ``parent`` (Qt's convention) puts a layer, as the path it gets.

        Between the rows of a list, there; on a list's row, at its end; on a layer,
        after it in its own list; on the input row, first; on the loss row or past
        the end, last."""
        n = len(self._stack.layers)
        node = self.node(parent)
        if row < 0:
            if node[0] == "layer":
                return node[1].sibling(node[1].index + 1)
            if node[0] == "list":
                block = self._stack.layer_at(node[1])
                return LayerPath(*node[1], *node[2], len(block.list_at(node[2])))
            if node[0] == INPUT:
                return LayerPath(0)
            return LayerPath(n)
        if node[0] == "list":
            block = self._stack.layer_at(node[1])
            return LayerPath(*node[1], *node[2], max(0, min(len(block.list_at(node[2])), row)))
        if node[0] == "layer":  # between the lists of a block: after the block
            return node[1].sibling(node[1].index + 1)
        return LayerPath(max(0, min(n, row - 1)))

    def dropMimeData(self, data: QMimeData, action, row: int, column: int, parent: AnyIndex) -> bool:
        place = self.drop_place(row, parent)
        if data.hasFormat(TYPE_MIME):
            type_name = bytes(data.data(TYPE_MIME).data()).decode("utf-8", "replace")
            if type_name not in CATALOGUE and type_name not in BLOCKS:
                return False
            return self.insert_layer(type_name, place)
        if data.hasFormat(ROWS_MIME):
            try:
                paths = [LayerPath.of(p) for p in json.loads(bytes(data.data(ROWS_MIME).data()).decode())]
            except (ValueError, TypeError):
                return False
            if len(paths) != 1:
                return False
            return self.move_layer_to(paths[0], place)
        return False

    def moveRows(self, source_parent: AnyIndex, source_row: int, count: int, dest_parent: AnyIndex,
                 dest_child: int) -> bool:
        source = self.path_of(self.index(source_row, 0, source_parent))
        if count != 1 or source is None:
            return False
        return self.move_layer_to(source, self.drop_place(dest_child, dest_parent))

    def insert_layer(self, type_name: str, pos: int | LayerPath) -> bool:
        """Add a new layer (or an empty block) of ``type_name`` at ``pos`` (a top-level index or a path)."""
        place = LayerPath.of(pos) if not isinstance(pos, int) else LayerPath(max(0, min(len(self._stack.layers), pos)))
        try:
            n = len(self._container(place))
        except IndexError:
            return False
        place = place.sibling(max(0, min(n, place.index)))
        if not self._push(InsertLayer(place, new_layer(type_name))):
            return False
        self._request(place)
        return True

    def _container(self, path: LayerPath) -> tuple[Layer, ...]:
        if path.top_level:
            return self._stack.layers
        (index, key) = path.segments[-1]
        block = LayerPath(*path.container[:len(path.container) - len(key)])
        return self._stack.layer_at(block).list_at(key)

    def _request(self, path: LayerPath) -> None:
        if path.top_level:
            self.requestSelect.emit(self.row_of_layer(path.index))
        else:
            self.requestSelectPath.emit(path)

    def move_layer_to(self, source: int | LayerPath, pos: int | LayerPath) -> bool:
        """Move the layer at ``source`` so that it lands before what is now at ``pos`` (an index or a path in the
        stack as it is): into and out of blocks as well as within one list."""
        source = LayerPath.of(source)
        place = LayerPath.of(pos) if not isinstance(pos, int) else LayerPath(pos)
        try:
            self._stack.layer_at(source)
            self._container(place)
        except IndexError:
            return False
        if tuple(place[:len(source)]) == tuple(source) and len(place) > len(source):
            return False  # a block into itself
        dest = _after_removal(place, source)
        if dest.container == source.container:
            n = len(self._container(source))
            dest = dest.sibling(max(0, min(n - 1, dest.index)))
            if dest == source:
                return False
        if not self._push(MoveLayer(source, dest)):
            return False
        self._request(dest)
        return True

    # ------------------------------------------------------------ following
    def _on_change(self, change: StackChange) -> None:
        report = self._report_of(change.report, change.new)
        # The edit turns the shown stack into the new one (always, for a model subscribed when it was made).
        self._follow(change.edit if change.old is self._stack else None, change.new, report)
        self._announce(QModelIndex())  # shapes and marks below change too, at every depth

    def _announce(self, parent: QModelIndex) -> None:
        n = self.rowCount(parent)
        if n == 0:
            return
        self.dataChanged.emit(self.index(0, 0, parent), self.index(n - 1, 0, parent))
        for row in range(n):
            child = self.index(row, 0, parent)
            if self.rowCount(child):
                self._announce(child)

    def _follow(self, edit: Edit | None, new: Stack, report: StackReport | None) -> None:
        """Show ``new`` (with ``report``, or the shown one if None), announcing ``edit`` with its row signals."""
        if isinstance(edit, InsertLayer):
            parent, row = self._place(edit.path)
            self.beginInsertRows(parent, row, row)
            self._show(new, report)
            self.endInsertRows()
        elif isinstance(edit, RemoveLayer):
            parent, row = self._place(edit.path)
            self.removingRow.emit(row if edit.path.top_level else -1)
            self.beginRemoveRows(parent, row, row)
            self._show(new, report)
            self.endRemoveRows()
        elif isinstance(edit, MoveLayer) and edit.source.container == edit.dest.container:
            parent, source = self._place(edit.source)
            _same, dest = self._place(edit.dest)  # where it ends; Qt wants the row it goes before, now
            if dest > source:
                dest += 1
            self.beginMoveRows(parent, source, source, parent, dest)
            self._show(new, report)
            self.endMoveRows()
        elif isinstance(edit, Batch):
            for part in edit.edits:  # each part's own signal, through the stacks in between
                self._follow(part, part.apply(self._stack)[0], None)
            self._follow(None, new, report)
        elif isinstance(edit, ReplaceLayer) and not (self._stack.layer_at(edit.path).is_block
                                                     or edit.layer.is_block):
            self._show(new, report)  # the same rows (a keyword, a rename): their data changes
        elif isinstance(edit, (SetInput, SetLoss)) or new.layers == self._stack.layers and _same_uids(
                new, self._stack):
            self._show(new, report)  # the same rows (the input, the loss, the name): their data changes
        else:
            self.beginResetModel()  # a whole new stack (open, new, a paste), a move between lists, a new block
            self._show(new, report)
            self.endResetModel()

    def _show(self, stack: Stack, report: StackReport | None) -> None:
        self._stack = stack
        if report is not None:
            self._report = report
        self._rebuild_places()


def _same_uids(a: Stack, b: Stack) -> bool:
    return [layer.uid for _p, layer in a.walk()] == [layer.uid for _p, layer in b.walk()]
