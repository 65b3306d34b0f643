"""The ``cnnviz`` command (SPEC §2): ``summary``, ``train``, ``export`` over the core, no Qt.

- :mod:`.commands`: :func:`main`, which runs one subcommand; :mod:`.parser`: the command line.
- :mod:`.summary`, :mod:`.export`, :mod:`.train`: the subcommands (``train``: progress, JSON lines, signals).
- :mod:`.exits`: :class:`Exit`, the one definition of the exit statuses; :mod:`.output`: safe writing.
"""
from cnnviz.cli.commands import is_window_request, main
from cnnviz.cli.exits import Exit
from cnnviz.cli.parser import SUBCOMMANDS, build_parser

__all__ = ["SUBCOMMANDS", "Exit", "build_parser", "is_window_request", "main"]
