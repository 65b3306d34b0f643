"""The File menu's lists: Open Recent (the settings' recent files) and Examples (the bundled stacks, by name)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu

from cnnviz.app.window.settings import Settings
from cnnviz.core.model import assets, files


def fill_recent_menu(menu: QMenu, settings: Settings, open_path: Callable[[str], object]) -> None:
    """Open Recent: the recent files, numbered, each opened by ``open_path``; then Clear Recent Files."""
    menu.clear()
    recent = settings.recent_files()
    for n, path in enumerate(recent, 1):
        action = menu.addAction(f"&{n % 10} {Path(path).name}")
        action.setToolTip(path)
        action.setStatusTip(path)
        action.triggered.connect(lambda checked=False, p=path: open_path(p))
    if not recent:
        empty = menu.addAction("No recent files")
        empty.setEnabled(False)
    else:
        def clear() -> None:
            settings.clear_recent_files()
            fill_recent_menu(menu, settings, open_path)

        menu.addSeparator()
        menu.addAction("Clear Recent Files", clear)


def fill_examples_menu(menu: QMenu, open_example: Callable[[Path], object]) -> None:
    """Examples: every bundled example by its stack's name, its description in the tooltip."""
    menu.clear()
    for path in assets.examples():
        try:
            stack = files.load(path)
            name, tip = stack.name, stack.description or path.name
        except files.StackFileError:
            name, tip = path.stem, path.name
        action = menu.addAction(name)
        action.setToolTip(tip)
        action.setStatusTip(tip[:200])
        action.setData(str(path))
        action.triggered.connect(lambda checked=False, p=path: open_example(p))
    menu.setToolTipsVisible(True)


__all__ = ["fill_examples_menu", "fill_recent_menu"]
