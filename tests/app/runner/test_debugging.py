"""Why the network is wrong, in the live window: the held-out confusion matrix, its mistakes, saliency and Grad-CAM.

Every number shown is checked against one computed here with torch on the same
weights (read on the worker at a step boundary, as the window's own work is).
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.app.qt_helpers import click_view
from tests.app.run_helpers import TIMEOUT_MS, digits_stack, wait_probe


@pytest.fixture
def live(make_window, examples, qtbot):
    window = make_window(stack=digits_stack(examples), live=True)
    wait_probe(qtbot, window.runner)
    return window


def on_worker(qtbot, runner, fn):
    """``fn(session)`` on the worker at its next step boundary; waits here (a test may), never in the window."""
    future = runner.worker.call_at_boundary(fn)
    qtbot.waitUntil(future.done, timeout=TIMEOUT_MS)
    return future.result()


def predictions_here(session):
    """Each held-out sample's prediction and softmax confidence, with plain torch on the session's model."""
    import torch

    model = session.model
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x, y = session.test_split.rows(0, session.test_split.n)
            probs = torch.softmax(model(x), dim=1)
    finally:
        model.train(was)
    conf, pred = probs.max(1)
    return pred.cpu().numpy(), conf.cpu().numpy(), y.cpu().numpy(), session.step_count


def assert_lists(listed, expected, conf, cap=120):
    """``listed`` is exactly ``expected`` (its ``cap`` most confident when there are more), most confident first."""
    expected = {int(i) for i in expected}
    assert len(listed) == min(cap, len(expected)) and set(listed) <= expected
    assert np.all(np.diff(conf[listed]) <= 1e-6)
    rest = expected - set(listed)
    if rest:
        assert conf[listed].min() >= conf[sorted(rest)].max() - 1e-6


def show_tab(window, title):
    tabs = window.center_tabs
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    tabs.setCurrentIndex(titles.index(title))


def trained(qtbot, window, steps=250):
    """Train ``steps`` steps: the worker's own held-out evaluation comes at step 250 (EVAL_EVERY)."""
    runner = window.runner
    dbg = runner.debugging
    runner.worker.step(steps)
    qtbot.waitUntil(lambda: dbg.evaluation is not None and dbg.evaluation.step == steps, timeout=60_000)
    wait_probe(qtbot, runner, lambda s: s.probe.step == steps)
    dbg.flush()
    return dbg


def test_the_matrix_shown_is_the_held_out_count_of_the_models_predictions(live, qtbot):
    window = live
    runner = window.runner
    show_tab(window, "Confusion")
    dbg = trained(qtbot, window)
    view = dbg.confusion
    e = dbg.evaluation
    shown = view.counts()
    n = len(runner.built.test_labels)
    assert shown is not None and shown.sum() == e.counted == n  # digits: 359 held-out images
    assert np.trace(shown) == round(e.accuracy * n)
    assert view.renders >= 1 and not view.is_empty
    pred, conf, labels, step = on_worker(qtbot, runner, predictions_here)
    assert step == e.step == 250  # paused after the 250 steps: the same weights
    independent = np.zeros_like(shown)
    np.add.at(independent, (labels, pred), 1)
    np.testing.assert_array_equal(shown, independent)
    np.testing.assert_array_equal(e.predictions, pred)
    np.testing.assert_allclose(e.confidences, conf, rtol=1e-5, atol=1e-6)
    # Each class's accuracy beside its row, and the cells' numbers.
    for t in range(len(shown)):
        assert view.per_class_accuracy()[t] == pytest.approx(shown[t, t] / shown[t].sum())
    assert view.cell_text(0, 0) == f"{shown[0, 0]:,}"
    view.set_normalised(True)
    view.flush()
    np.testing.assert_allclose(view.values().sum(1), 1.0)
    assert view.mode_box.currentText() == "Row-normalised"
    assert view.cell_text(0, 0) == f"{100 * shown[0, 0] / shown[0].sum():.0f}%"


def test_a_cell_lists_its_examples_most_confident_first_and_an_example_becomes_the_sample(live, qtbot):
    window = live
    runner = window.runner
    show_tab(window, "Confusion")
    dbg = trained(qtbot, window)
    pred, conf, labels, _ = on_worker(qtbot, runner, predictions_here)
    # Without a cell: every mistake.
    assert_lists(dbg.mistakes.indices(), np.flatnonzero(pred != labels), conf)
    wrong = [(t, p) for t in range(10) for p in range(10) if t != p and ((labels == t) & (pred == p)).sum() >= 1]
    if not wrong:
        pytest.skip("the network made no mistake after 250 steps")
    t, p = max(wrong, key=lambda c: ((labels == c[0]) & (pred == c[1])).sum())
    view = dbg.confusion
    click_view(view.graphics, view.vb, p + 0.5, t + 0.5)
    assert dbg.cell == (t, p) and view.selected == (t, p)
    expected = np.flatnonzero((labels == t) & (pred == p))
    assert_lists(dbg.mistakes.indices(), expected, conf)
    assert dbg.mistakes.title.startswith(f"True {t}, predicted {p}: {len(expected)}")
    # A diagonal cell lists the right ones.
    click_view(view.graphics, view.vb, t + 0.5, t + 0.5)
    assert_lists(dbg.mistakes.indices(), np.flatnonzero((labels == t) & (pred == t)), conf)

    click_view(view.graphics, view.vb, p + 0.5, t + 0.5)
    listed = dbg.mistakes.indices()
    row = len(listed) - 1  # the least confident: surely not the current sample
    index = listed[row]
    assert index != runner.target.index or row == 0
    lst = dbg.mistakes.list
    lst.scrollToItem(lst.item(row))
    QTest.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     dbg.mistakes.item_rect(row).center())
    assert runner.toolbar.sample == index and runner.target.index == index
    snap = wait_probe(qtbot, runner, lambda s: s.probe.index == index)
    assert snap.probe.label == labels[index] and snap.probe.prediction == pred[index]


def test_grad_cam_and_saliency_shown_are_the_cores_for_the_sample_and_class(live, qtbot):
    from cnnviz.core.run import attribution

    window = live
    runner = window.runner
    dbg = runner.debugging
    runner.worker.step(40)
    wait_probe(qtbot, runner, lambda s: s.probe.step == 40)
    runner.toolbar.set_sample(7)
    wait_probe(qtbot, runner, lambda s: s.probe.index == 7)
    show_tab(window, "Saliency")
    view = dbg.attribution
    qtbot.waitUntil(lambda: dbg.attributions >= 1 and dbg.attribution_key is not None and dbg.attribution_key[1] == 7,
                    timeout=TIMEOUT_MS)
    assert view.chosen_class is None and view.chosen_layer is None  # the predicted class, the default layer

    def core(class_index):
        def fn(session):
            x, _ = session.test_split.rows(7, 8)
            cam = attribution.grad_cam(session.model, x, class_index)
            sal = attribution.saliency(session.model, x, class_index)
            return cam, sal, session.step_count
        return on_worker(qtbot, runner, fn)

    cam, sal, step = core(None)
    assert step == 40 and cam.layer == 4  # the digits net's MaxPool2d, the last C×H×W output before Flatten
    np.testing.assert_allclose(view.cam_map(), cam.map, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(view.saliency_map(), sal.map, rtol=1e-5, atol=1e-5)
    view.flush()
    np.testing.assert_allclose(view.shown_heat("cam"), cam.map, rtol=1e-5, atol=1e-5)
    assert "the predicted class" in view.caption.text() and "layer 4" in view.caption.text()

    other = (cam.class_index + 3) % 10
    before = dbg.attributions
    view.choose_class(other)
    qtbot.waitUntil(lambda: dbg.attributions > before and dbg.attribution_key[3] == other, timeout=TIMEOUT_MS)
    cam2, sal2, _ = core(other)
    assert cam2.class_index == other
    np.testing.assert_allclose(view.cam_map(), cam2.map, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(view.saliency_map(), sal2.map, rtol=1e-5, atol=1e-5)
    assert not np.allclose(sal2.map, sal.map)  # another class: another map
    assert f"class {other} ({other})" in view.caption.text()

    # Another layer, chosen in the box.
    before = dbg.attributions
    view.choose_layer(1)
    qtbot.waitUntil(lambda: dbg.attributions > before and dbg.attribution_key[4] == 1, timeout=TIMEOUT_MS)

    def at_layer(session):
        x, _ = session.test_split.rows(7, 8)
        return attribution.grad_cam(session.model, x, other, layer=1)

    np.testing.assert_allclose(view.cam_map(), on_worker(qtbot, runner, at_layer).map, rtol=1e-5, atol=1e-5)

    # The current sample changes: the maps follow.
    before = dbg.attributions
    runner.toolbar.set_sample(11)
    qtbot.waitUntil(lambda: dbg.attributions > before and dbg.attribution_key[1] == 11, timeout=TIMEOUT_MS)
    assert "Sample 11" in view.caption.text()
