"""One error path: exceptions in slots and threads reach one dialog (short message, traceback in details) and the log."""
from __future__ import annotations

import faulthandler
import sys
import threading

import pytest
from PySide6.QtCore import QTimer

from cnnviz.app.window.errors import ErrorReporter, short_message


@pytest.fixture
def reporter(dialogs, tmp_path):
    rep = ErrorReporter(dialogs, tmp_path / "log").install(crash_log=False)
    yield rep
    rep.uninstall()


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_slot_reaches_the_dialog_and_the_log(window, dialogs, reporter, qtbot):
    def broken_slot():
        raise ValueError("the slot broke\nsecond line")

    window.stack_panel.selectionChanged.connect(broken_slot)
    window.select_layer(3)  # the signal runs the slot inside Qt
    window.stack_panel.selectionChanged.disconnect(broken_slot)
    assert len(dialogs.exceptions) == 1
    message, details = dialogs.exceptions[0]
    assert message == "ValueError: the slot broke" and "Traceback" not in message
    assert "Traceback" in details and "broken_slot" in details
    assert "the slot broke" in reporter.log_path.read_text(encoding="utf-8")
    assert window.isVisible() and window.selected_layer() == 3  # the app goes on


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_timer_callback_is_reported(dialogs, reporter, qtbot):
    QTimer.singleShot(0, lambda: 1 / 0)
    qtbot.waitUntil(lambda: bool(dialogs.exceptions), timeout=2000)
    assert dialogs.exceptions[0][0] == "ZeroDivisionError: division by zero"


def test_an_exception_in_a_worker_thread_is_handed_to_the_gui_thread(dialogs, reporter, qtbot):
    seen_on = []

    def record(message, details, log_path=""):
        seen_on.append(threading.current_thread() is threading.main_thread())
        dialogs.exceptions.append((message, details))

    dialogs.exception = record

    def work():
        raise RuntimeError("worker failed")

    thread = threading.Thread(target=work, name="loader")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bool(dialogs.exceptions), timeout=2000)
    message, details = dialogs.exceptions[0]
    assert message == "RuntimeError: worker failed\n(in thread loader)"
    assert seen_on == [True]
    assert "worker failed" in reporter.log_path.read_text(encoding="utf-8")


@pytest.mark.qt_no_exception_capture
def test_the_same_error_repeating_shows_one_dialog(dialogs, reporter):
    for _ in range(5):
        try:
            raise KeyError("again")
        except KeyError:
            sys.excepthook(*sys.exc_info())
    assert len(dialogs.exceptions) == 1
    assert reporter.log_path.read_text(encoding="utf-8").count("KeyError") >= 5


def test_an_unexpected_export_failure_goes_through_the_reporter(window, dialogs, reporter):
    window.error_reporter = reporter
    window.exporter.finish("ONNX", "/tmp/x.onnx", TypeError("internal bug"))
    assert dialogs.exceptions and dialogs.exceptions[0][0] == "TypeError: internal bug"
    window.exporter.finish("ONNX", "/tmp/x.onnx", ValueError("the stack cannot be exported: layer 3"))
    assert dialogs.errors[-1] == ("Cannot export ONNX", "the stack cannot be exported: layer 3")


def test_faulthandler_writes_into_the_crash_log_and_is_restored(dialogs, tmp_path):
    was = faulthandler.is_enabled()
    rep = ErrorReporter(dialogs, tmp_path / "log").install(crash_log=True)
    try:
        assert faulthandler.is_enabled()
        assert rep.crash_path.exists() and "cnnviz started" in rep.crash_path.read_text()
        assert sys.excepthook == rep.excepthook and threading.excepthook == rep.thread_excepthook
    finally:
        rep.uninstall()
    assert faulthandler.is_enabled() == was
    assert sys.excepthook != rep.excepthook and threading.excepthook != rep.thread_excepthook


def test_short_message_is_one_line_without_a_traceback():
    assert short_message(ValueError("")) == "ValueError"
    long = short_message(OSError("x" * 1000))
    assert len(long) < 320 and long.endswith("…")
    assert short_message(KeyError("k"), where="thread t") == "KeyError: 'k'\n(in thread t)"
