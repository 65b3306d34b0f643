"""The explorer window: sidebar (palette, stack, properties), details, view areas, menus and files.

The window wires the pieces together and owns no logic of its own: the stack
lives in a :class:`~cnnviz.core.model.stack.StackDocument`, every change goes
through :class:`~cnnviz.app.document.undo.History`, files through
:class:`~cnnviz.app.document.files_ui.FileController`, dialogs through
:class:`~cnnviz.app.window.dialogs.Dialogs`, the docks and the centre tabs through
:class:`~cnnviz.app.window.docks.Docks`.

Integration points for the views and the network runner:

* ``add_view(widget, area, title)``: areas "center" (tabs), "right", "bottom", "left" (docks).
* ``run_menu`` / ``run_toolbar`` and ``add_run_action(action)``.
* ``files.guards``: callables ``guard(reason) -> bool`` asked before closing or replacing the stack.
* ``selectionChanged(kind, index)``, ``selected_layer()``, ``select_layer(i)``; for a layer inside a block
  ``selectionChanged`` says the block's index, and ``selected_path()`` / ``select_path(path)`` name the layer.
* ``set_status(field, text, tooltip="")`` for "device" and "run" (also "params", "validity", "file").
* ``document`` (subscribe to stack changes: a ``StackChange`` with the edit and the report; ``document.report``
  is the current stack's, inferred once per change), ``history`` (push edits), ``stackReplaced`` (new/open).
"""
from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Callable

import shiboken6
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QToolBar, QToolButton, QWidget

from cnnviz.app.document.export_ui import Exporter
from cnnviz.app.document.files_ui import AUTOSAVE_DEBOUNCE_MS, AUTOSAVE_INTERVAL_MS, FileController
from cnnviz.app.document.import_ui import OnnxImporter
from cnnviz.app.document.undo import History
from cnnviz.app.sidebar.details import DetailsPanel
from cnnviz.app.sidebar.palette import Palette
from cnnviz.app.sidebar.properties import PropertyEditor
from cnnviz.app.sidebar.stack_model import StackListModel
from cnnviz.app.sidebar.stack_panel import StackPanel
from cnnviz.app.window.dialogs import Dialogs
from cnnviz.app.window.docks import AREAS, Docks
from cnnviz.app.window.file_menus import fill_examples_menu, fill_recent_menu
from cnnviz.app.window.settings import Locations, Settings
from cnnviz.app.window.shortcuts import shortcut_rows, shortcuts_html
from cnnviz.app.window.status_text import params_text, validity
from cnnviz.app.window.steady_label import SteadyLabel
from cnnviz.core.model import assets, files
from cnnviz.core.model.layers import by_group
from cnnviz.core.model.stack import Stack, StackDocument, TrainingConfig
from cnnviz.core.shapes import infer

log = logging.getLogger("cnnviz.window")

DEFAULT_EXAMPLE = "lenet5.cnnviz"
DEFAULT_SIZE = QSize(1400, 900)
PROPERTIES_MAX_MIN = 440  # the widest the property form may hold the sidebar open


class _ShortButton(QToolButton):
    """A toolbar button for an action with a short fixed label, the action's full text in the tooltip.

    The undo actions' text names the edit ("Undo Change kernel_size of Conv2d"); in the toolbar that
    text would grow until it pushed the Run controls into the overflow menu.
    """

    def __init__(self, action: QAction, label: str, parent: QWidget) -> None:
        super().__init__(parent)
        self._action = action
        self.setText(label)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.clicked.connect(action.trigger)
        action.changed.connect(self._follow)
        action.destroyed.connect(self._forget)
        self._follow()

    def _forget(self) -> None:
        self._action = None

    def _follow(self) -> None:
        action = self._action
        if action is None or not shiboken6.isValid(action):  # the undo stack deletes its actions on closing
            return
        self.setEnabled(action.isEnabled())
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        text = action.text().replace("&", "")
        self.setToolTip(f"{text} ({keys})" if keys else text)


def default_example() -> Path:
    return assets.path("examples", DEFAULT_EXAMPLE)


def app_icon() -> QIcon:
    icon = QIcon()
    folder = assets.path("icons")
    svg = folder / "cnnviz.svg"
    for png in sorted(folder.glob("cnnviz-*.png")):
        icon.addFile(str(png))
    if icon.isNull() and svg.is_file():
        icon.addFile(str(svg))
    return icon


class MainWindow(QMainWindow):
    """The explorer window. ``MainWindow(path)`` opens a file; keyword arguments make it testable."""

    selectionChanged = Signal(str, int)  # kind ("input", "layer", "loss", ""), layer index (-1 unless a layer)
    stackReplaced = Signal()              # a new, opened or recovered stack: the history starts again
    closing = Signal()                    # the close was accepted: stop what runs (the runner's thread)

    def __init__(self, path: str | Path | None = None, *, stack: Stack | None = None,
                 settings: Settings | None = None, autosave_dir: str | Path | None = None,
                 dialogs: Dialogs | None = None, autosave_interval_ms: int = AUTOSAVE_INTERVAL_MS,
                 autosave_debounce_ms: int = AUTOSAVE_DEBOUNCE_MS, live: bool = False,
                 runs_folder: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cnnviz_main_window")
        icon = app_icon()
        if not icon.isNull():
            self.setWindowIcon(icon)
        if settings is None or autosave_dir is None:
            locations = Locations.default()
            settings = settings or Settings(locations.config / "cnnviz.ini")
            autosave_dir = autosave_dir if autosave_dir is not None else locations.state
        self.settings = settings
        self.dialogs = dialogs or Dialogs(self)
        if self.dialogs.parent is None:
            self.dialogs.parent = self
        self.error_reporter = None  # set by cnnviz.app.run; unexpected errors in handlers go there
        self.document = StackDocument(stack if stack is not None else Stack(), analyse=infer)  # once per change
        self.history = History(self.document, self)
        self.files = FileController(self.document, self.history, settings, self.dialogs, autosave_dir, self,
                                    autosave_interval_ms, autosave_debounce_ms)
        self.docks = Docks(self, settings)  # the docks and the centre tabs: placed, sized, saved
        self.exporter = Exporter(
            self.document, self.dialogs, settings, stack_path=lambda: self.files.path, select_layer=self.select_layer,
            live_model=lambda: self.runner.live_model() if self.runner is not None else None,
            status=lambda text, ms: self.statusBar().showMessage(text, ms), set_busy=self._set_exporting,
            report_exception=self.report_exception, parent=self)
        self.onnx_importer = OnnxImporter(self.files, self.dialogs, settings,
                                          status=lambda text, ms: self.statusBar().showMessage(text, ms),
                                          report_exception=self.report_exception, parent=self)

        self._build_sidebar()
        self.center_tabs = self.docks.build_center()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_status_bar()
        self.setAcceptDrops(True)

        self.document.subscribe(lambda change: self._stack_changed())
        self.files.stateChanged.connect(self._update_title)
        self.files.stackReplaced.connect(self._stack_replaced)
        self.resize(self._default_size())

        if path is not None:
            if not self.files.open_path(path, ask=False):
                self.files.open_example(default_example(), ask=False)
        elif stack is None:
            self.files.open_example(default_example(), ask=False)
        else:
            self._stack_replaced()
        self._stack_changed()
        self._update_title()
        # live: the views, the Run toolbar and the worker thread that runs the stack (cnnviz.app.runner).
        # Without it the window edits stacks and never imports torch (tests, the self-test).
        self.runner = None
        self._data_preview = None  # the images as the network gets them (cnnviz.app.window.data_preview)
        if live:
            from cnnviz.app.runner import attach
            self.runner = attach(self, runs_folder=runs_folder)   # None: the platform's data folder
            self.runner.toolbar.previewRequested.connect(self.show_data_preview)

    # ================================================================ building
    def _build_sidebar(self) -> None:
        self.palette = Palette(self)
        self.stack_model = StackListModel(self.document, self.history.push_edit, self)
        self.stack_panel = StackPanel(self.stack_model, self.history.push_edit, self)
        self.stack_view = self.stack_panel.view
        self.properties = PropertyEditor(self.document, self.history, self)
        self.details = DetailsPanel(self.document, self, push=self.history.push_edit)
        self.details.setObjectName("details")

        self.palette_dock, self.stack_dock, self.properties_dock, self.details_dock = self.docks.place_sidebar(
            self.palette, self.stack_panel, self.properties, self.details)

        self.palette.layerRequested.connect(self.add_layer)
        self.stack_panel.selectionChanged.connect(self._selection_changed)

    def _action(self, text: str, slot: Callable, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        S = QKeySequence.StandardKey
        self.new_action = self._action("&New", self.new_stack, S.New, "Start an empty stack (Ctrl+N)")
        self.open_action = self._action("&Open…", self.files.open_dialog, S.Open, "Open a .cnnviz file (Ctrl+O)")
        self.save_action = self._action("&Save", self.files.save, S.Save, "Save the stack (Ctrl+S)")
        self.save_as_action = self._action("Save &As…", self.files.save_as, "Ctrl+Shift+S",
                                           "Save the stack to another file (Ctrl+Shift+S)")
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q", "Close the window (Ctrl+Q)")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        self.undo_action = self.history.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence(S.Undo)])
        self.redo_action = self.history.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action in (self.undo_action, self.redo_action):
            self.addAction(action)

        self.add_layer_action = self._action("Add &Layer…", self.focus_palette, "Ctrl+L",
                                             "Find a layer type to add: type, then Enter (Ctrl+L)")
        self.focus_stack_action = self._action("Go to Stack", lambda: self.stack_view.setFocus(), "Ctrl+1",
                                               "Move the keyboard focus to the stack list (Ctrl+1)")
        self.focus_properties_action = self._action("Go to Properties", self.focus_properties, "Ctrl+2",
                                                    "Move the keyboard focus to the property editor (Ctrl+2)")
        self.edit_input_action = self._action("Edit &Input…", lambda: self.stack_panel.select_row(0), "Ctrl+I",
                                              "Select the input row: channels, height, width, name (Ctrl+I)")
        self.edit_loss_action = self._action("Edit L&oss…", lambda: self.stack_panel.select_row(
            self.stack_model.loss_row()), "Ctrl+Shift+L", "Select the loss row (Ctrl+Shift+L)")
        self.next_error_action = self._action("Go to &Error", self.select_first_error, "F8",
                                              "Select the first layer that cannot work (F8)")

        self.export_module_action = self._action("PyTorch code (nn.Module layers)…",
                                                 lambda: self.export_python("module"), "Ctrl+E",
                                                 "Write a Python file defining build_model() with nn layers (Ctrl+E)")
        self.export_functional_action = self._action("PyTorch code (functional)…",
                                                     lambda: self.export_python("functional"), None,
                                                     "Write a Python file whose forward uses torch.nn.functional")
        self.export_onnx_action = self._action("ONNX…", self.export_onnx, None,
                                               "Write an ONNX model (opens in Netron, onnxruntime, …)")
        self.shortcuts_action = self._action("&Keyboard Shortcuts", self.show_shortcuts, "F1",
                                             "Every keyboard shortcut (F1)")
        self.about_action = self._action("&About cnnviz", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("&File")
        self.file_menu.addActions([self.new_action, self.open_action])
        self.recent_menu = self.file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.examples_menu = self.file_menu.addMenu("&Examples")
        fill_examples_menu(self.examples_menu, lambda p: self.files.open_example(p))
        self.import_onnx_action = self._action("&Import ONNX…", self.onnx_importer.import_onnx,
                                               tip="Read an ONNX model into a stack, saved with its weights beside it")
        self.file_menu.addAction(self.import_onnx_action)
        self.file_menu.addSeparator()
        self.file_menu.addActions([self.save_action, self.save_as_action])
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.quit_action)
        self._fill_recent_menu()

        self.edit_menu = bar.addMenu("&Edit")
        self.edit_menu.addActions([self.undo_action, self.redo_action])
        self.edit_menu.addSeparator()
        self.edit_menu.addAction(self.add_layer_action)
        self.add_layer_menu = self.edit_menu.addMenu("Add Layer &Type")
        for group, specs in by_group().items():
            if not specs:
                continue
            sub = self.add_layer_menu.addMenu(group.capitalize())
            for spec in specs:
                action = sub.addAction(spec.type)
                action.setToolTip(spec.doc)
                action.setStatusTip(spec.doc)
                action.triggered.connect(lambda checked=False, t=spec.type: self.add_layer(t))
        p = self.stack_panel
        self.edit_menu.addActions([p.duplicate_action, p.rename_action, p.delete_action])
        self.edit_menu.addSeparator()
        self.edit_menu.addActions([p.move_up_action, p.move_down_action])
        for action in (p.duplicate_action, p.move_up_action, p.move_down_action):
            self.addAction(action)
        self.edit_menu.addSeparator()
        self.edit_menu.addActions([self.edit_input_action, self.edit_loss_action, self.next_error_action])

        self.view_menu = bar.addMenu("&View")
        for dock in (self.palette_dock, self.stack_dock, self.properties_dock, self.details_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addActions([self.focus_stack_action, self.focus_properties_action])
        self.view_menu.addSeparator()
        self.reset_layout_action = self.view_menu.addAction("Reset &Layout", self.reset_layout)
        self.docks.view_menu = self.view_menu  # each view's dock gets its toggle there

        self.run_menu = bar.addMenu("&Run")
        self.run_menu.menuAction().setVisible(False)  # shown by add_run_action once a runner is wired in

        self.export_menu = bar.addMenu("E&xport")
        self.export_menu.addActions([self.export_module_action, self.export_functional_action,
                                     self.export_onnx_action])

        self.help_menu = bar.addMenu("&Help")
        self.help_menu.addActions([self.shortcuts_action, self.about_action])

    def _build_toolbars(self) -> None:
        self.main_toolbar = QToolBar("File and edit", self)
        self.main_toolbar.setObjectName("main_toolbar")
        self.main_toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.main_toolbar.setMovable(False)
        self.main_toolbar.addActions([self.new_action, self.open_action, self.save_action])
        self.main_toolbar.addSeparator()
        for action, label in ((self.undo_action, "Undo"), (self.redo_action, "Redo")):
            self.main_toolbar.addWidget(_ShortButton(action, label, self.main_toolbar))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.main_toolbar)
        self.run_toolbar = QToolBar("Run", self)
        self.run_toolbar.setObjectName("run_toolbar")
        self.run_toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.run_toolbar)
        self.run_toolbar.setVisible(False)  # shown by add_run_action

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_fields: dict[str, QWidget] = {}
        validity = QToolButton(self)
        validity.setAutoRaise(True)
        validity.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        validity.clicked.connect(self.select_first_error)
        validity.setObjectName("status_validity")
        self.status_fields["validity"] = validity
        for name in ("params", "device", "run", "file"):
            label = SteadyLabel(self) if name == "run" else QLabel(self)   # "run" changes while training
            label.setObjectName(f"status_{name}")
            label.setContentsMargins(6, 0, 6, 0)
            self.status_fields[name] = label
        for name in ("validity", "params", "device", "run", "file"):
            bar.addPermanentWidget(self.status_fields[name])
        self.status_fields["device"].setVisible(False)
        self.status_fields["run"].setVisible(False)

    # ================================================================ integration
    def add_view(self, widget: QWidget, area: str = "center", title: str = "") -> QWidget:
        """Put a view in an area: "center" (a tab), "right", "bottom" or "left" (a dock).

        Docks in "bottom" are tabbed with the layer details; those in "right"
        stack vertically. Returns the tab page or the dock widget.
        """
        return self.docks.add_view(widget, area, title)

    def add_run_action(self, action: QAction, toolbar: bool = True) -> None:
        """Add an action to the Run menu (and the run toolbar), showing both."""
        self.run_menu.addAction(action)
        self.run_menu.menuAction().setVisible(True)
        if toolbar:
            self.run_toolbar.addAction(action)
            self.run_toolbar.setVisible(True)
        if action not in self.actions():
            self.addAction(action)

    def set_status(self, field: str, text: str, tooltip: str = "") -> None:
        """Show ``text`` in a status bar field ("device", "run", "params", "validity", "file")."""
        widget = self.status_fields[field]
        widget.setText(text)
        widget.setToolTip(tooltip)
        widget.setVisible(bool(text))

    def selected_layer(self) -> int | None:
        return self.stack_panel.selected_layer()

    def selection(self) -> tuple[str, int]:
        return self.stack_panel.selection()

    def selected_path(self):
        """The selected layer's :class:`~cnnviz.core.model.paths.LayerPath` at any depth (None: no layer).
        Read when ``selectionChanged`` comes: it is emitted again when the selection moves inside a block."""
        return self.stack_panel.selected_path()

    def select_path(self, path) -> None:
        self.stack_panel.select_path(path)

    def _set_exporting(self, busy: bool) -> None:
        for action in (self.export_module_action, self.export_functional_action, self.export_onnx_action):
            action.setEnabled(not busy)

    def select_layer(self, index: int) -> None:
        self.stack_panel.select_layer(index)

    def report_exception(self, exc: BaseException) -> None:
        """An unexpected error caught in a handler: through the error reporter (log + dialog)."""
        if self.error_reporter is not None:
            self.error_reporter.report(exc)
        else:
            import traceback
            log.error("unexpected error", exc_info=exc)
            self.dialogs.exception(f"{type(exc).__name__}: {exc}",
                                   "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def data_preview_request(self):
        """What the data preview shows now: the run's data set (or the person's image) at the input shape."""
        from cnnviz.app.window.data_preview import PreviewRequest

        stack = self.document.stack
        config = stack.training or TrainingConfig()
        runner = self.runner
        return PreviewRequest(config.data, tuple(stack.input.shape), int(config.seed),
                              runner.target.image if runner is not None else None,
                              runner.toolbar.conversion if runner is not None else "")

    def show_data_preview(self) -> None:
        """Run → Show the Data…: the images as the network gets them, the classes, counts and split."""
        from cnnviz.app.window.data_preview import DataPreview

        if self._data_preview is None or not shiboken6.isValid(self._data_preview):
            self._data_preview = DataPreview(self)
        self._data_preview.show_for(self.data_preview_request())

    # ================================================================ stack
    def add_layer(self, type_name: str) -> None:
        self.stack_panel.add_layer(type_name)

    def new_stack(self) -> None:
        self.files.new_stack()

    def open_path(self, path: str | Path) -> bool:
        return self.files.open_path(path)

    def focus_palette(self) -> None:
        self.palette_dock.show()
        self.palette_dock.raise_()
        self.palette.filter.setFocus()
        self.palette.filter.selectAll()

    def focus_properties(self) -> None:
        self.properties_dock.show()
        self.properties.setFocus()
        self.properties.focusNextChild()

    def select_first_error(self) -> None:
        report = self.document.report
        bad = report.first_error
        if bad is not None:
            self.select_layer(bad.index)
        elif report.loss.error:
            self.stack_panel.select_row(self.stack_model.loss_row())

    def _selection_changed(self, kind: str, index: int) -> None:
        path = self.stack_panel.selected_path()  # a layer inside a block: the sidebar shows that layer itself
        where = path if path is not None and not path.top_level else index
        self.properties.show_selection(kind, where)
        self.details.show_selection(kind, where)
        QTimer.singleShot(0, lambda: shiboken6.isValid(self) and self._keep_properties_whole())  # once laid out
        self.selectionChanged.emit(kind, index)

    def _keep_properties_whole(self) -> None:
        """The sidebar never narrows the property form below its fields' minimum (a field cut, "H = W" clipped):
        the form scrolls only up and down, so the dock keeps the form's width. Looked at again whenever the
        form is laid out anew (a field shown, a row wrapped or unwrapped at a new width)."""
        self._properties_check_queued = False
        form = self.properties.widget()
        if form is None:
            return
        if form is not getattr(self, "_properties_watched", None):
            self._properties_watched = form
            form.installEventFilter(self)
        if form.layout() is not None:
            form.layout().activate()  # the fields' geometry for the form as it is now
        need = form.minimumSizeHint().width() + self.properties.verticalScrollBar().sizeHint().width() \
            + 2 * self.properties.frameWidth()
        need = min(need, PROPERTIES_MAX_MIN)
        if need != self.properties.minimumWidth():
            self.properties.setMinimumWidth(need)

    def eventFilter(self, watched, event) -> bool:
        if watched is getattr(self, "_properties_watched", None) and event.type() in (
                QEvent.Type.LayoutRequest, QEvent.Type.Resize) and not getattr(self, "_properties_check_queued", False):
            self._properties_check_queued = True
            QTimer.singleShot(0, lambda: shiboken6.isValid(self) and self._keep_properties_whole())
        return super().eventFilter(watched, event)

    def _stack_replaced(self) -> None:
        stack = self.document.stack
        self.stack_panel.select_row(1 if stack.layers else 0)
        self.stack_panel.show_from_top()  # the input row stays in view above the selected first layer
        self.details.show_intro()  # the stack's description, above the layer's details until hidden
        self.stackReplaced.emit()

    def _stack_changed(self) -> None:
        report = self.document.report
        self.set_status("params", *params_text(report))
        state = validity(report)
        field = self.status_fields["validity"]
        field.setText(state.text)
        field.setToolTip(state.tip)
        field.setStyleSheet(state.style)
        self._update_title()
        # an edit can widen the form (padding as numbers, a pair of values): once the editor has redrawn it
        QTimer.singleShot(0, lambda: shiboken6.isValid(self) and self._keep_properties_whole())
        preview = getattr(self, "_data_preview", None)
        if preview is not None and shiboken6.isValid(preview) and preview.isVisible():
            QTimer.singleShot(0, lambda: shiboken6.isValid(preview) and preview.follow(self.data_preview_request()))

    def _update_title(self) -> None:
        name = self.document.stack.name or "Untitled"
        path = self.files.path
        where = f" ({path.name})" if path else ""
        self.setWindowTitle(f"{name}{where}[*] — cnnviz")
        dirty = self.files.is_dirty()
        self.setWindowModified(dirty)
        self.save_action.setEnabled(True)
        file_text = "unsaved changes" if dirty else ("saved" if path else "not saved to a file")
        self.set_status("file", file_text, str(path) if path else "")

    # ================================================================ menus
    def _fill_recent_menu(self) -> None:
        fill_recent_menu(self.recent_menu, self.settings, lambda p: self.files.open_path(p))

    def reset_layout(self) -> None:
        self.docks.reset()

    def sidebar_arrangement(self) -> str | None:
        """"wide" (the palette beside the stack), "stacked" (above it), or None (the person moved them)."""
        return self.docks.sidebar_arrangement()

    def fit_docks(self) -> None:
        """Size the docks for the window (:meth:`Docks.fit <cnnviz.app.window.docks.Docks.fit>`): the palette
        shows every layer type where there is room for it, the sidebar and the right-hand views leave the
        centre usable."""
        self.docks.fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.docks.window_resized()

    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(menu, action, keys) for every action with a shortcut, in menu order."""
        fixed = {id(self.undo_action): "Undo the last edit", id(self.redo_action): "Redo"}  # their text changes
        return shortcut_rows(self.menuBar(), fixed)

    def show_shortcuts(self) -> None:
        self.dialogs.show_text("Keyboard shortcuts", shortcuts_html(self.shortcut_rows()))

    def show_about(self) -> None:
        from cnnviz import __version__
        self.dialogs.show_text("About cnnviz", f"<h3>cnnviz {__version__}</h3><p>A desktop explorer for "
                                               f"convolutional networks: exact shapes, real PyTorch runs, live "
                                               f"views.</p><p>Logs and autosaves: {html.escape(str(self.files.autosave_dir))}</p>")

    # ================================================================ export
    def export_python(self, style: str = "module") -> None:
        self.exporter.export_python(style)

    def export_onnx(self) -> None:
        self.exporter.export_onnx()

    # ================================================================ window
    def _default_size(self) -> QSize:
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return DEFAULT_SIZE
        room = screen.availableGeometry().size()
        return QSize(min(DEFAULT_SIZE.width(), int(room.width() * 0.95)),
                     min(DEFAULT_SIZE.height(), int(room.height() * 0.92)))

    def showEvent(self, event) -> None:
        if not self.docks.restored:
            self.docks.first_show()  # the layout the person left, or the first launch's
            QTimer.singleShot(0, self._reveal_stack_top)  # once the docks have their sizes
        super().showEvent(event)

    def _reveal_stack_top(self) -> None:
        if shiboken6.isValid(self) and shiboken6.isValid(self.stack_panel):
            self.stack_panel.show_from_top()

    def save_layout(self) -> None:
        self.docks.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.files.may_replace("closing"):
            event.ignore()
            return
        self.save_layout()
        self.files.closed_cleanly()
        self.closing.emit()
        event.accept()

    def close_without_asking(self) -> bool:
        """Close, discarding unsaved changes and ignoring guards (self-test, scripted shutdown)."""
        self.history.setClean()
        self.files._forced_dirty = False
        guards, self.files.guards = self.files.guards, []
        try:
            return self.close()
        finally:
            self.files.guards = guards

    def close_and_delete(self) -> bool:
        """Close without asking and delete the window's Qt objects now (a script that ends without returning
        through ``app.exec()``: the screenshot tool, the benchmarks); see :meth:`delete_closed`."""
        self.close_without_asking()   # joins the runner's worker thread
        return self.delete_closed()

    def delete_closed(self) -> bool:
        """Delete this closed window's Qt objects now, while Python still runs; False (nothing deleted) while its
        worker thread is still running, whose owner must outlive it.

        Left to the interpreter's exit, PySide deleted the window after Python
        had begun to tear itself down, and a chart's widget, told of the
        change, called into Python there and crashed the process on its way
        out (5 exits in 12 of the screenshot tool)."""
        if self.runner is not None and self.runner.worker.running:
            return False
        shiboken6.delete(self)
        return True

    # ------------------------------------------------------------------ drops
    @staticmethod
    def _dropped_stack(event) -> Path | None:
        data = event.mimeData()
        if not data.hasUrls():
            return None
        for url in data.urls():
            if url.isLocalFile() and url.toLocalFile().lower().endswith(files.SUFFIX):
                return Path(url.toLocalFile())
        return None

    def dragEnterEvent(self, event) -> None:
        if self._dropped_stack(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        path = self._dropped_stack(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        QTimer.singleShot(0, lambda: self.files.open_path(path))  # after the drag ends, not inside it


__all__ = ["AREAS", "MainWindow", "default_example"]
