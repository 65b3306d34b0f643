"""The cnnviz command: exit codes, no tracebacks for user mistakes, SPEC's JSON."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz import cli
from cnnviz.core import shapes
from cnnviz.core.model import assets, files

ROOT = Path(__file__).resolve().parents[2]
LENET = str(assets.path("examples", "lenet5.cnnviz"))
BROKEN = str(assets.path("examples", "broken.cnnviz"))


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_summary_json_follows_spec():
    rc, out, err = run("summary", LENET, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["format"] == "cnnviz.summary" and doc["version"] == 1
    assert doc["name"] == "LeNet-5" and doc["input_shape"] == [1, 28, 28] and doc["ok"] is True
    assert doc["total_params"] == 61706
    assert len(doc["layers"]) == 12
    first = doc["layers"][0]
    assert {k: first[k] for k in ("index", "type", "output_shape", "params", "error", "warnings")} == {
        "index": 0, "type": "Conv2d", "output_shape": [6, 28, 28], "params": 156, "error": None, "warnings": []}
    assert doc["layers"][-1]["output_shape"] == [10]


def test_summary_of_invalid_stack_exits_1_and_marks_the_rest_unreachable():
    rc, out, err = run("summary", BROKEN, "--json")
    assert rc == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    errors = [layer["index"] for layer in doc["layers"] if layer["error"]]
    assert errors == [6]
    assert "kernel 5" in doc["layers"][6]["error"] and "padding ≥ 1" in doc["layers"][6]["error"]
    assert all(layer["output_shape"] is None for layer in doc["layers"][6:])
    assert all(layer["output_shape"] is not None for layer in doc["layers"][:6])


@pytest.mark.parametrize("argv", [
    ["summary", "/no/such/file.cnnviz"],
    ["summary"],
    ["export", LENET],
    ["export", LENET, "--to", "jpeg"],
    ["train", LENET, "--steps", "0"],
    ["train", LENET, "--lr", "nan"],
    ["frobnicate", LENET, "--x"],
])
def test_usage_and_unreadable_files_exit_2(argv):
    rc, out, err = run(*argv)
    assert rc == 2
    assert "Traceback" not in out + err


def test_unreadable_file_is_named_with_its_problem(tmp_path):
    bad = tmp_path / "bad.cnnviz"
    bad.write_text('{"format": "cnnviz.stack", "version": 1, "input": {"channels": 1, "height": 8, "width": 8},'
                   ' "layers": [{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": [3, 3, 3]}}]}')
    rc, out, err = run("summary", str(bad))
    assert rc == 2
    assert "layers[0].params.kernel_size" in err and "list of 3" in err


def test_summary_text_shows_errors_inline():
    rc, out, err = run("summary", BROKEN)
    assert rc == 1
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("  6  Conv2d"))
    assert "ERROR" in lines[row] and lines[row + 1].strip().startswith("✗ kernel 5")
    assert "not reachable" in lines[row + 3]


def test_export_python_to_stdout_and_file(tmp_path):
    rc, out, err = run("export", LENET, "--to", "python")
    assert rc == 0 and "def build_model()" in out
    target = tmp_path / "lenet.py"
    rc, out, err = run("export", LENET, "--to", "python", "--style", "functional", "-o", str(target))
    assert rc == 0 and target.exists() and "F.conv2d" in target.read_text()


def test_export_of_invalid_stack_exits_1_with_summary(tmp_path):
    rc, out, err = run("export", BROKEN, "--to", "python", "-o", str(tmp_path / "x.py"))
    assert rc == 1
    assert not (tmp_path / "x.py").exists()
    assert "INVALID" in err and "nothing exported" in err


def test_export_to_missing_folder_is_a_usage_error(tmp_path):
    rc, out, err = run("export", LENET, "--to", "onnx", "-o", str(tmp_path / "nope" / "m.onnx"))
    assert rc == 2 and "does not exist" in err


def test_console_script_runs_and_prints_no_traceback(tmp_path):
    bad = tmp_path / "x.cnnviz"
    bad.write_bytes(b"\xff\xfe not json")
    result = subprocess.run([sys.executable, "-m", "cnnviz", "summary", str(bad)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_summary_agrees_with_core():
    stack = files.load(LENET)
    rc, out, err = run("summary", LENET, "--json")
    doc = json.loads(out)
    report = shapes.infer(stack)
    assert [layer["output_shape"] for layer in doc["layers"]] == [list(r.output_shape) for r in report.layers]


def test_windowed_executable_without_streams_runs_commands():
    code = ("import sys; sys.stdout = None; sys.stderr = None\n"
            "from cnnviz.__main__ import main\n"
            "rc = main(['summary', 'resources/examples/lenet5.cnnviz'])\n"
            "sys.__stdout__.write(str(rc))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout == "0", result.stderr
