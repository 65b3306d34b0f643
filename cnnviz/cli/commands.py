"""The ``cnnviz`` command (SPEC §2): ``summary``, ``train``, ``export``, or the window.

:func:`main` parses the command line and runs one subcommand; every way it can
end is an :class:`~cnnviz.cli.exits.Exit` status. A user's mistake never prints
a traceback. ``summary`` imports no torch.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Sequence, TextIO

from cnnviz.cli.exits import Exit, UsageError
from cnnviz.cli.explain import cmd_explain
from cnnviz.cli.export import cmd_export
from cnnviz.cli.import_cmd import cmd_import
from cnnviz.cli.output import log_crash, silence_stdout, write
from cnnviz.cli.parser import SUBCOMMANDS, build_parser
from cnnviz.cli.profile import cmd_profile
from cnnviz.cli.summary import cmd_summary
from cnnviz.cli.train import cmd_train

COMMANDS = {"summary": cmd_summary, "train": cmd_train, "export": cmd_export, "explain": cmd_explain,
            "profile": cmd_profile, "import": cmd_import}


def is_window_request(argv: Sequence[str]) -> bool:
    """``cnnviz``, ``cnnviz FILE`` and ``cnnviz --self-test [FILE]`` open the window; the rest is a command."""
    return not argv or argv[0] == "--self-test" or (argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run a subcommand (summary, train, export); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage message
        return Exit.USAGE if exc.code not in (0, None) else Exit.OK
    if args.command is None:
        parser.print_help(err)
        return Exit.USAGE
    try:
        with _sigterm_as_interrupt():
            return COMMANDS[args.command](args, out, err)
    except UsageError as exc:
        write(f"cnnviz {args.command}: {exc}\n", err)
        return Exit.USAGE
    except KeyboardInterrupt:
        write(f"cnnviz {args.command}: interrupted\n", err)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # ``cnnviz train ... | head -1``: the reader has all it wanted
        silence_stdout()
        return Exit.OK
    except Exception as exc:  # a bug: one line for the user, the traceback in a log
        log = log_crash()
        write(f"cnnviz {args.command}: internal error: {type(exc).__name__}: {exc}\n"
               f"  this is a bug in cnnviz; the details are in {log}\n", err)
        return Exit.INTERNAL


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends a command as Ctrl+C does (cleanly, with exit 130), not by the default instant death."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
