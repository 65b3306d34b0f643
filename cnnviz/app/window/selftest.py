"""``cnnviz --self-test [FILE]``: a user's check that an installation works.

Runs what a first launch runs, without showing anything: finds the bundled
files, reads FILE (default: the bundled LeNet-5), opens the main window on it
live with Qt's ``offscreen`` platform (its worker's first forward pass and one
training step), forwards one bundled data sample through the stack built by
torch (and one backward pass through the loss), and checks that the output
has the shape the core inferred. When a display is available it also checks,
in a child process, that Qt can open a window on it (the check that fails
when a system library of Qt's xcb plugin is missing). docs/packaging.md
describes each check.

The window checks always run offscreen, display or not: the test must behave
the same over SSH, in CI and on a desktop, and must not flash a window.

Prints a short report (versions, devices, one line per check) and returns
0 when every check passed, 1 when one failed (the report says which and why),
2 when FILE cannot be read or an option is unknown.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence, TextIO

from cnnviz.cli.exits import Exit

PLATFORM_PROBE = "--probe-display"
"""Internal option: the child process that opens a window on the real display."""
DISPLAY_TIMEOUT_S = 60


class CheckFailed(Exception):
    """A check did not pass; ``str()`` says what was wrong and what to do."""


class _Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failures: list[str] = []
        self.passed = 0

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def check(self, name: str, fn: Callable[[], str]) -> object:
        start = time.perf_counter()
        try:
            detail = fn()
        except CheckFailed as exc:
            self.failures.append(name)
            self.line(f"  FAIL {name}: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001  (a self-test reports every failure, it never crashes)
            self.failures.append(name)
            self.line(f"  FAIL {name}: {type(exc).__name__}: {exc}")
            for text in traceback.format_exc().rstrip().splitlines():
                self.line(f"       {text}")
            return None
        if detail is None or not detail.startswith("skipped"):
            self.passed += 1
            self.line(f"  ok   {name}: {detail} ({(time.perf_counter() - start) * 1000:.0f} ms)")
        else:
            self.line(f"  skip {name}: {detail[len('skipped'):].lstrip(': ')}")
        return detail


def _versions() -> str:
    from cnnviz import __version__

    parts = [f"cnnviz {__version__}", f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
    except Exception as exc:  # noqa: BLE001
        parts.append(f"torch not importable ({exc})")
    try:
        import PySide6
        from PySide6 import QtCore

        parts.append(f"PySide6 {PySide6.__version__} (Qt {QtCore.qVersion()})")
    except Exception as exc:  # noqa: BLE001
        parts.append(f"PySide6 not importable ({exc})")
    try:
        import numpy

        parts.append(f"numpy {numpy.__version__}")
    except Exception:  # noqa: BLE001
        pass
    return ", ".join(parts)


def _where() -> str:
    if getattr(sys, "frozen", False):
        return f"frozen app in {Path(sys.executable).resolve().parent}"
    from cnnviz import __file__ as package_file

    return f"Python package in {Path(package_file).resolve().parent}"


def devices() -> list[str]:
    """The devices torch can use here, as the window's device picker lists them."""
    try:
        from cnnviz.core.run.devices import list_devices
    except ImportError:  # an older core: ask torch directly
        pass
    else:
        return [d.label for d in list_devices()]
    import torch

    found = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(f"cuda:{i} {props.name} ({props.total_memory / 2**30:.1f} GiB)")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _check_resources() -> str:
    from cnnviz.core.model import assets

    root = assets.root()
    examples = assets.examples()
    if not examples:
        raise CheckFailed(f"no example stacks in {root / 'examples'}: the installation is incomplete")
    missing = [p for p in (("icons", "cnnviz.svg"), ("icons", "cnnviz-256.png"), ("data", "digits.csv.gz"),
                           ("data", "fashion-mnist", "t10k-images-idx3-ubyte.gz"),
                           ("data", "fashion-mnist", "t10k-labels-idx1-ubyte.gz"))
               if not assets.path(*p).is_file()]
    if missing:
        raise CheckFailed("missing from the installation: " + ", ".join("/".join(p) for p in missing)
                          + f" (looked in {root})")
    return f"{len(examples)} example stacks, icons and data sets in {root}"


def _check_icon() -> str:
    from PySide6.QtGui import QIcon

    from cnnviz.core.model import assets

    svg = assets.path("icons", "cnnviz.svg")
    icon = QIcon(str(svg))
    if icon.isNull() or icon.pixmap(64, 64).isNull():
        raise CheckFailed(f"Qt cannot draw {svg}: its SVG plugin (imageformats/qsvg, iconengines/qsvgicon) "
                          "is missing")
    return "the SVG icon renders (Qt's SVG plugins are present)"


def _open_window(app, path: Path, report) -> str:
    """Open the main window offscreen on ``path`` as ``cnnviz FILE`` does, live, and close it.

    The window runs the stack in its worker thread as it does for a user: the
    check waits for the first forward pass to reach the views and for one
    training step (or, for a broken stack, for the window to say it cannot
    run). Settings, autosave and logs go to a temporary folder (the user's are
    left alone); every dialog the window would open, and every exception that
    reaches the error hooks, is recorded instead and fails the check.
    """
    import inspect
    import tempfile

    from cnnviz.app.window.dialogs import DISCARD, Dialogs
    from cnnviz.app.window.errors import ErrorReporter
    from cnnviz.app.window.main_window import MainWindow
    from cnnviz.app.window.settings import Locations, Settings

    class RecordingDialogs(Dialogs):
        def __init__(self) -> None:
            super().__init__(None)
            self.shown: list[str] = []

        def error(self, title, message, details=""):
            self.shown.append(f"{title}: {message}")

        def exception(self, message, details, log_path=""):
            self.shown.append(f"{message}\n{details}")

        def show_text(self, title, html):
            self.shown.append(f"unexpected window {title!r}")

        def ask_unsaved(self, name, reason=""):
            return DISCARD

        def ask_yes_no(self, title, question, details=""):
            return False

        def open_path(self, *args, **kwargs):
            return None

        def save_path(self, *args, **kwargs):
            return None

    with tempfile.TemporaryDirectory(prefix="cnnviz-self-test-") as tmp:
        locations = Locations.under(tmp).ensure()
        dialogs = RecordingDialogs()
        reporter = ErrorReporter(dialogs, locations.log).install(crash_log=False)
        window = None
        live = ""
        try:
            extra = {"live": True} if "live" in inspect.signature(MainWindow).parameters else {}
            if "runs_folder" in inspect.signature(MainWindow).parameters:
                extra["runs_folder"] = Path(tmp) / "runs"   # the self-test's runs are not the person's
            window = MainWindow(path, settings=Settings(locations.config / "cnnviz.ini"),
                                autosave_dir=locations.state, dialogs=dialogs, **extra)
            dialogs.parent = window
            window.error_reporter = reporter
            window.show()
            _settle(app, SETTLE_MS)
            runner = getattr(window, "runner", None)
            if runner is not None:
                live = _watch_runner(app, runner, report.ok, dialogs)
            title = window.windowTitle()
            icon = "with its icon" if not window.windowIcon().isNull() else "WITHOUT a window icon"
            opened = window.document.stack if hasattr(window, "document") else None
        finally:
            if window is not None:
                window.close_and_delete()  # joins the runner's worker thread, then deletes it while Python runs
            reporter.uninstall()
        if dialogs.shown:
            raise CheckFailed("the window reported: " + "\n       ".join(dialogs.shown))
        if opened is not None and len(opened.layers) != len(report.layers):
            raise CheckFailed(f"the window shows {len(opened.layers)} layers, {path.name} has {len(report.layers)}")
    return f"{type(window).__name__} opened offscreen on {path.name} ({title!r}, {icon}){live}"


SETTLE_MS = 1500
LIVE_TIMEOUT_S = 120
"""The window's worker imports torch, loads the data set and runs the first forward pass within this."""


def _settle(app, ms: int, until: Callable[[], bool] | None = None) -> bool:
    """Run the event loop for ``ms`` milliseconds, or until ``until()`` is true; returns whether it became true."""
    from PySide6.QtCore import QElapsedTimer

    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < ms:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.01)
    return until is not None and until()


def _watch_runner(app, runner, stack_ok: bool, dialogs) -> str:
    """Wait for the live window's first forward pass (or its refusal of a broken stack), then one training step."""
    if not stack_ok:
        if not _settle(app, LIVE_TIMEOUT_S * 1000, lambda: runner.state == "refused" or dialogs.shown):
            raise CheckFailed(f"the window did not say within {LIVE_TIMEOUT_S} s that the stack cannot run")
        return "; it says the stack cannot run"
    if not _settle(app, LIVE_TIMEOUT_S * 1000,
                   lambda: runner.forward_ms is not None or runner.state == "refused" or bool(dialogs.shown)):
        raise CheckFailed(f"the window's first forward pass did not arrive within {LIVE_TIMEOUT_S} s "
                          f"(its state: {runner.state})")
    if runner.state == "refused" or dialogs.shown:
        raise CheckFailed("the window refused to run the stack: " + "; ".join(dialogs.shown or [runner.state]))
    forward = f"; live forward pass {runner.forward_ms:.1f} ms"
    runner.step()
    if not _settle(app, LIVE_TIMEOUT_S * 1000, lambda: runner.last_progress is not None or bool(dialogs.shown)):
        raise CheckFailed(f"one training step in the window did not report within {LIVE_TIMEOUT_S} s")
    loss = getattr(runner.last_progress, "loss", None)
    return forward + (f", one training step (loss {loss:.3f})" if isinstance(loss, float) else ", one training step")


def _forward(stack, report) -> tuple[str, str]:
    import numpy as np
    import torch

    from cnnviz.core import data
    from cnnviz.core.run import build

    name = (getattr(getattr(stack, "training", None), "dataset", None) or "fashion-mnist")
    if name not in data.NAMES:
        name = "fashion-mnist"
    split = data.load(name, report.input_shape, seed=0)
    x = data.normalize(split.test.images[:2], split.mean, split.std)
    y = torch.tensor(np.asarray(split.test.labels[:2]))
    model = build.build_model(stack, seed=0)
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor(x))
    want = (2, *report.output_shape)
    if tuple(out.shape) != want:
        raise CheckFailed(f"torch gave output shape {tuple(out.shape)}, the core inferred {want}: "
                          "please report this as a bug")
    if not torch.isfinite(out).all():
        raise CheckFailed("the forward pass gave NaN or infinite values")
    shape = "×".join(map(str, report.output_shape))
    label = split.classes[int(y[0])] if int(y[0]) < len(split.classes) else str(int(y[0]))
    forward = (f"{name} test sample 0 ({label}) through {len(model)} layers gives {shape}, "
               f"the shape the core inferred")
    if report.num_classes is None or out.shape[1] < len(split.classes):
        return forward, f"skipped: the output {shape} is not one score per class of {name}"
    model.train()
    loss_fn = build.build_loss(stack.loss)
    loss = loss_fn(model(torch.tensor(x)), y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not torch.isfinite(loss) or any(g is None or not torch.isfinite(g).all() for g in grads):
        raise CheckFailed("the backward pass gave a NaN loss or missing gradients")
    return forward, f"{stack.loss.type} {loss.item():.3f}, gradients on all {len(grads)} parameter tensors"


def _check_display(executable: Sequence[str]) -> str:
    shown = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")
    if sys.platform.startswith("linux") and not shown:
        return "skipped: no DISPLAY or WAYLAND_DISPLAY set (offscreen checks only)"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(_ORIGINAL_PLATFORM)
    try:
        proc = subprocess.run([*executable, "--self-test", PLATFORM_PROBE], env=env, capture_output=True,
                              text=True, timeout=DISPLAY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"opening a window on {shown or 'the screen'} took over {DISPLAY_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = "\n".join(f"       {t}" for t in (proc.stderr or proc.stdout).strip().splitlines()[-8:])
        hint = ""
        if 'plugin "xcb"' in (proc.stderr or "") or "xcb-cursor" in (proc.stderr or ""):
            hint = ("\n       Qt's xcb plugin needs system libraries: on Debian/Ubuntu "
                    "`sudo apt install libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 "
                    "libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libegl1`")
        raise CheckFailed(f"Qt could not open a window on {shown or 'the screen'} "
                          f"(exit status {proc.returncode}):\n{tail}{hint}")
    return proc.stdout.strip() or f"a window opened on {shown or 'the screen'}"


def _probe_display(out: TextIO) -> int:
    """The child of the display check: open and close a small window on the real display."""
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([sys.argv[0]])
    label = QLabel("cnnviz self-test")
    label.show()
    app.processEvents()
    label.close()
    out.write(f"a window opened on {QApplication.platformName()} ({os.environ.get('WAYLAND_DISPLAY') or os.environ.get('DISPLAY', 'the screen')})\n")
    return Exit.OK


def _self_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "cnnviz"]


_ORIGINAL_PLATFORM: dict[str, str] = {}


def self_test(file: str | None, rest: Sequence[str] = (), out: TextIO | None = None) -> int:
    """Run the installation checks; returns the exit status (0 all passed, 1 one failed, 2 bad use)."""
    out = out or sys.stdout
    rest = list(rest)
    if PLATFORM_PROBE in rest:
        return _probe_display(out)
    if rest:
        out.write(f"cnnviz --self-test: unknown option {' '.join(rest)} (usage: cnnviz --self-test [FILE])\n")
        return Exit.USAGE
    if "QT_QPA_PLATFORM" in os.environ and not _ORIGINAL_PLATFORM:
        _ORIGINAL_PLATFORM["QT_QPA_PLATFORM"] = os.environ["QT_QPA_PLATFORM"]

    from cnnviz.core import shapes
    from cnnviz.core.model import assets, files

    path = Path(file) if file else assets.path("examples", "lenet5.cnnviz")
    try:
        stack = files.load(path)
    except files.StackFileError as exc:
        out.write(f"cnnviz --self-test: cannot use {exc}\n")
        return Exit.USAGE

    report = _Report(out)
    report.line("cnnviz self-test")
    report.line(f"  {_versions()}")
    report.line(f"  {_where()}; {platform.platform()}")
    try:
        report.line(f"  devices: {'; '.join(devices())}")
    except Exception as exc:  # noqa: BLE001
        report.line(f"  devices: torch cannot list them ({type(exc).__name__}: {exc})")

    report.check("resources", _check_resources)
    inferred = shapes.infer(stack)

    def check_stack() -> str:
        if not inferred.ok:
            bad = inferred.first_error
            where = f"layer {bad.index} ({bad.label}): {bad.error}" if bad else f"loss: {inferred.loss.error}"
            raise CheckFailed(f"{path.name} is not a working stack: {where}")
        return (f"{stack.name or path.name}: {shapes.fmt_shape(inferred.input_shape)} → "
                f"{shapes.fmt_shape(inferred.output_shape)}, {inferred.total_params:,} parameters")

    stack_ok = report.check("stack", check_stack) is not None

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication([sys.argv[0] if sys.argv else "cnnviz"])
    report.check("icon", _check_icon)
    report.check("window", lambda: _open_window(app, path, inferred))
    if stack_ok:
        results: dict[str, str] = {}

        def forward() -> str:
            results["forward"], results["backward"] = _forward(stack, inferred)
            return results["forward"]

        if report.check("forward", forward) is not None:
            report.check("backward", lambda: results["backward"])
    report.check("display", lambda: _check_display(_self_command()))

    if report.failures:
        report.line(f"FAILED: {', '.join(report.failures)} ({report.passed} checks passed)")
        return Exit.INVALID
    report.line(f"all {report.passed} checks passed")
    return Exit.OK
