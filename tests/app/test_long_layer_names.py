"""A long layer name never runs under the "Colours:" picker: the title is elided, the whole name in its tooltip."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QComboBox, QLabel

LONG_NAME = "an extraordinarily long layer name typed by a curious student"  # 60+ characters


def _header(view):
    colours = next(w for w in view.findChildren(QLabel) if w.text() == "Colours:")
    return view._title_label, colours, view.findChild(QComboBox)


@pytest.mark.parametrize("width", [520, 380])
def test_a_60_character_layer_name_is_elided_before_the_colours_picker(fmv, qtbot, width):
    assert len(LONG_NAME) >= 60
    fmv.resize(width, 420)
    title = f"layer 3 · Conv2d “{LONG_NAME}” · 16×10×10"
    fmv.set_maps(np.random.default_rng(0).random((16, 10, 10), dtype=np.float32), title=title)
    fmv.flush()
    QApplication.processEvents()
    label, colours, picker = _header(fmv)
    assert label.text() == title  # the whole title is kept, only its painting is shortened
    right = label.geometry().right()
    assert right < colours.geometry().left() and right < picker.geometry().left()
    shown = label.displayed_text()
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert shown.endswith("…") and shown.startswith("layer 3")
    assert LONG_NAME in label.toolTip()  # a person reads the whole name by hovering
    assert colours.isVisible() and picker.isVisible()


def test_a_short_title_is_shown_whole_without_a_tooltip(fmv, qtbot):
    fmv.set_maps(np.zeros((4, 6, 6), dtype=np.float32), title="layer 0 · Conv2d · 4×6×6")
    fmv.flush()
    QApplication.processEvents()
    label = fmv._title_label
    assert label.displayed_text() == label.text() and label.toolTip() == ""
