"""What ``cnnviz profile`` costs and how far its per-layer sum is from a whole step, in the same run.

    PYTHONPATH=. python benchmarks/profile_overhead.py [--device cpu|cuda|cuda:N|mps|auto]
        [--stack resources/examples/lenet5.cnnviz] [--batch-size B] [--threads T] [--rounds R] [--json OUT]

Reports, for one stack on one device:

* the wall time of :func:`cnnviz.core.run.profile.profile_stack` the first time in the process
  (``cold``: the first optimizer's imports, the kernels' first calls included; what ``cnnviz
  profile`` pays after importing torch) and then ``rounds`` times more (``warm``); the target for
  LeNet-5 on a CPU is under 5 s cold;
* for each profile, ``layers_sum_ms / step_ms``: the sum of the layers' forward and backward times,
  each measured alone with the device synchronised around it, against a whole training step. Above
  1, measuring layer by layer costs more than the layers do together (launches, synchronisations,
  Python between them); below 1, the step does work no layer owns (the loss, the optimizer, the
  autograd engine's bookkeeping);
* a bare hand-written training step (same model, batch and optimizer, no cnnviz code in the loop),
  timed by this script alone, beside the profile's ``step_ms``, to show that ``step_ms`` is the step
  a person would time.

No timed assertion anywhere: this prints figures. Needs torch and cnnviz's source tree; no Qt.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch

from cnnviz.core.model import files
from cnnviz.core.model.stack import config_with
from cnnviz.core.run import build, devices, profile
from cnnviz.core.run.faults import EngineError
from cnnviz.core.shapes import infer


def bare_step_ms(stack, config, device: torch.device, steps: int = 30, warmup: int = 5) -> float:
    """Median ms of a hand-written step: zero_grad, forward, loss, backward, optimizer step."""
    report = infer(stack)
    model = build.build_model(stack, seed=config.seed).to(device).train()
    loss_fn = build.build_loss(stack.loss).to(device)
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    x = torch.randn(config.batch_size, *report.input_shape, device=device)
    y = torch.randint(0, report.num_classes, (config.batch_size,), device=device)
    times = []
    for i in range(warmup + steps):
        devices.synchronize(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        devices.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stack", default=str(ROOT / "resources" / "examples" / "lenet5.cnnviz"))
    parser.add_argument("--batch-size", type=int, help="default: the stack's training block, else 64")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=3, help="warm profiles after the cold one")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        stack = files.load(args.stack)
    except files.StackFileError as exc:
        print(f"profile_overhead: cannot use {exc}", file=sys.stderr)
        return 2
    config = config_with(stack.training, device=args.device, batch_size=args.batch_size)

    walls, ratios, steps, sums, bares = [], [], [], [], []
    try:
        for _ in range(1 + max(0, args.rounds)):
            t0 = time.perf_counter()
            result = profile.profile_stack(stack, config)
            walls.append(time.perf_counter() - t0)
            ratios.append(result.overhead_ratio)
            steps.append(result.step_ms)
            sums.append(result.layers_sum_ms)
            # Right after each profile, so that the machine's load weighs on both alike.
            bares.append(bare_step_ms(stack, config, devices.resolve(config.device)))
    except EngineError as exc:
        print(f"profile_overhead: {exc}", file=sys.stderr)
        return 4
    warm = walls[1:] or walls
    print(f"{result.name} on {result.device} ({result.device_name}), batch {result.batch_size}, {result.optimizer}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(result.layers)} layers, "
          f"median of {result.repeats} runs after {result.warmup}")
    print(f"profile wall time: cold {walls[0]:.2f} s, warm {statistics.median(warm):.2f} s "
          f"(target for LeNet-5 on a CPU: under 5 s cold: {'met' if walls[0] < 5 else 'NOT met'})")
    for i, (s, t, r, b) in enumerate(zip(sums, steps, ratios, bares)):
        label = "cold" if i == 0 else f"warm {i}"
        print(f"  {label:7s} sum of layers {s:8.3f} ms, step {t:8.3f} ms, sum / step {r:.3f}; bare step {b:8.3f} ms")
    print(f"sum of layers / step (median over profiles): {statistics.median(ratios):.3f}")
    bare = statistics.median(bares)
    print(f"bare hand-written step (median): {bare:.3f} ms; profile's step_ms (median): "
          f"{statistics.median(steps):.3f} ms (ratio {statistics.median(steps) / bare:.3f})")
    out = {"stack": result.name, "device": result.device, "batch_size": result.batch_size,
           "threads": torch.get_num_threads(), "wall_cold_s": walls[0], "wall_warm_s": statistics.median(warm),
           "layers_sum_ms": sums, "step_ms": steps, "ratios": ratios, "ratio_median": statistics.median(ratios),
           "bare_step_ms": bares, "torch": torch.__version__}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
