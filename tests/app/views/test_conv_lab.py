"""The convolution lab: its numbers against taps_of and torch's own forward pass, the animation, clicks, hover.

The live tests run the real window on the digits net and compare what the lab shows with torch run here
(``torch_forward``) and with :func:`cnnviz.core.lab.taps.taps_of`; the view tests feed a torch layer
directly and check stepping, playing, the click, the hover against :class:`Window`'s reads, MaxPool's
winner against ``return_indices``, and the clear messages instead of a traceback.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from cnnviz.app.views.lab_steps import fmt
from cnnviz.core.lab.taps import resolve, taps_of, window_of
from cnnviz.core.model.stack import Layer
from cnnviz.core.shapes import infer
from tests.app.run_helpers import digits_stack, spin, torch_forward, wait_probe


@pytest.fixture
def lab(qtbot):
    from cnnviz.app.views import ConvLabView

    view = ConvLabView()
    qtbot.addWidget(view)
    view.resize(1200, 720)
    view.show()
    qtbot.waitExposed(view)
    return view


def conv_case(in_shape=(2, 9, 9), seed=0, **kw):
    """A Conv2d with keywords ``kw`` on a random input: (layer type, resolved, x, torch's out, weight, bias)."""
    torch.manual_seed(seed)
    c = in_shape[0]
    kw.setdefault("out_channels", 4)
    kw.setdefault("kernel_size", 3)
    params = resolve(Layer("Conv2d", dict(in_channels=c, **kw)), in_shape)
    conv = torch.nn.Conv2d(c, params["out_channels"], params["kernel_size"], stride=params["stride"],
                           padding=params["padding"], dilation=params["dilation"], groups=params["groups"],
                           bias=params["bias"], padding_mode=params["padding_mode"])
    x = torch.randn(1, *in_shape)
    with torch.no_grad():
        out = conv(x)[0].numpy()
    bias = conv.bias.detach().numpy() if conv.bias is not None else None
    return "Conv2d", params, x[0].numpy(), out, conv.weight.detach().numpy(), bias


def click(widget, rect) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center().toPoint())


def hover(widget, rect) -> None:
    QTest.mouseMove(widget, rect.center().toPoint())
    # QTest.mouseMove on an offscreen widget does not always deliver a move event: send one
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    point = QPointF(rect.center())
    event = QMouseEvent(QEvent.Type.MouseMove, point, widget.mapToGlobal(point), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


# ================================================================ the live window
def test_the_lab_shows_taps_of_and_torchs_value_for_a_clicked_cell(make_window, examples, qtbot):
    stack = digits_stack(examples)
    window = make_window(stack=stack, live=True)
    runner = window.runner
    lab = runner.hub.conv_lab
    tabs = window.center_tabs
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    assert titles.index("Convolution lab") == titles.index("Feature maps") + 1
    tabs.setCurrentIndex(titles.index("Convolution lab"))
    wait_probe(qtbot, runner)
    window.select_layer(2)                              # Conv2d 16 → 32, its input is layer 1's output
    snap = wait_probe(qtbot, runner, lambda s: 2 in s.weights and 2 in s.biases)
    runner.hub.route()
    lab.flush()
    assert not lab.is_empty, lab.hint_text
    lab.set_out_channel(5)
    click(lab.canvas, lab.canvas.output_rect(3, 6))
    assert lab.canvas.cell == (3, 6) and lab.step == 3 * 8 + 6

    report = infer(window.document.stack).layers[2]
    x = torch_forward(stack, snap.probe.index, upto=1)        # what layer 2 receives, computed here
    torch_out = torch_forward(stack, snap.probe.index, upto=2)
    expected = taps_of("Conv2d", report.resolved, x, (5, 3, 6), weight=snap.weights[2], bias=snap.biases[2])
    assert lab.arithmetic.value == pytest.approx(expected.value, abs=1e-6)
    assert lab.arithmetic.value == pytest.approx(float(torch_out[5, 3, 6]), abs=1e-5)
    assert lab.torch_value == pytest.approx(float(torch_out[5, 3, 6]), abs=1e-6)
    assert len(lab.arithmetic.taps) == 16 * 9
    text = lab.taps_panel.text()
    assert "value = sum + bias".ljust(22) + fmt(expected.value) in text
    assert "torch's value".ljust(22) + fmt(lab.torch_value) in text
    assert "✓ float32" in text
    assert "H_out" in lab.formula_label.text()


def test_layer_0_reads_the_normalised_image_and_other_layers_a_message(make_window, examples, qtbot):
    stack = digits_stack(examples)
    window = make_window(stack=stack, live=True)
    runner = window.runner
    lab = runner.hub.conv_lab
    tabs = window.center_tabs
    tabs.setCurrentWidget(lab)
    snap = wait_probe(qtbot, runner, lambda s: 0 in s.biases)
    window.select_layer(0)
    runner.hub.route()
    lab.flush()
    lab.set_out_channel(15)
    lab.jump_to(4, 7)
    torch_out = torch_forward(stack, snap.probe.index, upto=0)
    assert lab.arithmetic.value == pytest.approx(float(torch_out[15, 4, 7]), abs=1e-5)
    assert sum(t.padding for t in lab.arithmetic.taps) == 3    # column 8 of an 8-wide map (docs/explain.md)
    lab.jump_to(0, 0)
    assert sum(t.padding for t in lab.arithmetic.taps) == 5    # padding='same' 1 around an 8×8 map
    assert lab.arithmetic.value == pytest.approx(float(torch_out[15, 0, 0]), abs=1e-5)

    window.select_layer(1)                                      # a ReLU: a sentence, not a traceback
    runner.hub.route()
    assert lab.is_empty and "no sliding window" in lab.hint_text

    window.select_layer(4)                                      # MaxPool2d: the winner is marked
    snap = wait_probe(qtbot, runner)
    runner.hub.route()
    lab.flush()
    assert not lab.is_empty, lab.hint_text
    x = torch_forward(stack, snap.probe.index, upto=3)
    _, index = F.max_pool2d(torch.from_numpy(x)[None], 2, return_indices=True)
    lab.set_out_channel(7)
    lab.jump_to(1, 2)
    assert lab.arithmetic.return_index == int(index[0, 7, 1, 2])
    assert lab.arithmetic.value == pytest.approx(float(snap.probe.activations[4][7, 1, 2]))


# ================================================================ the view
def test_step_advances_one_cell_and_the_slider_follows(lab):
    case = conv_case(stride=2, padding=1)
    lab.set_layer(*case[:4], *case[4:], title="conv")
    assert lab.step == 0 and lab.canvas.cell == (0, 0)
    wo = lab.window.out_shape[2]
    for n in range(1, wo + 2):
        lab.step_button.click()
        assert lab.step == n and lab.slider.value() == n
    assert lab.canvas.cell == (1, 1)
    lab.slider.setValue(7)
    assert lab.step == 7 and lab.canvas.cell == divmod(7, wo)


def test_play_advances_over_time_and_pause_stops(lab, qtbot):
    case = conv_case()
    lab.set_layer(*case[:4], *case[4:])
    lab.set_speed(30)
    lab.play_button.click()
    assert lab.playing and lab.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: lab.step >= 5, timeout=3000)
    lab.play_button.click()
    assert not lab.playing
    stopped = lab.step
    spin(150)
    assert lab.step == stopped


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "dilation": 2, "padding": 1},
                                {"padding": "same", "kernel_size": 4, "padding_mode": "reflect"},
                                {"groups": 2, "out_channels": 4, "padding": 2, "padding_mode": "circular"}])
def test_every_cell_matches_taps_of_and_torch(lab, kw):
    case = conv_case(**kw)
    lab.set_layer(*case[:4], *case[4:])
    win = lab.window
    for co in range(win.out_shape[0]):
        lab.set_out_channel(co)
        for step in range(0, win.out_shape[1] * win.out_shape[2], 3):
            lab.set_step(step)
            oy, ox = divmod(step, win.out_shape[2])
            ref = taps_of("Conv2d", case[1], case[2], (co, oy, ox), weight=case[4], bias=case[5])
            assert lab.arithmetic.value == pytest.approx(ref.value)
            assert lab.arithmetic.value == pytest.approx(float(case[3][co, oy, ox]), abs=1e-5)
            assert {t.channel for t in lab.arithmetic.taps} == set(win.in_channels_of(co))


def test_clicking_an_output_cell_jumps_there(lab):
    case = conv_case(in_shape=(1, 12, 12), padding=1)
    lab.set_layer(*case[:4], *case[4:])
    click(lab.canvas, lab.canvas.output_rect(7, 4))
    assert lab.canvas.cell == (7, 4) and lab.step == 7 * 12 + 4
    assert "output [0, 7, 4]" in lab.cell_label.text()


@pytest.mark.parametrize("kw,at", [({"stride": 2, "dilation": 2, "padding": 1}, (4, 4)),
                                   ({"padding": 2, "padding_mode": "reflect"}, (1, 0)),
                                   ({"padding": 2, "padding_mode": "zeros"}, (-1, -2)),
                                   ({"stride": 3, "kernel_size": 2}, (2, 2))])
def test_hover_marks_every_output_cell_that_reads_the_input_cell(lab, kw, at):
    case = conv_case(in_shape=(1, 9, 9), **kw)
    lab.set_layer(*case[:4], *case[4:])
    win = window_of("Conv2d", case[1], case[2].shape)
    reads = win.positions()
    y, x = at
    h, w = win.in_shape[1:]
    if 0 <= y < h and 0 <= x < w:
        hit = (win.axis_source(0, reads.ys) == y) & (win.axis_source(1, reads.xs) == x)
    else:
        hit = (reads.ys == y) & (reads.xs == x)
    expected = (hit & reads.taps).any(axis=(2, 3))
    hover(lab.canvas, lab.canvas.input_rect(y, x))
    assert lab.canvas.hover == (y, x)
    np.testing.assert_array_equal(lab.canvas.reader_mask, expected)
    assert f"read by {int(expected.sum())} output cell" in lab.hover_label.text()


def test_maxpool_marks_the_winner_and_return_indices(lab):
    torch.manual_seed(3)
    x = torch.randn(1, 2, 8, 8)
    params = resolve(Layer("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}), (2, 8, 8))
    out, index = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    lab.set_layer("MaxPool2d", params, x[0].numpy(), out[0].numpy(), title="pool")
    assert lab.window.out_shape == (2, 5, 5) and "5 windows, not 4" in lab.notes_label.text()
    assert (lab.canvas.grid.kind == 2).any()     # the extra window reaches beyond the padding: crossed cells
    for co in range(2):
        lab.set_out_channel(co)
        lab.set_in_channel(co)
        for step in range(25):
            lab.set_step(step)
            oy, ox = divmod(step, 5)
            a = lab.arithmetic
            assert a.return_index == int(index[0, co, oy, ox])
            assert a.value == pytest.approx(float(out[0, co, oy, ox]))
            win = a.taps[a.argmax]
            assert lab.canvas.argmax == (win.y, win.x)
            assert "← max" in lab.taps_panel.lines[a.argmax]
            assert lab.taps_panel.marks == {a.argmax: lab.taps_panel.marks[a.argmax]}
    assert "return_indices gives".ljust(22) + str(lab.arithmetic.return_index) in lab.taps_panel.text()


def test_avgpool_shows_its_divisor(lab):
    torch.manual_seed(4)
    x = torch.randn(1, 1, 5, 5)
    params = resolve(Layer("AvgPool2d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True,
                                             "count_include_pad": False}), (1, 5, 5))
    out = F.avg_pool2d(x, 2, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    lab.set_layer("AvgPool2d", params, x[0].numpy(), out[0].numpy())
    lab.jump_to(0, 0)
    assert lab.arithmetic.divisor == 1 and "divisor".ljust(22) + "1" in lab.taps_panel.text()
    lab.jump_to(1, 1)
    assert lab.arithmetic.divisor == 4
    assert lab.arithmetic.value == pytest.approx(float(out[0, 0, 1, 1]), abs=1e-6)


def test_stride_that_does_not_divide_and_even_same_padding_are_told(lab):
    case = conv_case(in_shape=(1, 10, 10), stride=4, kernel_size=2)
    lab.set_layer(*case[:4], *case[4:])
    assert "no window reaches" in lab.notes_label.text()
    assert lab.canvas.unread.sum() == window_of("Conv2d", case[1], case[2].shape).unread().sum() > 0
    case = conv_case(in_shape=(1, 6, 6), padding="same", kernel_size=4)
    lab.set_layer(*case[:4], *case[4:])
    assert lab.window.pad_before == (1, 1) and lab.window.pad_after == (2, 2)
    assert "1 row(s) on top and 2 below" in lab.notes_label.text()
    assert lab.canvas.grid.values.shape == (6 + 3, 6 + 3)


def test_a_large_input_is_a_crop_with_a_minimap(lab):
    case = conv_case(in_shape=(3, 224, 224), out_channels=2, stride=2, padding=1)
    lab.set_layer(*case[:4], *case[4:])
    assert lab.canvas.inp.cropped and lab.canvas.outp.cropped
    lab.set_step(60 * 112 + 80)
    win = lab.window
    rows, cols = win.axis_positions(0)[60], win.axis_positions(1)[80]
    pane, g = lab.canvas.inp, lab.canvas.grid
    assert pane.visible(int(rows.min()) - g.y0, int(cols.min()) - g.x0)
    assert pane.visible(int(rows.max()) - g.y0, int(cols.max()) - g.x0)
    assert lab.arithmetic.value == pytest.approx(float(case[3][0, 60, 80]), abs=1e-5)
    lab.grab()   # paints the crop and the minimap


def test_what_cannot_be_shown_is_a_sentence(lab):
    case = conv_case()
    lab.set_layer("ReLU", {}, case[2], case[3], title="layer 1 · ReLU")
    assert lab.is_empty and "no sliding window" in lab.hint_text
    lab.set_layer("Conv2d", case[1], case[2], case[3], None, None, title="conv")
    assert lab.is_empty and "weights" in lab.hint_text
    lab.set_layer("Conv2d", case[1], None, None, case[4], case[5], title="conv")
    assert lab.is_empty and "no input" in lab.hint_text
    lab.set_layer("Conv2d", case[1], case[2], case[3][:, :3], case[4], case[5], title="conv")
    assert lab.is_empty and "stack changed" in lab.hint_text
    x = case[2].copy()
    x[0, 1, 1] = np.nan
    lab.set_layer("Conv2d", case[1], x, case[3], case[4], case[5], title="conv")
    assert not lab.is_empty
    lab.jump_to(1, 1)
    assert np.isnan(lab.arithmetic.value) or np.isfinite(lab.arithmetic.value)
    lab.grab()


def test_another_layer_after_a_late_cell_of_a_larger_one(lab):
    big = conv_case(in_shape=(1, 30, 30), padding=1)
    lab.set_layer(*big[:4], *big[4:])
    lab.set_step(29 * 30 + 29)
    small = conv_case(in_shape=(1, 5, 5), kernel_size=2, stride=2)
    lab.set_layer(*small[:4], *small[4:])
    assert lab.step == 0 and lab.canvas.cell == (0, 0)
    lab.set_step(3)
    assert lab.arithmetic.value == pytest.approx(float(small[3][0, 1, 1]), abs=1e-5)
    lab.grab()
