"""Writing to a terminal or a pipe: text from a file is escaped, a closed pipe ends quietly, a bug is logged."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from cnnviz import __version__
from cnnviz.core.model.text import for_terminal


def write(text: str, out: TextIO, *, json_text: bool = False) -> None:
    """Write to a terminal or pipe: every control character that did not come from cnnviz itself is
    escaped (text from a file is data), and what the stream's encoding cannot hold is spelt in ASCII."""
    text = for_terminal(text, json_text=json_text)
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = (text.replace("×", "x").replace("✗", "!").replace("⚠", "!").replace("→", "->")
                .replace("…", "...").replace("≥", ">=").replace("≤", "<=").replace("⌊", "floor(")
                .replace("⌋", ")").replace("⌈", "ceil(").replace("⌉", ")").replace("−", "-").replace("·", "*"))
        text = text.encode(encoding, errors="replace").decode(encoding)
    out.write(text)


def silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's last flush at exit does not
    report the closed pipe a second time (the recipe of Python's ``signal`` documentation)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def log_crash() -> str:
    import datetime
    import traceback

    try:
        from platformdirs import user_log_dir

        folder = Path(user_log_dir("cnnviz", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "cli-errors.log"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.datetime.now().isoformat()} cnnviz {__version__}\n")
            fh.write(traceback.format_exc())
        return str(path)
    except Exception:  # noqa: BLE001  (no log is better than a second traceback)
        return "(no log could be written)"
