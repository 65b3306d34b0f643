"""Golden summaries of the example stacks (torchinfo's tests/test_output habit).

Regenerate deliberately after a wanted change of the table or messages with
    CNNVIZ_OVERWRITE_GOLDEN=1 python -m pytest tests/cli/test_golden.py
and review the diff before committing.
"""
import io
import json
import os
from pathlib import Path

import pytest

from cnnviz import cli
from cnnviz.core.model import assets

GOLDEN = Path(__file__).parent / "golden"
OVERWRITE = os.environ.get("CNNVIZ_OVERWRITE_GOLDEN") == "1"
EXAMPLES = [p.name for p in assets.examples()]


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_summary_matches_golden(name, fmt):
    path = assets.path("examples", name)
    argv = ["summary", str(path)] + (["--json"] if fmt == "json" else [])
    rc, out, err = _run(*argv)
    assert err == ""
    assert rc == (1 if name == "broken.cnnviz" else 0)
    if fmt == "json":
        out = json.dumps(json.loads(out), indent=1, ensure_ascii=False) + "\n"
    golden = GOLDEN / f"{Path(name).stem}.{'json' if fmt == 'json' else 'out'}"
    if OVERWRITE or not golden.exists():
        golden.write_text(out, encoding="utf-8")
        if not OVERWRITE:
            pytest.fail(f"{golden.name} did not exist and was written; review and commit it")
    assert out == golden.read_text(encoding="utf-8")


def test_examples_exist():
    assert {"lenet5.cnnviz", "tiny-vgg.cnnviz", "digits.cnnviz", "dilation-demo.cnnviz",
            "ceil-mode-demo.cnnviz", "broken.cnnviz"} <= set(EXAMPLES)
