"""The confusion matrix, the mistakes gallery and the saliency / Grad-CAM view, alone (no worker, no torch)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.app.qt_helpers import click_view, move_to

MATRIX = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])
CLASSES = ("cat", "dog", "<b>bird</b>")


@pytest.fixture
def cv(qtbot):
    from cnnviz.app.views import ConfusionView

    view = ConfusionView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_empty_until_a_matrix_then_counts_and_row_shares(cv):
    assert cv.is_empty and "held-out evaluation" in cv.hint_text
    cv.set_matrix(MATRIX, CLASSES, caption="step 10")
    cv.flush()
    assert not cv.is_empty
    np.testing.assert_array_equal(cv.counts(), MATRIX)
    assert cv.cell_text(1, 0) == "2" and cv.cell_text(2, 2) == "0"
    assert cv.per_class_accuracy() == pytest.approx([5 / 6, 0.7, None])  # a class with no sample: None
    cv.set_normalised(True)
    cv.flush()
    values = cv.values()
    np.testing.assert_allclose(values[:2].sum(1), 1.0)
    np.testing.assert_array_equal(values[2], 0.0)  # no sample: no share, no division by zero
    assert cv.cell_text(1, 1) == "70%" and cv.cell_text(0, 1) == "17%"
    np.testing.assert_allclose(cv.image_pixels(), values, rtol=1e-6)  # the heat map is the shares
    cv.mode_box.setCurrentIndex(0)
    cv.flush()
    assert not cv.normalised and cv.cell_text(1, 1) == "7"
    cv.clear("gone")
    assert cv.is_empty and cv.hint_text == "gone" and cv.counts() is None


def test_a_click_names_the_cell_rows_true_columns_predicted(cv, qtbot):
    cv.set_matrix(MATRIX, CLASSES)
    cv.flush()
    clicks = []
    cv.cellClicked.connect(lambda t, p: clicks.append((t, p)))
    click_view(cv.graphics, cv.vb, 0.5, 1.5)   # column 0 (predicted cat), row 1 (true dog)
    assert clicks == [(1, 0)] and cv.selected == (1, 0)
    move_to(cv.graphics, cv.vb, 2.5, 1.5)
    assert cv.caption.text().startswith("true dog, predicted <b>bird</b>: 1 mistaken (10.0% of dog)")
    click_view(cv.graphics, cv.vb, 3.8, 1.5)   # the accuracy column: no cell, every mistake
    assert clicks[-1] == (-1, -1) and cv.selected is None


def test_a_burst_of_evaluations_redraws_a_few_times(cv, qtbot):
    for i in range(30):
        cv.set_matrix(MATRIX + i, CLASSES)
    cv.flush()
    assert cv.renders <= 3
    np.testing.assert_array_equal(cv.counts(), MATRIX + 29)


def test_a_matrix_that_is_not_square_is_refused(cv):
    with pytest.raises(ValueError):
        cv.set_matrix([[1, 2, 3]], ("a",))
    with pytest.raises(ValueError):
        cv.set_matrix(MATRIX, ("a", "b"))


def test_examples_of_a_cell_most_confident_first():
    from cnnviz.app.views.mistakes import select_examples

    labels = np.array([0, 1, 1, 0, 1, 2, 1])
    preds = np.array([0, 0, 0, 1, 0, 2, 1])
    conf = np.array([0.9, 0.6, 0.8, 0.7, 0.8, 0.99, 0.5], dtype=np.float32)
    assert select_examples(labels, preds, conf, (1, 0)).tolist() == [2, 4, 1]  # ties by index
    assert select_examples(labels, preds, conf).tolist() == [2, 4, 3, 1]     # every mistake
    assert select_examples(labels, preds, conf, (2, 1)).tolist() == []
    # a target the loss ignores is no mistake (the matrix and the accuracy leave it out too)
    ignored = int(labels[2])
    assert 2 not in select_examples(labels, preds, conf, ignore_index=ignored).tolist()
    assert select_examples(labels, preds, conf, (ignored, int(preds[2])), ignore_index=ignored).tolist() == []
    assert select_examples(labels, preds, conf, ignore_index=-100).tolist() == [2, 4, 3, 1]   # not a class


def test_gallery_lists_in_order_and_a_click_emits_the_index(qtbot):
    from cnnviz.app.views import MistakesView
    from cnnviz.app.views.mistakes import MAX_SHOWN

    view = MistakesView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    n = 300
    rng = np.random.default_rng(0)
    images = rng.random((n, 1, 8, 8), dtype=np.float32)
    labels = np.zeros(n, dtype=np.int64)
    preds = np.full(n, 2, dtype=np.int64)  # predicted <b>bird</b>: a name that looks like markup
    conf = rng.random(n).astype(np.float32)
    order = np.argsort(-conf)
    view.set_examples(order, images, labels, preds, conf, CLASSES, "True cat, predicted dog")
    assert view.indices() == order[:MAX_SHOWN].tolist() and view.total == n
    assert view.title == f"True cat, predicted dog: {n}"
    assert f"Most confident first ({MAX_SHOWN} of {n})" in view.caption.text()
    item = view.list.item(0)
    assert item.text().startswith(f"#{order[0]} · ") and not item.icon().isNull()
    assert item.text().endswith("\n<b>bird</b>") and "predicted &lt;b&gt;bird&lt;/b&gt;" in item.toolTip()
    clicked = []
    view.exampleClicked.connect(clicked.append)
    QTest.mouseClick(view.list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.item_rect(2).center())
    assert clicked == [int(order[2])]
    # RGB images, and nothing at all.
    view.set_examples([1, 0], rng.random((2, 3, 5, 7), dtype=np.float32), labels, preds, conf, CLASSES, "x")
    assert view.indices() == [1, 0]
    view.set_examples([], None, labels, preds, conf, CLASSES, "True dog, predicted cat")
    assert view.indices() == [] and view.caption.text().startswith("None")


def test_attribution_choices_keep_the_persons_and_a_change_asks_again(qtbot):
    from cnnviz.app.views import AttributionView

    view = AttributionView()
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    asked = []
    view.choiceChanged.connect(lambda: asked.append((view.chosen_class, view.chosen_layer)))
    layers = [(0, "layer 0 · Conv2d"), (2, "layer 2 · MaxPool2d")]
    view.set_choices(CLASSES, layers, 2)
    assert asked == [] and view.chosen_class is None and view.chosen_layer is None
    assert view.layer_box.itemText(0) == "default: layer 2 · MaxPool2d"
    view.choose_class(1)
    view.choose_layer(0)
    assert asked == [(1, None), (1, 0)]
    view.set_choices(CLASSES, layers + [(3, "layer 3 · ReLU")], 3)  # a new stack: the choices stay
    assert view.chosen_class == 1 and view.chosen_layer == 0 and len(asked) == 2
    image = np.linspace(0, 1, 2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)[:1]
    sal = np.arange(36, dtype=np.float32).reshape(6, 6)
    view.set_result(image, sal, None, "caption", cam_note="no C×H×W layer")
    view.flush()
    np.testing.assert_array_equal(view.shown_heat("saliency"), sal)
    assert view.cam_map() is None and view.caption.text() == "caption"
