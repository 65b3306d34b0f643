"""Golden summaries of the example stacks (torchinfo's tests/test_output habit).

Regenerate deliberately after a wanted change of the table or messages with
    python -m pytest tests/cli/test_golden.py --overwrite-golden
and review the diff before committing. Each golden is also checked for an
invariant that holds whatever the wording: the parameter column sums to the
printed total, and the JSON's layers sum to its ``total_params``.
"""
import io
import json
import re
from pathlib import Path

import pytest

from cnnviz import cli
from cnnviz.core.model import assets

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = [p.name for p in assets.examples()]


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_summary_matches_golden(name, fmt, overwrite_golden):
    path = assets.path("examples", name)
    argv = ["summary", str(path)] + (["--json"] if fmt == "json" else [])
    rc, out, err = _run(*argv)
    assert err == ""
    assert rc == (1 if name == "broken.cnnviz" else 0)
    if fmt == "json":
        out = json.dumps(json.loads(out), indent=1, ensure_ascii=False) + "\n"
    golden = GOLDEN / f"{Path(name).stem}.{'json' if fmt == 'json' else 'out'}"
    if overwrite_golden or not golden.exists():
        golden.write_text(out, encoding="utf-8")
        if not overwrite_golden:
            pytest.fail(f"{golden.name} did not exist and was written; review and commit it")
    text = golden.read_text(encoding="utf-8")
    assert out == text
    if fmt == "json":
        doc = json.loads(text)
        assert sum(layer["params"] for layer in doc["layers"]) == doc["total_params"]
    else:
        column, total = _param_column(text)
        assert sum(column) == total, (column, total)


def _param_column(table: str) -> tuple[list[int], int]:
    """The ``Param #`` column of a summary table (its rows, by the column's position) and the printed total."""
    lines = table.splitlines()
    head = next(line for line in lines if "Param #" in line)
    end = head.index("Param #") + len("Param #")
    rows = [line for line in lines if re.match(r"^\s*\d+\s{2}", line)]
    column = []
    for row in rows:
        cell = row[:end].rsplit(None, 1)[-1].replace(",", "")
        column.append(int(cell) if cell.isdigit() else 0)  # an unreachable row has no count
    total = int(re.search(r"^Total params: ([\d,]+)$", table, re.M).group(1).replace(",", ""))
    return column, total


def test_the_invariant_catches_a_wrong_total():
    text = (GOLDEN / "lenet5.out").read_text(encoding="utf-8").replace("Total params: 61,706", "Total params: 61,707")
    column, total = _param_column(text)
    assert len(column) == 12 and sum(column) != total


def test_examples_exist():
    assert {"lenet5.cnnviz", "tiny-vgg.cnnviz", "digits.cnnviz", "dilation-demo.cnnviz",
            "ceil-mode-demo.cnnviz", "broken.cnnviz"} <= set(EXAMPLES)
