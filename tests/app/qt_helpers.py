"""Small helpers shared by the window tests."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPointF, Qt
from PySide6.QtTest import QTest


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


# ------------------------------------------------------------------ pyqtgraph views
def viewport_point(graphics, vb, x, y):
    """Where the point (x, y) of a ViewBox's data lies on the GraphicsLayoutWidget's viewport."""
    return graphics.mapFromScene(vb.mapViewToScene(QPointF(x, y)))


def settle(graphics):
    """Paint once and let the layout follow: axes size themselves to their labels while painting, and a
    view redraws (at the next turn of the event loop, or up to 33 ms later) when its layout changed."""
    graphics.grab()
    QTest.qWait(15)  # also: pyqtgraph drops mouse moves closer than its rate limit (100 per second)
    view = graphics
    while view is not None and not hasattr(view, "flush"):
        view = view.parentWidget()
    if view is not None:
        view.flush()   # a redraw the layout asked for runs now, not after the mouse has moved
        graphics.grab()


def move_to(graphics, vb, x, y):
    settle(graphics)
    QTest.mouseMove(graphics.viewport(), viewport_point(graphics, vb, x, y))


def click_view(graphics, vb, x, y):
    settle(graphics)
    QTest.mouseClick(graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(graphics, vb, x, y))
