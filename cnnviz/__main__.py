"""``python -m cnnviz`` and the ``cnnviz`` entry point: the one place that wires the window and the commands.

``cnnviz`` and ``cnnviz FILE`` open the window (Qt is imported only then);
``cnnviz --self-test [FILE]`` checks an installation; everything else is the
command line of :mod:`cnnviz.cli`, which never imports Qt.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def open_window(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnnviz", add_help=False)
    parser.add_argument("file", nargs="?")
    parser.add_argument("--self-test", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.file is not None and not Path(args.file).exists():
        sys.stderr.write(f"cnnviz: cannot open {args.file}: no such file\n")
        return 2
    if args.self_test:
        from cnnviz.app.window.selftest import self_test

        return self_test(args.file, rest)
    from cnnviz.app import run

    return run(args.file, [sys.argv[0], *rest])


def _ensure_streams() -> None:
    """A windowed executable (pythonw, the frozen cnnviz.exe) has no standard streams; writing to None
    would crash, so they go nowhere (cnnviz-cli.exe is the console twin that shows them)."""
    import os

    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    from cnnviz import cli

    _ensure_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    if cli.is_window_request(args):
        return open_window(args)
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
