"""One rank of tests/core/run/test_distributed.py, started by torchrun: each stack trained 20 steps by
DistributedSession on every rank and, on rank 0, by a plain Session (one process, the same seed and
global batch); rank 0 writes the largest weight differences as JSON to ``argv[1]``."""
from __future__ import annotations

import json
import sys

import torch

from cnnviz.core.model import files
from cnnviz.core.run import distributed, engine

STEPS = 20


def stack_of(layers, loss, batch=32, optimizer="adam", lr=0.01, schedule="constant"):
    doc = {"format": "cnnviz.stack", "version": 1, "name": "ddp test", "input": {"channels": 1, "height": 8,
           "width": 8}, "layers": layers, "loss": loss,
           "training": {"data": "digits", "optimizer": optimizer, "lr": lr, "batch_size": batch, "seed": 5,
                        "device": "cpu", "steps": STEPS, "schedule": schedule}}
    return files.loads(json.dumps(doc))


CONV = {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False}}
HEAD = [{"type": "ReLU"}, {"type": "MaxPool2d", "params": {"kernel_size": 2}}, {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}}]
CASES = {
    "batchnorm": stack_of([CONV, {"type": "BatchNorm2d"}, *HEAD], {"type": "CrossEntropyLoss"}),
    # no bias before a BatchNorm (as CONV): its gradient is rounding noise, which Adam scales to whole steps
    "batchnorm1d": stack_of([CONV, *HEAD[:3], {"type": "Linear", "params": {"out_features": 16, "bias": False}},
                             {"type": "BatchNorm1d"}, {"type": "ReLU"}, HEAD[3]], {"type": "CrossEntropyLoss"}),
    "weighted-ignore": stack_of([CONV, *HEAD], {"type": "CrossEntropyLoss", "params": {
        "weight": [1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 0.25, 1.0, 1.5], "ignore_index": 3,
        "label_smoothing": 0.1}}, batch=24),
    "sum-nll": stack_of([CONV, *HEAD, {"type": "LogSoftmax", "params": {"dim": 1}}],
                        {"type": "NLLLoss", "params": {"reduction": "sum", "ignore_index": 7}}, optimizer="sgd",
                        lr=0.001),
    # the cosine schedule: every rank takes the single process's rate at each step (to 0 at step 20)
    "cosine": stack_of([CONV, *HEAD], {"type": "CrossEntropyLoss"}, optimizer="sgd", lr=0.05, schedule="cosine"),
}


def main() -> None:
    info = distributed.setup("cpu")
    results = {}
    for name, stack in CASES.items():
        session = distributed.DistributedSession(stack, rank=info)
        with session.rng_scope():
            for _ in range(STEPS):
                session.step()
        stats = session.read_stats()
        mine = {k: v.detach().clone() for k, v in session.model.state_dict().items()}
        if info.is_main:
            single = engine.Session(stack)
            for _ in range(STEPS):
                single.step()
            expected = single.read_stats()
            diffs = {k: float((v.double() - mine[k].double()).abs().max()) for k, v in single.model.state_dict().items()}
            start = engine.Session(stack).model.state_dict()
            moved = max(float((v - start[k]).abs().max()) for k, v in single.model.state_dict().items()
                        if v.is_floating_point())
            results[name] = {"diffs": diffs, "loss": [stats[0], expected[0]], "accuracy": [stats[1], expected[1]],
                             "moved": moved, "sync": [type(m).__name__ for m in session.model
                                                      if "BatchNorm" in type(m).__name__],
                             "lr": [session.optimizer.param_groups[0]["lr"], single.optimizer.param_groups[0]["lr"]]}
    if info.is_main:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)
    distributed.shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
