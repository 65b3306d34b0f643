"""JOURNEYS 2 and 3 walked through the window, as a person would."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cnnviz.app.sidebar import display as fmt
from cnnviz.app.sidebar.stack_model import STATUS_ROLE
from tests.app.qt_helpers import field, layer_row_text


def test_why_does_my_network_not_fit(window, qtbot):
    """Kernel 5 -> 9 without padding, a third conv that no longer fits, the fix, then Ctrl+Z walks back."""
    original = window.document.stack
    window.select_layer(0)
    field(window, "kernel_size").h.setValue(9)
    f = field(window, "padding")
    f.pair.h.setValue(0)
    assert layer_row_text(window, 0).endswith("1×28×28 → 6×20×20")
    assert layer_row_text(window, 7).endswith("144 → 120")  # Linear.in_features follows by itself

    window.select_layer(5)
    window.add_layer("Conv2d")  # k3 on 16×3×3 fits; make it 5 like the others
    window.properties.editor.form.fields["kernel_size"].h.setValue(5)
    model = window.stack_model
    failing = model.index(model.row_of_layer(6))
    assert failing.data(STATUS_ROLE) == fmt.ERROR
    assert "kernel 5" in failing.data(Qt.ItemDataRole.ToolTipRole)
    assert all(model.index(model.row_of_layer(i)).data(STATUS_ROLE) == fmt.UNREACHABLE for i in range(7, 13))
    assert "padding ≥ 1" in window.details.toPlainText()

    window.properties.editor.form.fields["padding"].pair.h.setValue(2)
    assert all(model.index(r).data(STATUS_ROLE) == fmt.OK for r in range(1, 14))
    assert layer_row_text(window, 8).endswith("72 → 120")  # in_features follows the new conv: 8×3×3
    assert "✓" in window.status_fields["validity"].text()

    window.activateWindow()
    window.stack_view.setFocus()
    for _ in range(window.history.count()):
        QTest.keyClick(window.stack_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.document.stack == original


def test_what_does_ceil_mode_do(make_window, examples):
    """A teacher flips ceil_mode and sees the formula and the shape change."""
    window = make_window(examples["ceil-mode-demo"])
    window.select_layer(3)
    text = window.details.toPlainText()
    assert "⌈" in text and "8×13×13 → 8×7×7" in text
    field(window, "ceil_mode").check.setChecked(False)
    text = window.details.toPlainText()
    assert "⌈" not in text and "⌊" in text and "8×13×13 → 8×7×7" in text
    field(window, "padding").h.setValue(0)
    assert "8×13×13 → 8×6×6" in window.details.toPlainText()
    assert layer_row_text(window, 3).endswith("8×13×13 → 8×6×6")


def test_dilation_grows_the_receptive_field(make_window, examples):
    window = make_window(examples["dilation-demo"])
    window.select_layer(4)
    before = window.details.toPlainText()
    field(window, "dilation").h.setValue(8)
    after = window.details.toPlainText()
    size = lambda text: int(text.split("\nreceptive field\n")[1].split("px")[0].strip().split("×")[0])  # noqa: E731
    assert size(after) > size(before)
