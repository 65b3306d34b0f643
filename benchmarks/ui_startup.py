"""(c) of ``benchmarks/ui.py``: process start to the window's first paint, against importing torch and PySide6.

Each run is a child process; see ``ui.py``'s docstring for the figures.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_START_RATIO = 1.5


CHILD = textwrap.dedent("""
    import os, sys, time
    t_start = float(sys.argv[1])
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication([sys.argv[0]])
    marks = {}

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and "paint" not in marks and obj.isWidgetType() \\
                    and type(obj.window()).__name__ == "MainWindow":
                marks["paint"] = True
                QTimer.singleShot(0, painted)
            return False

    def painted():
        print(f"window {time.time() - t_start:.4f}", flush=True)
        from cnnviz.app.window.main_window import MainWindow
        window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
        poll = QTimer(app)
        def check():
            if window.runner.hub.snapshot is not None:
                print(f"probe {time.time() - t_start:.4f}", flush=True)
                os._exit(0)
        poll.timeout.connect(check)
        poll.start(5)

    spy = FirstPaint()
    app.installEventFilter(spy)
    from cnnviz.app import run
    run(None)
""")


def _time_child(code: str, with_start: bool = False) -> dict[str, float]:
    """Run ``python -c code``; "total" is the wall time to its exit, plus the marks it printed."""
    t0 = time.time()
    extra = [repr(t0)] if with_start else []
    out = subprocess.run([sys.executable, "-c", code, *extra], check=False, capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    marks = {"total": time.time() - t0}
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        name, _, value = line.partition(" ")
        try:
            marks[name] = float(value)
        except ValueError:
            pass
    return marks


def startup(runs: int) -> dict:
    """(c): process start to the window's first paint, against importing torch and PySide6."""
    window, probe, baseline = [], [], []
    _time_child("import torch, PySide6")  # warm the file cache for both
    for _ in range(runs):
        baseline.append(_time_child("import torch, PySide6")["total"])
        marks = _time_child(CHILD, with_start=True)
        window.append(marks["window"])
        probe.append(marks.get("probe", float("nan")))
    return {"window_s": statistics.median(window), "probe_s": statistics.median(probe),
            "baseline_s": statistics.median(baseline), "window_all": window, "baseline_all": baseline}
