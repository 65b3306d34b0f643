"""``cnnviz train``: JSON lines per SPEC §2, the progress text, exit statuses, Ctrl+C, weights."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnviz import cli
from cnnviz.core.model import assets

ROOT = Path(__file__).resolve().parents[2]
BROKEN = str(assets.path("examples", "broken.cnnviz"))
DIGITS = str(assets.path("examples", "digits.cnnviz"))

TINY = {
    "format": "cnnviz.stack", "version": 1, "name": "Tiny digits",
    "input": {"channels": 1, "height": 8, "width": 8},
    "layers": [
        {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
        {"type": "ReLU", "params": {"inplace": True}},
        {"type": "MaxPool2d", "params": {"kernel_size": 2}},
        {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}},
    ],
    "training": {"data": "digits", "lr": 0.01, "batch_size": 32, "steps": 60, "device": "cpu"},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.cnnviz"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return str(path)


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["train", *argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_json_lines_parse_and_end_with_the_done_line(tiny):
    rc, out, err = run(tiny, "--json", "--steps", "60", "--seed", "3")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    steps = [line for line in lines if line["event"] == "step"]
    assert [s["step"] for s in steps] == list(range(6, 61, 6))
    assert set(steps[0]) == {"event", "step", "loss", "accuracy"}
    assert {line["event"] for line in lines} <= {"step", "eval", "done"}
    done = lines[-1]
    assert done["event"] == "done"
    assert {"steps", "device", "final_loss", "test_accuracy", "steps_per_second"} <= set(done)
    assert done["steps"] == 60 and done["device"] == "cpu" and done["interrupted"] is False
    assert 0 <= done["test_accuracy"] <= 1 and done["final_loss"] > 0 and done["steps_per_second"] > 0
    assert done["final_loss"] == steps[-1]["loss"]
    assert done["test_accuracy"] > 0.5  # 60 steps already learn something
    evals = [line for line in lines if line["event"] == "eval"]
    assert evals and evals[-1]["step"] == 60 and evals[-1]["accuracy"] == done["test_accuracy"]


def test_command_line_beats_the_file_which_beats_the_defaults(tiny):
    rc, out, _ = run(tiny, "--json", "--steps", "3", "--batch-size", "8", "--lr", "0.5", "--optimizer", "sgd")
    assert rc == 0
    assert json.loads(out.splitlines()[-1])["steps"] == 3


def _weights_after(stack, path):
    from cnnviz.core.run import engine

    session = engine.Session(stack)
    session.load_weights(path)
    return session.model.state_dict()


def test_schedule_option_trains_on_the_cosine_schedule_over_the_runs_steps(tiny, tmp_path):
    from cnnviz.core.model import files
    from cnnviz.core.model.stack import config_with
    from cnnviz.core.run import engine, records

    stack = files.load(tiny)  # steps 60 in the file: --steps 8 is the schedule's horizon
    target = tmp_path / "cosine.safetensors"
    rc, out, err = run(tiny, "--json", "--steps", "8", "--schedule", "cosine", "--save-weights", str(target),
                       "--record", str(tmp_path / "runs"))
    assert rc == 0, err
    done = json.loads(out.splitlines()[-1])
    assert records.read(done["record"]).config == config_with(stack.training, steps=8, schedule="cosine")
    session = engine.Session(stack, config_with(stack.training, steps=8, schedule="cosine"))
    for _ in range(8):
        session.step()
    assert abs(session.lr_now) < 1e-15  # the schedule ended with the run
    ours = _weights_after(stack, target)
    assert all(torch.equal(v, ours[k]) for k, v in session.model.state_dict().items())
    constant = tmp_path / "constant.safetensors"
    assert run(tiny, "--json", "--steps", "8", "--save-weights", str(constant))[0] == 0
    assert not all(torch.equal(v, ours[k]) for k, v in _weights_after(stack, constant).items())


def test_schedule_option_overrides_the_files_and_is_named_in_the_text(tiny, tmp_path, capsys):
    doc = json.loads(json.dumps(TINY))
    doc["training"]["schedule"] = "cosine"
    path = tmp_path / "cosine.cnnviz"
    path.write_text(json.dumps(doc))
    rc, out, err = run(str(path), "--steps", "5")
    assert rc == 0, err
    assert "adam lr 0.01 on a cosine schedule to 0 at step 5, 5 steps" in out.splitlines()[0]
    rc, out, err = run(str(path), "--steps", "5", "--schedule", "constant")
    assert rc == 0 and "cosine" not in out.splitlines()[0]
    rc, out, err = run(str(path), "--schedule", "linear")
    err = err + capsys.readouterr().err  # argparse's usage error
    assert rc == 2 and "--schedule" in err and "'cosine'" in err


def test_text_mode_names_the_device_and_ends_with_a_summary(tiny):
    rc, out, err = run(tiny, "--steps", "20")
    assert rc == 0
    first, last = out.splitlines()[0], out.splitlines()[-1]
    assert first.startswith("training Tiny digits on cpu (") and "20 steps" in first
    assert last.startswith("done: 20 steps in") and "held-out accuracy" in last
    assert "step 20/20" in err


def test_invalid_stack_exits_1_with_the_summary():
    rc, out, err = run(BROKEN, "--steps", "5")
    assert rc == 1
    assert "INVALID" in err and "layer 6 (Conv2d)" in err
    assert "Traceback" not in err


def test_invalid_stack_in_json_mode_has_an_error_line():
    rc, out, err = run(BROKEN, "--json")
    assert rc == 1
    line = json.loads(out.splitlines()[-1])
    assert line["event"] == "error" and line["kind"] == "stack" and "layer 6 (Conv2d)" in line["message"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_device_exits_2(tiny):
    rc, out, err = run(tiny, "--device", "cuda:1")
    assert rc == 2
    assert "cuda:1 was asked for but this machine has no CUDA device" in err and "Traceback" not in err
    rc, out, err = run(tiny, "--device", "cuda", "--json")
    assert rc == 2 and json.loads(out)["kind"] == "device"


def test_malformed_device_and_unknown_data_exit_2(tiny):
    assert run(tiny, "--device", "gpu0")[0] == 2
    rc, out, err = run(tiny, "--data", "imagenet")
    assert rc == 2 and "no data set called 'imagenet'" in err


def test_class_count_mismatch_exits_1(tmp_path):
    doc = json.loads(json.dumps(TINY))
    doc["layers"][-1]["params"]["out_features"] = 7
    path = tmp_path / "seven.cnnviz"
    path.write_text(json.dumps(doc))
    rc, out, err = run(str(path))
    assert rc == 1 and "the stack scores 7 classes but digits has 10" in err


def test_divergence_ends_with_an_error_line_and_exit_4(tiny):
    rc, out, err = run(tiny, "--json", "--optimizer", "sgd", "--lr", "1e12", "--steps", "200")
    assert rc == 4
    last = json.loads(out.splitlines()[-1])
    assert last["event"] == "error" and last["kind"] == "nonfinite" and last["device"] == "cpu"
    assert last["step"] == last["steps"] + 1 and "training stopped at step" in last["message"]


def test_weights_are_saved_and_loaded(tiny, tmp_path):
    target = tmp_path / "w.safetensors"
    rc, out, err = run(tiny, "--json", "--steps", "30", "--save-weights", str(target))
    assert rc == 0 and target.exists()
    trained = json.loads(out.splitlines()[-1])
    assert trained["weights"] == str(target)
    rc, out, err = run(tiny, "--json", "--steps", "1", "--lr", "1e-9", "--load-weights", str(target))
    assert rc == 0
    assert abs(json.loads(out.splitlines()[-1])["test_accuracy"] - trained["test_accuracy"]) < 0.02
    other = tmp_path / "other.cnnviz"
    doc = json.loads(json.dumps(TINY))
    doc["layers"][0]["params"]["kernel_size"] = 5
    doc["layers"][0]["params"]["padding"] = 2
    other.write_text(json.dumps(doc))
    rc, out, err = run(str(other), "--load-weights", str(target))
    assert rc == 2 and "layer 0 (Conv2d) weight: the file has 8×1×3×3, the stack needs 8×1×5×5" in err


def test_ctrl_c_stops_cleanly_with_the_done_line(tiny):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", tiny, "--json", "--steps", "10000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["event"] == "step", first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in [first, *rest.splitlines()]]
    done = lines[-1]
    assert done["event"] == "done" and done["interrupted"] is True, err
    assert 0 < done["steps"] < 10000000 and 0 <= done["test_accuracy"] <= 1
    assert proc.returncode == 130
    assert "Traceback" not in err


@pytest.mark.slow
def test_digits_example_reaches_95_percent_held_out():
    start = time.perf_counter()
    rc, out, err = run(DIGITS, "--json", "--device", "cpu", "--steps", "400")
    done = json.loads(out.splitlines()[-1])
    assert rc == 0 and done["test_accuracy"] >= 0.95, (done, time.perf_counter() - start)
