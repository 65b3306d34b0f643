"""How fast does the network overview repaint every layer? Repaints per second, offscreen.

    python benchmarks/overview.py [--seconds 3] [--size 1200x800] [--save DIR]

For LeNet-5 at 1×28×28 and Tiny VGG at 3×64×64 (the bundled examples, their
own data sets, untrained weights, sample 0), one repaint is: a new probe handed
to :class:`~cnnviz.app.views.overview.OverviewView` (two probes alternate, so the
pixels really change), the column images rebuilt (levels, colours, the gather)
the event loop let through (the scene tells the view what changed) and the view's
viewport painted synchronously (``repaint()``: the scene drawn into the backing
store). Printed: repaints per second with the selected layer's column
large (layer 0, as the window opens) and with none large, against the issue's
targets (LeNet-5 ≥ 30/s, Tiny VGG ≥ 20/s). ``--save DIR`` also writes a PNG of
each overview, to look at.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="cnnviz-bench-home-")
for _var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_HOME, _var.lower())

TARGETS = {"lenet5": 30.0, "tiny-vgg": 20.0}


def probes_for(name: str, n: int = 2):
    """(report, [probe of sample 0, probe of sample 1, ...]) for a bundled example, untrained."""
    from cnnviz.core.model import assets, files
    from cnnviz.core.run import engine
    from cnnviz.core.run.training import ProbeRequest, take_probe
    from cnnviz.core.shapes import infer

    stack = files.load(assets.path("examples", f"{name}.cnnviz"))
    config = engine.config_with(stack.training, device="cpu")
    session = engine.Session(stack, config)
    probes = [take_probe(session, ProbeRequest(index=i)) for i in range(n)]
    return infer(stack), probes


def measure(view, app, probes, seconds: float) -> float:
    """Repaints per second: set a probe, draw its columns, paint the widget, for ``seconds``."""
    def repaint(p) -> None:
        view.set_probe(p)
        view.flush()              # the columns' images and items, now
        app.processEvents()       # the scene's change notices reach the view
        view.canvas.viewport().repaint()   # and it paints them, synchronously

    for p in probes:  # warm up: every layout and raster made once
        repaint(p)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        repaint(probes[count % len(probes)])
        count += 1
    elapsed = time.perf_counter() - start
    app.processEvents()
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="1200x800", help="the overview's size (about the window's centre)")
    parser.add_argument("--save", help="a folder for a PNG of each overview")
    parser.add_argument("--stacks", default="lenet5,tiny-vgg")
    args = parser.parse_args(argv)

    import torch
    from PySide6.QtWidgets import QApplication

    from cnnviz.app.views.overview import OverviewView

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"overview {width}×{height}, {os.environ.get('QT_QPA_PLATFORM') or 'display'}; "
          f"{args.seconds:g} s per measure")
    failed = False
    for name in args.stacks.split(","):
        report, probes = probes_for(name)
        view = OverviewView()
        view.resize(width, height)
        view.show()
        view.set_report(report)
        rates = {}
        for label, selected in (("layer 0 large", 0), ("none large", None)):
            view.set_selected(selected)
            rates[label] = measure(view, app, probes, args.seconds)
        if args.save:
            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            view.set_selected(0)
            view.flush()
            view.grab().save(str(out / f"overview-{name}.png"))
        target = TARGETS.get(name, 0.0)
        worst = min(rates.values())
        ok = worst >= target
        failed |= not ok
        shape = "×".join(str(s) for s in report.input_shape)
        print(f"{name:9} {shape:9} " + "  ".join(f"{k}: {v:6.1f}/s" for k, v in rates.items()) +
              f"   target ≥ {target:g}/s: {'met' if ok else 'NOT met'}")
        view.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
