"""``cnnviz profile``: SPEC §3.4's JSON, the table, exit statuses (SPEC §2) and file text made safe."""
import io
import json

import pytest
import torch

from cnnviz import cli
from cnnviz.core.model import assets
from cnnviz.core.run import memory

LENET = str(assets.path("examples", "lenet5.cnnviz"))
BROKEN = str(assets.path("examples", "broken.cnnviz"))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["profile", *argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def write_stack(tmp_path, layers, name="t", **extra):
    path = tmp_path / "s.cnnviz"
    path.write_text(json.dumps({"format": "cnnviz.stack", "version": 1, "name": name,
                                "input": {"channels": 1, "height": 6, "width": 6}, "layers": layers, **extra}),
                    encoding="utf-8")
    return str(path)


def test_lenet_profiles_as_a_table():
    rc, out, err = run(LENET, "--device", "cpu")
    assert rc == 0, err
    assert "LeNet-5 on cpu" in out and "batch 64" in out  # the file's training block
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [row.split()[0] for row in rows] == [str(i) for i in range(12)]
    assert rows[0].split()[1] == "Conv2d" and rows[-1].split()[1] == "Linear"
    assert "training step" in out and "sum of the layers" in out
    assert "Traceback" not in err


def test_json_object(tmp_path):
    rc, out, err = run(LENET, "--device", "cpu", "--batch-size", "8", "--json")
    assert rc == 0, err
    obj = json.loads(out)
    assert out.count("\n") == 1
    assert (obj["format"], obj["version"], obj["device"], obj["batch_size"]) == ("cnnviz.profile", 1, "cpu", 8)
    assert len(obj["layers"]) == 12
    assert [x["path"] for x in obj["layers"]] == [str(i) for i in range(12)]
    for x in obj["layers"]:
        assert {"path", "type", "forward_ms", "backward_ms", "activation_bytes", "saved_bytes"} <= set(x)
    assert obj["step_ms"] > 0 and obj["layers_sum_ms"] > 0
    assert obj["peak_allocated_bytes"] is None


def test_default_batch_without_a_training_block(tmp_path):
    path = write_stack(tmp_path, [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 3}}])
    rc, out, err = run(path, "--json")
    assert rc == 0, err
    assert json.loads(out)["batch_size"] == 64


def test_invalid_stack_is_exit_1_with_the_summary():
    rc, out, err = run(BROKEN, "--json")
    assert rc == 1
    assert out == ""
    assert "INVALID: layer 6" in err and "cnnviz profile: layer 6 (Conv2d)" in err


def test_an_output_that_is_not_class_scores_is_exit_1(tmp_path):
    path = write_stack(tmp_path, [{"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 3}}])
    rc, out, err = run(path)
    assert rc == 1 and "not one score per class" in err and out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_device_is_exit_2():
    rc, out, err = run(LENET, "--device", "cuda")
    assert rc == 2 and out == ""
    assert "cuda was asked for but this machine has no CUDA device" in err


def test_bad_command_lines_and_files_are_exit_2(tmp_path):
    assert run(LENET, "--device", "tpu")[0] == 2
    assert run(LENET, "--batch-size", "0")[0] == 2
    assert run(str(tmp_path / "missing.cnnviz"))[0] == 2
    (tmp_path / "bad.cnnviz").write_text("{not json", encoding="utf-8")
    rc, _out, err = run(str(tmp_path / "bad.cnnviz"))
    assert rc == 2 and "Traceback" not in err


def test_a_bomb_is_exit_4(monkeypatch):
    monkeypatch.setattr(memory, "cpu_free_bytes", lambda: 8 * 1024 * 1024)
    rc, out, err = run(LENET, "--device", "cpu", "--batch-size", "4096")
    assert rc == 4 and out == ""
    assert "needs about" in err and "use a batch of at most" in err


def test_file_text_is_escaped(tmp_path):
    path = write_stack(tmp_path, [{"type": "Flatten", "name": "evil\x1b[2Jname"},
                                  {"type": "Linear", "params": {"out_features": 2}}], name="bad\x1b]0;title\x07")
    rc, out, err = run(path, "--batch-size", "2")
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "evil" in out


RIGHT_ALIGNED = ("fwd ms", "bwd ms", "params", "activations", "saved", "MACs", "GMAC/s")


@pytest.mark.parametrize("example", ["resnet-mini", "inception-mini"])
def test_every_rows_columns_line_up_with_the_header_whatever_the_paths_depth(example):
    rc, out, err = run(str(assets.path("examples", f"{example}.cnnviz")), "--device", "cpu", "--batch-size", "2")
    assert rc == 0, err
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    head, rows = lines[rules[0] + 1], lines[rules[1] + 1:rules[2]]
    paths = [row.split()[0] for row in rows]
    assert any(path.count(".") >= 2 for path in paths)   # "5.shortcut.0", "4.branches.1.0": longer than 6
    width = head.index("layer (type)")
    assert width == max(len("path"), *map(len, paths)) + 1
    ends = [head.index(title) + len(title) for title in RIGHT_ALIGNED]
    for row, path in zip(rows, paths):
        assert row[:width] == f"{path:<{width}}"   # the path, padded to the column: never into the next one
        for title, end in zip(RIGHT_ALIGNED, ends):
            if title == "GMAC/s" and not row[end - 7:end].strip():
                continue   # no rate for a layer without MACs
            assert row[end - 1] != " " and row[end:end + 1] in (" ", ""), (title, row)
    assert all(len(rule) == len(lines[rules[0]]) >= len(head) for rule in (lines[i] for i in rules))
