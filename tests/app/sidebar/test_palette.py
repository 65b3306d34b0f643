"""The palette: every catalogue layer, grouped, added by double-click, Enter or drop."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cnnviz.app.sidebar.palette import TYPE_ROLE
from cnnviz.core.model.layers import CATALOGUE, GROUPS, by_group
from cnnviz.core.shapes import infer
from tests.app.qt_helpers import layer_row_text, root

ALL_TYPES = list(CATALOGUE)


def test_palette_lists_every_catalogue_layer_in_its_group_with_its_doc(window):
    tree = window.palette.tree
    heads = [tree.topLevelItem(g).text(0).lower() for g in range(tree.topLevelItemCount())]
    assert heads == [g for g in GROUPS if by_group()[g]] + ["blocks"]
    layers = [item for item in tree.type_items() if item.parent().text(0) != "Blocks"]
    for item in layers:
        spec = CATALOGUE[item.text(0)]
        assert item.parent().text(0).lower() == spec.group
        assert spec.doc in item.toolTip(0)
    assert sorted(i.text(0) for i in layers) == sorted(ALL_TYPES)
    blocks = [(item.data(0, TYPE_ROLE), item.text(0)) for item in tree.type_items() if item not in layers]
    assert blocks == [("Residual", "Residual block"), ("Concat", "Parallel branches (Concat)")]


def test_a_real_double_click_adds_the_layer_after_the_selected_row(window, qtbot):
    window.select_layer(2)
    tree = window.palette.tree
    item = tree.item_for("BatchNorm2d")
    tree.scrollToItem(item)
    rect = tree.visualItemRect(item)
    QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    assert len(window.document.stack.layers) == 12  # one click selects, it does not add
    QTest.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    stack = window.document.stack
    assert stack.layers[3].type == "BatchNorm2d"
    assert window.selected_layer() == 3
    assert "BatchNorm2d" in layer_row_text(window, 3) and "6×14×14 → 6×14×14" in layer_row_text(window, 3)


def test_double_clicking_each_palette_entry_adds_that_layer(window):
    """Every catalogue type, one after the other (undone in between), on one window."""
    original = window.document.stack
    for type_name in ALL_TYPES:
        window.select_layer(0)
        window.palette.tree.itemDoubleClicked.emit(window.palette.tree.item_for(type_name), 0)
        stack = window.document.stack
        assert len(stack.layers) == len(original.layers) + 1, type_name
        assert stack.layers[1].type == type_name
        assert stack.layers[1].params == CATALOGUE[type_name].initial_params()
        report = infer(stack).layers[1]
        text = layer_row_text(window, 1)
        assert text.startswith(f"1 {type_name}")
        if report.ok:
            assert f"→ {'×'.join(map(str, report.output_shape))}" in text
        assert window.selected_layer() == 1
        window.undo_action.trigger()
        assert window.document.stack == original


def test_dropping_each_palette_entry_inserts_it_where_it_lands(window):
    model = window.stack_model
    original = window.document.stack
    for type_name in ALL_TYPES:
        data = window.palette.tree.mimeData([window.palette.tree.item_for(type_name)])
        # between rows 3 and 4 of the list: before layer 3
        assert model.dropMimeData(data, Qt.DropAction.CopyAction, model.row_of_layer(3), 0, root())
        assert window.document.stack.layers[3].type == type_name
        assert window.selected_layer() == 3
        window.undo_action.trigger()
        assert window.document.stack == original


def test_dropping_on_a_row_puts_the_layer_after_it_and_on_the_input_first(window):
    model = window.stack_model
    data = window.palette.tree.mimeData([window.palette.tree.item_for("Dropout")])
    model.dropMimeData(data, Qt.DropAction.CopyAction, -1, 0, model.index(model.row_of_layer(5)))
    assert window.document.stack.layers[6].type == "Dropout"
    model.dropMimeData(data, Qt.DropAction.CopyAction, -1, 0, model.index(0))
    assert window.document.stack.layers[0].type == "Dropout"
    model.dropMimeData(data, Qt.DropAction.CopyAction, -1, 0, model.index(model.loss_row()))
    assert window.document.stack.layers[-1].type == "Dropout"


def test_a_drop_event_on_the_stack_view_inserts_between_the_rows_under_the_cursor(window, qtbot):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QDropEvent

    view = window.stack_view
    model = window.stack_model
    rect = view.visualRect(model.index(model.row_of_layer(2)))
    data = window.palette.tree.mimeData([window.palette.tree.item_for("GELU")])
    event = QDropEvent(QPointF(rect.center().x(), rect.top() + 1), Qt.DropAction.CopyAction, data,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    view.dropEvent(event)
    assert event.isAccepted()
    assert [l.type for l in window.document.stack.layers[:4]] == ["Conv2d", "ReLU", "GELU", "MaxPool2d"]


def test_enter_on_a_palette_entry_adds_it(window):
    tree = window.palette.tree
    tree.setCurrentItem(tree.item_for("Tanh"))
    QTest.keyClick(tree, Qt.Key.Key_Return)
    assert window.document.stack.layers[1].type == "Tanh"


def test_filter_hides_other_layers_and_enter_adds_the_first_match(window, qtbot):
    palette = window.palette
    window.select_layer(0)
    palette.filter.setText("pool")
    visible = [i.text(0) for i in palette.tree.type_items() if not i.isHidden() and not i.parent().isHidden()]
    assert visible == ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
    QTest.keyClick(palette.filter, Qt.Key.Key_Return)
    assert window.document.stack.layers[1].type == "MaxPool2d"


def test_the_edit_menu_offers_every_layer_type_too(window):
    names = []
    for group_action in window.add_layer_menu.actions():
        names += [a.text() for a in group_action.menu().actions()]
    assert sorted(names) == sorted(ALL_TYPES)


def test_mime_data_carries_the_type(window):
    data = window.palette.tree.mimeData([window.palette.tree.item_for("Linear")])
    assert bytes(data.data("application/x-cnnviz-layer-type").data()) == b"Linear"


def test_softmax_and_log_softmax_arrive_with_dim_1_and_no_warning(window, qtbot, recwarn):
    """Left out, torch's dim is deprecated and warns (and so does cnnviz): the palette gives dim=1."""
    import warnings

    import torch

    for type_name in ("Softmax", "LogSoftmax"):
        window.select_layer(len(window.document.stack.layers) - 1)
        tree = window.palette.tree
        item = tree.item_for(type_name)
        tree.scrollToItem(item)
        centre = tree.visualItemRect(item).center()
        QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
        QTest.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
        layer = window.document.stack.layers[-1]
        assert layer.type == type_name and layer.params == {"dim": 1}
        report = window.document.report.layers[-1]
        assert not any("dim" in w for w in report.warnings), report.warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "Implicit dimension choice" would raise here
            getattr(torch.nn, type_name)(**layer.params)(torch.zeros(2, 10))
        window.history.undo()
