"""Writing what cnnviz produces without destroying anything: the one way every output is written.

Every file cnnviz writes (stack saves, exported code, ONNX models, weights) goes
through :func:`check_target` and :func:`atomic_write`:

- **Never over its own input**, nor over an existing stack file unless the
  person says so (``--force``, or a save dialog that asked): an export or a
  ``--save-weights`` aimed at ``net.cnnviz`` must not replace the network.
- **Only regular files are replaced.** A character device, a FIFO or a
  folder at the target is refused, so ``-o /dev/tty`` never turns a device
  node into a regular file, and nothing blocks on a FIFO.
- **Atomic, and nothing left behind.** The bytes go to a temporary file in
  the target's folder, are flushed to disk, and are renamed over the target;
  a failure removes the temporary file (and, for ONNX, the folder its
  exporter wrote into), so a failed write leaves the old file intact and no
  stray file beside it.
- **Stale temporaries are cleaned.** A process killed mid-write leaves its
  temporary file; the next write to the same target removes the ones whose
  process is gone (their names carry the writer's process id).
- **The user's umask.** New files get ``0o666 & ~umask`` (0644 under the
  usual 022), as any other program's would; a replaced file keeps its mode.

Standard library only: the file reader, which must not import torch, uses it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

STACK_SUFFIX = ".cnnviz"
STALE_SECONDS = 24 * 3600
"""A temporary file this old is stale even when a process with its id still runs (the id was reused)."""
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.cnnviz-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


class OutputRefused(ValueError):
    """A target that must not be written; the message says why and what to do instead."""


# ------------------------------------------------------------------ checks
def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def looks_like_stack(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file holding a cnnviz stack (or is named like one).

    A ``.cnnviz`` file counts whatever its content; any other file counts when
    its text is a JSON object whose ``format`` is ``cnnviz.stack``, readable or
    not, so that a broken stack is protected as much as a good one.
    """
    p = Path(path)
    try:
        info = p.stat()
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if p.suffix.lower() == STACK_SUFFIX:
        return True
    if info.st_size > (1 << 20) or info.st_size < 2:
        return False
    try:
        with p.open("rb") as fh:
            head = fh.read(1 << 20)
        doc = json.loads(head.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("format") == "cnnviz.stack"


def check_target(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), force: bool = False,
                 what: str = "the output") -> Path:
    """The path to write (a symbolic link resolved to the file it names), or :class:`OutputRefused`.

    Refused: a target that is one of ``inputs`` (the file being read), an
    existing stack file without ``force``, anything that is not a regular
    file, a folder that does not exist or cannot be written.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    for source in inputs:
        if source is not None and _same(target, Path(source)):
            raise OutputRefused(f"{given} is the file being read; {what} would destroy it: choose another name")
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputRefused(f"cannot write {given}: {exc.strerror or exc}") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise OutputRefused(f"cannot write {given}: it is a folder; name a file inside it")
        if not stat.S_ISREG(info.st_mode):
            raise OutputRefused(f"cannot write {given}: it is not a regular file (a device, FIFO or socket), "
                                f"and cnnviz replaces only regular files")
        if not force and looks_like_stack(target):
            raise OutputRefused(f"{given} holds a cnnviz stack, which {what} would replace: choose another name, "
                                f"or add --force to replace it")
    folder = target.parent
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {given}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"cannot write {given}: the folder {folder} is not writable")
    return target


# ------------------------------------------------------------------ writing
_umask: int | None = None


def umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux's /proc)."""
    global _umask
    if _umask is None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Umask:"):
                        _umask = int(line.split()[1], 8)
                        break
        except (OSError, ValueError, IndexError):
            pass
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
    return _umask


def new_file_mode() -> int:
    """The mode a new file gets: 0o666 less the umask (0o644 under the usual 022)."""
    return 0o666 & ~umask()


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.cnnviz-{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temporaries(target: Path) -> int:
    """Remove the temporary files earlier, killed writes to ``target`` left beside it; how many."""
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = _TMP_RE.match(entry.name)
        if not match or match.group("name") != target.name:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                continue
            if _alive(int(match.group("pid"))) and now - info.st_mtime < STALE_SECONDS:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def ensure_replaceable(target: Path) -> None:
    """OutputRefused unless ``target`` is absent or a regular file: the last check before a rename."""
    try:
        info = target.stat()
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise OutputRefused(f"cannot write {target}: it is {kind}, and cnnviz replaces only regular files")


def final_mode(target: Path) -> int:
    """The mode the written file gets: the replaced file's, or the umask's for a new one."""
    try:
        info = target.stat()
    except OSError:
        return new_file_mode()
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else new_file_mode()


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[str], None], *, sync: bool = True) -> Path:
    """Write ``data`` (bytes, or a function that writes a file at the path it is given) to ``path`` atomically.

    A symbolic link is followed, so the file it names is replaced, not the
    link. On any failure the temporary file is removed and ``path`` is as it was.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    ensure_replaceable(target)
    clean_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        if callable(data):
            os.close(fd)
            fd = -1
            data(tmp)
            if sync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
        else:
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                fh.write(data)
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
        os.chmod(tmp, final_mode(target))
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return given


@contextlib.contextmanager
def scratch_folder(target: Path) -> Iterator[Path]:
    """A private folder beside ``target`` for a writer that may drop extra files (ONNX's external data),
    removed with everything in it afterwards, whatever happens."""
    clean_stale_temporaries(target)
    folder = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
