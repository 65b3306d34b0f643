"""What a millisecond of the GUI thread's Python costs the training thread: the two share one interpreter lock.

    python benchmarks/gil.py [--busy 0 2 4 8] [--pairs 12] [--block 0.6] [--stack lenet5]

The window trains on a worker thread of its own process. Torch lets go of
Python's global interpreter lock inside each operation, but a LeNet-5 step on
the CPU takes it back hundreds of times (every module call, every optimizer
update), so whenever the GUI thread runs Python (a redraw, a paint of a view
written in Python, the slots a snapshot reaches) the training thread waits for
it, even with a core of its own. This measures that cost without the window: the
bundled example's session steps on a thread while another thread runs pure
Python for ``busy`` ms in every 100 ms (in four pieces, as a few views' redraws
would), in alternated blocks with that thread idle; printed is the throughput
ratio busy/idle with its 95 % interval (``benchmarks/ui.py``'s estimator: the median of the pairs).

Read: the throughput cost is of the order of the GUI thread's Python share of
the wall clock, and grows faster than it; the switch interval
(``sys.setswitchinterval``) and the optimizer's ``foreach`` made no difference
measured here. So the live views' cost against probes off is the probes' own
share of the loop plus about the GUI thread's Python per refresh times the
refreshes a second; cutting the second is what lowers it, and only a training
process of its own would remove it.

On the development machine (2 shared cores, load average 0.5, 2026-12-01),
30+30 blocks of 0.6 s: busy 0 ms (the control) 0.981 (interval 0.954-1.008),
busy 8 ms 0.951 (0.927-0.975), busy 16 ms 0.811 (0.781-0.842). The noise of
these cores is large (a plain training loop alone varies 136-196 steps a
second from one half second to the next): ten pairs do not resolve 5 %.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _python_for(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(50))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=float, nargs="+", default=[2.0, 4.0, 8.0],
                        help="ms of Python in every 100 ms on the other thread")
    parser.add_argument("--pairs", type=int, default=12, help="blocks busy and idle, of each, per setting")
    parser.add_argument("--block", type=float, default=0.6, help="seconds per block")
    parser.add_argument("--stack", default="lenet5", help="bundled example to train")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from _stats import paired_cost  # the estimator of benchmarks/ui.py (d)

    from cnnviz.core.model import assets, files
    from cnnviz.core.run import engine

    stack = files.load(assets.path("examples", f"{args.stack}.cnnviz"))
    session = engine.Session(stack, engine.config_with(stack.training, device="cpu"))
    busy_ms = [0.0]
    stop = threading.Event()

    def gui() -> None:   # the stand-in for the GUI thread: Python in four pieces every 100 ms
        while not stop.is_set():
            ms = busy_ms[0]
            if ms <= 0:
                time.sleep(0.01)
                continue
            began = time.perf_counter()
            for _ in range(4):
                _python_for(ms / 4000)
                time.sleep(0.001)
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - began)))

    def block(ms: float) -> float:
        busy_ms[0] = ms
        time.sleep(0.05)
        steps, began = 0, time.perf_counter()
        while time.perf_counter() - began < args.block:
            session.step()
            steps += 1
        return steps / (time.perf_counter() - began)

    thread = threading.Thread(target=gui, daemon=True)
    thread.start()
    try:
        block(0.0)   # warm up
        print(f"{args.stack} on the CPU, one torch thread, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}; {args.pairs}+{args.pairs} alternated blocks of {args.block:g} s each")
        for ms in args.busy:
            on, off = [], []
            for k in range(args.pairs):
                first = k % 2 == 0
                a, b = block(ms if first else 0.0), block(0.0 if first else ms)
                on.append(a if first else b)
                off.append(b if first else a)
            ratio, low, high = paired_cost(on, off)
            print(f"    Python {ms:g} ms in every 100 ms on the other thread: throughput ratio {ratio:.3f} "
                  f"(95 % interval {low:.3f} to {high:.3f}), cost {100 * (1 - ratio):.1f} % for a "
                  f"{ms:g} % share")
    finally:
        stop.set()
        thread.join(1)
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
