"""The window's layout: the sidebar's docks, the view docks and the centre tabs, placed, sized and remembered.

:class:`Docks` is owned by the main window (``window.docks``), which hands it the sidebar's widgets and
the views (``add_view(widget, area, title)``); it arranges the sidebar for the window's width (the palette a
column of its own in a wide window, above the stack in a narrower one), keeps the side docks from crowding
the centre on small screens, and saves and restores the window's geometry and dock state in the settings.
"""
from __future__ import annotations

import re

import shiboken6
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QTabWidget, QWidget

from cnnviz.app.window.settings import Settings

SIDEBAR_WIDTH = 400   # at most: the widest property form (Conv2d's padding as numbers) keeps its labels beside the fields
RIGHT_WIDTH = 430      # the Softmax and Loss docks, at most
RIGHT_WIDTH_WIDE = 360  # … beside a sidebar whose palette has a column of its own
WIDE = 1500            # from this width on, the palette is a column of its own beside the stack
SIDE_SHARE = 0.27      # each side's share of a narrower window's width (the centre keeps the rest)
SIDE_MIN = 260
PALETTE_SHARE = 0.45   # of the sidebar's height, at most: the stack and the properties keep the rest
PALETTE_SHARE_SHORT = 0.37  # in a short window (the sidebar under 800 px), as many entries as fit in that
AREAS = ("center", "right", "bottom", "left")
STATE_VERSION = 1

_DOCK_AREAS = {
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
}


class Docks:
    """The docks and the centre tabs of ``window``: where each view goes, how big the docks are, and the
    layout the person left (saved to and restored from ``settings``).

    Build order, as the window calls it: :meth:`place_sidebar`, :meth:`build_center`, then ``view_menu``
    (each view's dock gets its toggle there); :meth:`first_show` and :meth:`window_resized` from the
    window's events.
    """

    def __init__(self, window: QMainWindow, settings: Settings) -> None:
        self.window = window
        self.settings = settings
        self.restored = False  # the saved layout was looked at (the first show): later views follow it
        self.view_menu: QMenu | None = None
        self.view_docks: dict[str, list[QDockWidget]] = {a: [] for a in _DOCK_AREAS}
        self._resize_timer: QTimer | None = None
        window.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
                              | QMainWindow.DockOption.AllowNestedDocks)
        window.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

    # ================================================================ building
    def dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.window.addDockWidget(area, dock)
        return dock

    def place_sidebar(self, palette, stack_panel: QWidget, properties: QWidget,
                      details: QWidget) -> tuple[QDockWidget, QDockWidget, QDockWidget, QDockWidget]:
        """The palette, the stack and the properties on the left, the layer details below: their docks."""
        window = self.window
        self.palette = palette
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.palette_dock = self.dock("Layers", "palette_dock", palette, left)
        self.stack_dock = self.dock("Stack", "stack_dock", stack_panel, left)
        self.properties_dock = self.dock("Properties", "properties_dock", properties, left)
        self.details_dock = self.dock("Layer details", "details_dock", details,
                                      Qt.DockWidgetArea.BottomDockWidgetArea)
        self.view_docks["bottom"].append(self.details_dock)
        window.resizeDocks([self.palette_dock, self.stack_dock, self.properties_dock], [190, 400, 330],
                           Qt.Orientation.Vertical)
        window.resizeDocks([self.stack_dock], [SIDEBAR_WIDTH], Qt.Orientation.Horizontal)
        window.resizeDocks([self.details_dock], [250], Qt.Orientation.Vertical)
        return self.palette_dock, self.stack_dock, self.properties_dock, self.details_dock

    def build_center(self) -> QTabWidget:
        """The centre's tabs, with a placeholder until the first view comes; the window's central widget."""
        window = self.window
        self.center_tabs = QTabWidget(window)
        self.center_tabs.setObjectName("center_tabs")
        self.center_tabs.setDocumentMode(True)
        self._center_placeholder = QLabel(
            "<p style='font-size:large'>The network's views appear here</p>"
            "<p>feature maps, filters, softmax bars, loss curves and gradients,<br>"
            "once the network runs on a sample.</p>"
            "<p>Meanwhile: pick a layer on the left to edit it;<br>"
            "its shapes and formulas are in <i>Layer details</i> below.</p>", window)
        self._center_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._center_placeholder.setStyleSheet("color: palette(placeholder-text);")
        self.center_tabs.addTab(self._center_placeholder, "Views")
        self.center_tabs.tabBar().setVisible(False)
        window.setCentralWidget(self.center_tabs)
        return self.center_tabs

    # ================================================================ views
    def add_view(self, widget: QWidget, area: str = "center", title: str = "") -> QWidget:
        """Put a view in an area: "center" (a tab), "right", "bottom" or "left" (a dock).

        Docks in "bottom" are tabbed with the layer details; those in "right"
        stack vertically. Returns the tab page or the dock widget.
        """
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}; expected one of {', '.join(AREAS)}")
        title = title or widget.windowTitle() or type(widget).__name__
        if area == "center":
            if self._center_placeholder is not None:
                self.center_tabs.removeTab(self.center_tabs.indexOf(self._center_placeholder))
                self._center_placeholder.deleteLater()
                self._center_placeholder = None
            self.center_tabs.addTab(widget, title)
            self.center_tabs.tabBar().setVisible(self.center_tabs.count() > 1)
            return widget
        name = "view_" + re.sub(r"\W+", "_", title.lower()).strip("_")
        dock = self.dock(title, name, widget, _DOCK_AREAS[area])
        existing = self.view_docks[area]
        if existing:
            if area == "bottom":
                self.window.tabifyDockWidget(existing[-1], dock)
            else:
                self.window.splitDockWidget(existing[-1], dock, Qt.Orientation.Vertical)
        existing.append(dock)
        self.view_menu.insertAction(self.view_menu.actions()[0], dock.toggleViewAction())
        if self.restored:
            self.restore(views_only=True)
        return dock

    def reset(self) -> None:
        """View → Reset Layout: every dock back in its place, shown, and sized for the window."""
        window = self.window
        for dock in (self.palette_dock, self.stack_dock, self.properties_dock):
            dock.setFloating(False)
            dock.show()
        self.arrange_sidebar(window.width() >= WIDE)
        for area, docks in self.view_docks.items():  # every view's dock too: floated, hidden or moved
            for i, dock in enumerate(docks):
                dock.setFloating(False)
                window.addDockWidget(_DOCK_AREAS[area], dock)
                if i and area == "bottom":
                    window.tabifyDockWidget(docks[i - 1], dock)
                elif i:
                    window.splitDockWidget(docks[i - 1], dock, Qt.Orientation.Vertical)
                dock.show()
        self.details_dock.raise_()  # the first of the bottom docks, tabbed with the views added there
        QTimer.singleShot(0, self.fit)  # once the docks are back in place

    # ---------------------------------------------------------------- the sidebar's arrangement and sizes
    def arrange_sidebar(self, wide: bool) -> None:
        """Wide windows: the palette a column of its own beside the stack and the properties, every layer type
        in view; narrower ones: the palette above the stack, above the properties."""
        window = self.window
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        docks = (self.palette_dock, self.stack_dock, self.properties_dock)
        for dock in docks:
            dock.setFloating(False)
            dock.show()
        if wide:
            window.addDockWidget(left, self.palette_dock, Qt.Orientation.Horizontal)
            window.splitDockWidget(self.palette_dock, self.stack_dock, Qt.Orientation.Horizontal)
            window.splitDockWidget(self.stack_dock, self.properties_dock, Qt.Orientation.Vertical)
        else:
            for dock in docks:
                window.addDockWidget(left, dock, Qt.Orientation.Vertical)

    def sidebar_arrangement(self) -> str | None:
        """"wide" (the palette beside the stack), "stacked" (above it), or None (the person moved them)."""
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        docks = (self.palette_dock, self.stack_dock, self.properties_dock)
        if any(d.isHidden() or d.isFloating() or self.window.dockWidgetArea(d) != left for d in docks):
            return None
        p, s, q = (d.geometry() for d in docks)
        if p.right() < s.left() and s.bottom() < q.top() and abs(s.left() - q.left()) <= 2:
            return "wide"
        if p.bottom() < s.top() and s.bottom() < q.top():
            return "stacked"
        return None

    def _palette_column_width(self) -> int:
        tree = self.palette.tree
        return max(120, tree.sizeHintForColumn(0) + tree.indentation() + 2 * tree.frameWidth()
                   + tree.verticalScrollBar().sizeHint().width() + 8)

    def fit(self) -> None:
        """Size the docks for the window: the palette shows every layer type where there is room for it (a
        column of its own in a wide window, as many as fit in a short one), the stack and the properties share
        the rest of the sidebar, and the sidebar and the right-hand views take at most ``SIDE_SHARE`` of a
        narrow window each, so the centre stays usable.
        """
        window = self.window
        if not shiboken6.isValid(window):
            return
        width = window.width()
        side = max(SIDE_MIN, min(SIDEBAR_WIDTH, int(width * SIDE_SHARE)))
        arrangement = self.sidebar_arrangement()
        right_w = max(SIDE_MIN, min(RIGHT_WIDTH_WIDE if arrangement == "wide" else RIGHT_WIDTH,
                                    int(width * SIDE_SHARE)))
        if arrangement == "wide":
            palette_w = self._palette_column_width()
            side = max(SIDE_MIN, min(side, int(width * 0.57) - palette_w - right_w))  # the centre keeps its 40 %
            window.resizeDocks([self.palette_dock, self.stack_dock], [palette_w, side], Qt.Orientation.Horizontal)
            room = self.stack_dock.height() + self.properties_dock.height()
            window.resizeDocks([self.stack_dock, self.properties_dock], [room // 2, room - room // 2],
                               Qt.Orientation.Vertical)
        elif arrangement == "stacked":
            column = [self.palette_dock, self.stack_dock, self.properties_dock]
            window.resizeDocks([self.stack_dock], [side], Qt.Orientation.Horizontal)
            room = sum(d.height() for d in column)
            title = max(0, self.palette_dock.height() - self.palette.height())
            share = PALETTE_SHARE if room >= 800 else PALETTE_SHARE_SHORT
            palette = min(self.palette.full_height() + title, int(room * share))
            stack = int((room - palette) * 0.52)
            window.resizeDocks(column, [palette, stack, room - palette - stack], Qt.Orientation.Vertical)
        right = [d for d in self.view_docks["right"] if d.isVisible() and not d.isFloating()
                 and window.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        if right:
            window.resizeDocks([right[0]], [right_w], Qt.Orientation.Horizontal)

    def _first_layout(self) -> None:
        """The first launch (no layout saved): the sidebar arranged and the docks sized for this window."""
        if shiboken6.isValid(self.window):
            self.arrange_sidebar(self.window.width() >= WIDE)
            QTimer.singleShot(0, self.fit)

    def _follow_width(self) -> None:
        """After a resize: across ``WIDE`` the sidebar changes arrangement (unless the person moved its docks);
        narrowed, the side docks give the centre its share back."""
        window = self.window
        if not shiboken6.isValid(window):
            return
        arrangement, wide = self.sidebar_arrangement(), window.width() >= WIDE
        if arrangement is not None and (arrangement == "wide") != wide:
            self.arrange_sidebar(wide)
            QTimer.singleShot(0, self.fit)
            return
        center = window.centralWidget()
        if center is not None and center.width() < 0.4 * window.width():
            self.fit()

    # ================================================================ the window's events
    def window_resized(self) -> None:
        """From the window's ``resizeEvent``: once the layout is in place, follow the width (debounced)."""
        if self.restored:
            if self._resize_timer is None:
                self._resize_timer = QTimer(self.window)
                self._resize_timer.setSingleShot(True)
                self._resize_timer.setInterval(50)
                self._resize_timer.timeout.connect(self._follow_width)
            self._resize_timer.start()

    def first_show(self) -> None:
        """From the window's first ``showEvent``: the layout the person left, or one sized for this window."""
        restored = self.restore()
        self.restored = True
        if not restored:
            QTimer.singleShot(0, self._first_layout)  # the first launch: docks sized for this window

    # ================================================================ saved
    def restore(self, views_only: bool = False) -> bool:
        """The layout the person left (True), or nothing saved (False)."""
        geometry = self.settings.window_bytes("geometry")
        state = self.settings.window_bytes("state")
        if geometry is not None and not views_only:
            self.window.restoreGeometry(geometry)
        if state is not None:
            return bool(self.window.restoreState(state, STATE_VERSION))
        return False

    def save(self) -> None:
        self.settings.set_window_bytes("geometry", self.window.saveGeometry())
        self.settings.set_window_bytes("state", self.window.saveState(STATE_VERSION))
        self.settings.sync()


__all__ = ["AREAS", "STATE_VERSION", "WIDE", "Docks"]
