"""What the held-out confusion matrix costs: ``Session.evaluate`` with it against without it, in the same run.

    PYTHONPATH=. python benchmarks/confusion.py [--device cpu|cuda|cuda:N|mps|auto]
        [--stack resources/examples/digits.cnnviz] [--data NAME] [--repeats R] [--threads T] [--json OUT]

Variants, on the same session (model, weights, held-out split on the device):

* ``plain``: ``evaluate(confusion=False)``: loss and the count of correct predictions;
* ``confusion``: ``evaluate()``: the same plus one ``bincount`` of ``target * K + prediction`` per
  chunk, the K×K matrix read back with the loss.

The model is trained a few steps first, so predictions are spread over the classes. Each variant is
warmed up, then both run ``repeats`` times in alternating order; on the CPU the process's CPU time
is timed (other processes' load makes the wall clock noisy), on a GPU the wall clock with the device
synchronised around each evaluation. The medians are compared. Target: ratio ≤ 1.10. Needs torch,
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
import torch

from cnnviz.core.run import devices

TARGET = 1.10


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _bench.session_arguments(parser, str(ROOT / "resources" / "examples" / "digits.cnnviz"), batch_size=False)
    parser.add_argument("--train-steps", type=int, default=50, help="steps trained before timing")
    parser.add_argument("--repeats", type=int, default=30, help="evaluations per variant, interleaved")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    session = _bench.open_session(args, "confusion")
    if session is None:
        return 2
    stack = session.stack
    device = session.device
    for _ in range(args.train_steps):
        session.step()
    clock, use_cpu_clock = _bench.timing_clock(args, session)
    variants = {"plain": lambda: session.evaluate(confusion=False), "confusion": lambda: session.evaluate()}
    print(f"{session.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"timing {'CPU time' if use_cpu_clock else 'wall clock'}, {args.repeats} evaluations of "
          f"{session.test_split.n:,} held-out images per variant (chunks of {session.eval_chunk})")
    results = {}
    for name, run in variants.items():
        for _ in range(args.warmup):
            results[name] = run()
    a, b = results["plain"], results["confusion"]
    if a.accuracy != b.accuracy or a.counted != b.counted:
        print(f"confusion: the two evaluations disagree ({a.accuracy} vs {b.accuracy})", file=sys.stderr)
        return 1
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            devices.synchronize(device)
            start = clock()
            variants[name]()
            devices.synchronize(device)
            times[name].append(clock() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["confusion"] / median["plain"]
    for name in names:
        spread = f"{min(times[name]) * 1e3:.2f}..{max(times[name]) * 1e3:.2f}"
        print(f"  {name:10s} {median[name] * 1e3:8.3f} ms per evaluation (runs {spread})")
    print(f"with the matrix / without: {ratio:.3f} (target ≤ {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'}); "
          f"accuracy {b.accuracy:.4f} on {b.counted:,}")
    result = {"device": devices.device_id(device), "device_name": session.device_info.name, "stack": stack.name,
              "n": session.test_split.n, "classes": len(session.classes), "threads": torch.get_num_threads(),
              "ms": {k: v * 1e3 for k, v in median.items()}, "ratio": ratio, "target": TARGET,
              "torch": torch.__version__, "clock": "cpu" if use_cpu_clock else "wall"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
