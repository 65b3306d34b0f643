"""Every catalogue layer, grouped; double-click (or Enter) adds one, dragging drops it into the stack."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from cnnviz.app.sidebar.stack_model import TYPE_MIME
from cnnviz.core.model.layers import by_group

TYPE_ROLE = Qt.ItemDataRole.UserRole + 1

BLOCK_ENTRIES = (
    ("Residual", "Residual block", "body(x) + shortcut(x), as in ResNet; an empty shortcut is the identity."),
    ("Concat", "Parallel branches (Concat)", "Branches side by side, their outputs concatenated on the channels, "
                                             "as in Inception and DenseNet."),
)


class PaletteTree(QTreeWidget):
    """Group headers with layer types under them; drags carry the type name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setIndentation(10)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformRowHeights(True)
        bold = QFont(self.font())
        bold.setBold(True)
        for group, specs in by_group().items():
            if not specs:
                continue
            head = QTreeWidgetItem(self, [group.capitalize()])
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            head.setFont(0, bold)
            head.setToolTip(0, f"{group.capitalize()} layers")
            for spec in specs:
                item = QTreeWidgetItem(head, [spec.type])
                item.setData(0, TYPE_ROLE, spec.type)
                item.setToolTip(0, f"<b>{spec.type}</b><br>{spec.doc}<br><i>Double-click to add after the selected "
                                   f"layer, or drag it into the stack.</i>")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
        head = QTreeWidgetItem(self, ["Blocks"])
        head.setFlags(Qt.ItemFlag.ItemIsEnabled)
        head.setFont(0, bold)
        head.setToolTip(0, "Blocks hold layers of their own: drag layers into them in the stack")
        for type_name, text, doc in BLOCK_ENTRIES:
            item = QTreeWidgetItem(head, [text])
            item.setData(0, TYPE_ROLE, type_name)
            item.setToolTip(0, f"<b>{text}</b><br>{doc}<br><i>Double-click to add an empty one after the selected "
                               f"layer, or drag it into the stack; then drag layers into it.</i>")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
        self.expandAll()

    # ------------------------------------------------------------------ size: every entry without scrolling
    def row_height(self) -> int:
        return max(self.sizeHintForRow(0), self.fontMetrics().height())

    def shown_rows(self) -> int:
        """Group headers and entries not hidden by the filter."""
        rows = 0
        for g in range(self.topLevelItemCount()):
            head = self.topLevelItem(g)
            if head.isHidden():
                continue
            rows += 1 + sum(not head.child(k).isHidden() for k in range(head.childCount()))
        return rows

    def content_height(self) -> int:
        """The height that shows every row (the whole catalogue when nothing is filtered) without scrolling."""
        return self.shown_rows() * self.row_height() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.content_height())

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), 4 * self.row_height() + 2 * self.frameWidth())

    def keyPressEvent(self, event) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None and item.data(0, TYPE_ROLE):
            self.itemDoubleClicked.emit(item, 0)  # Enter adds, like a double-click
            return
        super().keyPressEvent(event)

    def mimeTypes(self) -> list[str]:
        return [TYPE_MIME]

    def mimeData(self, items) -> QMimeData:
        data = QMimeData()
        types = [item.data(0, TYPE_ROLE) for item in items if item.data(0, TYPE_ROLE)]
        if types:
            data.setData(TYPE_MIME, QByteArray(types[0].encode("utf-8")))
            data.setText(types[0])
        return data

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def type_items(self) -> list[QTreeWidgetItem]:
        out = []
        for g in range(self.topLevelItemCount()):
            head = self.topLevelItem(g)
            out.extend(head.child(k) for k in range(head.childCount()))
        return out

    def item_for(self, type_name: str) -> QTreeWidgetItem | None:
        return next((item for item in self.type_items() if item.data(0, TYPE_ROLE) == type_name), None)


class Palette(QWidget):
    """A filter box over the grouped layer list."""

    layerRequested = Signal(str)  # a type name to add after the selected layer

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter layers…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setToolTip("Type part of a layer name; Enter adds the first match")
        self.tree = PaletteTree(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.tree.itemDoubleClicked.connect(self._activated)  # not itemActivated: one click may activate on some styles
        self.filter.textChanged.connect(self._apply_filter)
        self.filter.returnPressed.connect(self._add_first_match)

    def full_height(self) -> int:
        """The palette's height with every catalogue entry in view: the filter box and every row."""
        spacing = self.layout().spacing()
        return self.filter.sizeHint().height() + spacing + self.tree.content_height()

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.full_height())

    def _activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        type_name = item.data(0, TYPE_ROLE)
        if type_name:
            self.layerRequested.emit(type_name)

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for g in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(g)
            visible = 0
            for k in range(head.childCount()):
                child = head.child(k)
                hit = not needle or needle in child.text(0).lower() or needle in head.text(0).lower()
                child.setHidden(not hit)
                visible += hit
            head.setHidden(visible == 0)

    def _add_first_match(self) -> None:
        for item in self.tree.type_items():
            if not item.isHidden() and not item.parent().isHidden():
                self.layerRequested.emit(item.data(0, TYPE_ROLE))
                return
