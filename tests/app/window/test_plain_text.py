"""Text from a file reaches Qt as text, never as markup: a class named ``<b>…`` is shown, not rendered."""
from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views import SoftmaxView
from cnnviz.core.model import files

MARKUP = "<img src='file:///etc/hostname'><b>bold</b>"


def test_softmax_caption_escapes_class_names(qtbot):
    view = SoftmaxView(orientation="vertical")
    qtbot.addWidget(view)
    view.resize(640, 320)
    view.show()
    classes = [MARKUP, "plain"]
    view.set_distribution(np.array([0.9, 0.1], np.float32), true_class=0, classes=classes)
    view.flush()
    caption = view.caption.text()
    assert "<img" not in caption and "&lt;img" in caption
    assert view.caption.textFormat() == Qt.TextFormat.RichText  # the caption's own bold still renders


def test_stack_list_tooltips_show_a_markup_label_as_text(window):
    doc = json.loads(files.dumps(window.document.stack))
    doc["layers"][0]["name"] = MARKUP
    window.document.reset(files.loads(json.dumps(doc)))
    model = window.stack_model
    tips = [model.data(model.index(row, 0), Qt.ItemDataRole.ToolTipRole) or "" for row in range(model.rowCount())]
    assert not any("<img" in t or "<b>bold" in t for t in tips)
    assert tooltip("a <b>\nb") == "<qt>a &lt;b&gt;<br>b</qt>"


def test_the_true_class_label_is_plain_text(window):
    from cnnviz.app.runner.toolbar import RunToolbar

    toolbar = RunToolbar(window)
    toolbar.set_session((MARKUP, "plain"), np.array([0, 1]))
    assert toolbar.sample_label.textFormat() == Qt.TextFormat.PlainText
    assert toolbar.sample_label.text() == f"true: {MARKUP}"
    assert "<img" not in toolbar.sample_label.toolTip()
