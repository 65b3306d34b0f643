"""The keyboard shortcuts table (F1): every menu action with a shortcut, in menu order, and the gestures
that have no action."""
from __future__ import annotations

import html

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar

GESTURES = [("Stack", "Add a layer type from the palette", "Double-click, Enter, or drag into the stack"),
            ("Stack", "Reorder", "Drag a row"),
            ("Stack", "Select the previous / next row", "Up, Down"),
            ("Properties", "Step a number", "Up, Down, Page Up, Page Down, mouse wheel")]


def shortcut_rows(menu_bar: QMenuBar, fixed_text: dict[int, str] | None = None) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every visible menu's actions with a shortcut; ``fixed_text`` names actions
    whose text changes (Undo, Redo) by ``id(action)``."""
    fixed = fixed_text or {}
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def walk(menu: QMenu, title: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), title)
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
            if keys and id(action) not in seen:
                seen.add(id(action))
                text = fixed.get(id(action)) or _plain(action)
                rows.append((title, text, ", ".join(keys)))

    for action in menu_bar.actions():
        if action.menu() is not None and action.isVisible():
            walk(action.menu(), action.text().replace("&", ""))
    return rows + GESTURES


def _plain(action: QAction) -> str:
    return action.text().replace("&", "").rstrip("…").split("\t")[0]


def shortcuts_html(rows: list[tuple[str, str, str]]) -> str:
    """The table as the help window shows it (every cell escaped)."""
    body = "".join(f"<tr><td style='padding-right:14px; color:gray'>{html.escape(m)}</td>"
                   f"<td style='padding-right:14px'>{html.escape(a)}</td><td><b>{html.escape(k)}</b></td></tr>"
                   for m, a, k in rows)
    return f"<h3>Keyboard shortcuts</h3><table cellpadding='3'>{body}</table>"
