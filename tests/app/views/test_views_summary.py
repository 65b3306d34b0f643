"""SummaryTableView against the shape engine's real reports."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from cnnviz.app.views import SummaryTableView  # noqa: E402
from cnnviz.app.views.summary_table import COLUMNS, ERROR_TEXT, LAYER, MACS, NOTES, PARAMS, RF, SHAPE, UNREACHABLE_TEXT
from cnnviz.core import shapes
from cnnviz.core.model import files
from cnnviz.core.shapes import summary  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "resources" / "examples"


def _report(name):
    stack = files.load(EXAMPLES / f"{name}.cnnviz")
    return stack, shapes.infer(stack)


def _cell(view, row, col, role=Qt.ItemDataRole.DisplayRole):
    return view.model.index(row, col).data(role)


@pytest.fixture
def table(qtbot):
    view = SummaryTableView()
    qtbot.addWidget(view)
    view.resize(820, 500)
    view.show()
    return view


def test_lenet5_rows_match_the_report(table):
    assert table.is_empty
    stack, report = _report("lenet5")
    table.set_report(report)
    assert not table.is_empty
    model = table.model
    assert model.rowCount() == len(report.layers) + 1 and model.columnCount() == len(COLUMNS)
    assert [_cell(table, 0, c) for c in range(NOTES)] == ["0", "Conv2d", "6×28×28", "156", "117,600", "5×5"]
    assert [_cell(table, 3, c) for c in (LAYER, SHAPE, PARAMS, MACS, RF)] == \
        ["Conv2d", "16×10×10", "2,416", "240,000", "14×14"]
    assert [_cell(table, 6, c) for c in (LAYER, SHAPE, PARAMS, RF)] == ["Flatten", "400", "0", ""]
    assert [_cell(table, 11, c) for c in (LAYER, SHAPE, PARAMS)] == ["Linear", "10", "850"]
    assert _cell(table, 12, LAYER) == "loss: CrossEntropyLoss"
    for r in report.layers:
        assert _cell(table, r.index, PARAMS) == f"{r.params:,}"
        assert _cell(table, r.index, SHAPE) == shapes.fmt_shape(r.output_shape)
        assert _cell(table, r.index, Qt.ItemDataRole.ForegroundRole) is None
    assert "Total params: 61,706" in table.totals.text()
    assert "MACs per sample: 416,520" in table.totals.text()
    assert table.verdict.text().startswith("OK")
    assert _cell(table, 0, SHAPE, Qt.ItemDataRole.ToolTipRole) == "\n".join(report.layers[0].formula)


def test_totals_say_what_the_command_line_says(table):
    stack, report = _report("lenet5")
    table.set_report(report)
    text = summary.to_text(stack, report)
    for line in text.splitlines():
        if line.startswith(("Activations per sample", "Parameters size", "Input size per sample")):
            value = line.split(":", 1)[1].strip()
            assert value in table.totals.text(), line


def test_error_row_is_red_and_later_rows_not_reachable(table):
    _, report = _report("broken")
    table.set_report(report)
    bad = report.first_error
    assert bad is not None and bad.index == 6
    assert _cell(table, 6, SHAPE) == "error"
    assert _cell(table, 6, NOTES).startswith("✗ kernel 5")
    assert _cell(table, 6, LAYER, Qt.ItemDataRole.ForegroundRole).color() == ERROR_TEXT
    assert _cell(table, 6, LAYER, Qt.ItemDataRole.BackgroundRole) is not None
    for row in range(7, len(report.layers)):
        assert _cell(table, row, SHAPE) == "not reachable"
        assert _cell(table, row, PARAMS) == ""
        assert _cell(table, row, LAYER, Qt.ItemDataRole.ForegroundRole).color() == UNREACHABLE_TEXT
    assert "Softmax before CrossEntropyLoss" in _cell(table, len(report.layers), NOTES)
    assert "layer 6" in table.verdict.text()


def test_clicking_a_row_names_its_layer(table, qtbot):
    _, report = _report("lenet5")
    table.set_report(report)
    with qtbot.waitSignal(table.layerActivated) as signal:
        table.table.clicked.emit(table.model.index(3, LAYER))
    assert signal.args == [3]
    table.set_report(None)
    assert table.is_empty and table.model.rowCount() == 0
