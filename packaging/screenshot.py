"""Save a screenshot of the explorer window, as a person would first see it.

    python packaging/screenshot.py OUT.png [STACK.cnnviz] [--select N] [--size 1400x900]

Runs with Qt's offscreen platform unless a display is set (use
``xvfb-run -s "-screen 0 1600x1000x24"`` to render with real X11 fonts and
styles). Settings, autosave and logs go to a temporary folder, never the
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
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from cnnviz.app.dialogs import Dialogs
    from cnnviz.app.main_window import MainWindow
    from cnnviz.app.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    tmp = Path(tempfile.mkdtemp(prefix="cnnviz-shot-"))
    window = MainWindow(args.stack, settings=Settings(tmp / "cnnviz.ini"), autosave_dir=tmp, dialogs=Dialogs())
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    if args.select == "input":
        window.stack_panel.select_row(0)
    elif args.select == "loss":
        window.stack_panel.select_row(window.stack_model.loss_row())
    elif args.select is not None:
        window.select_layer(int(args.select))
    loop = QEventLoop()
    QTimer.singleShot(args.settle_ms, loop.quit)
    loop.exec()
    ok = window.grab().save(args.out)
    window.close_without_asking()
    print(f"{'saved' if ok else 'could not save'} {args.out} ({window.width()}×{window.height()})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
