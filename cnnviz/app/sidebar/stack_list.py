"""The stack as a list: two-line rows with shapes and status marks, drag to reorder, keys and a context menu.

Blocks are rows with their lists (body, shortcut, branches) as indented, collapsible children and their
layers below those; layers are dragged into and out of them, a layer is wrapped in a block in one action,
and every edit is undoable."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, QPointF, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics, QKeySequence, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from cnnviz.app.sidebar import display as fmt
from cnnviz.app.sidebar.stack_model import (
    INPUT,
    KIND_ROLE,
    LAYER,
    LAYER_INDEX_ROLE,
    LOSS,
    MESSAGE_ROLE,
    ROWS_MIME,
    SHAPE_ROLE,
    STATUS_ROLE,
    SUMMARY_ROLE,
    TITLE_ROLE,
    TYPE_MIME,
    StackListModel,
)
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Batch, InsertLayer, MoveLayer, RemoveLayer, ReplaceLayer, concat, residual
from cnnviz.core.shapes.inference import fix_edit
from cnnviz.core.shapes.reports import Fix

RED = QColor("#c62828")
RED_TINT = QColor(198, 40, 40, 28)
AMBER = QColor("#e6a100")
AMBER_TEXT = QColor("#9a6700")
GREEN = QColor("#2e7d32")
GREY = QColor("#9e9e9e")

MARK = 12          # status mark size in pixels
PAD = 6            # padding inside a row
INDEX_W = 26       # width of the index column
MAX_MESSAGE_LINES = 5


class StackDelegate(QStyledItemDelegate):
    """Paints a row: index, title and key keywords; below, the shape flow or the core's sentence."""

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self.view = view

    # ----------------------------------------------------------------- layout
    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        bold = QFont(option.font)
        bold.setBold(True)
        small = QFont(option.font)
        if small.pointSizeF() > 0:
            small.setPointSizeF(max(7.0, small.pointSizeF() - 0.5))
        return bold, small

    def _text_width(self, index: QModelIndex | None = None) -> int:
        depth = 0
        while index is not None and index.isValid() and index.parent().isValid():
            depth += 1
            index = index.parent()
        return max(80, self.view.viewport().width() - INDEX_W - MARK - 4 * PAD - depth * self.view.indentation())

    def _message_lines(self, index: QModelIndex) -> tuple[str, QColor | None]:
        status = index.data(STATUS_ROLE)
        message = index.data(MESSAGE_ROLE) or ""
        if status == fmt.ERROR:
            return message, RED
        if status == fmt.WARNING and message:
            return "⚠ " + message, AMBER_TEXT
        return "", None

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        bold, small = self._fonts(option)
        h = QFontMetrics(bold).height() + 2 * PAD
        if index.data(SHAPE_ROLE):
            h += QFontMetrics(small).height() + 2
        message, color = self._message_lines(index)
        if message:
            fm = QFontMetrics(small)
            if color is RED:
                rect = fm.boundingRect(QRect(0, 0, self._text_width(index), 10_000), Qt.TextFlag.TextWordWrap,
                                       message)
                h += min(rect.height(), fm.lineSpacing() * MAX_MESSAGE_LINES) + 2
            else:
                h += fm.lineSpacing() + 2
        return QSize(200, h)

    # ----------------------------------------------------------------- painting
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else self.view.style()
        status = index.data(STATUS_ROLE)
        kind = index.data(KIND_ROLE)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)

        painter.save()
        if status == fmt.ERROR and not selected:
            painter.fillRect(opt.rect, RED_TINT)
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)

        pal = opt.palette
        group = QPalette.ColorGroup.Active if opt.state & QStyle.StateFlag.State_Active else QPalette.ColorGroup.Inactive
        text_color = pal.color(group, QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        faint = QColor(text_color)
        faint.setAlphaF(0.62)
        if status == fmt.UNREACHABLE:
            text_color = QColor(faint)

        bold, small = self._fonts(opt)
        r = opt.rect.adjusted(PAD, PAD, -PAD, -PAD)
        fm_b, fm_s = QFontMetrics(bold), QFontMetrics(small)

        # index column
        painter.setFont(small)
        painter.setPen(faint)
        if kind == LAYER:
            painter.drawText(QRect(r.left(), r.top(), INDEX_W - 6, fm_b.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             str(index.data(LAYER_INDEX_ROLE)))

        # status mark
        mark_rect = QRect(r.right() - MARK, r.top() + (fm_b.height() - MARK) // 2, MARK, MARK)
        self._paint_mark(painter, mark_rect, status)

        # first line: title and key keywords
        x = r.left() + INDEX_W
        width = mark_rect.left() - PAD - x
        title = index.data(TITLE_ROLE) or ""
        summary = index.data(SUMMARY_ROLE) or ""
        painter.setFont(bold)
        painter.setPen(text_color)
        title_text = fm_b.elidedText(title, Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(x, r.top(), width, fm_b.height()), Qt.AlignmentFlag.AlignVCenter, title_text)
        used = fm_b.horizontalAdvance(title_text) + 8
        if summary and used < width:
            painter.setFont(opt.font)
            fm_n = QFontMetrics(opt.font)
            painter.setPen(text_color if kind != LOSS else faint)
            painter.drawText(QRect(x + used, r.top(), width - used, fm_b.height()), Qt.AlignmentFlag.AlignVCenter,
                             fm_n.elidedText(summary, Qt.TextElideMode.ElideRight, width - used))

        # second line: shape flow
        y = r.top() + fm_b.height() + 2
        shape = index.data(SHAPE_ROLE) or ""
        line_w = r.right() - x
        if shape:
            painter.setFont(small)
            painter.setPen(faint)
            if status == fmt.UNREACHABLE:
                small_italic = QFont(small)
                small_italic.setItalic(True)
                painter.setFont(small_italic)
            painter.drawText(QRect(x, y, line_w, fm_s.height()), Qt.AlignmentFlag.AlignVCenter,
                             fm_s.elidedText(shape, Qt.TextElideMode.ElideMiddle, line_w))
            y += fm_s.height() + 2

        # third part: the core's sentence on a failing row, the first warning on a warned one
        message, color = self._message_lines(index)
        if message:
            painter.setFont(small)
            colour = QColor(color)
            if selected:
                colour = text_color
            painter.setPen(colour)
            if color is RED:
                box = QRect(x, y, line_w, min(r.bottom() - y + 1, fm_s.lineSpacing() * MAX_MESSAGE_LINES))
                painter.drawText(box, Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignTop, message)
            else:
                painter.drawText(QRect(x, y, line_w, fm_s.height()), Qt.AlignmentFlag.AlignVCenter,
                                 fm_s.elidedText(message, Qt.TextElideMode.ElideRight, line_w))
        painter.restore()

    @staticmethod
    def _paint_mark(painter: QPainter, rect: QRect, status: str) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRect(rect)
        if status == fmt.OK:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(GREEN)
            painter.drawEllipse(r)
            pen = QPen(QColor("white"), 1.8)
            painter.setPen(pen)
            path = QPainterPath(QPointF(r.left() + 3, r.center().y() + 0.5))
            path.lineTo(QPointF(r.left() + 5.2, r.bottom() - 3))
            path.lineTo(QPointF(r.right() - 2.5, r.top() + 3.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        elif status == fmt.WARNING:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(AMBER)
            path = QPainterPath(QPointF(r.center().x() + 0.5, r.top()))
            path.lineTo(QPointF(r.right() + 1, r.bottom() + 1))
            path.lineTo(QPointF(r.left(), r.bottom() + 1))
            path.closeSubpath()
            painter.drawPath(path)
            painter.setPen(QPen(QColor("black"), 1.5))
            cx = r.center().x() + 0.5
            painter.drawLine(QPointF(cx, r.top() + 4), QPointF(cx, r.bottom() - 3))
            painter.drawPoint(QPointF(cx, r.bottom() - 0.5))
        elif status == fmt.ERROR:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(RED)
            painter.drawEllipse(r)
            painter.setPen(QPen(QColor("white"), 1.8))
            m = 3.5
            painter.drawLine(QPointF(r.left() + m, r.top() + m), QPointF(r.right() + 1 - m, r.bottom() + 1 - m))
            painter.drawLine(QPointF(r.right() + 1 - m, r.top() + m), QPointF(r.left() + m, r.bottom() + 1 - m))
        elif status == fmt.UNREACHABLE:
            painter.setPen(QPen(GREY, 1.4))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(r.adjusted(1, 1, -1, -1))
        painter.restore()

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        fm = QFontMetrics(option.font)
        editor.setGeometry(QRect(option.rect.left() + INDEX_W, option.rect.top() + 2,
                                 option.rect.width() - INDEX_W - MARK - 2 * PAD, fm.height() + 2 * PAD))


class StackListView(QTreeView):
    """The rows, a block's lists and layers indented under it; a drop lands between rows, after the row it is
    dropped on, or at the end of the list it is dropped on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(StackDelegate(self))
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)  # top-level rows keep the full width; a block's children show arrows
        self.setIndentation(14)
        self.setItemsExpandable(True)
        self.setExpandsOnDoubleClick(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDragDropOverwriteMode(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setUniformRowHeights(False)
        self.setWordWrap(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.setMouseTracking(True)
        self.context_actions: list[QAction | None] = []
        self.row_actions = None  # set by StackPanel: (index, parent) -> actions for that row, first in the menu
        # The selected row stays in view while rows change height or the list its size (a block opening,
        # wrapped error sentences, the window's first layout), until the person scrolls the list.
        self._follow = False
        self._keep_pending = False
        self.verticalScrollBar().actionTriggered.connect(self._stop_following)

    def setModel(self, model) -> None:  # noqa: N802 - Qt override
        super().setModel(model)
        for signal in (model.rowsInserted, model.modelReset, model.layoutChanged):
            signal.connect(lambda *_: self._expand_all())  # a block shows its inside
        self.expandAll()

    def _expand_all(self) -> None:
        self.expandAll()
        self._keep_current()

    def follow(self, index: QModelIndex) -> None:
        """Scroll ``index`` into view, and keep it there through later layouts until the person scrolls."""
        self._follow = True
        self.scrollTo(index)

    def _stop_following(self, *_) -> None:
        self._follow = False

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._follow = False
        super().wheelEvent(event)

    def _keep_current(self) -> None:
        """After the layout that is pending: the current row back in view, if it is followed."""
        if not getattr(self, "_follow", False) or self._keep_pending:
            return   # (also while the view is being made: Qt lays it out before __init__ ends)
        self._keep_pending = True

        def keep() -> None:
            self._keep_pending = False
            current = self.currentIndex()
            if self._follow and current.isValid():
                self.scrollTo(current)

        QTimer.singleShot(0, self, keep)

    def updateGeometries(self) -> None:  # noqa: N802 - Qt override: the rows were laid out again
        super().updateGeometries()
        self._keep_current()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.scheduleDelayedItemsLayout()  # wrapped error sentences change height with the width
        self._keep_current()

    def drop_target(self, pos: QPoint) -> tuple[int, QModelIndex]:
        """(row, parent) in Qt's dropMimeData convention for a drop at ``pos`` in the viewport."""
        index = self.indexAt(pos)
        if not index.isValid():
            return -1, QModelIndex()
        rect = self.visualRect(index)
        margin = max(2, min(12, int(rect.height() / 5.5)))
        if pos.y() - rect.top() < margin:
            return index.row(), index.parent()
        if rect.bottom() - pos.y() < margin and not (self.model().hasChildren(index) and self.isExpanded(index)):
            return index.row() + 1, index.parent()
        return -1, index

    def dropEvent(self, event) -> None:
        model = self.model()
        data = event.mimeData()
        if not isinstance(model, StackListModel) or not (data.hasFormat(ROWS_MIME) or data.hasFormat(TYPE_MIME)):
            event.ignore()
            return
        row, parent = self.drop_target(event.position().toPoint())
        model.dropMimeData(data, event.dropAction(), row, 0, parent)
        # The model moved or inserted through an edit. If the drag source then "removes" the moved row it asks
        # the model's removeRows, which this model does not implement (so nothing is lost twice).
        event.acceptProposedAction()
        self.stopAutoScroll()
        self.setState(QAbstractItemView.State.NoState)
        self.viewport().update()

    def build_menu(self, pos: QPoint) -> QMenu | None:
        """The context menu for the row at ``pos`` (viewport coordinates): its fixes, then the list's actions."""
        menu = QMenu(self)
        index = self.indexAt(pos)
        extra = self.row_actions(index, menu) if self.row_actions is not None and index.isValid() else []
        for action in extra:
            menu.addAction(action)
        if extra and self.context_actions:
            menu.addSeparator()
        for action in self.context_actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        if menu.isEmpty():
            menu.deleteLater()
            return None
        return menu

    def contextMenuEvent(self, event) -> None:
        menu = self.build_menu(event.pos())
        if menu is not None:
            menu.exec(event.globalPos())
            menu.deleteLater()


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
