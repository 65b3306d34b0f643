"""The dense lab: a Linear's dot product and each index's origin, softmax step by step and the loss.

The Linear is checked in the live window on LeNet-5 (Flatten of 16×5×5 → Linear 400 → 120: index 213 is
channel 8, row 2, column 3) against torch's forward pass and :func:`flat_origin`; softmax and the loss on a
real probe's logits and against torch's ``cross_entropy`` with the stack's keywords.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from cnnviz.app.views.lab_steps import EXP_LIMIT, loss_settings, loss_steps, softmax_steps
from cnnviz.core.lab.taps import flat_origin
from cnnviz.core.shapes import infer
from tests.app.run_helpers import torch_forward, wait_probe


@pytest.fixture
def lab(qtbot):
    from cnnviz.app.views import DenseLabView

    view = DenseLabView()
    qtbot.addWidget(view)
    view.resize(1100, 760)
    view.show()
    qtbot.waitExposed(view)
    return view


def move(widget, point: QPointF) -> None:
    event = QMouseEvent(QEvent.Type.MouseMove, point, widget.mapToGlobal(point), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


_LOGITS: list = []


def digits_logits():
    """A real probe's logits and label (the digits net, untrained), computed once."""
    if not _LOGITS:
        from cnnviz.core.model import assets, files
        from cnnviz.core.run import engine
        from cnnviz.core.run.training import ProbeRequest, take_probe

        stack = files.load(assets.path("examples", "digits.cnnviz"))
        session = engine.Session(stack, engine.config_with(stack.training, device="cpu"))
        p = take_probe(session, ProbeRequest(index=3))
        _LOGITS.append((p.logits.copy(), p.label, p.classes, p.loss, p.softmax.copy(), p.log_softmax.copy()))
    return _LOGITS[0]


# ================================================================ Linear, in the live window
def test_the_linear_lab_hovered_index_origin_and_the_dot_product(make_window, qtbot):
    window = make_window(live=True)          # LeNet-5
    runner = window.runner
    lab = runner.hub.dense_lab
    tabs = window.center_tabs
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    assert titles.index("Dense lab") == titles.index("Convolution lab") + 1
    tabs.setCurrentWidget(lab)
    wait_probe(qtbot, runner)
    window.select_layer(7)
    snap = wait_probe(qtbot, runner, lambda s: 7 in s.weights and 7 in s.biases)
    runner.hub.route()
    lab.flush()
    report = infer(window.document.stack)
    origin = flat_origin(report, 7)
    assert origin == (16, 5, 5) and lab.origin == origin
    assert "in_features = C·H·W = 16·5·5 = 400" in lab.features_label.text()

    lab.strip.resize(lab.strip.width(), max(lab.strip.height(), 200))
    move(lab.strip, lab.strip.index_rect(213).center())
    assert lab.hovered_origin == tuple(int(v) for v in np.unravel_index(213, origin)) == (8, 2, 3)
    assert "index 213 → channel 8, row 2, column 3" in lab.index_label.text()
    move(lab.strip, lab.strip.index_rect(57, strip=1).center())   # the weight row's strip: the same index
    assert lab.hovered_origin == (2, 1, 2)

    lab.set_unit(17)
    torch_out = torch_forward(window.document.stack, snap.probe.index, upto=7)
    assert lab.torch_value == pytest.approx(float(torch_out[17]), abs=1e-6)
    assert lab.arithmetic.value == pytest.approx(float(torch_out[17]), abs=1e-5)
    x = snap.probe.activations[6]
    expected = float(np.dot(x.astype(np.float64), snap.weights[7][17].astype(np.float64)) + snap.biases[7][17])
    assert lab.arithmetic.value == pytest.approx(expected, abs=1e-9)
    assert "within float32 rounding" in lab.dot_label.text()

    window.select_layer(2)                   # a MaxPool2d: the Linear part says what to do
    runner.hub.route()
    assert lab.linear_stack.currentIndex() == 0 and "not a Linear" in lab.linear_hint.text()
    assert lab.steps is not None             # the softmax part still shows the sample's logits


# ================================================================ softmax and the loss
def test_the_softmax_slider_shows_the_overflow_above_88_7_and_not_below(lab):
    z, label, classes, _loss, soft, log_soft = digits_logits()
    lab.set_logits(z, label, classes=classes)
    np.testing.assert_allclose(lab.steps.softmax, soft, atol=1e-6)        # torch's softmax of the same z
    np.testing.assert_allclose(lab.steps.log_softmax, log_soft, atol=1e-5)
    assert not lab.steps.overflow and "no overflow" in lab.overflow_label.text()
    top = float(np.max(z))
    assert top > 0
    lab.set_scale(EXP_LIMIT / top * 0.98)
    assert not lab.steps.overflow and np.isfinite(lab.steps.naive).all()
    lab.set_scale(EXP_LIMIT / top * 1.03)
    assert lab.steps.overflow and "overflows float32" in lab.overflow_label.text()
    assert np.isnan(lab.steps.naive).any()
    assert np.isfinite(lab.steps.softmax).all() and lab.steps.softmax.sum() == pytest.approx(1, abs=1e-5)
    lab.scale_slider.setValue(0)            # the slider itself: t = 0.1 … 1000
    assert lab.scale == pytest.approx(0.1) and not lab.steps.overflow
    lab.scale_slider.setValue(400)
    assert lab.scale == pytest.approx(1000) and (top * 1000 > EXP_LIMIT) == lab.steps.overflow
    row = [lab.table.item(label, c).text() for c in range(lab.table.columnCount())]
    assert row[0] == classes[label]


def test_softmax_steps_overflow_exactly_where_exp_does():
    z = np.array([1.0, -3.0, 2.0], np.float32)
    for t in (1, 10, 44.0, 44.5, 100):
        st = softmax_steps(z, t)
        assert st.overflow == (2.0 * t > EXP_LIMIT)
        with np.errstate(over="ignore"):
            assert st.overflow == bool(np.isinf(np.exp(np.float32(2.0 * t))))
        np.testing.assert_allclose(st.softmax, torch.softmax(torch.tensor(z) * t, 0).numpy(), atol=1e-7)


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0, 1.0, 1.0, 0.2, 1.0, 1.0, 4.0]])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_the_loss_with_the_stacks_keywords_is_torchs(weight, eps, reduction):
    z, label, *_ = digits_logits()
    zt = torch.tensor(z)[None].requires_grad_(True)
    w = torch.tensor(weight) if weight is not None else None
    loss = F.cross_entropy(zt, torch.tensor([label]), weight=w, label_smoothing=eps, reduction=reduction).sum()
    (grad,) = torch.autograd.grad(loss, zt)
    s = loss_settings({"weight": weight, "label_smoothing": eps, "reduction": reduction, "ignore_index": -100})
    st = loss_steps(torch.log_softmax(torch.tensor(z), 0).numpy(), label, s)
    assert st.loss == pytest.approx(float(loss.detach()), abs=1e-5)
    np.testing.assert_allclose(st.grad, grad[0].numpy(), atol=1e-6)
    nll = F.nll_loss(torch.log_softmax(torch.tensor(z)[None], 1), torch.tensor([label]), weight=w,
                     reduction=reduction).sum()
    assert st.nll_loss == pytest.approx(float(nll), abs=1e-5)
    if weight is None and not eps:
        assert st.loss == pytest.approx(st.nll) and "−log s_y" in st.formula


def test_the_loss_lab_shows_the_keywords_ce_nll_and_dl_dz(lab):
    z, label, classes, torch_loss, *_ = digits_logits()
    lab.set_logits(z, label, loss_resolved={"weight": None, "ignore_index": -100, "reduction": "mean",
                                            "label_smoothing": 0.0}, classes=classes, torch_loss=torch_loss)
    text = lab.loss_label.text()
    assert "label_smoothing=0, ignore_index=-100, reduction='mean'" in text
    assert lab.loss.loss == pytest.approx(torch_loss, abs=1e-5) and lab.loss.nll_loss == pytest.approx(torch_loss, abs=1e-5)
    onehot = np.eye(len(z))[label]
    np.testing.assert_allclose(lab.loss.grad, lab.steps.softmax - onehot, atol=1e-6)
    assert float(lab.table.item(label, 6).text()) == pytest.approx(lab.loss.grad[label], abs=1e-5)
    lab.set_logits(z, label, loss_resolved={"ignore_index": label}, classes=classes)
    assert lab.loss.ignored and math.isnan(lab.loss.loss) and "ignore_index" in lab.loss_label.text()


def test_a_linear_that_cannot_be_shown_is_a_sentence(lab):
    lab.set_linear(np.zeros(4, np.float32), None, None, np.zeros(3, np.float32), title="layer 7 · Linear")
    assert lab.linear_stack.currentIndex() == 0 and "weights" in lab.linear_hint.text()
    lab.set_linear(np.zeros(4, np.float32), np.zeros((3, 5), np.float32), np.zeros(3, np.float32),
                   np.zeros(3, np.float32), title="layer 7 · Linear")
    assert lab.linear_stack.currentIndex() == 0 and "do not fit" in lab.linear_hint.text()
    x = np.array([1.0, np.nan, 2.0, 3.0], np.float32)
    lab.set_linear(x, np.ones((3, 4), np.float32), np.zeros(3, np.float32), np.full(3, np.nan, np.float32),
                   title="nan")
    assert lab.linear_stack.currentIndex() == 1 and math.isnan(lab.arithmetic.value)
    lab.grab()
