"""The Profile tab's view: a real Profile (``profile_stack`` on a tiny stack) shown row by row, sorting,
row clicks, the JSON copy, failures as sentences and the stack's names as plain text."""
from __future__ import annotations

import json

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views import profile_view as pv
from cnnviz.app.views.profile_view import ProfileView
from cnnviz.core.model.stack import InputSpec as Input
from cnnviz.core.model.stack import Layer, Stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = Stack(name="<b>bold</b> net", input=Input(1, 6, 6), layers=(
    Layer("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1}, name="<img src=x>stem"),
    Layer("ReLU"),
    Layer("Residual", name="block", body=(Layer("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1}),
                                          Layer("ReLU"))),
    Layer("Flatten"), Layer("Linear", {"out_features": 4})))


@pytest.fixture(scope="module")
def profile():
    from cnnviz.core.run.profile import profile_stack

    return profile_stack(TINY, batch_size=4, device="cpu", warmup=0, repeats=1)


@pytest.fixture
def view(qtbot, profile):
    v = ProfileView()
    qtbot.addWidget(v)
    v.resize(1200, 500)
    v.show()
    v.set_profile(profile)
    return v


def cell(view: ProfileView, row: int, col: int) -> str:
    return view.proxy.index(row, col).data()


def test_one_row_per_layer_with_the_profiles_numbers(view, profile):
    assert not view.is_empty
    assert view.proxy.rowCount() == len(profile.layers) == 7  # 5 layers, a block, its 2 layers
    for row, layer in enumerate(profile.layers):
        assert cell(view, row, pv.PATH) == layer.path
        assert cell(view, row, pv.FORWARD) == f"{layer.forward_ms:.3f}"
        assert cell(view, row, pv.SHAPE) == pv.fmt_shape(layer.output_shape)
        assert cell(view, row, pv.MACS) == f"{layer.macs:,}"
        assert cell(view, row, pv.ACTIVATIONS) == (pv.format_bytes(layer.activation_bytes)
                                                   if layer.activation_bytes else "0")
        share = (layer.forward_ms + layer.backward_ms) / profile.step_ms
        assert view.proxy.index(row, pv.SHARE).data(pv.SHARE_ROLE) == pytest.approx(share)
        assert cell(view, row, pv.SHARE) == f"{100 * share:.1f} %"
    assert [cell(view, r, pv.PATH) for r in range(7)] == ["0", "1", "2", "2.body.0", "2.body.1", "3", "4"]
    # The first layer's backward is shown; the layers inside the block are indented under it, the block bold.
    assert cell(view, 3, pv.LAYER).startswith(pv.INDENT + "Conv2d")
    assert view.proxy.index(2, pv.LAYER).data(QtCore.Qt.ItemDataRole.FontRole).bold()
    assert "block: its layers together" in cell(view, 2, pv.FLAGS)
    # The analytic figure is in the byte columns' tooltips.
    saved_tip = view.proxy.index(0, pv.SAVED).data(QtCore.Qt.ItemDataRole.ToolTipRole)
    assert f"analytic {pv._size(profile.layers[0].analytic_saved_bytes)}" in saved_tip
    header = view.header.text()
    assert f"batch {profile.batch_size}" in header and "on cpu" in header
    assert f"{profile.step_ms:.3f} ms" in header and f"{profile.layers_sum_ms:.3f} ms" in header
    assert "peak memory not measured on cpu" in header


def test_sorting_by_forward_ms_orders_the_rows(view, profile):
    view.table.sortByColumn(pv.FORWARD, QtCore.Qt.SortOrder.DescendingOrder)
    shown = [view.row_layer(r).forward_ms for r in range(view.proxy.rowCount())]
    assert shown == sorted((x.forward_ms for x in profile.layers), reverse=True)
    assert [float(cell(view, r, pv.FORWARD)) for r in range(len(shown))] == sorted(
        [float(f"{x.forward_ms:.3f}") for x in profile.layers], reverse=True)
    view.table.sortByColumn(pv.PATH, QtCore.Qt.SortOrder.AscendingOrder)  # back to the file's order
    assert [view.row_layer(r).path for r in range(len(shown))] == [x.path for x in profile.layers]


def test_clicking_a_row_emits_the_top_level_index(qtbot, view):
    view.table.sortByColumn(pv.FORWARD, QtCore.Qt.SortOrder.AscendingOrder)
    for want_path, want_index in (("2.body.1", 2), ("4", 4), ("0", 0)):
        row = next(r for r in range(view.proxy.rowCount()) if view.row_layer(r).path == want_path)
        rect = view.table.visualRect(view.proxy.index(row, pv.LAYER))
        with qtbot.waitSignal(view.layerActivated, timeout=2000) as got, \
                qtbot.waitSignal(view.pathActivated, timeout=2000) as path:
            qtbot.mouseClick(view.table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
        assert got.args == [want_index] and path.args == [want_path]


def test_copy_as_json_is_what_the_cli_prints(view, profile):
    QtGui.QGuiApplication.clipboard().clear()
    view.copy_button.click()
    text = QtGui.QGuiApplication.clipboard().text()
    assert text == json.dumps(profile.to_json(), ensure_ascii=False, allow_nan=False)
    obj = json.loads(text)
    assert obj["format"] == "cnnviz.profile" and [x["path"] for x in obj["layers"]] == [x.path for x in profile.layers]


def test_an_engine_error_is_a_sentence_and_the_controls_come_back(qtbot):
    from cnnviz.core.run.faults import OutOfMemory

    v = ProfileView()
    qtbot.addWidget(v)
    v.show()
    assert v.is_empty and not v.copy_button.isEnabled() and v.profile_button.isEnabled()
    with qtbot.waitSignal(v.profileRequested) as asked:
        v.set_batch_size(32)
        v.profile_button.click()
    assert asked.args == [32]
    v.set_running(True)
    assert not v.profile_button.isEnabled() and v.cancel_button.isVisible() and v.progress.isVisible()
    v.set_progress(3, 8)
    assert (v.progress.value(), v.progress.maximum()) == (3, 8)
    with qtbot.waitSignal(v.cancelRequested):
        v.cancel_button.click()
    error = OutOfMemory("out of memory on cpu (AMD) while profiling at batch 32: try a batch of 16 (boom)",
                        device="cpu", batch_size=32, suggested_batch=16)
    v.show_error(str(error))
    assert v.message_text == str(error) and v.message.isVisible()
    assert "Traceback" not in v.message_text
    assert v.profile_button.isEnabled() and not v.cancel_button.isVisible() and not v.progress.isVisible()


def test_the_stacks_names_are_plain_text(view):
    assert view.header.textFormat() == QtCore.Qt.TextFormat.PlainText
    assert view.message.textFormat() == QtCore.Qt.TextFormat.PlainText
    assert "<b>bold</b> net" in view.header.text()
    tip = view.proxy.index(0, pv.LAYER).data(QtCore.Qt.ItemDataRole.ToolTipRole)
    assert "<img" not in tip and "&lt;img src=x&gt;stem" in tip
    # What Qt would render of the tooltip is the name itself, not an image.
    doc = QtGui.QTextDocument()
    doc.setHtml(tip)
    assert "<img src=x>stem (Conv2d)" in doc.toPlainText()
    labels = view.findChildren(QtWidgets.QLabel)
    assert all(label.textFormat() != QtCore.Qt.TextFormat.RichText for label in labels)


def test_bars_split_time_into_forward_and_backward_and_memory_into_its_three_parts(view, profile):
    """The issue's per-layer bars: time split forward/backward, memory split parameters/activations/saved."""
    most = max(r.param_bytes + r.activation_bytes + r.saved_bytes for r in profile.layers)
    for row, layer in enumerate(profile.layers):
        forward, backward = view.proxy.index(row, pv.SHARE).data(pv.SEGMENTS_ROLE)
        assert forward == pytest.approx(layer.forward_ms / profile.step_ms)
        assert backward == pytest.approx(layer.backward_ms / profile.step_ms)
        parts = view.proxy.index(row, pv.MEMORY).data(pv.SEGMENTS_ROLE)
        assert parts == pytest.approx((layer.param_bytes / most, layer.activation_bytes / most,
                                       layer.saved_bytes / most))
        total = layer.param_bytes + layer.activation_bytes + layer.saved_bytes
        assert cell(view, row, pv.MEMORY) == (pv.format_bytes(total) if total else "0")
    view.table.sortByColumn(pv.MEMORY, QtCore.Qt.SortOrder.DescendingOrder)
    totals = [view.proxy.index(r, pv.MEMORY).data(pv.SORT_ROLE) for r in range(view.proxy.rowCount())]
    assert totals == sorted(totals, reverse=True) and totals[0] == most
    view.table.grab()   # the bars paint


def test_the_texts_say_that_training_waits_while_the_profile_runs(qtbot):
    v = ProfileView()
    qtbot.addWidget(v)
    v.show()
    assert "training waits while the profile runs" in v.message_text   # the hint before any profile
    assert "Training waits while the profile runs" in v.profile_button.toolTip()
    v.set_running(True, waits=True)   # on the run's worker
    assert v.message_text == f"{pv.RUNNING_TEXT} {pv.WAITS_NOTE}" == "Profiling… Training waits while the profile runs."
    v.set_running(False)
    v.set_running(True)   # on a thread of its own: nothing trains
    assert v.message_text == pv.RUNNING_TEXT
    v.show_message("Profiling cancelled.")
    assert v.message_text == "Profiling cancelled." and v.profile_button.isEnabled()
