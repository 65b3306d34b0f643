"""What one frame of the convolution lab's animation costs the GUI thread, offscreen.

    QT_QPA_PLATFORM=offscreen python benchmarks/lab.py [--frames 200] [--size 1200x720]

A frame is what the lab's timer does at 30 frames per second: the next output cell (its taps from
``taps_of``, the numbers panel, the slider) and the repaint that the event loop then makes of everything
that changed (the canvas from its cached pixmaps, the taps panel, the labels). Each frame is timed from
the tick to the end of ``processEvents`` in the GUI thread's CPU time (``time.thread_time``, steady on a
shared machine; the wall time is printed beside it); the mean, median, 90th percentile and worst are
printed per case, with the target: a mean under 5 ms a frame (a 30 fps animation then takes at most 15 %
of the GUI thread). While the window moves faster than 10 cells a second, a Conv2d's numbers panel is
refreshed 10 times a second (every third frame), and at once when the animation stops.
The cases: LeNet-5's second Conv2d (6→16, 5×5 on 14×14: 150 taps), a 16→32 3×3 Conv2d, a MaxPool2d with
ceil_mode, and a 3×224×224 input with dilation (the zoomed crop and its minimap). Random inputs, real
outputs from torch. ``main()`` prints; ``measure()`` returns the numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from PySide6 import QtWidgets

from cnnviz.core.lab.taps import resolve
from cnnviz.core.model.stack import Layer

TARGET_MS = 5.0


def _case(kind: str, in_shape: tuple[int, int, int], **kw):
    torch.manual_seed(0)
    params = resolve(Layer(kind, kw), in_shape)
    x = torch.randn(1, *in_shape)
    weight = bias = None
    with torch.no_grad():
        if kind == "Conv2d":
            m = torch.nn.Conv2d(in_shape[0], params["out_channels"], params["kernel_size"], stride=params["stride"],
                                padding=params["padding"], dilation=params["dilation"], groups=params["groups"])
            weight, bias = m.weight.numpy(), m.bias.numpy()
        else:
            m = torch.nn.MaxPool2d(params["kernel_size"], params["stride"], params["padding"],
                                   ceil_mode=params["ceil_mode"])
        out = m(x)[0].numpy()
    return kind, params, x[0].numpy(), out, weight, bias


CASES = {
    "LeNet-5 conv 6→16 5×5 on 14×14": lambda: _case("Conv2d", (6, 14, 14), in_channels=6, out_channels=16,
                                                   kernel_size=5),
    "conv 16→32 3×3 on 8×8, same": lambda: _case("Conv2d", (16, 8, 8), in_channels=16, out_channels=32,
                                                kernel_size=3, padding="same"),
    "maxpool 3 s2 p1 ceil on 6×28×28": lambda: _case("MaxPool2d", (6, 28, 28), kernel_size=3, stride=2,
                                                    padding=1, ceil_mode=True),
    "conv 3→8 3×3 d2 s2 on 3×224×224 (crop)": lambda: _case("Conv2d", (3, 224, 224), in_channels=3,
                                                            out_channels=8, kernel_size=3, stride=2, padding=2,
                                                            dilation=2),
}


def measure(frames: int = 200, size: tuple[int, int] = (1200, 720)) -> dict[str, dict[str, float]]:
    from cnnviz.app.views import ConvLabView

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    results = {}
    for name, make in CASES.items():
        view = ConvLabView()
        view.resize(*size)
        view.show()
        app.processEvents()
        kind, params, x, out, weight, bias = make()
        view.set_layer(kind, params, x, out, weight, bias, title=name)
        view.set_speed(30)
        app.processEvents()
        times, walls = [], []
        for _ in range(frames):
            t0, w0 = time.thread_time(), time.perf_counter()
            view._tick()                       # what the QTimer calls, one frame
            app.processEvents()                # the repaint of what changed
            times.append((time.thread_time() - t0) * 1e3)
            walls.append((time.perf_counter() - w0) * 1e3)
        view.pause()
        full = []
        for _ in range(frames // 2):           # a frame with its numbers (a step, or playing at ≤ 10 cells/s)
            t0 = time.thread_time()
            view.step_forward()
            app.processEvents()
            full.append((time.thread_time() - t0) * 1e3)
        times.sort()
        results[name] = {"mean_ms": statistics.mean(times), "median_ms": statistics.median(times),
                         "p90_ms": times[int(0.9 * len(times)) - 1], "max_ms": times[-1],
                         "wall_median_ms": statistics.median(walls), "full_mean_ms": statistics.mean(full), "taps": float(len(view.arithmetic.taps))}
        view.close()
        view.deleteLater()
        app.processEvents()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="1200x720")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    results = measure(args.frames, (w, h))
    print(f"convolution lab, one animation frame on the GUI thread ({args.frames} frames, {w}×{h}, offscreen); "
          f"target < {TARGET_MS:g} ms")
    ok = True
    print("  GUI thread CPU time per frame (time.thread_time: what the frame costs that thread, whatever else the "
          "machine runs); wall time beside it")
    for name, r in results.items():
        good = r["mean_ms"] < TARGET_MS
        ok &= good
        print(f"  {name:40s} mean {r['mean_ms']:5.2f}  median {r['median_ms']:5.2f}  p90 {r['p90_ms']:5.2f}  "
              f"max {r['max_ms']:6.2f} ms  (wall median {r['wall_median_ms']:5.2f}; a frame with its numbers "
              f"{r['full_mean_ms']:5.2f})  {int(r['taps'])} taps  "
              f"{'ok' if good else 'over target'}")
    worst = max(r["mean_ms"] for r in results.values())
    print(f"  at 30 fps the worst case takes {worst * 30 / 10:.1f} % of the GUI thread")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
