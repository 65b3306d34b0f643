"""How a ``cnnviz`` command ends: the one definition of its exit statuses (SPEC §2)."""
from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """``cnnviz``'s exit statuses. The self-test (``cnnviz --self-test``) uses the same numbers: 0 every check
    passed, 1 one failed, 2 the command line is wrong."""

    OK = 0
    INVALID = 1
    """The file was read but the stack cannot work (the summary is still printed); a self-test check failed."""
    USAGE = 2
    """The file cannot be read or the command line is wrong (an absent device, an unknown data set)."""
    INTERNAL = 3
    """A bug in cnnviz: one line for the user, the traceback in a log file."""
    FAILED = 4
    """Training failed: NaN or Inf, out of memory, a run too big to start."""
    INTERRUPTED = 130
    """Ctrl+C or SIGTERM, after the final ``done`` line."""


class UsageError(Exception):
    """A command-line or input problem to report with exit status 2."""
