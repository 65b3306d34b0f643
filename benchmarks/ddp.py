"""Steps per second of 2 gloo ranks against 1 process at the same global batch, and the launcher's start.

    PYTHONPATH=. python benchmarks/ddp.py [--stack resources/examples/digits.cnnviz] [--batch-size 64]
        [--steps 300] [--ranks 2] [--json OUT]

Every figure comes from the real command, ``cnnviz train --json`` (one process,
with 1 and with N intra-op threads) and ``cnnviz train --json --nproc-per-node
N`` (DistributedDataParallel over gloo, launched through torchrun), all on the
CPU at the same global batch:

* ``steps_per_second``: the ``done`` line's own figure (the training loop, rank 0's
  clock; neither imports nor data loading);
* ``first_step_s``: wall time from starting the command to its first ``step``
  line (a run of 10 steps reports every step): interpreter, torch import, data,
  the process group, the first step. For the launcher this adds torchrun's own
  start and N more interpreters.

The machine's core count (``os.cpu_count()`` and the cores this process may
use) is printed beside them: N ranks on fewer than N free cores compete with
each other, so the ratio says more about the machine than about DDP. No timed
assertion: this prints figures. Needs torch and cnnviz's source tree; no Qt.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(stack: str, batch: int, steps: int, ranks: int, threads: int) -> dict:
    """One ``cnnviz train --json`` run: its done line, the wall time to its first step line and in all."""
    cmd = [sys.executable, "-m", "cnnviz", "train", stack, "--json", "--device", "cpu", "--batch-size", str(batch),
           "--steps", str(steps)]
    if ranks > 1:
        cmd += ["--nproc-per-node", str(ranks)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = None
    lines = []
    for line in proc.stdout:
        if first is None and '"step"' in line:
            first = time.perf_counter() - start
        lines.append(json.loads(line))
    proc.wait(timeout=600)
    total = time.perf_counter() - start
    if proc.returncode != 0 or not lines or lines[-1].get("event") != "done":
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    done = lines[-1]
    return {"steps_per_second": done["steps_per_second"], "first_step_s": round(first, 2),
            "wall_s": round(total, 2), "world_size": done.get("world_size", 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", default=str(ROOT / "resources/examples/digits.cnnviz"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    n = args.ranks
    variants = {
        "1 process, 1 thread": (1, 1),
        f"1 process, {n} threads": (1, n),
        f"{n} gloo ranks, 1 thread each": (n, 1),
    }
    report = {"cpu_count": os.cpu_count(), "usable_cores": usable, "load_1min": load, "stack": args.stack,
              "global_batch": args.batch_size, "steps": args.steps, "results": {}}
    print(f"machine: {os.cpu_count()} cores ({usable} usable), load {load:.2f} over the last minute" if load is not None
          else f"machine: {os.cpu_count()} cores ({usable} usable)")
    print(f"stack {Path(args.stack).name}, global batch {args.batch_size}, {args.steps} steps, device cpu")
    for name, (ranks, threads) in variants.items():
        throughput = run(args.stack, args.batch_size, args.steps, ranks, threads)
        start = run(args.stack, args.batch_size, 10, ranks, threads)
        report["results"][name] = {"steps_per_second": throughput["steps_per_second"],
                                   "first_step_s": start["first_step_s"], "run_wall_s": throughput["wall_s"]}
        print(f"  {name:<30} {throughput['steps_per_second']:>8.1f} steps/s   first step after "
              f"{start['first_step_s']:.2f} s   ({args.steps} steps: {throughput['wall_s']:.1f} s wall)")
    base = report["results"]["1 process, 1 thread"]
    ddp = report["results"][f"{n} gloo ranks, 1 thread each"]
    ratio = ddp["steps_per_second"] / base["steps_per_second"]
    report["ratio_ranks_to_one_process"] = round(ratio, 3)
    report["launcher_extra_start_s"] = round(ddp["first_step_s"] - base["first_step_s"], 2)
    print(f"{n} ranks / 1 process: {ratio:.2f}× the steps per second; the launcher's first step comes "
          f"{report['launcher_extra_start_s']:+.2f} s later")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
