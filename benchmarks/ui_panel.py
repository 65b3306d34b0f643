"""How fast the views paint, against bare pyqtgraph in the same run.

    QT_QPA_PLATFORM=offscreen python benchmarks/ui_panel.py [--frames 300] [--paint events|grab|both]

1. FeatureMapView showing 64 maps of 56×56 with new data every frame, against
   a bare ``ImageItem.setImage`` loop over the same maps arranged as a mosaic
   (prebuilt, NaN-free, fixed levels and LUT: pyqtgraph's fast path) in a
   GraphicsLayoutWidget the size of the view's. Frames alternate between the
   two so both see the same machine load; fps is 1 / median frame time (and
   1 / the 10th percentile, steadier on a busy machine), and only frames whose
   image was actually rendered count. Two ways to paint:
   ``events`` (the event loop repaints the changed region, as on screen) and
   ``grab`` (``widget.grab()`` repaints everything each frame, the view's
   colour bar, input image and labels included).
   Target: the view at ≥ 0.8× the bare loop and ≥ 30 fps.
2. CurvesView with 100 000 appended training points: append throughput, one
   redraw at that length, and how many redraws a stream of appends causes.

``main()`` prints; the functions return numbers for benchmarks/ui.py to fold in.
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

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from cnnviz.app.views import CurvesView, FeatureMapView  # noqa: E402
from cnnviz.app.views._common import DIVERGING, lut
from cnnviz.app.views.mosaic import mosaic  # noqa: E402

TARGET_RATIO = 0.8
TARGET_FPS = 30.0


def _app() -> QtWidgets.QApplication:
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def _paint(app: QtWidgets.QApplication, widget: QtWidgets.QWidget, how: str) -> None:
    """Make Qt paint now: ``grab`` renders the whole widget into a pixmap; ``events`` lets the
    event loop repaint what changed, as on screen."""
    if how == "grab":
        widget.grab()
    else:
        app.processEvents()


def _fps(times: list[float]) -> float:
    return 1.0 / statistics.median(times)


def _fps_p10(times: list[float]) -> float:
    """fps from the fastest tenth of frames: what the code costs when nothing else takes the CPU."""
    return 1.0 / float(np.percentile(times, 10))


def feature_maps_vs_bare(frames: int = 300, channels: int = 64, size: int = 56, widget: tuple[int, int] = (800, 600),
                         paint: str = "grab", seed: int = 0) -> dict[str, float]:
    """fps of FeatureMapView and of a bare ImageItem loop, new 64×56×56 data each frame, alternating."""
    app = _app()
    rng = np.random.default_rng(seed)
    data = [rng.standard_normal((channels, size, size)).astype(np.float32) for _ in range(8)]
    image = rng.random((1, 28, 28)).astype(np.float32)

    view = FeatureMapView()
    view.resize(*widget)
    view.show()
    view.set_input(image)
    view.set_maps(data[0], "bench", levels="symmetric")
    view.flush()
    for _ in range(5):
        view.grab()
        app.processEvents()
    cols = view.grid[1]

    bare = pg.GraphicsLayoutWidget()
    bare.resize(view.graphics.size())
    bare.show()
    vb = bare.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    mosaics = [mosaic(d, gap=1, cols=cols, fill=0.0)[0] for d in data]
    levels = view.levels
    item.setImage(mosaics[0], levels=levels, lut=lut(DIVERGING), autoLevels=False)
    vb.autoRange(padding=0)
    for _ in range(5):
        bare.grab()
        app.processEvents()

    def panel_frame(i: int) -> bool:
        before = view.image_item.qimage
        view.set_maps(data[i % 8], "bench")
        view.flush()
        _paint(app, view, paint)
        return not view.image_item._renderRequired and view.image_item.qimage is not before

    def bare_frame(i: int) -> bool:
        before = item.qimage
        item.setImage(mosaics[i % 8], levels=levels, autoLevels=False)
        _paint(app, bare, paint)
        return not item._renderRequired and item.qimage is not before

    panel_times, bare_times = [], []
    painted = {"panel": 0, "bare": 0}
    for i in range(frames):
        order = ((panel_frame, panel_times, "panel"), (bare_frame, bare_times, "bare"))
        for step, times, name in (order if i % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            painted[name] += step(i)
            times.append(time.perf_counter() - t0)
    result = {
        "panel_fps": _fps(panel_times),
        "bare_fps": _fps(bare_times),
        "panel_p10_fps": _fps_p10(panel_times),
        "bare_p10_fps": _fps_p10(bare_times),
        "panel_mean_fps": len(panel_times) / sum(panel_times),
        "bare_mean_fps": len(bare_times) / sum(bare_times),
        "painted_panel": painted["panel"],
        "painted_bare": painted["bare"],
        "frames": frames,
        "grid_cols": cols,
        "maps_area": (view.graphics.width(), view.graphics.height()),
    }
    result["ratio"] = result["panel_fps"] / result["bare_fps"]
    result["ratio_p10"] = result["panel_p10_fps"] / result["bare_p10_fps"]
    view.close()
    bare.close()
    return result


def curves_100k(points: int = 100_000, widget: tuple[int, int] = (600, 400), paint: str = "grab",
                stream_seconds: float = 2.0) -> dict[str, float]:
    """CurvesView: appends per second, one redraw at ``points`` points, redraws caused by a stream of appends."""
    app = _app()
    rng = np.random.default_rng(0)
    steps = np.arange(points)
    losses = 2.3 * np.exp(-steps / (points / 5)) + 0.3 + 0.1 * rng.standard_normal(points)
    accs = np.clip(0.9 - 0.8 * np.exp(-steps / (points / 5)) + 0.05 * rng.standard_normal(points), 0, 1)

    view = CurvesView()
    view.resize(*widget)
    view.show()
    app.processEvents()
    t0 = time.perf_counter()
    for i in range(points):
        view.append_train(int(steps[i]), float(losses[i]), float(accs[i]))
        if i % 1000 == 999:
            view.append_test(int(steps[i]), float(losses[i]) + 0.05, float(accs[i]) - 0.02)
    append_s = time.perf_counter() - t0

    redraw_times = []
    for k in range(15):
        t0 = time.perf_counter()
        view.append_train(points + k, 0.3, 0.9)
        view.flush()
        _paint(app, view, paint)
        redraw_times.append(time.perf_counter() - t0)

    # A training loop on the GUI thread's event queue: one point per event, as fast as they come.
    redraws_before = view.redraws
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < stream_seconds:
        view.append_train(points + 100 + n, 0.3, 0.9)
        n += 1
        app.processEvents()
    elapsed = time.perf_counter() - t0
    result = {
        "points": points,
        "appends_per_s": points / append_s,
        "append_us": 1e6 * append_s / points,
        "redraw_ms": 1e3 * statistics.median(redraw_times),
        "redraw_fps": _fps(redraw_times),
        "stream_appends_per_s": n / elapsed,
        "stream_redraws_per_s": (view.redraws - redraws_before) / elapsed,
    }
    view.close()
    return result


def _print_feature_maps(fm: dict, paint: str) -> bool:
    ok = fm["ratio"] >= TARGET_RATIO and fm["panel_fps"] >= TARGET_FPS
    what = {"events": "event loop repaints what changed, as on screen",
            "grab": "widget.grab() repaints everything: colour bar, input, labels"}[paint]
    print(f"feature maps 64×56×56, paint by {paint} ({what}); {fm['frames']} frames each, "
          f"maps area {fm['maps_area'][0]}×{fm['maps_area'][1]} px, {fm['grid_cols']} columns")
    print(f"  FeatureMapView   {fm['panel_fps']:7.1f} fps median, {fm['panel_p10_fps']:7.1f} fastest tenth, "
          f"painted {fm['painted_panel']}/{fm['frames']}")
    print(f"  bare ImageItem   {fm['bare_fps']:7.1f} fps median, {fm['bare_p10_fps']:7.1f} fastest tenth, "
          f"painted {fm['painted_bare']}/{fm['frames']}")
    print(f"  ratio {fm['ratio']:.2f} median, {fm['ratio_p10']:.2f} fastest tenth "
          f"(target ≥ {TARGET_RATIO} and ≥ {TARGET_FPS:.0f} fps): {'OK' if ok else 'BELOW TARGET'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Print both measures; exit 1 when the on-screen (events) measure misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--paint", choices=("events", "grab", "both"), default="both")
    args = parser.parse_args(argv)
    _app()
    print(f"platform {QtWidgets.QApplication.platformName()}, pyqtgraph {pg.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    modes = ("events", "grab") if args.paint == "both" else (args.paint,)
    verdict = {mode: _print_feature_maps(feature_maps_vs_bare(frames=args.frames, paint=mode), mode)
               for mode in modes}
    cv = curves_100k(paint=modes[0])
    print(f"curves, {cv['points']:,} training points")
    print(f"  append           {cv['appends_per_s']:,.0f} per s ({cv['append_us']:.1f} µs each)")
    print(f"  redraw at 100k   {cv['redraw_ms']:.1f} ms ({cv['redraw_fps']:.0f} fps)")
    print(f"  stream of appends through the event loop: {cv['stream_appends_per_s']:,.0f} appends/s, "
          f"{cv['stream_redraws_per_s']:.1f} redraws/s (at most ~30; fewer once a redraw costs more)")
    return 0 if verdict.get("events", verdict[modes[0]]) else 1


if __name__ == "__main__":
    sys.exit(main())
