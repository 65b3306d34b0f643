"""``cnnviz explain`` (SPEC §3.3): golden tables and JSON for every example, the exit statuses, safe text.

The goldens are regenerated, like the summaries', with
    python -m pytest tests/cli/test_explain.py --overwrite-golden
and reviewed before committing. Each example is explained at one element (last channel, middle row, last
column: the right padding and ceil_mode's clipped windows) of its first Conv2d, MaxPool2d and AvgPool2d,
and at the last feature of its last Linear. The JSON goldens are compared number by number to
1e-6, the tables word for word and each number to a unit of its last printed digit (torch's float32 sums may
differ in the last bit between machines); every
golden also holds ``value == torch_value``, whatever the wording.
"""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest

from cnnviz import cli
from cnnviz.core.model import assets, files
from cnnviz.core.shapes import infer

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

GOLDEN = Path(__file__).parent / "golden" / "explain"
EXAMPLES = [p.name for p in assets.examples() if p.name != "broken.cnnviz"]
SPEC_KEYS = ["format", "version", "layer", "type", "at", "taps"]


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _targets() -> list[tuple[str, str, str]]:
    """(example, layer path, --at) for the first Conv2d, MaxPool2d and AvgPool2d and the last Linear of each
    example."""
    out = []
    for name in EXAMPLES:
        report = infer(files.load(assets.path("examples", name)))
        picks = [next((r for r in report.layers if r.type == kind), None) for kind in ("Conv2d", "MaxPool2d",
                                                                                          "AvgPool2d")]
        picks.append(next((r for r in reversed(report.layers) if r.type == "Linear"), None))
        for r in picks:
            if r is not None:
                out.append((name, str(r.index), _element(r.output_shape)))
    return out


def _element(shape: tuple[int, ...]) -> str:
    """The fixed coordinate: the last channel, the middle row, the last column (its window covers the right
    padding, or ceil_mode's clipped last window); the last feature of a Linear."""
    if len(shape) == 1:
        return str(shape[0] - 1)
    c, h, w = shape
    return f"{c - 1},{h // 2},{w - 1}"


TARGETS = _targets()


def _same(ours, golden, where="") -> None:
    """Equal JSON, numbers to 1e-6 (relative to their size), everything else exactly."""
    if isinstance(golden, float) or isinstance(ours, float):
        assert isinstance(ours, (int, float)) and isinstance(golden, (int, float)), where
        assert math.isclose(ours, golden, rel_tol=1e-6, abs_tol=1e-6), f"{where}: {ours} != {golden}"
    elif isinstance(golden, dict):
        assert isinstance(ours, dict) and list(ours) == list(golden), where
        for key in golden:
            _same(ours[key], golden[key], f"{where}.{key}")
    elif isinstance(golden, list):
        assert isinstance(ours, list) and len(ours) == len(golden), where
        for i, (a, b) in enumerate(zip(ours, golden)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert ours == golden, f"{where}: {ours!r} != {golden!r}"


def _dump(doc: dict) -> str:
    """The JSON golden: one key per line, one tap per line (diffs stay readable)."""
    lines = []
    for key, value in doc.items():
        if key == "taps":
            taps = ",\n".join("  " + json.dumps(t, ensure_ascii=False) for t in value)
            lines.append(f' "taps": [\n{taps}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


_DECIMAL = re.compile(r"-?\d+\.(\d+)(?:e[-+]?\d+)?")


def _same_text(ours: str, golden: str) -> None:
    """The table as the golden's, word for word, each decimal number to one unit of its last printed digit
    (torch's float32 sums, the activations the taps read, may differ in the last bit between machines)."""
    words_a, words_b = _DECIMAL.sub("#", ours), _DECIMAL.sub("#", golden)
    assert words_a == words_b, "the table's words differ from the golden's"
    numbers_a, numbers_b = _DECIMAL.finditer(ours), _DECIMAL.finditer(golden)
    for x, y in zip(numbers_a, numbers_b):
        unit = 10.0 ** -len(y.group(1)) if "e" not in y.group(0) else abs(float(y.group(0))) * 10.0 ** -len(y.group(1))
        assert abs(float(x.group(0)) - float(y.group(0))) <= 1.01 * unit, f"{x.group(0)} != {y.group(0)}"


def _golden(path: Path, text: str, overwrite: bool) -> str:
    if overwrite or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not overwrite:
            pytest.fail(f"{path.name} did not exist and was written; review and commit it")
    return path.read_text(encoding="utf-8")


def test_every_example_has_a_conv_a_pool_or_a_linear_to_explain():
    kinds = {(name, files.load(assets.path("examples", name)).layers[int(layer)].type) for name, layer, _ in TARGETS}
    assert {name for name, _ in kinds} == set(EXAMPLES)
    assert {t for _, t in kinds} == {"Conv2d", "MaxPool2d", "AvgPool2d", "Linear"}


@pytest.mark.parametrize("name,layer,at", TARGETS, ids=[f"{n[:-7]}-{layer}" for n, layer, _ in TARGETS])
def test_explain_matches_golden(name, layer, at, overwrite_golden):
    path = str(assets.path("examples", name))
    stem = f"{Path(name).stem}-{layer}"
    rc, text, err = _run("explain", path, "--layer", layer, "--at", at)
    assert (rc, err) == (0, "")
    rc, out, err = _run("explain", path, "--layer", layer, "--at", at, "--json")
    assert (rc, err) == (0, "")
    doc = json.loads(out)
    assert list(doc)[:len(SPEC_KEYS)] == SPEC_KEYS
    assert doc["format"] == "cnnviz.explain" and doc["version"] == 1 and doc["layer"] == layer
    assert doc["at"] == [int(v) for v in at.split(",")]
    assert math.isclose(doc["value"], doc["torch_value"], rel_tol=1e-5, abs_tol=1e-5)
    assert "torch's value" in text and "within float32 rounding" in text

    golden_text = _golden(GOLDEN / f"{stem}.out", text, overwrite_golden)
    _same_text(text, golden_text)
    golden_doc = json.loads(_golden(GOLDEN / f"{stem}.json", _dump(doc), overwrite_golden))
    _same(doc, golden_doc)
    assert math.isclose(golden_doc["value"], golden_doc["torch_value"], rel_tol=1e-5, abs_tol=1e-5)


def test_json_follows_spec_for_each_kind_of_layer():
    lenet = str(assets.path("examples", "lenet5.cnnviz"))
    conv = json.loads(_run("explain", lenet, "--layer", "0", "--at", "2,0,1", "--json")[1])
    assert list(conv)[:9] == SPEC_KEYS + ["bias", "value", "torch_value"]
    assert len(conv["taps"]) == 25
    padded = [t for t in conv["taps"] if t["padding"]]
    assert padded and all(t["input"] == 0 and (t["y"] < 0 or t["x"] < 0) for t in padded)
    assert set(conv["taps"][0]) == {"channel", "y", "x", "padding", "input", "weight", "product"}
    assert math.isclose(sum(t["product"] for t in conv["taps"]) + conv["bias"], conv["value"], abs_tol=1e-5)

    ceil = str(assets.path("examples", "ceil-mode-demo.cnnviz"))
    rc, out, _ = _run("explain", ceil, "--layer", "3", "--at", "1,0,0", "--json")
    pool = json.loads(out)  # MaxPool2d with padding 1: the −inf padding is null, never NaN or Infinity in JSON
    assert rc == 0 and "Infinity" not in out and "NaN" not in out
    assert [t["input"] is None for t in pool["taps"]] == [True, True, True, False]
    top = pool["taps"][pool["argmax"]]
    assert top["input"] == pool["value"] and pool["return_index"] == pool["torch_return_index"] == 0
    avg = json.loads(_run("explain", ceil, "--layer", "4", "--at", "0,3,3", "--json")[1])
    assert avg["divisor"] == 1 and len(avg["taps"]) == 1  # ceil_mode's last window: one pixel, divided by 1
    assert "bias" not in avg and "argmax" not in avg

    flat = json.loads(_run("explain", ceil, "--layer", "6", "--at", "9", "--json")[1])
    assert len(flat["taps"]) == 8 * 4 * 4
    assert flat["taps"][37] | {"input": 0, "weight": 0, "product": 0} == \
        {"index": 37, "channel": 2, "y": 1, "x": 1, "input": 0, "weight": 0, "product": 0}
    head = json.loads(_run("explain", lenet, "--layer", "11", "--at", "0", "--json")[1])
    assert set(head["taps"][0]) == {"index", "input", "weight", "product"}  # after a Linear: no place in a map


def test_a_max_pool_window_over_padding_only(tmp_path):
    doc = {"format": "cnnviz.stack", "version": 1, "name": "padding only", "training": {"data": "digits"},
           "input": {"channels": 1, "height": 1, "width": 1},
           "layers": [{"type": "MaxPool2d", "params": {"kernel_size": 2, "padding": 1, "dilation": 2}},
                      {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}]}
    path = tmp_path / "pad.cnnviz"
    path.write_text(json.dumps(doc), encoding="utf-8")
    rc, out, err = _run("explain", str(path), "--layer", "0", "--at", "0,0,0", "--json")
    got = json.loads(out)
    assert (rc, err) == (0, "") and "Infinity" not in out
    assert got["value"] is None and got["torch_value"] is None and got["argmax"] is None
    assert got["return_index"] == got["torch_return_index"] == 2
    rc, text, _ = _run("explain", str(path), "--layer", "0", "--at", "0,0,0")
    assert rc == 0 and "-inf (the window covers padding only)" in text and "within float32 rounding" in text


def test_another_sample_and_data_set_give_other_numbers():
    digits = str(assets.path("examples", "digits.cnnviz"))
    a = json.loads(_run("explain", digits, "--layer", "0", "--at", "3,4,4", "--json")[1])
    b = json.loads(_run("explain", digits, "--layer", "0", "--at", "3,4,4", "--json", "--sample", "5")[1])
    assert (a["sample"]["index"], b["sample"]["index"]) == (0, 5)
    assert [t["input"] for t in a["taps"]] != [t["input"] for t in b["taps"]]
    assert [t["weight"] for t in a["taps"]] == [t["weight"] for t in b["taps"]]  # the same seeded weights
    c = json.loads(_run("explain", digits, "--layer", "0", "--at", "3,4,4", "--json", "--data", "shapes")[1])
    assert c["sample"]["data"] == "shapes" and math.isclose(c["value"], c["torch_value"], abs_tol=1e-5)


def test_weights_are_loaded(tmp_path):
    import torch

    from cnnviz.core.run import build, weights

    lenet = assets.path("examples", "lenet5.cnnviz")
    stack = files.load(lenet)
    model = build.build_model(stack, seed=123)
    with torch.no_grad():
        model[0].weight.fill_(0.5)
        model[0].bias.fill_(-1.0)
    saved = weights.save(model, stack, tmp_path / "trained.safetensors")
    rc, out, err = _run("explain", str(lenet), "--layer", "0", "--at", "0,10,10", "--json", "--weights", str(saved))
    doc = json.loads(out)
    assert (rc, err) == (0, "")
    assert {t["weight"] for t in doc["taps"]} == {0.5} and doc["bias"] == -1.0
    assert doc["weights"] == str(saved)
    assert math.isclose(doc["value"], 0.5 * sum(t["input"] for t in doc["taps"]) - 1.0, abs_tol=1e-5)
    assert math.isclose(doc["value"], doc["torch_value"], abs_tol=1e-5)
    rc, text, _ = _run("explain", str(lenet), "--layer", "0", "--at", "0,10,10", "--weights", str(saved))
    assert rc == 0 and "weights: from" in text and "bias                -1" in text


@pytest.mark.parametrize("argv,words", [
    (["--layer", "1", "--at", "0,0,0"], ["layer 1 is a ReLU, which has no arithmetic", "0 (Conv2d), 2 (MaxPool2d), 3 (Conv2d)",
                                         "11 (Linear)"]),
    (["--layer", "0", "--at", "6,0,0"], ["6,0,0 is not an element of the 6×28×28 output", "C 0..5, Y 0..27, X 0..27"]),
    (["--layer", "0", "--at", "0,28"], ["give 3 coordinates"]),
    (["--layer", "11", "--at", "10"], ["J 0..9"]),
    (["--layer", "0", "--at", "x,y,z"], ["not a list of whole numbers"]),
    (["--layer", "12", "--at", "0"], ["no layer at 12", "it has 12 layers", "0 (Conv2d)"]),
    (["--layer", "0.body.1", "--at", "0"], ["no blocks", "0 (Conv2d)"]),
    (["--layer", "conv1", "--at", "0"], ["'conv1' is not a layer path"]),
    (["--layer", "0", "--at", "0,0,0", "--sample", "2000"], ["--sample 2000 is outside 0..1999", "2,000 images"]),
    (["--layer", "0", "--at", "0,0,0", "--sample", "-1"], ["--sample -1 is outside"]),
    (["--layer", "0", "--at", "0,0,0", "--data", "cifar"], ["no data set called 'cifar'"]),
    (["--layer", "0", "--at", "0,0,0", "--weights", "/nonexistent/w.safetensors"], ["w.safetensors"]),
    (["--layer", "0"], ["--at"]),
])
def test_mistakes_exit_2_with_a_sentence(argv, words, capsys):
    rc, out, err = _run("explain", str(assets.path("examples", "lenet5.cnnviz")), *argv)
    err += capsys.readouterr().err  # argparse writes its usage message to sys.stderr
    assert rc == 2 and out == ""
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_unreadable_file_exits_2_and_invalid_stack_exits_1(tmp_path):
    bad = tmp_path / "bad.cnnviz"
    bad.write_text("{not json", encoding="utf-8")
    rc, out, err = _run("explain", str(bad), "--layer", "0", "--at", "0,0,0")
    assert rc == 2 and out == "" and "cannot use" in err
    rc, out, err = _run("explain", str(assets.path("examples", "broken.cnnviz")), "--layer", "0", "--at", "0,0,0")
    assert rc == 1 and out == ""
    assert "Param #" in err and "nothing explained: layer" in err and "cannot work" in err


HOSTILE = "\x1b[2J\x1b]0;pwned\x07\r\u202eevil\u202c\nnext line"


def _hostile_stack(tmp_path) -> str:
    doc = {"format": "cnnviz.stack", "version": 1, "name": HOSTILE,
           "input": {"channels": 1, "height": 8, "width": 8},
           "training": {"data": "digits"},
           "layers": [{"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 3}, "name": HOSTILE},
                      {"type": "ReLU", "name": HOSTILE},
                      {"type": "Flatten", "name": HOSTILE},
                      {"type": "Linear", "params": {"out_features": 10}, "name": HOSTILE}]}
    path = tmp_path / "hostile.cnnviz"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def _no_raw_controls(text: str) -> None:
    for ch in ("\x1b", "\x07", "\r", "\u202e", "\u202c"):
        assert ch not in text, repr(ch)


def test_hostile_names_do_not_reach_the_terminal_raw(tmp_path):
    path = _hostile_stack(tmp_path)
    rc, out, err = _run("explain", path, "--layer", "0", "--at", "1,2,3")
    assert rc == 0 and err == ""
    _no_raw_controls(out)
    assert "\\x1b[2J" in out and "\\u202e" in out and "\\nnext line" in out
    assert all(not line.startswith("next line") for line in out.splitlines())
    rc, out, err = _run("explain", path, "--layer", "0", "--at", "1,2,3", "--json")
    assert rc == 0
    _no_raw_controls(out)
    assert json.loads(out)["name"] == HOSTILE  # JSON escapes, and reads back as what the file said
    rc, out, err = _run("explain", path, "--layer", "1", "--at", "0,0,0")
    assert rc == 2 and out == ""
    _no_raw_controls(err)
    assert "\\x1b[2J" in err and err.count("\n") == 1


def test_explain_is_listed_in_the_help(capsys):
    assert "explain" in cli.SUBCOMMANDS
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["explain", "--help"])
    assert "--layer PATH" in capsys.readouterr().out
