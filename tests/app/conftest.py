"""Fixtures for the window tests: offscreen Qt, a scripted dialog router, isolated folders.

Qt runs with the ``offscreen`` platform (set before Qt is imported), no test
ever opens a real modal dialog (:class:`FakeDialogs` answers from a script
and fails the test on an unexpected question), and settings, autosave and
logs live in the test's temporary folder, never the home folder.
"""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="cnnviz-test-home-")
for _var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_HOME, _var.lower())

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


class FakeDialogs:
    """The dialog router, answering from scripted lists and recording what was shown."""

    def __init__(self) -> None:
        self.parent = None
        self.errors: list[tuple[str, str]] = []
        self.exceptions: list[tuple[str, str]] = []
        self.texts: list[tuple[str, str]] = []
        self.questions: list[tuple[str, str]] = []
        self.unsaved_answers: list[str] = []
        self.yes_no_answers: list[bool] = []
        self.open_answers: list[str | None] = []
        self.save_answers: list[str | None] = []

    def error(self, title, message, details=""):
        self.errors.append((title, message))

    def exception(self, message, details, log_path=""):
        self.exceptions.append((message, details))

    def show_text(self, title, html):
        self.texts.append((title, html))

    def ask_unsaved(self, name, reason=""):
        self.questions.append(("unsaved", f"{name}: {reason}"))
        assert self.unsaved_answers, f"unexpected unsaved-changes prompt for {name!r} ({reason})"
        return self.unsaved_answers.pop(0)

    def ask_yes_no(self, title, question, details=""):
        self.questions.append((title, question))
        assert self.yes_no_answers, f"unexpected question: {question}"
        return self.yes_no_answers.pop(0)

    def open_path(self, title, folder="", filters=""):
        self.questions.append(("open", title))
        assert self.open_answers, "unexpected open dialog"
        return self.open_answers.pop(0)

    def open_folder(self, title, folder=""):
        self.questions.append(("folder", title))
        assert self.open_answers, "unexpected folder dialog"
        return self.open_answers.pop(0)

    def save_path(self, title, suggested="", filters=""):
        self.questions.append(("save", f"{title}: {suggested}"))
        assert self.save_answers, "unexpected save dialog"
        return self.save_answers.pop(0)


@pytest.fixture
def dialogs() -> FakeDialogs:
    return FakeDialogs()


@pytest.fixture
def make_window(qtbot, tmp_path, dialogs):
    """``make_window(path=None, stack=None, **kw)``: a shown MainWindow with folders under ``tmp_path``."""
    from cnnviz.app.window.main_window import MainWindow
    from cnnviz.app.window.settings import Settings

    def make(path=None, stack=None, **kw):
        kw.setdefault("settings", Settings(tmp_path / "config" / "cnnviz.ini"))
        kw.setdefault("autosave_dir", tmp_path / "autosave")
        kw.setdefault("dialogs", dialogs)
        window = MainWindow(path, stack=stack, **kw)
        qtbot.addWidget(window, before_close_func=lambda w: w.close_without_asking())
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


@pytest.fixture
def window(make_window):
    """The window on its built-in example, LeNet-5."""
    return make_window()


@pytest.fixture
def examples() -> dict[str, Path]:
    from cnnviz.core.model import assets

    return {p.stem: p for p in assets.examples()}


@pytest.fixture
def fmv(qtbot):
    """A shown FeatureMapView of a fixed size (the views' tests read pixels and move the pointer on it)."""
    from cnnviz.app.views import FeatureMapView

    view = FeatureMapView()
    qtbot.addWidget(view)
    view.resize(800, 560)
    view.show()
    qtbot.waitExposed(view)
    return view
