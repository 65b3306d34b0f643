"""The stack as a list: two-line rows with shapes and status marks, drag to reorder, keys and a context menu
(:class:`StackListView`; the panel around it with its actions is :mod:`.stack_panel`).

Blocks are rows with their lists (body, shortcut, branches) as indented, collapsible children and their
layers below those; layers are dragged into and out of them, a layer is wrapped in a block in one action,
and every edit is undoable."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, QPointF, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QWidget,
)

from cnnviz.app.sidebar import display as fmt
from cnnviz.app.sidebar.stack_model import (
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
