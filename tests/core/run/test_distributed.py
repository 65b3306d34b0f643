"""DistributedSession (core/run/distributed.py): 2 gloo ranks reach the weights of 1 process.

The two-rank run is real: torchrun (``python -m torch.distributed.run``) starts
``ddp_worker.py`` twice on this machine's CPUs; each rank trains five stacks
20 steps (SyncBatchNorm over gloo, of a BatchNorm2d and of a BatchNorm1d; a weighted, label-smoothed loss with
ignore_index; NLLLoss with ``reduction="sum"``; SGD on the cosine schedule) and rank 0 compares them with a
plain one-process Session at the same seed and global batch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnviz.core.run import distributed
from cnnviz.core.run.device_data import Batches, DeviceSplit
from cnnviz.core.run.faults import DeviceError

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["batchnorm", "batchnorm1d", "weighted-ignore", "sum-nll", "cosine"])
def test_two_gloo_ranks_reach_the_weights_of_one_process(two_ranks, case):
    result = two_ranks[case]
    assert result["moved"] > 1e-3  # the weights really trained
    worst = max(result["diffs"].values())
    assert worst < 1e-5, result["diffs"]
    loss, expected = result["loss"]
    assert loss == pytest.approx(expected, rel=1e-5)
    assert result["accuracy"][0] == pytest.approx(result["accuracy"][1])


def test_the_cosine_schedule_is_followed_on_every_rank(two_ranks):
    import math

    ranks, single = two_ranks["cosine"]["lr"]  # the rate of the last step, 20 of 20
    assert ranks == single == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))
    assert two_ranks["sum-nll"]["lr"] == [0.001, 0.001]  # constant


def test_batchnorm_is_synced_on_the_cpu(two_ranks):
    assert two_ranks["batchnorm"]["sync"] == ["GlooSyncBatchNorm"]
    assert two_ranks["batchnorm1d"]["sync"] == ["GlooSyncBatchNorm"]  # a BatchNorm1d is synced as well


class _Set:
    def __init__(self, n):
        self.images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).numpy()
        self.labels = (torch.arange(n) % 10).numpy()


def test_the_shards_are_the_single_process_batch_in_order():
    split = DeviceSplit(_Set(50), (0.0,), (1.0,), torch.device("cpu"), True)
    single = Batches(split, 12, seed=9)
    ranks = [distributed.ShardedBatches(split, 12, 9, r, 3) for r in range(3)]
    for _ in range(10):  # across epoch boundaries: 50 is not a multiple of 12
        x, y = single.next()
        parts = [b.next() for b in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert all(torch.equal(p[2], y) for p in parts)


def test_rank_devices():
    assert distributed.rank_device("cpu", 1) == "cpu"
    for spec in ("mps", "cuda:0"):
        with pytest.raises(DeviceError):
            distributed.rank_device(spec, 0)
    if not torch.cuda.is_available():
        assert distributed.rank_device("auto", 0) == "cpu"
        with pytest.raises(DeviceError):
            distributed.rank_device("cuda", 0)


def test_in_rank_reads_torchruns_environment():
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    assert distributed.in_rank(env)
    assert not distributed.in_rank({**env, "MASTER_PORT": ""})
