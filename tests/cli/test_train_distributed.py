"""``cnnviz train ... --nproc-per-node N`` (SPEC §3.5): torchrun's ranks, checked before and after.

The launches are real (2 gloo ranks of a tiny stack on the digits); each has a
timeout, and after each no process of the run is left (looked up in /proc by
the run's own folder, which every rank has on its command line).
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz.cli import main

ROOT = Path(__file__).resolve().parents[2]
STACK = {"format": "cnnviz.stack", "version": 1, "name": "tiny BN",
         "input": {"channels": 1, "height": 8, "width": 8},
         "layers": [{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False}},
                    {"type": "BatchNorm2d"}, {"type": "ReLU"}, {"type": "MaxPool2d", "params": {"kernel_size": 2}},
                    {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}],
         "loss": {"type": "CrossEntropyLoss"},
         "training": {"data": "digits", "optimizer": "adam", "lr": 0.01, "batch_size": 32, "seed": 1,
                      "device": "cpu", "steps": 20}}


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "tiny.cnnviz"
    path.write_text(json.dumps(STACK))
    return path


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)


def _command(stack_file, *args):
    return [sys.executable, "-m", "cnnviz", "train", str(stack_file), "--nproc-per-node", "2", *args]


def _leftovers(marker: Path) -> list[int]:
    """Processes whose command line names ``marker`` (the run's folder), other than this one."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if str(marker).encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _assert_nothing_left(marker: Path) -> None:
    deadline = time.monotonic() + 10
    while _leftovers(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(marker) == []


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------ refused before any rank starts
def _run_here(argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, out, err)
    return status, out.getvalue(), err.getvalue()


def test_a_batch_that_does_not_divide_by_the_ranks_is_exit_2(stack_file):
    status, out, _ = _run_here(["train", str(stack_file), "--nproc-per-node", "2", "--batch-size", "33", "--json"])
    assert status == 2
    line = json.loads(out)
    assert line["event"] == "error" and "global batch" in line["message"] and "32 or 34" in line["message"]


@pytest.mark.parametrize("device", ["mps", "cuda:0"])
def test_one_named_device_with_ranks_is_exit_2(stack_file, device):
    status, _, err = _run_here(["train", str(stack_file), "--nproc-per-node", "2", "--device", device])
    assert status == 2
    assert f"--device {device} cannot go with --nproc-per-node" in err


def test_launcher_options_need_nproc_per_node(stack_file):
    status, _, err = _run_here(["train", str(stack_file), "--nnodes", "2"])
    assert status == 2 and "--nproc-per-node" in err
    status, _, err = _run_here(["train", str(stack_file), "--nproc-per-node", "1", "--nnodes", "2"])
    assert status == 2 and "--rdzv-endpoint" in err


# ------------------------------------------------------------------ real launches
def test_two_ranks_print_json_lines_from_rank_0_only(stack_file, tmp_path):
    weights = tmp_path / "w.safetensors"
    proc = subprocess.run(_command(stack_file, "--json", "--save-weights", str(weights)), env=_env(),
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = _json_lines(proc.stdout)  # every line of standard output is JSON
    steps = [line["step"] for line in lines if line["event"] == "step"]
    assert steps == sorted(set(steps)) and steps[-1] == 20  # one writer: no line twice
    done = [line for line in lines if line["event"] == "done"]
    assert len(done) == 1 and lines[-1] is done[0]
    assert done[0]["world_size"] == 2 and done[0]["steps"] == 20 and done[0]["device"] == "cpu"
    assert done[0]["weights"] == str(weights) and weights.stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))
    _assert_nothing_left(tmp_path)


def test_a_killed_rank_stops_every_rank_with_exit_4(stack_file, tmp_path):
    proc = subprocess.run(_command(stack_file, "--json", "--steps", "200"), capture_output=True, text=True,
                          env=_env(CNNVIZ_DISTRIBUTED_FAULT="1:5:kill"), timeout=180, cwd=tmp_path, check=False)
    assert proc.returncode == 4, proc.stderr[-2000:]
    lines = _json_lines(proc.stdout)
    assert lines[-1]["event"] == "error" and lines[-1]["kind"] == "rank"
    assert sum(line["event"] == "error" for line in lines) == 1
    assert "killed" in lines[-1]["message"] or "stopped" in lines[-1]["message"]
    _assert_nothing_left(tmp_path)


def test_nan_on_one_rank_stops_every_rank_at_that_step_with_exit_4(stack_file, tmp_path):
    proc = subprocess.run(_command(stack_file, "--steps", "200"), capture_output=True, text=True,
                          env=_env(CNNVIZ_DISTRIBUTED_FAULT="1:5:nan"), timeout=180, cwd=tmp_path, check=False)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "training stopped at step 5 on every rank: the input images contain NaN" in proc.stderr
    assert "rank 1's share" in proc.stderr
    _assert_nothing_left(tmp_path)


def _start_and_wait_for_a_step(stack_file, tmp_path):
    proc = subprocess.Popen(_command(stack_file, "--json", "--steps", "100000"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    first = proc.stdout.readline()
    assert json.loads(first)["event"] == "step", proc.stderr.read()[-2000:] if not first else first
    return proc, first


def test_ctrl_c_stops_every_rank_at_one_step_with_the_done_line(stack_file, tmp_path):
    proc, first = _start_and_wait_for_a_step(stack_file, tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    lines = _json_lines(first + out)
    assert lines[-1]["event"] == "done" and lines[-1]["interrupted"] is True and lines[-1]["world_size"] == 2
    assert 0 < lines[-1]["steps"] < 100000
    _assert_nothing_left(tmp_path)


def test_sigterm_to_the_launcher_ends_every_rank_with_exit_4(stack_file, tmp_path):
    proc, _ = _start_and_wait_for_a_step(stack_file, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 4, err[-2000:]
    assert _json_lines(out)[-1]["event"] == "error"
    _assert_nothing_left(tmp_path)


def test_torchruns_command_line_for_one_node_and_several():
    from types import SimpleNamespace

    from cnnviz.cli import distributed

    one = SimpleNamespace(nproc_per_node=2, nnodes=None, node_rank=None, rdzv_endpoint=None)
    assert distributed.torchrun_argv(one, ["f.cnnviz"]) == [
        "--nproc-per-node", "2", "--nnodes", "1", "--max-restarts", "0", "--standalone", "-m", "cnnviz", "train",
        "f.cnnviz"]
    static = SimpleNamespace(nproc_per_node=4, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29400")
    argv = distributed.torchrun_argv(static, ["f.cnnviz"])
    assert argv[argv.index("--node-rank") + 1] == "1" and argv[argv.index("--master-addr") + 1] == "10.0.0.1"
    dynamic = SimpleNamespace(nproc_per_node=4, nnodes=2, node_rank=None, rdzv_endpoint="10.0.0.1:29400")
    argv = distributed.torchrun_argv(dynamic, ["f.cnnviz"])
    assert argv[argv.index("--rdzv-backend") + 1] == "c10d" and "--standalone" not in argv


def test_each_rank_runs_the_same_train_command_without_the_launchers_options(stack_file):
    from cnnviz.cli import distributed
    from cnnviz.cli.parser import build_parser

    args = build_parser().parse_args(["train", str(stack_file), "--nproc-per-node", "2", "--lr", "0.003", "--json",
                                      "--steps", "7", "--rdzv-endpoint", "h:1"])
    argv = distributed.train_argv(args)
    assert argv[0] == str(stack_file) and "--nproc-per-node" not in argv and "--rdzv-endpoint" not in argv
    again = build_parser().parse_args(["train", *argv])
    assert (again.lr, again.steps, again.json, again.nproc_per_node) == (0.003, 7, True, None)
