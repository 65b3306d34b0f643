"""What the window's GUI thread does for each snapshot it shows, measured without training beside it.

    python benchmarks/replay.py [--stack lenet5] [--blocks 8] [--skip overview,softmax] [--spy] [--request window]

The live cost (``benchmarks/ui.py`` (d)) is a small difference of two noisy
throughputs: on these shared cores a training loop alone varies by a third from
one half second to the next. This measures the GUI side of it alone, which is
far steadier. The window trains for three seconds and keeps the snapshots it
shows. Then, paused, it is handed those snapshots again at the rate it shows
them while training (``PROBE_HZ``, at most ``SHOW_HZ``), as if it were training: the status field is
throttled as while running. Blocks of one second with the replay on and off
alternate, and the script prints the GUI thread's CPU per shown snapshot (on
minus off, divided by the snapshots shown).

- ``--skip`` leaves out parts of the route, to see what each costs: ``overview``,
  ``softmax``, ``labs``, ``maps`` (the feature-map and gradient tabs),
  ``extras`` (the debugging views, the workbench and the status field), ``route``
  (all the views), ``all`` (everything).
- ``--spy`` instead prints which widgets repaint and which lay out, per shown
  snapshot, with the rectangles painted: a view that repaints its parents or
  lays out the window shows up here. It found the status field laying out the
  main window 3-4 times a second, each time repainting the whole window under
  the docks (fixed: ``SteadyLabel``).
- ``--request views`` replays what the views alone ask for (no gradient, no
  training health); ``window`` (the default) the window's own request.

On the development machine (2 shared cores, LeNet-5 at 1400×900, 2026-12-02):
about 5 ms of GUI CPU per shown snapshot, of which the overview about 2.5-3.8,
the softmax view 1-2, the rest of the route about 1; the replay's figures vary
by about ±0.3 ms from run to run.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="cnnviz-bench-home-")
for _var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_HOME, _var.lower())

from PySide6.QtCore import QEvent, QObject, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from ui_live import open_live_window, pump  # noqa: E402

SKIPS = ("overview", "softmax", "labs", "maps", "extras", "route", "all")


class _Spy(QObject):
    """Counts paint events (by widget, parents and rectangle) and layout requests and resizes (by widget)."""

    def __init__(self) -> None:
        super().__init__()
        self.paints: collections.Counter = collections.Counter()
        self.layouts: collections.Counter = collections.Counter()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Paint:
            r = event.rect()
            chain, parent = [], obj.parentWidget()
            while parent is not None and len(chain) < 3:
                chain.append(type(parent).__name__)
                parent = parent.parentWidget()
            name = f"{type(obj).__name__}{':' + obj.objectName() if obj.objectName() else ''}"
            self.paints[(name, f"{r.width()}×{r.height()} at {r.x()},{r.y()}", " < ".join(chain))] += 1
        elif kind in (QEvent.Type.LayoutRequest, QEvent.Type.Resize):
            name = f"{type(obj).__name__}{':' + obj.objectName() if obj.objectName() else ''}"
            self.layouts[(name, kind.name)] += 1
        return False


def _skip(runner, parts: list[str]) -> None:
    """Replace the named parts of the route with nothing."""
    hub = runner.hub

    def nothing(*_args, **_kwargs) -> None:
        return None

    for part in parts:
        if part == "overview":
            hub.overview.set_probe = nothing
        elif part == "softmax":
            hub.softmax.set_distribution = nothing
        elif part == "labs":
            hub._route_labs = nothing
        elif part == "maps":
            hub.maps.set_maps = hub.maps.set_input = hub.grad_maps.set_maps = nothing
        elif part in ("extras", "all"):
            runner.debugging.snapshot_shown = runner.workbench.snapshot_shown = nothing
            runner._show_run_status = nothing
        if part == "route":
            hub.route = nothing
        elif part == "all":
            hub.show_snapshot = nothing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="lenet5")
    parser.add_argument("--blocks", type=int, default=8, help="blocks of 1 s with the replay on, and as many off")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {', '.join(SKIPS)}")
    parser.add_argument("--spy", action="store_true", help="print what repaints and lays out per snapshot instead")
    parser.add_argument("--request", choices=("window", "views"), default="window")
    parser.add_argument("--size", default="1400x900")
    args = parser.parse_args(argv)
    parts = [p for p in args.skip.split(",") if p]
    unknown = [p for p in parts if p not in SKIPS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(SKIPS)}")

    from cnnviz.app import prepare_qt_environment

    prepare_qt_environment()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from cnnviz.app.runner.controller import SHOW_HZ
    from cnnviz.app.runner.messages import RunState
    from cnnviz.core.run.training import PROBE_HZ

    width, height = (int(v) for v in args.size.lower().split("x"))
    window = open_live_window(args.stack, width, height)
    runner = window.runner
    if args.request == "views":
        asked = runner.worker.control.probe_request
        runner.worker.request_probe(replace(asked, grad_layers=(), input_grad=False, param_grads=False,
                                            with_identities=False, health=False))
    kept = []
    show = runner.hub.show_snapshot

    def keep(snapshot):
        kept.append(snapshot)
        return show(snapshot)

    runner.hub.show_snapshot = keep
    runner.train()
    pump(3.0)
    runner.pause()
    while runner.state != "paused":
        app.processEvents()
    pump(0.5)
    runner.hub.show_snapshot = show
    snapshots = [s for s in kept if s.probe is not None][-12:]
    if len(snapshots) < 2:
        raise SystemExit(f"training showed {len(snapshots)} snapshots in 3 s")
    _skip(runner, parts)
    runner.state = RunState.RUNNING   # as while training: the status field's throttle applies
    shown = [0]

    def next_snapshot():
        return snapshots[shown[0] % len(snapshots)]

    runner.worker.take_snapshot = next_snapshot

    def tick() -> None:
        shown[0] += 1
        runner._show_snapshot()

    timer = QTimer()
    rate = min(SHOW_HZ, PROBE_HZ)   # what reaches the window while training
    timer.setInterval(round(1000 / rate))
    timer.timeout.connect(tick)
    print(f"{args.stack} at {width}×{height}, {app.platformName()}, {len(snapshots)} snapshots of the "
          f"{args.request} request replayed at {rate:g}/s" + (f", without {', '.join(parts)}" if parts else ""))
    try:
        if args.spy:
            spy = _Spy()
            timer.start()
            pump(0.5)
            first = shown[0]
            app.installEventFilter(spy)
            pump(3.0)
            app.removeEventFilter(spy)
            n = max(shown[0] - first, 1)
            print("  paints per shown snapshot (widget, rectangle, parents):")
            for (name, rect, chain), count in spy.paints.most_common(20):
                print(f"    {count / n:5.2f}  {name}  {rect}  < {chain}")
            print("  layout requests and resizes per shown snapshot:")
            for (name, kind), count in spy.layouts.most_common(10) or [(("none", ""), 0)]:
                print(f"    {count / n:5.2f}  {name} {kind}")
            return 0
        on, off = [], []
        for k in range(args.blocks):
            for replaying in ((True, False) if k % 2 == 0 else (False, True)):
                (timer.start if replaying else timer.stop)()
                pump(0.25)
                cpu, began, first = time.thread_time(), time.perf_counter(), shown[0]
                pump(1.0)
                block = (time.thread_time() - cpu, shown[0] - first, time.perf_counter() - began)
                (on if replaying else off).append(block)
        per_s = statistics.median(b[1] / b[2] for b in on)
        cpu_on = statistics.median(b[0] / b[2] for b in on)
        cpu_off = statistics.median(b[0] / b[2] for b in off)
        per_snapshot = [1e3 * (b[0] / b[2] - cpu_off) / max(b[1] / b[2], 1e-9) for b in on]
        print(f"  GUI CPU {100 * cpu_on:.1f} % of a core replaying, {100 * cpu_off:.1f} % not: "
              f"{1e3 * (cpu_on - cpu_off) / per_s:.2f} ms per shown snapshot (blocks "
              f"{min(per_snapshot):.2f}-{max(per_snapshot):.2f}), {per_s:.1f} shown a second")
    finally:
        timer.stop()
        window.close_and_delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
