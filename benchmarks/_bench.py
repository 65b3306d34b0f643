"""What the engine-level benchmarks share: the session's arguments, the session, and the clock they time with.

``benchmarks/health.py``, ``train_overhead.py`` and ``confusion.py`` each time variants of one session of a
stack (torch, no Qt); this is how they parse, open and time it.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch

from cnnviz.core.model import files
from cnnviz.core.run import engine


def session_arguments(parser: argparse.ArgumentParser, stack: str, *, batch_size: bool = True,
                      threads: int | None = None) -> None:
    """--device, --stack (default ``stack``), --data, --batch-size (when ``batch_size``), --threads (default
    ``threads``; None: torch's), --clock and --json."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stack", default=stack)
    parser.add_argument("--data", help="data set (default: the stack's training block)")
    if batch_size:
        parser.add_argument("--batch-size", type=int)
    parser.add_argument("--threads", type=int, default=threads,
                        help="torch intra-op threads (default: " + (f"{threads})" if threads else "torch's)"))
    parser.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                        help="what to time: wall clock, or this process's CPU time (auto: CPU time on the CPU, "
                             "where other processes' load makes the wall clock noisy; wall clock on a GPU)")
    parser.add_argument("--json", help="also write the results to this file")


def open_session(args: argparse.Namespace, name: str) -> engine.Session | None:
    """The session of ``args.stack`` on ``args.device`` (torch's threads set first); None, having said why on
    stderr as ``name: reason``, when the engine refuses it."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        stack = files.load(args.stack)
        config = engine.config_with(stack.training, device=args.device, data=args.data,
                                    batch_size=getattr(args, "batch_size", None))
        return engine.Session(stack, config)
    except (files.StackFileError, engine.EngineError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return None


def timing_clock(args: argparse.Namespace, session: engine.Session) -> tuple[Callable[[], float], bool]:
    """(clock, True when it is CPU time): ``args.clock``, where auto is CPU time on the CPU."""
    cpu = args.clock == "cpu" or (args.clock == "auto" and session.device.type == "cpu")
    return (time.process_time if cpu else time.perf_counter), cpu


def interleaved(variants: dict[str, Callable[[int], None]], steps: int, repeats: int, clock: Callable[[], float],
                device) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run each variant ``repeats`` times for ``steps`` steps, the order rotated every round (other load falls
    on all alike), the device synchronised around each block: (seconds per step by ``clock``, wall seconds
    per block), each a list per variant."""
    from cnnviz.core.run import devices

    times: dict[str, list[float]] = {name: [] for name in variants}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            devices.synchronize(device)
            start, wall = clock(), time.perf_counter()
            variants[name](steps)
            devices.synchronize(device)
            times[name].append((clock() - start) / steps)
            walls[name].append(time.perf_counter() - wall)
    return times, walls
