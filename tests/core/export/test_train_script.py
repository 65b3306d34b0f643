"""``cnnviz export --to train-script`` (core/export/train_script.py): the script really trains.

It runs alone for a few steps (printing ``cnnviz train --json``'s lines, with
the same losses as ``cnnviz train`` for the same seed), on an image folder,
under torchrun with 2 gloo ranks, and a run stopped at step 10 and resumed
from its checkpoint ends with exactly the weights of an uninterrupted run; the
same with the cosine schedule (``--schedule cosine``), whose losses are also
those of ``cnnviz train --schedule cosine``.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from cnnviz.cli import main
from cnnviz.core.export.train_script import to_train_script
from cnnviz.core.model import files

ROOT = Path(__file__).resolve().parents[3]
STACK = {"format": "cnnviz.stack", "version": 2, "name": "tiny \"\"\" script'\ninjection",
         "input": {"channels": 1, "height": 8, "width": 8},
         "layers": [{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
                    {"type": "Residual", "body": [{"type": "ReLU"},
                                                  {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 1}}]},
                    {"type": "Dropout", "params": {"p": 0.2}},
                    {"type": "MaxPool2d", "params": {"kernel_size": 2}},
                    {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}],
         "loss": {"type": "CrossEntropyLoss", "params": {"label_smoothing": 0.05}},
         "training": {"data": "digits", "optimizer": "adam", "lr": 0.01, "batch_size": 32, "seed": 2,
                      "device": "cpu", "steps": 20}}


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    folder = tmp_path_factory.mktemp("script")
    stack_path = folder / "tiny.cnnviz"
    stack_path.write_text(json.dumps(STACK))
    target = folder / "train.py"
    assert main(["export", str(stack_path), "--to", "train-script", "-o", str(target)]) == 0
    return target


def _run(args, cwd, timeout=120, torchrun=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] \
        if torchrun else [sys.executable]
    proc = subprocess.run([*launcher, str(args[0]), *map(str, args[1:])], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_the_script_is_python_with_the_stacks_text_only_as_literals(script):
    code = script.read_text()
    tree = ast.parse(code)
    assert not any(isinstance(n, ast.Expr) for n in tree.body[1:])
    assert "DEFAULTS = {'data': 'digits', 'steps': 20, 'batch_size': 32" in code
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    assert imported <= {"argparse", "datetime", "json", "math", "os", "signal", "sys", "time", "numpy", "torch",
                        "PIL", "safetensors", "cnnviz"}
    assert "'schedule': 'constant'" in code


@pytest.fixture(scope="module")
def whole(script):
    """The script alone, uninterrupted: 20 steps, a checkpoint every 5."""
    folder = script.parent / "whole"
    folder.mkdir()
    lines = _run([script, "--steps", "20", "--checkpoint-every", "5", "--save-weights", "w.safetensors"], folder)
    return folder, lines


def test_it_runs_alone_with_the_json_lines_and_losses_of_cnnviz_train(whole, tmp_path, capsys):
    folder, lines = whole
    assert [line["event"] for line in lines] == (["step"] * 2 + ["eval"]) * 5 + ["done"]
    done = lines[-1]
    assert done["steps"] == 20 and done["world_size"] == 1 and done["device"] == "cpu"
    assert 0 <= done["test_accuracy"] <= 1
    assert sorted(p.name for p in (folder / "checkpoints").iterdir())[:2] == [
        "step-00000005.safetensors", "step-00000005.state.safetensors"]
    stack_path = tmp_path / "tiny.cnnviz"
    stack_path.write_text(json.dumps(STACK))
    assert main(["train", str(stack_path), "--json"]) == 0  # the same seed, data and steps
    theirs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["loss"] for o in lines if o["event"] == "step"] == pytest.approx(
        [t["loss"] for t in theirs if t["event"] == "step"], rel=1e-4)
    # cnnviz reads the final weights and the checkpoints as its own
    for weights in (folder / "w.safetensors", folder / "checkpoints" / "step-00000020.safetensors"):
        assert main(["train", str(stack_path), "--steps", "1", "--json", "--load-weights", str(weights)]) == 0
    assert to_train_script(files.loads(json.dumps(STACK))).startswith('"""')


def test_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(script, whole, tmp_path):
    common = ["--steps", "20", "--checkpoint-every", "5"]
    first = _run([script, *common, "--until", "10"], tmp_path)
    assert first[-1]["steps"] == 10
    second = _run([script, *common, "--resume", "--save-weights", "resumed.safetensors"], tmp_path)
    assert second[0]["event"] == "step" and second[0]["step"] == 12 and second[-1]["steps"] == 20
    uninterrupted = load_file(whole[0] / "w.safetensors")
    resumed = load_file(tmp_path / "resumed.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    for key in uninterrupted:
        assert np.array_equal(uninterrupted[key].numpy(), resumed[key].numpy()), key


@pytest.fixture(scope="module")
def cosine(script):
    """The script alone on the cosine schedule, uninterrupted: 20 steps, a checkpoint every 5."""
    folder = script.parent / "cosine"
    folder.mkdir()
    lines = _run([script, "--steps", "20", "--schedule", "cosine", "--checkpoint-every", "5", "--save-weights",
                  "w.safetensors"], folder)
    return folder, lines


def test_on_the_cosine_schedule_it_has_the_losses_of_cnnviz_train(cosine, whole, tmp_path, capsys):
    folder, lines = cosine
    assert lines[-1]["event"] == "done" and lines[-1]["steps"] == 20
    ours = [o["loss"] for o in lines if o["event"] == "step"]
    assert ours != [o["loss"] for o in whole[1] if o["event"] == "step"]  # not the constant rate's run
    stack_path = tmp_path / "tiny.cnnviz"
    stack_path.write_text(json.dumps(STACK))
    assert main(["train", str(stack_path), "--json", "--schedule", "cosine"]) == 0
    theirs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert ours == pytest.approx([t["loss"] for t in theirs if t["event"] == "step"], rel=1e-4)


def test_on_the_cosine_schedule_stopped_and_resumed_ends_with_the_uninterrupted_weights(script, cosine, tmp_path):
    common = ["--steps", "20", "--schedule", "cosine", "--checkpoint-every", "5"]
    assert _run([script, *common, "--until", "10"], tmp_path)[-1]["steps"] == 10
    second = _run([script, *common, "--resume", "--save-weights", "resumed.safetensors"], tmp_path)
    assert second[-1]["steps"] == 20
    uninterrupted = load_file(cosine[0] / "w.safetensors")
    resumed = load_file(tmp_path / "resumed.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    for key in uninterrupted:
        assert np.array_equal(uninterrupted[key].numpy(), resumed[key].numpy()), key


def test_it_runs_under_torchrun_with_two_gloo_ranks_on_an_image_folder(script, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        (tmp_path / "imgs" / f"class{c}").mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (10, 12), dtype=np.uint8)).save(tmp_path / "imgs" / f"class{c}" / f"{i}.png")
    lines = _run([script, "--data", "imgs", "--steps", "10", "--batch-size", "8", "--checkpoint-every", "5"],
                 tmp_path, timeout=180, torchrun=True)
    done = [line for line in lines if line["event"] == "done"]
    assert len(done) == 1 and done[0]["world_size"] == 2 and done[0]["steps"] == 10
    assert done[0]["classes"] == [f"class{c}" for c in range(10)]
    steps = [line["step"] for line in lines if line["event"] == "step"]
    assert steps == sorted(set(steps))  # rank 0 alone prints
    assert (tmp_path / "checkpoints" / "step-00000010.state.safetensors").exists()
