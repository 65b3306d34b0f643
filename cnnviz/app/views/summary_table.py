"""A torchinfo-like table of the stack from the shape engine's report, with totals underneath.

It reads the core's :class:`~cnnviz.core.shapes.StackReport` (no torch) and
says the same numbers as ``cnnviz summary``.
"""
from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import ViewPanel
from cnnviz.core.model.units import format_bytes, format_si
from cnnviz.core.shapes import LayerReport, StackReport, fmt_shape

ERROR_TEXT = QtGui.QColor("#B3261E")
ERROR_BACKGROUND = QtGui.QColor("#FDECEA")
WARNING_TEXT = QtGui.QColor("#8A5300")
UNREACHABLE_TEXT = QtGui.QColor("#8C9196")

COLUMNS = ("#", "Layer", "Output shape", "Params", "MACs", "Receptive field", "Notes")
INDEX, LAYER, SHAPE, PARAMS, MACS, RF, NOTES = range(len(COLUMNS))
NUMERIC = frozenset({INDEX, PARAMS, MACS, RF})


class SummaryModel(QtCore.QAbstractTableModel):
    """One row per layer of a StackReport, then one for the loss."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._report: StackReport | None = None

    @property
    def report(self) -> StackReport | None:
        return self._report

    def set_report(self, report: StackReport | None) -> None:
        self.beginResetModel()
        self._report = report
        self.endResetModel()

    # ------------------------------------------------------------ Qt model
    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        if parent.isValid() or self._report is None:
            return 0
        return len(self._report.layers) + 1

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,  # noqa: N802
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == QtCore.Qt.Orientation.Horizontal and role == QtCore.Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == QtCore.Qt.Orientation.Horizontal and role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
            return int(_alignment(section))
        return None

    def layer(self, row: int) -> LayerReport | None:
        """The layer report of a row (None for the loss row)."""
        if self._report is None or not 0 <= row < len(self._report.layers):
            return None
        return self._report.layers[row]

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self._report is None:
            return None
        row, col = index.row(), index.column()
        r = self.layer(row)
        roles = QtCore.Qt.ItemDataRole
        if role == roles.TextAlignmentRole:
            return int(_alignment(col))
        if r is None:
            return self._loss_data(col, role)
        if role == roles.DisplayRole:
            return _layer_text(r, col)
        if role == roles.ToolTipRole:
            return _layer_tooltip(r, col)
        if role == roles.ForegroundRole:
            if r.error:
                return QtGui.QBrush(ERROR_TEXT)
            if not r.reachable:
                return QtGui.QBrush(UNREACHABLE_TEXT)
            if col == NOTES and r.warnings:
                return QtGui.QBrush(WARNING_TEXT)
            return None
        if role == roles.BackgroundRole and r.error:
            return QtGui.QBrush(ERROR_BACKGROUND)
        if role == roles.FontRole and not r.reachable:
            font = QtGui.QFont()
            font.setItalic(True)
            return font
        if role == roles.UserRole:
            return r
        return None

    def _loss_data(self, col: int, role: int) -> Any:
        assert self._report is not None
        loss = self._report.loss
        roles = QtCore.Qt.ItemDataRole
        notes = ([f"✗ {loss.error}"] if loss.error else []) + [f"⚠ {w}" for w in loss.warnings]
        if role == roles.DisplayRole:
            if col == LAYER:
                return f"loss: {loss.type}"
            if col == NOTES:
                return "\n".join(notes)
            return ""
        if role == roles.ToolTipRole and col == NOTES and notes:
            return "\n".join(notes)
        if role == roles.ForegroundRole:
            if loss.error:
                return QtGui.QBrush(ERROR_TEXT)
            if loss.warnings and col == NOTES:
                return QtGui.QBrush(WARNING_TEXT)
        if role == roles.BackgroundRole and loss.error:
            return QtGui.QBrush(ERROR_BACKGROUND)
        return None


def _alignment(col: int) -> QtCore.Qt.AlignmentFlag:
    horizontal = QtCore.Qt.AlignmentFlag.AlignRight if col in NUMERIC else QtCore.Qt.AlignmentFlag.AlignLeft
    return horizontal | QtCore.Qt.AlignmentFlag.AlignVCenter


def _layer_text(r: LayerReport, col: int) -> str:
    ok = r.output_shape is not None
    if col == INDEX:
        return str(r.index)
    if col == LAYER:
        return r.type if r.label == r.type else f"{r.label} ({r.type})"
    if col == SHAPE:
        if not r.reachable:
            return "not reachable"
        return fmt_shape(r.output_shape) if ok else "error"
    if col == PARAMS:
        return f"{r.params:,}" if ok else ""
    if col == MACS:
        return f"{r.macs:,}" if ok else ""
    if col == RF:
        rf = r.receptive_field
        return f"{rf.size[0]}×{rf.size[1]}" if ok and rf is not None else ""
    if col == NOTES:
        notes = ([f"✗ {r.error}"] if r.error else []) + [f"⚠ {w}" for w in r.warnings]
        return "\n".join(notes)
    return ""


def _layer_tooltip(r: LayerReport, col: int) -> str | None:
    if col == SHAPE and r.formula:
        return "\n".join(r.formula)
    if col == RF and r.receptive_field is not None and r.output_shape is not None:
        rf = r.receptive_field
        return (f"each output pixel sees {rf.size[0]}×{rf.size[1]} input pixels; "
                f"neighbouring outputs are {rf.jump[0]:g}×{rf.jump[1]:g} input pixels apart")
    if col == NOTES:
        return _layer_text(r, NOTES) or None
    return None


def totals_text(report: StackReport) -> str:
    """The totals line, with the same numbers and units as ``cnnviz summary``."""
    c, h, w = report.input_shape
    activations = sum(r.activation_elements for r in report.layers)
    parts = [
        f"Total params: {report.total_params:,}",
        f"trainable: {report.trainable_params:,}",
        f"MACs per sample: {report.total_macs:,} ({format_si(report.total_macs)})",
        f"input per sample: {format_bytes(4 * c * h * w)}",
        f"activations per sample (forward): {format_bytes(4 * activations)}",
        f"parameters: {format_bytes(4 * report.total_params)}",
    ]
    return "  ·  ".join(parts)


def verdict_text(report: StackReport) -> str:
    bad = report.first_error
    if bad is not None:
        return f"Invalid: layer {bad.index} ({bad.label}) cannot work; the layers after it are not reachable"
    if report.loss.error:
        return f"Invalid: the loss {report.loss.type} cannot take this stack's output"
    return f"OK: input {fmt_shape(report.input_shape)} → output {fmt_shape(report.output_shape)}"


class SummaryTableView(ViewPanel):
    """The stack as a table: index, layer, output shape, params, MACs, receptive field, notes.

    Data API: ``set_report(report)`` with a :class:`~cnnviz.core.shapes.StackReport`
    (from ``shapes.infer``), or None to clear. A failing row is red, the rows
    after it grey "not reachable". Totals (params, MACs, activation memory per
    sample) sit under the table. ``layerActivated(index)`` fires when a layer
    row is clicked.
    """

    EMPTY_HINT = "Open or build a stack to see its summary"
    layerActivated = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SummaryModel(self)
        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)
        self.table = QtWidgets.QTableView(content)
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        self.table.clicked.connect(self._on_clicked)
        outer.addWidget(self.table, 1)
        self.totals = QtWidgets.QLabel(content)
        self.totals.setWordWrap(True)
        self.totals.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.totals.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        outer.addWidget(self.totals)
        self.verdict = QtWidgets.QLabel(content)
        self.verdict.setWordWrap(True)
        self.verdict.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        font = self.verdict.font()
        font.setBold(True)
        self.verdict.setFont(font)
        outer.addWidget(self.verdict)
        self._set_content(content)

    def set_report(self, report: StackReport | None) -> None:
        if report is None:
            self.clear()
            return
        self.model.set_report(report)
        self.totals.setText(totals_text(report))
        self.verdict.setText(verdict_text(report))
        pal = self.verdict.palette()
        pal.setColor(QtGui.QPalette.ColorRole.WindowText,
                     ERROR_TEXT if not report.ok else self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        self.verdict.setPalette(pal)
        self._show_content()
        for col in range(NOTES):
            self.table.resizeColumnToContents(col)
            self.table.setColumnWidth(col, self.table.columnWidth(col) + 12)
        self.table.resizeRowsToContents()

    def clear(self, message: str | None = None) -> None:
        self.model.set_report(None)
        self.totals.clear()
        self.verdict.clear()
        super().clear(message)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - wrapped notes need new heights
        super().resizeEvent(event)
        if self.model.report is not None:
            self.table.resizeRowsToContents()

    def _on_clicked(self, index: QtCore.QModelIndex) -> None:
        r = self.model.layer(index.row())
        if r is not None:
            self.layerActivated.emit(r.index)
