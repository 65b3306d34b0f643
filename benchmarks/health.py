"""What training health costs the training loop: throughput with it on against the same loop with it off.

    PYTHONPATH=. python benchmarks/health.py [--device cpu|cuda|cuda:N|mps|auto]
        [--stack resources/examples/lenet5.cnnviz] [--batch-size B] [--steps N] [--repeats R]
        [--threads T] [--clock auto|wall|cpu] [--json OUT]

Variants, on one session (same model, optimizer, batch, data and device), each a :class:`Trainer` taking
the window's probe (``ProbeRequest()``: everything) at the window's rate (``PROBE_HZ``) and handing it to
a no-op callback:

* ``probes``: health off (the baseline);
* ``probes+health``: the same request with ``health=True``: the steps probes follow are watched (the
  weights copied, the rectifiers hooked) and the weight and gradient histograms, update ratios and dead
  units read with a probe, as often as health's own budget allows (``training.HEALTH_BUDGET`` of the loop,
  apart from the probes' ``PROBE_BUDGET``: every probe while it fits, every second or third on a busy CPU);
* ``no-probes``: the bare loop, for scale.

Blocks of ``steps`` steps alternate between the variants, ``repeats`` times, in a rotating order. The
throughput ratio is the median over rounds of the two variants' ratio within the round (blocks run side by
side, so a change of the machine's load between rounds cancels), beside the ratio of the median times.
Also printed: what one health read costs, how often probes came and how many carried health, the probe
rate with health on against off (health must not slow the probes: about 1), and health's own share of the
loop as the trainer counted it. Target: probes / probes+health ≥ 0.95 on the CPU (throughput with health
on at least 0.95× off).
Needs torch, numpy and cnnviz's source tree; no Qt. No timed assertion: this prints figures.
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

import _bench  # noqa: E402 (benchmarks/_bench.py, beside this script)
import torch

from cnnviz.core.run import devices, engine, training
from cnnviz.core.run.health import HealthMonitor

TARGET = 0.95


def loop(session: engine.Session, request: training.ProbeRequest | None):
    counter = {"probes": 0, "health": 0}

    def on_probe(probe) -> None:
        counter["probes"] += 1
        counter["health"] += probe.health is not None

    control = training.Control()
    if request is not None:
        control.request_probe(request)
    trainer = training.Trainer(session, control, on_probe=on_probe if request is not None else None,
                               report_every=50)

    def run(steps: int) -> None:
        trainer.run(steps)

    run.counter = counter  # type: ignore[attr-defined]
    run.trainer = trainer  # type: ignore[attr-defined]
    return run


def read_ms(session: engine.Session, rounds: int = 30) -> tuple[float, float]:
    """Median ms of one watched step's extra work (copy and hooks: a watched step minus a plain one) and of one
    health read, on this session's model."""
    monitor = HealthMonitor(session.model)
    watched, plain, reads = [], [], []
    with session.rng_scope():
        for _ in range(rounds):
            devices.synchronize(session.device)
            t0 = time.perf_counter()
            session.step()
            devices.synchronize(session.device)
            t1 = time.perf_counter()
            with monitor.watching():
                session.step()
            devices.synchronize(session.device)
            t2 = time.perf_counter()
            monitor.read(session.step_count)
            t3 = time.perf_counter()
            plain.append(t1 - t0)
            watched.append(t2 - t1)
            reads.append(t3 - t2)
    return 1e3 * (statistics.median(watched) - statistics.median(plain)), 1e3 * statistics.median(reads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _bench.session_arguments(parser, str(ROOT / "resources" / "examples" / "lenet5.cnnviz"), threads=1)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=25, help="timed blocks per variant")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    session = _bench.open_session(args, "health")
    if session is None:
        return 2
    stack = session.stack
    device = session.device
    clock, use_cpu_clock = _bench.timing_clock(args, session)
    request = training.ProbeRequest()
    variants = {
        "probes": loop(session, request),
        "probes+health": loop(session, training.ProbeRequest(health=True)),
        "no-probes": loop(session, None),
    }
    print(f"{session.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"timing {'CPU time' if use_cpu_clock else 'wall clock'}, {args.repeats}×{args.steps} steps per variant, "
          f"probes at most {training.PROBE_HZ:g}/s")
    for run in variants.values():
        run(args.warmup)
        run.counter.update(probes=0, health=0)  # type: ignore[attr-defined]
        run.trainer.health_seconds = 0.0  # type: ignore[attr-defined]
    devices.synchronize(device)
    times, walls = _bench.interleaved(variants, args.steps, args.repeats, clock, device)
    walls = {name: sum(w) for name, w in walls.items()}
    names = list(variants)
    per_step = {name: statistics.median(t) for name, t in times.items()}
    watched_ms, health_ms = read_ms(session)
    base = per_step["probes"]
    for name in names:
        spread = f"{min(times[name]) * 1e3:.3f}..{max(times[name]) * 1e3:.3f}"
        counter = variants[name].counter  # type: ignore[attr-defined]
        rate = counter["probes"] / max(walls[name], 1e-9)
        print(f"  {name:14s} {per_step[name] * 1e3:8.3f} ms/step (blocks {spread})  "
              f"{base / per_step[name]:.3f}× the throughput of probes  ({rate:.1f} probes/s, "
              f"{counter['health']} with health)")
    paired = statistics.median(a / b for a, b in zip(times["probes"], times["probes+health"]))
    ratio = base / per_step["probes+health"]
    print(f"one health read: {health_ms:.3f} ms; a watched step's extra work (copy, hooks): {watched_ms:.3f} ms")
    rates = {name: variants[name].counter["probes"] / max(walls[name], 1e-9) for name in names}  # type: ignore[attr-defined]
    probe_ratio = rates["probes+health"] / rates["probes"] if rates["probes"] > 0 else float("nan")
    own = variants["probes+health"].trainer.health_seconds  # type: ignore[attr-defined]
    loop_s = sum(times["probes+health"]) * args.steps
    share = own / loop_s if loop_s > 0 else float("nan")
    counted = variants["probes+health"].counter  # type: ignore[attr-defined]
    timed = {name: variants[name].counter["probes"] / max(sum(times[name]) * args.steps, 1e-9)  # type: ignore[attr-defined]
             for name in ("probes", "probes+health")}
    print(f"probes/s with health / without: {probe_ratio:.3f} by the wall clock ({rates['probes+health']:.1f} "
          f"against {rates['probes']:.1f}), {timed['probes+health'] / max(timed['probes'], 1e-9):.3f} by the "
          f"timed clock ({timed['probes+health']:.1f} against {timed['probes']:.1f})")
    print(f"{counted['health']} of {counted['probes']} probes with health; health's own time {1e3 * own:.1f} ms, "
          f"{100 * share:.2f} % of the loop (budget {100 * training.HEALTH_BUDGET:g} %)")
    print(f"throughput with health / without: {paired:.3f} paired by round, {ratio:.3f} of the medians "
          f"(target ≥ {TARGET:.2f}: {'met' if paired >= TARGET else 'NOT met'})")
    result = {"device": devices.device_id(device), "device_name": session.device_info.name, "stack": stack.name,
              "batch_size": session.batch_size, "threads": torch.get_num_threads(),
              "ms_per_step": {k: v * 1e3 for k, v in per_step.items()}, "throughput_ratio": paired, "ratio_of_medians": ratio,
              "health_read_ms": health_ms, "watched_step_extra_ms": watched_ms, "target": TARGET,
              "probe_rate_ratio": probe_ratio, "probes_per_timed_second": timed, "health_share": share, "health_budget": training.HEALTH_BUDGET,
              "torch": torch.__version__, "clock": "cpu" if use_cpu_clock else "wall"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
