"""Usable at 1024×700 and at 1600×1000: every panel keeps its minimum size, no label in the Run toolbars, the
stack, the properties or the details is cut short, the palette shows every layer type where there is room
(as many as fit in a short window), and the filters fill their panel."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QTextDocument
from PySide6.QtGui import Qt as QtGui_Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QSizePolicy,
    QTabBar,
    QToolButton,
    QWidget,
)

from cnnviz.app.sidebar.stack_list import INDEX_W, MARK, PAD
from cnnviz.app.window.main_window import MainWindow
from cnnviz.app.window.settings import Settings
from cnnviz.core.model.layers import by_group
from tests.app.run_helpers import wait_probe

SIZES = [(1024, 700), (1600, 1000)]


@pytest.fixture
def launch(qtbot, tmp_path, dialogs):
    """``launch(width, height, live=False)``: the window as ``cnnviz`` opens it on a screen of that size."""
    def open_at(width: int, height: int, live: bool = False) -> MainWindow:
        window = MainWindow(settings=Settings(tmp_path / "config" / "cnnviz.ini"), autosave_dir=tmp_path / "autosave",
                            dialogs=dialogs, live=live)
        qtbot.addWidget(window, before_close_func=lambda w: w.close_without_asking())
        window.resize(width, height)
        window.show()
        qtbot.waitExposed(window)
        if live:
            wait_probe(qtbot, window.runner)
        settle()
        return window

    return open_at


def settle(ms: int = 150) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.005)


# ------------------------------------------------------------------ what a person cannot use or read
def _internal(widget: QWidget) -> bool:
    """The parts Qt lays out inside a spin box, a combo box or a tab bar (their own business)."""
    return isinstance(widget.parentWidget(), (QAbstractSpinBox, QComboBox, QTabBar))


def squeezed(window: QWidget) -> list[str]:
    """Visible widgets smaller than their minimum size hint (a form field cut, a checkbox without its text)."""
    out = []
    for w in window.findChildren(QWidget):
        if not w.isVisible() or _internal(w) or w.isWindow():
            continue
        hint, policy = w.minimumSizeHint(), w.sizePolicy()
        short_w = hint.width() > 0 and w.width() < hint.width() and \
            policy.horizontalPolicy() != QSizePolicy.Policy.Ignored
        short_h = hint.height() > 0 and w.height() < hint.height() and \
            policy.verticalPolicy() != QSizePolicy.Policy.Ignored
        if short_w or short_h:
            text = getattr(w, "text", lambda: "")()
            out.append(f"{type(w).__name__} {w.objectName()!r} {text!r}: {w.width()}×{w.height()} "
                       f"< {hint.width()}×{hint.height()}")
    return out


def _text_width(label: QLabel) -> int:
    text = label.text()
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGui_Qt.mightBeRichText(text))
    if rich:
        doc = QTextDocument()
        doc.setDefaultFont(label.font())
        doc.setHtml(text)
        return math.ceil(doc.idealWidth() - 2 * doc.documentMargin())
    fm = label.fontMetrics()
    return max(fm.horizontalAdvance(line) for line in text.split("\n"))


def cut_text(panel: QWidget) -> list[str]:
    """Labels and tool buttons under ``panel`` whose text does not fit (elided, or clipped at an edge)."""
    out = []
    for label in panel.findChildren(QLabel):
        if not label.isVisible() or not label.text() or not label.pixmap().isNull():
            continue
        if hasattr(label, "is_elided"):
            if label.is_elided():
                out.append(f"{label.text()!r} elided to {label.displayed_text()!r}")
            continue
        if "\u2026" in label.text() and label.toolTip():
            out.append(f"{label.text()!r} shortened in code")
        if label.wordWrap():
            if label.height() < label.heightForWidth(label.width()):
                out.append(f"{label.text()[:50]!r} cut at the bottom: {label.height()} < "
                           f"{label.heightForWidth(label.width())}")
            continue
        room = label.contentsRect().width() - 2 * label.margin() - max(0, label.indent())
        if _text_width(label) > room + 1:
            out.append(f"{label.text()[:50]!r} needs {_text_width(label)} px, has {room}")
    for button in panel.findChildren(QToolButton):
        if not button.isVisible() or _internal(button) or not button.text():
            continue
        if button.width() < button.sizeHint().width():
            out.append(f"button {button.text()!r} is {button.width()} px of {button.sizeHint().width()}")
    return out


def cut_stack_rows(window) -> list[str]:
    """Stack rows whose title, keywords or shapes are elided by the row painter."""
    view, model = window.stack_view, window.stack_view.model()
    bold = QFont(view.font())
    bold.setBold(True)
    small = QFont(view.font())
    if small.pointSizeF() > 0:
        small.setPointSizeF(max(7.0, small.pointSizeF() - 0.5))
    fm_b, fm_n, fm_s = QFontMetrics(bold), QFontMetrics(view.font()), QFontMetrics(small)
    out = []
    from cnnviz.app.sidebar.stack_model import SHAPE_ROLE, SUMMARY_ROLE, TITLE_ROLE

    for row in range(model.rowCount()):
        index = model.index(row)
        rect = view.visualRect(index)
        if rect.width() <= 0:
            continue
        inner = rect.adjusted(PAD, PAD, -PAD, -PAD)
        x = inner.left() + INDEX_W
        width = inner.right() - MARK - PAD - x
        title, summary = index.data(TITLE_ROLE) or "", index.data(SUMMARY_ROLE) or ""
        need = fm_b.horizontalAdvance(title) + (8 + fm_n.horizontalAdvance(summary) if summary else 0)
        if need > width:
            out.append(f"row {row} {title} {summary}: {need} px of {width}")
        shape = index.data(SHAPE_ROLE) or ""
        if shape and fm_s.horizontalAdvance(shape) > inner.right() - x:
            out.append(f"row {row} shapes {shape!r}: {fm_s.horizontalAdvance(shape)} px of {inner.right() - x}")
    return out


def scrolled_sideways(panel: QWidget) -> list[str]:
    """Text areas under ``panel`` whose text runs off to the right (a horizontal scroll bar is shown)."""
    return [f"{type(a).__name__} {a.objectName()!r} scrolls sideways" for a in panel.findChildren(QAbstractScrollArea)
            if a.isVisible() and a.horizontalScrollBar().isVisible()]


# ------------------------------------------------------------------ the window at 1024×700 and 1600×1000
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_panel_is_usable_and_no_text_is_cut(launch, size):
    window = launch(*size, live=True)
    toolbar = window.runner.toolbar
    problems = []
    for row in range(1, 1 + len(window.document.stack.layers)):  # every layer's properties and details
        window.stack_panel.select_row(row)
        settle(150)
        where = f"layer {row - 1} selected"
        problems += [f"{where}: {p}" for p in squeezed(window)]
        for name, panel in (("properties", window.properties), ("details", window.details)):
            problems += [f"{where}, {name}: {p}" for p in cut_text(panel) + scrolled_sideways(panel)]
    for name, bar in (("run toolbar", window.run_toolbar), ("training toolbar", toolbar.settings_toolbar)):
        problems += [f"{name}: {p}" for p in cut_text(bar)]
    problems += [f"stack: {p}" for p in cut_stack_rows(window)]
    assert problems == [], "\n".join(dict.fromkeys(problems))
    centre = window.centralWidget()
    assert centre.width() >= 0.4 * window.width(), "the views in the centre get less than 40 % of the width"


# ------------------------------------------------------------------ the palette
def _entries_in_view(window) -> list[str]:
    tree = window.palette.tree
    viewport = tree.viewport().rect()
    return [item.text(0) for item in tree.type_items() if viewport.contains(tree.visualItemRect(item))]


def test_the_palette_shows_every_layer_type_without_scrolling_at_1600x1000(launch):
    window = launch(1600, 1000)
    from cnnviz.app.sidebar.palette import BLOCK_ENTRIES

    every = [spec.type for specs in by_group().values() for spec in specs] + [text for _t, text, _d in BLOCK_ENTRIES]
    assert window.palette.tree.verticalScrollBar().maximum() == 0
    assert sorted(_entries_in_view(window)) == sorted(every)
    assert {"ReLU", "Flatten", "Linear"} <= set(_entries_in_view(window))
    assert window.stack_view.height() >= 180 and window.properties.height() >= 150  # still room to work


def test_the_palette_shows_as_many_as_fit_at_1024x700_and_reset_layout_brings_that_back(launch, qtbot):
    window = launch(1024, 700)
    # (the docks' layout settles on timers: wait for it rather than a fixed time, on a busy machine too)
    qtbot.waitUntil(lambda: len(_entries_in_view(window)) >= 7, timeout=5000)
    shown = _entries_in_view(window)
    assert len(shown) >= 7 and "ReLU" in shown, shown  # with their group headers, twice the five rows of before
    assert window.stack_view.height() >= 120 and window.properties.height() >= 100
    window.resizeDocks([window.palette_dock], [60], Qt.Orientation.Vertical)  # the person shrinks it…
    qtbot.waitUntil(lambda: len(_entries_in_view(window)) < 7, timeout=5000)
    window.reset_layout_action.trigger()  # …and View → Reset Layout gives it its room back
    qtbot.waitUntil(lambda: len(_entries_in_view(window)) >= len(shown), timeout=5000)


# ------------------------------------------------------------------ the filters
def _filled(view) -> float:
    """The share of the plot's area the filters' mosaic covers."""
    vb = view.plot.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    h, w = view.image_item.image.shape
    return (w * h) / ((x1 - x0) * (y1 - y0))


@pytest.mark.parametrize("size", [(900, 520), (520, 700)])
def test_the_first_conv_filters_fill_their_panel(qtbot, size):
    from cnnviz.app.views import FilterView

    view = FilterView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    w = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(np.float32)
    view.set_weights(w, "layer 0 · Conv2d · weights 6×1×5×5")
    view.flush()
    settle()
    view.flush()
    assert _filled(view) >= 0.45, f"the filters cover {_filled(view):.0%} of their panel"
    rows, cols = view.grid
    assert rows * cols >= 6 and cols > 1 if size[0] > size[1] else True
    # Each filter is still where the pointer reads it.
    image = view.image_item.image
    for o in range(6):
        r, c = divmod(o, cols)
        np.testing.assert_array_equal(image[r * 6:r * 6 + 5, c * 6:c * 6 + 5], w[o, 0])


def test_narrowing_the_window_puts_the_palette_back_above_the_stack(launch):
    window = launch(1600, 1000, live=True)
    assert window.sidebar_arrangement() == "wide"  # the palette a column of its own: every type in view
    window.resize(1024, 700)
    settle(400)
    assert window.sidebar_arrangement() == "stacked"
    assert window.centralWidget().width() >= 0.4 * window.width()
    assert "ReLU" in _entries_in_view(window)
    window.resize(1600, 1000)
    settle(400)
    assert window.sidebar_arrangement() == "wide"
    assert window.palette.tree.verticalScrollBar().maximum() == 0
