"""Reading a file that may be hostile: a regular file of bounded size, or a sentence saying why not.

Every file cnnviz reads from a person (a stack, a run record, an ONNX model) goes through
:func:`read_bounded` (or :func:`check_file` where a library opens the path itself): a folder, a FIFO
or device (which would block or never end), a file past the size limit, a missing or unreadable file
each become an :class:`Unreadable` whose ``reason`` completes "<path> …" ("is a folder, not a stack
file"). Callers turn it into their own error type. No third-party imports.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


class Unreadable(Exception):
    """Why a file cannot be used; ``reason`` follows its path ("no such file", "permission denied", …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _why(exc: OSError) -> Unreadable:
    if isinstance(exc, IsADirectoryError):
        return Unreadable("is a folder")
    if isinstance(exc, FileNotFoundError):
        return Unreadable("no such file")
    if isinstance(exc, PermissionError):
        return Unreadable("permission denied")
    return Unreadable(f"cannot be read ({exc.strerror or exc})")


def check_file(path: str | os.PathLike, max_bytes: int, noun: str, plural: str) -> os.stat_result:
    """The file's status when it is a regular file of at most ``max_bytes``; else :class:`Unreadable`.

    ``noun`` names what it should be ("stack file": "is a folder, not a stack file"), ``plural`` the
    kind in the size sentence ("stack files are at most …")."""
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise _why(exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise Unreadable(f"is a folder, not a {noun}")
    if not stat.S_ISREG(info.st_mode):   # a FIFO or device would block or never end
        raise Unreadable("is not a regular file")
    if info.st_size > max_bytes:
        raise Unreadable(f"the file is {info.st_size:,} bytes; {plural} are at most {max_bytes:,}")
    return info


def read_bounded(path: str | os.PathLike, max_bytes: int, noun: str, plural: str) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (also when it grows while it is read); else
    :class:`Unreadable` (see :func:`check_file`)."""
    check_file(path, max_bytes, noun, plural)
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        why = _why(exc)
        raise (Unreadable(f"is a folder, not a {noun}") if why.reason == "is a folder" else why) from None
    if len(data) > max_bytes:
        raise Unreadable(f"the file grew past {max_bytes:,} bytes while it was read")
    return data
