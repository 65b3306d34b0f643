"""Save a screenshot of the explorer window, as a person would first see it.

    python packaging/screenshot.py OUT.png [STACK.cnnviz] [--select N] [--size 1400x900]
                                   [--live] [--train STEPS] [--sample I] [--tab TITLE]

``--live`` opens the window as ``cnnviz`` does (views, Run toolbar, the worker
thread) and waits for the first forward pass; ``--train STEPS`` then trains
that many steps and waits for the probe after them, so the loss curve has
fallen; ``--sample I`` shows held-out sample I. The README's picture is

    xvfb-run -a -s "-screen 0 1600x1000x24" python packaging/screenshot.py docs/screenshot.png --train 300

Runs with Qt's offscreen platform unless a display is set (use
``xvfb-run -s "-screen 0 1600x1000x24"`` to render with real X11 fonts and
styles). Settings, autosave, logs and run records go to a temporary folder, never the
home folder. ``--select N`` selects layer N (default: the window's choice);
``--select input`` / ``--select loss`` the input or loss row.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("stack", nargs="?")
    parser.add_argument("--select", default=None)
    parser.add_argument("--size", default="1400x900")
    parser.add_argument("--settle-ms", type=int, default=300)
    parser.add_argument("--live", action="store_true", help="run the stack as cnnviz does")
    parser.add_argument("--train", type=int, default=0, metavar="STEPS",
                        help="train this many steps first (implies --live)")
    parser.add_argument("--sample", type=int, default=None, help="the held-out sample to show (implies --live)")
    parser.add_argument("--tab", default=None, help="the centre tab to show, by its title (e.g. Filters)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the runs")
    args = parser.parse_args(argv)
    live = args.live or args.train > 0 or args.sample is not None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from cnnviz.app.window.dialogs import Dialogs
    from cnnviz.app.window.main_window import MainWindow
    from cnnviz.app.window.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    tmp = Path(tempfile.mkdtemp(prefix="cnnviz-shot-"))
    window = MainWindow(args.stack, settings=Settings(tmp / "cnnviz.ini"), autosave_dir=tmp, dialogs=Dialogs(),
                        live=live, runs_folder=tmp / "runs")
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    if args.select == "input":
        window.stack_panel.select_row(0)
    elif args.select == "loss":
        window.stack_panel.select_row(window.stack_model.loss_row())
    elif args.select is not None:
        window.select_layer(int(args.select))
    if args.tab:
        tabs = window.center_tabs
        titles = [tabs.tabText(i) for i in range(tabs.count())]
        if args.tab not in titles:
            print(f"no tab {args.tab!r}; the tabs are {', '.join(titles)}", file=sys.stderr)
            return 2
        tabs.setCurrentIndex(titles.index(args.tab))
    if live and not _run(window, args, app):
        window.close_and_delete()
        return 1
    loop = QEventLoop()
    QTimer.singleShot(args.settle_ms, loop.quit)
    loop.exec()
    ok = window.grab().save(args.out)
    size = f"{window.width()}×{window.height()}"
    window.close_and_delete()
    print(f"{'saved' if ok else 'could not save'} {args.out} ({size})")
    return 0 if ok else 1


def _run(window, args, app) -> bool:
    """Wait for the first forward pass, then show ``--sample`` and train ``--train`` steps; False on a timeout."""
    import time

    runner = window.runner
    deadline = time.monotonic() + args.timeout

    def wait_for(condition, what: str) -> bool:
        while not condition():
            if time.monotonic() > deadline:
                print(f"timed out waiting for {what}", file=sys.stderr)
                return False
            app.processEvents()
            time.sleep(0.01)
        return True

    def probe_after(step: int):
        snap = runner.hub.snapshot
        return snap is not None and snap.probe is not None and snap.probe.step >= step and \
            snap.target == runner.target

    if not wait_for(lambda: probe_after(0), "the first forward pass"):
        return False
    if args.sample is not None:
        runner.toolbar.set_sample(args.sample)
        if not wait_for(lambda: probe_after(0) and runner.hub.snapshot.probe.index == args.sample, "the sample"):
            return False
    if args.train > 0:
        runner.worker.step(args.train)
        if not wait_for(lambda: probe_after(args.train), f"{args.train} training steps"):
            return False
        if not wait_for(lambda: runner.last_progress is not None and runner.last_progress.step >= args.train,
                        "the loss curve"):
            return False
    runner.hub.flush()
    return True


if __name__ == "__main__":
    sys.exit(main())
