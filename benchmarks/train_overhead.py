"""What the engine's training loop costs over a bare hand-written torch loop, in the same run.

    PYTHONPATH=. python benchmarks/train_overhead.py [--device cpu|cuda|cuda:N|mps|auto]
        [--stack resources/examples/digits.cnnviz] [--batch-size B] [--steps N] [--repeats R]
        [--threads T] [--json OUT]

Variants, on the same model architecture, optimizer, batch size, data tensors
and device:

* ``bare``: ``x, y = X[idx], Y[idx]; loss = loss_fn(model(x), y); zero_grad; backward; step``
  with a ``randperm`` per epoch, nothing else;
* ``engine``: ``Trainer.run`` with probes off (progress read every 50 steps,
  the per-step NaN/Inf check on);
* ``engine+probes``: the same with a probe of one sample taken 30 times a
  second by the wall clock (the views' rate) and handed to a no-op callback;
* ``engine-nocheck``: the engine without its per-step NaN/Inf check, to show
  what that check costs (one synchronisation per step on CUDA/MPS).

Each variant is warmed up, then the variants run ``steps`` steps each in turn,
``repeats`` times, in a rotating order; on CUDA/MPS the device is synchronised
around every timed block. The median block time per step is compared. Targets:
engine/bare ≤ 1.05 on the CPU; ≤ 1.10 on CUDA with probes on. Needs torch,
numpy and cnnviz's source tree; no Qt.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import _bench  # noqa: E402 (benchmarks/_bench.py, beside this script)
import torch  # noqa: E402

from cnnviz.core.run import build, devices, engine, training


def bare_loop(session: engine.Session, seed: int):
    """A hand-written loop over the session's own device tensors, as a user would write it."""
    model = build.build_model(session.stack, seed=seed).to(session.device)
    loss_fn = build.build_loss(session.stack.loss).to(session.device)
    c = session.config
    if c.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    split = session.train_split
    images, labels = split.images, split.labels
    n, b = split.n, session.batch_size
    gen = torch.Generator().manual_seed(seed)
    state = {"perm": torch.randperm(n, generator=gen).to(images.device), "pos": 0}
    model.train()

    def run(steps: int) -> None:
        for _ in range(steps):
            if state["pos"] + b > n:
                state["perm"] = torch.randperm(n, generator=gen).to(images.device)
                state["pos"] = 0
            idx = state["perm"][state["pos"]:state["pos"] + b]
            state["pos"] += b
            x, y = images[idx], labels[idx]
            if not split.on_device:
                x, y = x.to(session.device, non_blocking=True), y.to(session.device, non_blocking=True)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def engine_loop(session: engine.Session, probes: bool, check: bool):
    counter = {"probes": 0}

    def on_probe(_probe) -> None:
        counter["probes"] += 1

    trainer = training.Trainer(session, on_probe=on_probe if probes else None, report_every=50)

    def run(steps: int) -> None:
        session.check_finite = check
        trainer.run(steps)

    run.counter = counter  # type: ignore[attr-defined]
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _bench.session_arguments(parser, str(ROOT / "resources" / "examples" / "digits.cnnviz"))
    parser.add_argument("--steps", type=int, default=40, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=25, help="timed blocks per variant (short blocks, many "
                                                               "of them, interleaved: robust to other load)")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    session = _bench.open_session(args, "train_overhead")
    if session is None:
        return 2
    stack = session.stack
    config = session.config
    device = session.device
    clock, use_cpu_clock = _bench.timing_clock(args, session)
    variants = {
        "bare": bare_loop(session, config.seed),
        "engine": engine_loop(session, probes=False, check=True),
        "engine+probes": engine_loop(session, probes=True, check=True),
        "engine-nocheck": engine_loop(session, probes=False, check=False),
    }
    print(f"{session.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"timing {'CPU time' if use_cpu_clock else 'wall clock'}, {args.repeats}×{args.steps} steps per variant")
    for run in variants.values():
        run(args.warmup)
    variants["engine+probes"].counter["probes"] = 0  # type: ignore[attr-defined]
    devices.synchronize(device)
    times, walls = _bench.interleaved(variants, args.steps, args.repeats, clock, device)
    names = list(variants)
    per_step = {name: statistics.median(t) for name, t in times.items()}
    base = per_step["bare"]
    ratios = {name: per_step[name] / base for name in per_step}
    probe_seconds = sum(walls["engine+probes"])
    probe_rate = variants["engine+probes"].counter["probes"] / max(probe_seconds, 1e-9)  # type: ignore[attr-defined]
    for name in names:
        spread = f"{min(times[name]) * 1e3:.3f}..{max(times[name]) * 1e3:.3f}"
        print(f"  {name:15s} {per_step[name] * 1e3:8.3f} ms/step (blocks {spread})  ratio {ratios[name]:.3f}")
    print(f"engine / bare (probes off): {ratios['engine']:.3f}")
    print(f"engine / bare (probes on, {probe_rate:.0f}/s): {ratios['engine+probes']:.3f}")
    print(f"per-step NaN/Inf check: {ratios['engine'] / ratios['engine-nocheck']:.3f}× the engine without it")
    target = 1.05 if device.type == "cpu" else 1.10
    print(f"target ≤ {target:.2f}: {'met' if ratios['engine+probes'] <= target else 'NOT met'} with probes on, "
          f"{'met' if ratios['engine'] <= target else 'NOT met'} with probes off")
    result = {"device": devices.device_id(device), "device_name": session.device_info.name,
              "stack": stack.name, "batch_size": session.batch_size, "threads": torch.get_num_threads(),
              "ms_per_step": {k: v * 1e3 for k, v in per_step.items()}, "ratios": ratios,
              "probes_per_second": probe_rate, "target": target, "torch": torch.__version__,
              "clock": "cpu" if use_cpu_clock else "wall"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
