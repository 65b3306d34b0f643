"""Loading the bundled data sets at a stack's size, against decompressing their raw files in the same run.

The baseline is what no loader can avoid: reading and gunzipping the bundled
files into uint8 arrays. Each set is loaded from a cold cache; the ratio says
what resizing, splitting, normalising statistics and the budget cost on top.
Targets: each load under 0.5 s on a laptop core, at most 10x the baseline.

    python benchmarks/data.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnviz.core import data  # noqa: E402
from cnnviz.core.model import assets  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        data.clear_cache()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _raw_read(*parts: str) -> None:
    with gzip.open(assets.path(*parts), "rb") as fh:
        fh.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline = _best(lambda: (_raw_read("data", "digits.csv.gz"),
                              _raw_read("data", "fashion-mnist", "t10k-images-idx3-ubyte.gz")), args.repeat)
    cases = [("fashion-mnist 1x28x28", lambda: data.load("fashion-mnist", (1, 28, 28))),
             ("fashion-mnist 3x32x32", lambda: data.load("fashion-mnist", (3, 32, 32))),
             ("digits 1x28x28", lambda: data.load("digits", (1, 28, 28))),
             ("shapes 1x28x28 (10,000)", lambda: data.load("shapes", (1, 28, 28))),
             ("3,000 shapes 1x28x28", lambda: data.generate_shapes(3000, (1, 28, 28)))]
    print(f"baseline: reading and gunzipping the bundled files {baseline * 1e3:.1f} ms (best of {args.repeat})")
    rows = []
    for label, call in cases:
        seconds = _best(call, args.repeat)
        rows.append(seconds)
        print(f"{label:<26} {seconds * 1e3:8.1f} ms   {seconds / baseline:6.1f}x the baseline")
    print(f"median ratio {statistics.median(r / baseline for r in rows):.1f}x")


if __name__ == "__main__":
    main()
