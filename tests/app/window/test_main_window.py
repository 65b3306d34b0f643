"""The window as a whole: layout and integration points, menus and shortcuts, status bar, export, start-up."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel

from cnnviz.core.model import files
from tests.app.qt_helpers import field

ROOT = Path(__file__).resolve().parents[3]


def test_the_window_opens_on_lenet5_with_the_first_layer_selected(window):
    assert window.document.stack.name == "LeNet-5"
    assert window.selected_layer() == 0
    assert window.properties.editor.index == 0 and "0 · Conv2d" in window.details.toPlainText()
    assert window.files.path is None  # an example is an unsaved copy
    menus = [a.text().replace("&", "") for a in window.menuBar().actions() if a.isVisible()]
    assert menus == ["File", "Edit", "View", "Export", "Help"]
    assert window.status_fields["params"].text() == "61,706 parameters"
    assert window.status_fields["validity"].text() == "✓ 1×28×28 → 10"


def test_the_default_size_fits_the_screen(window):
    screen = QApplication.primaryScreen().availableGeometry()
    assert window.width() <= max(1400, screen.width()) and window.height() <= max(900, screen.height())


def test_add_view_fills_the_areas(window, qtbot):
    maps = QLabel("maps")
    window.add_view(maps, "center", "Feature maps")
    assert window.center_tabs.count() == 1 and window.center_tabs.widget(0) is maps
    filters = QLabel("filters")
    window.add_view(filters, "center", "Filters")
    assert window.center_tabs.tabBar().isVisible()
    bars = window.add_view(QLabel("bars"), "right", "Softmax")
    curves = window.add_view(QLabel("curves"), "right", "Loss")
    assert isinstance(bars, QDockWidget) and window.dockWidgetArea(curves) == Qt.DockWidgetArea.RightDockWidgetArea
    grads = window.add_view(QLabel("grads"), "bottom", "Gradients")
    qtbot.waitUntil(lambda: grads in window.tabifiedDockWidgets(window.details_dock), timeout=1000)
    assert any(a.text() == "Softmax" for a in window.view_menu.actions())
    with pytest.raises(ValueError):
        window.add_view(QLabel(), "top", "x")


def test_run_actions_show_the_run_menu_and_toolbar(window):
    assert not window.run_menu.menuAction().isVisible() and not window.run_toolbar.isVisible()
    train = QAction("Train", window)
    train.setShortcut("Ctrl+T")
    window.add_run_action(train)
    assert window.run_menu.menuAction().isVisible() and window.run_toolbar.isVisible()
    assert train in window.run_menu.actions() and train in window.run_toolbar.actions()
    window.set_status("device", "cpu")
    assert window.status_fields["device"].isVisible() and window.status_fields["device"].text() == "cpu"
    assert ("Run", "Train", "Ctrl+T") in window.shortcut_rows()


def test_the_keyboard_shortcuts_dialog_lists_the_frequent_actions(window, dialogs):
    window.shortcuts_action.trigger()
    title, html = dialogs.texts[-1]
    for keys in ("Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Ctrl+S", "Ctrl+O", "Ctrl+N", "Del", "Ctrl+D", "Alt+Up",
                 "Alt+Down", "F2", "Ctrl+L", "F8", "Ctrl+E"):
        assert keys in html, keys
    rows = window.shortcut_rows()
    assert ("Edit", "Duplicate layer", "Ctrl+D") in rows


def test_ctrl_z_from_the_list_and_from_a_number_field_undoes_the_stack(window, qtbot):
    window.activateWindow()
    before = window.document.stack
    window.select_layer(0)
    spin = field(window, "out_channels").spin
    spin.setFocus()
    QTest.keyClick(spin, Qt.Key.Key_Up)
    assert window.document.stack.layers[0].params["out_channels"] == 7
    QTest.keyClick(spin, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.document.stack == before and spin.value() == 6
    window.stack_view.setFocus()
    window.add_layer("ReLU")
    QTest.keyClick(window.stack_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.document.stack == before
    QTest.keyClick(window.stack_view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert len(window.document.stack.layers) == 13


def test_the_status_bar_points_at_the_failing_layer(make_window, examples):
    window = make_window(examples["broken"])
    validity = window.status_fields["validity"]
    assert validity.text() == "✗ layer 6 (Conv2d) cannot work"
    window.select_layer(0)
    validity.click()
    assert window.selected_layer() == 6


def test_export_actions_exist(window):
    texts = [a.text() for a in window.export_menu.actions()]
    assert texts == ["PyTorch code (nn.Module layers)…", "PyTorch code (functional)…", "ONNX…"]


def test_exporting_a_broken_stack_says_why_and_selects_the_layer(make_window, examples, dialogs):
    window = make_window(examples["broken"])
    window.export_onnx_action.trigger()
    assert dialogs.errors[-1][0] == "Cannot export yet" and "layer 6" in dialogs.errors[-1][1]
    assert window.selected_layer() == 6


@pytest.mark.parametrize("style", ["module", "functional"])
def test_exporting_python_writes_a_file_in_the_background(window, dialogs, tmp_path, qtbot, style):
    pytest.importorskip("cnnviz.core.export")
    target = tmp_path / f"net_{style}"
    dialogs.save_answers.append(str(target))
    action = window.export_module_action if style == "module" else window.export_functional_action
    action.trigger()
    written = target.with_suffix(".py")
    qtbot.waitUntil(lambda: written.exists() and window.export_onnx_action.isEnabled(), timeout=5000)
    code = written.read_text(encoding="utf-8")
    assert "def build_model()" in code
    compile(code, str(written), "exec")
    assert not dialogs.errors and not dialogs.exceptions


def test_exporting_over_the_open_stack_or_a_device_is_refused(make_window, examples, dialogs, tmp_path, qtbot):
    net = tmp_path / "net.cnnviz"
    net.write_bytes(examples["lenet5"].read_bytes())
    window = make_window(net)
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    for target in (net, fifo):
        dialogs.save_answers.append(str(target))
        window.export_module_action.trigger()
        title, message = dialogs.errors[-1]
        assert title == "Cannot export there", message
    assert net.read_bytes() == examples["lenet5"].read_bytes()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert not window.exporter.busy


def test_window_geometry_and_dock_state_are_remembered(make_window, window):
    window.resize(700, 500)
    window.details_dock.hide()
    assert window.close()
    again = make_window()
    assert again.size().width() == 700 and again.size().height() == 500
    assert not again.details_dock.isVisible()


def test_opening_a_file_given_at_start(make_window, examples):
    window = make_window(examples["tiny-vgg"])
    assert window.document.stack.name == "Tiny VGG" and window.files.path == examples["tiny-vgg"].resolve()
    assert "(tiny-vgg.cnnviz)" in window.windowTitle()


def test_a_bad_file_given_at_start_falls_back_to_the_example(make_window, tmp_path, dialogs):
    bad = tmp_path / "bad.cnnviz"
    bad.write_text("{}")
    window = make_window(bad)
    assert window.document.stack.name == "LeNet-5" and dialogs.errors


def test_the_editing_window_starts_without_torch():
    code = textwrap.dedent("""
        import os, sys, tempfile, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        t = time.perf_counter()
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from cnnviz.app.window.main_window import MainWindow
        from cnnviz.app.window.settings import Settings
        from cnnviz.app.window.dialogs import Dialogs
        d = tempfile.mkdtemp()
        w = MainWindow(settings=Settings(d + "/s.ini"), autosave_dir=d, dialogs=Dialogs())
        w.show(); app.processEvents()
        print("torch" in sys.modules, round(time.perf_counter() - t, 2))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    loaded, seconds = out.stdout.split()
    assert loaded == "False", out.stderr
    assert float(seconds) < 5


@pytest.mark.qt_no_exception_capture
def test_run_opens_the_window_and_returns_the_exit_code(qapp, tmp_path, examples, monkeypatch):
    import shiboken6
    from PySide6.QtCore import QEventLoop

    from cnnviz.app import run
    from cnnviz.app.window.main_window import MainWindow

    path = tmp_path / "start.cnnviz"
    files.save(files.load(examples["digits"]), path)
    seen = {}
    # QApplication.exit() would leave every later event loop of this session unable to start
    # (pytest-qt's "app_exit" note), so run() gets a loop of its own to return from.
    loop = QEventLoop()
    monkeypatch.setattr(QApplication, "exec", lambda *args: loop.exec())

    def finish():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["names"] = [w.document.stack.name for w in windows]
        seen["icon"] = not QApplication.windowIcon().isNull()
        seen["windows"] = windows
        for w in windows:
            w.close_without_asking()   # as the person closing it: the window is closed, not deleted
        loop.exit(0)

    QTimer.singleShot(300, finish)
    assert run(str(path)) == 0
    assert seen["names"] == ["Digits net"] and seen["icon"]
    assert not any(shiboken6.isValid(w) for w in seen["windows"])   # deleted before run() returns, not at exit
    assert QApplication.organizationName() == "cnnviz" and QApplication.applicationName() == "cnnviz"


def test_a_warning_is_no_green_tick_in_the_status_bar(window):
    """Softmax before CrossEntropyLoss runs but warns: the status bar says so, in amber, without a ✓."""
    from cnnviz.core.model.stack import InsertLayer, Layer

    validity = window.status_fields["validity"]
    assert validity.text() == "✓ 1×28×28 → 10" and "2e7d32" in validity.styleSheet()
    window.history.push_edit(InsertLayer(len(window.document.stack.layers), Layer("Softmax", {"dim": 1})))
    assert validity.text() == "⚠ 1×28×28 → 10, 2 warnings"  # the Softmax row and the loss both warn
    assert "✓" not in validity.text() and "9a6700" in validity.styleSheet()
    window.history.undo()
    assert validity.text() == "✓ 1×28×28 → 10"


def test_reset_layout_brings_back_every_dock_the_views_included(window, qtbot):
    from PySide6.QtWidgets import QLabel

    softmax = window.add_view(QLabel("softmax"), "right", "Softmax")
    loss = window.add_view(QLabel("loss"), "bottom", "Loss")
    softmax.setFloating(True)
    loss.setFloating(True)
    window.details_dock.hide()
    window.reset_layout()
    docks = [softmax, loss, window.details_dock, window.palette_dock, window.stack_dock, window.properties_dock]
    assert not any(d.isFloating() for d in docks)
    assert all(d.isVisibleTo(window) or window.tabifiedDockWidgets(d) for d in docks)
    assert window.dockWidgetArea(softmax) == Qt.DockWidgetArea.RightDockWidgetArea
    assert window.dockWidgetArea(loss) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert loss in window.tabifiedDockWidgets(window.details_dock)


def test_a_script_can_delete_the_live_window_before_python_exits(qapp, tmp_path, dialogs):
    """The screenshot tool and the benchmarks end without returning through app.exec(): the window they made
    must be gone before the interpreter's exit, when Qt deleting it (its charts calling into Python) crashed."""
    import shiboken6

    from cnnviz.app.window.main_window import MainWindow
    from cnnviz.app.window.settings import Settings

    window = MainWindow(settings=Settings(tmp_path / "s.ini"), autosave_dir=tmp_path, dialogs=dialogs, live=True)
    window.show()
    charts = window.findChildren(QDockWidget)
    assert charts and window.runner is not None
    window.close_and_delete()
    assert not shiboken6.isValid(window)
    assert not any(shiboken6.isValid(d) for d in charts)   # its docks and their charts with it


def test_a_window_whose_worker_still_runs_is_not_deleted(make_window, qtbot):
    """Deleting the worker thread's owner while the thread runs would abort the process: nothing is deleted."""
    import shiboken6

    window = make_window(live=True)
    qtbot.waitUntil(lambda: window.runner.worker.running, timeout=10_000)
    assert window.delete_closed() is False
    assert shiboken6.isValid(window) and window.runner.worker.running   # untouched: still working
