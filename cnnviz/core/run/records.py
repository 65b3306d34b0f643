"""The run record: what ``cnnviz train --record DIR`` writes, and what the window reads back.

A record is JSON lines in UTF-8, one object per line:

1. the header, ``{"format": "cnnviz.run", "version": 1, "cnnviz": "0.1.0", "stack": {...},
   "config": {...}, "device": "cpu", "started": "2026-12-01T11:34:30Z"}``: ``stack`` is the stack's
   ``to_dict()`` (the file form without ``format``/``version``), ``config`` the training settings
   the run used (``TrainingConfig.as_dict()``), ``device`` where the work ran, ``started`` when (UTC);
2. the ``step`` and ``eval`` lines ``cnnviz train --json`` prints, in order;
3. last, the ``done`` line (with ``confusion``, ``per_class_accuracy`` and ``classes``), or the
   ``error`` line of a run that failed.

Writing goes through :mod:`cnnviz.core.model.outputs` (never over the stack being trained nor any
other stack file, only regular files replaced, atomic). Reading trusts nothing: a regular file of
at most :data:`MAX_RECORD_BYTES`, JSON only (never pickle, nothing evaluated), no duplicate keys, no
NaN/Infinity, nesting and numbers bounded, the stack validated by the stack-file reader and the
``done`` line's matrix checked for shape and counts. Every refusal is a :class:`RecordError`
naming the line. Standard library only (no torch, no numpy): the window reads records cheaply.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.core.model import files, outputs
from cnnviz.core.model.reading import Unreadable, read_bounded
from cnnviz.core.model.stack import SCHEDULES, Stack, TrainingConfig

FORMAT = "cnnviz.run"
VERSION = 1
SUFFIX = ".run.jsonl"
MAX_RECORD_BYTES = 64 << 20
"""64 MiB: a million progress lines, or the matrix of a few thousand classes; far beyond any real run."""
MAX_DEPTH = 16
MAX_DIGITS = 40
EVENTS = ("step", "eval", "done", "error")
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and the line."""


# ------------------------------------------------------------------ writing
def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def header(stack: Stack, config: TrainingConfig, device: str, started: str | None = None) -> dict[str, Any]:
    """The record's first line."""
    from cnnviz import __version__

    return {"format": FORMAT, "version": VERSION, "cnnviz": __version__, "stack": stack.to_dict(),
            "config": config.as_dict(), "device": device, "started": started or utc_now()}


def file_name(source: str | os.PathLike | None, started: str, folder: str | os.PathLike | None = None) -> str:
    """``<stack file's stem>-<started, compact>.run.jsonl``; the stem reduced to safe characters (a
    file name never comes from the stack's own, untrusted, text). With ``folder``, a name not yet
    taken there (``-2``, ``-3``, … for runs started in the same second)."""
    stem = Path(source).stem if source else "stack"
    stem = _NAME_RE.sub("_", stem).strip("._")[:64] or "stack"
    stamp = re.sub(r"[^0-9TZ]", "", started)[:32]
    name = f"{stem}-{stamp}{SUFFIX}"
    for n in range(2, 1000):
        if folder is None or not os.path.lexists(Path(folder) / name):
            break
        name = f"{stem}-{stamp}-{n}{SUFFIX}"
    return name


def target_in(folder: str | os.PathLike, source: str | os.PathLike | None, started: str) -> Path:
    """Where a record goes in ``folder`` (checked, not created): OutputRefused when ``folder`` is a file
    (a stack file above all), cannot be made or written, or the name is taken by a stack file."""
    where = Path(folder)
    try:
        info = where.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise outputs.OutputRefused(f"cannot write a record in {where}: {exc.strerror or exc}") from None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        if outputs.looks_like_stack(where):
            raise outputs.OutputRefused(f"{where} is a cnnviz stack file; --record takes a folder to write the run "
                                        f"record into, and never replaces a stack: name a folder")
        raise outputs.OutputRefused(f"{where} is not a folder; --record takes a folder to write the run record into")
    if info is None:
        parent = where.parent
        if not parent.is_dir():
            raise outputs.OutputRefused(f"cannot make the folder {where}: {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise outputs.OutputRefused(f"cannot make the folder {where}: {parent} is not writable")
        return where / file_name(source, started)
    target = where / file_name(source, started, where)
    return outputs.check_target(target, inputs=(source,), what="the run record")


def dumps(head: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> bytes:
    lines = [json.dumps(dict(head), ensure_ascii=False, allow_nan=False)]
    lines += [json.dumps(dict(e), ensure_ascii=False, allow_nan=False) for e in events]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"the record would be {len(data):,} bytes; records are at most {MAX_RECORD_BYTES:,}")
    return data


def write(path: str | os.PathLike, head: Mapping[str, Any], events: Iterable[Mapping[str, Any]], *,
          inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write a record at ``path`` atomically (its folder made if absent; never over ``inputs`` or a stack)."""
    data = dumps(head, events)
    target = Path(path)
    target.parent.mkdir(exist_ok=True)
    outputs.check_target(target, inputs=tuple(inputs), what="the run record")
    return Path(outputs.atomic_write(target, data))


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class RunRecord:
    """A record read back: the header's parts, every event, and the last line."""

    header: dict[str, Any]
    stack: Stack
    config: TrainingConfig
    device: str
    started: str
    events: tuple[dict[str, Any], ...]
    done: dict[str, Any] | None
    error: dict[str, Any] | None

    @property
    def steps(self) -> tuple[dict[str, Any], ...]:
        return tuple(e for e in self.events if e["event"] == "step")

    @property
    def evals(self) -> tuple[dict[str, Any], ...]:
        return tuple(e for e in self.events if e["event"] == "eval")


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"a number with {len(text.lstrip('-')):,} digits; records hold at most {MAX_DIGITS}")
    return int(text)


def _check_tree(doc: Any) -> None:
    """Nesting at most MAX_DEPTH levels, and text that is Unicode (no lone UTF-16 surrogate)."""
    todo = [(doc, 1)]
    while todo:
        item, d = todo.pop()
        if d > MAX_DEPTH:
            raise _Refused(f"nested too deeply; records nest at most {MAX_DEPTH} levels")
        if isinstance(item, dict):
            todo.extend((k, d) for k in item)
            todo.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, d + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("the text holds half of a UTF-16 surrogate pair, which is not a character") from None


def _parse_line(text: str) -> Any:
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_int)
    except _Refused as exc:
        raise _Refused(exc.message) from None
    except json.JSONDecodeError as exc:
        raise _Refused(f"not valid JSON ({exc.msg}, column {exc.colno}); each line of a record is one JSON "
                       f"object") from None
    except RecursionError:
        raise _Refused(f"nested too deeply; records nest at most {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise _Refused(f"not readable as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Refused(f"expected a JSON object, got {type(doc).__name__}")
    _check_tree(doc)
    return doc


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fraction(v: Any) -> bool:
    return v is None or (_number(v) and 0 <= v <= 1)


def _check_header(doc: dict[str, Any]) -> tuple[Stack, TrainingConfig, str, str]:
    fmt = doc.get("format")
    if fmt != FORMAT:
        shown = repr(fmt)[:40] if fmt is not None else "none"
        raise _Refused(f"not a cnnviz run record: the first line's format is {shown}, expected {FORMAT!r}")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Refused("version: expected a whole number from 1")
    if version > VERSION:
        raise _Refused(f"version {version}: written by a newer cnnviz (this one reads up to {VERSION})")
    stack_doc = doc.get("stack")
    if not isinstance(stack_doc, dict):
        raise _Refused("stack: expected the stack as an object")
    try:
        stack = files.from_dict({**stack_doc, "format": files.FORMAT, "version": files.VERSION})
    except files.StackFileError as exc:
        where = f"stack.{exc.location}" if exc.location else "stack"
        raise _Refused(f"{where}: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001  (the stack reader has let a value of the wrong kind through)
        raise _Refused(f"stack: not a usable stack ({type(exc).__name__}: {str(exc)[:80]})") from None
    config = doc.get("config")
    fields = TrainingConfig.__dataclass_fields__
    if not isinstance(config, dict) or any(k not in fields for k in config):
        unknown = sorted(k for k in config if k not in fields) if isinstance(config, dict) else None
        raise _Refused(f"config: unknown settings {unknown[:3]}" if unknown else "config: expected an object")
    for key, value in config.items():
        expected = type(fields[key].default)
        ok = isinstance(value, str) if expected is str else (_number(value) and (expected is float or
                                                                                  isinstance(value, int)))
        if not ok:
            raise _Refused(f"config.{key}: expected {expected.__name__}, got {type(value).__name__}")
    if config.get("schedule", "constant") not in SCHEDULES:  # absent in a record of a constant rate
        raise _Refused(f"config.schedule: expected one of {', '.join(SCHEDULES)}, got {config['schedule'][:40]!r}")
    device, started = doc.get("device"), doc.get("started")
    if not isinstance(device, str) or not isinstance(started, str) or len(device) > 64 or len(started) > 64:
        raise _Refused("device and started: expected short text")
    return stack, TrainingConfig(**config), device, started


def _check_event(doc: dict[str, Any]) -> None:
    kind = doc.get("event")
    if kind not in EVENTS:
        raise _Refused(f"event: expected one of {', '.join(EVENTS)}, got {repr(kind)[:40]}")
    if kind in ("step", "eval"):
        step = doc.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise _Refused(f"{kind}.step: expected a whole number from 0")
        if not _fraction(doc.get("accuracy")) or not (doc.get("loss") is None or _number(doc.get("loss"))):
            raise _Refused(f"{kind}: loss must be a number or null and accuracy between 0 and 1 or null")
    elif kind == "done":
        _check_done(doc)
    elif not isinstance(doc.get("message"), str):
        raise _Refused("error.message: expected text")


def _check_done(doc: dict[str, Any]) -> None:
    if "confusion" not in doc:
        return  # a done line from before the matrix: nothing more to check
    matrix, per_class, classes = doc.get("confusion"), doc.get("per_class_accuracy"), doc.get("classes")
    if not isinstance(matrix, list) or not matrix:
        raise _Refused("done.confusion: expected a non-empty list of rows")
    k = len(matrix)
    for t, row in enumerate(matrix):
        if not isinstance(row, list) or len(row) != k:
            raise _Refused(f"done.confusion[{t}]: expected a row of {k} counts (the matrix is {k}×{k})")
        for p, count in enumerate(row):
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise _Refused(f"done.confusion[{t}][{p}]: expected a count (a whole number from 0), got "
                               f"{repr(count)[:40]}")
    if not isinstance(classes, list) or len(classes) != k or not all(isinstance(c, str) for c in classes):
        raise _Refused(f"done.classes: expected {k} class names, one per row of the matrix")
    if not isinstance(per_class, list) or len(per_class) != k or not all(_fraction(a) for a in per_class):
        raise _Refused(f"done.per_class_accuracy: expected {k} values between 0 and 1 (or null)")
    for t, (row, a) in enumerate(zip(matrix, per_class)):
        if (a is None) != (sum(row) == 0):
            raise _Refused(f"done.per_class_accuracy[{t}]: null exactly when the class has no held-out example")
    if not _fraction(doc.get("test_accuracy")):
        raise _Refused("done.test_accuracy: expected a value between 0 and 1")


def loads(data: bytes, path: str | os.PathLike | None = None, max_bytes: int = MAX_RECORD_BYTES) -> RunRecord:
    """Parse a record's bytes; :class:`RecordError` (never another exception) if it cannot be used."""
    name = f"{path}: " if path is not None else ""
    if len(data) > max_bytes:
        raise RecordError(f"{name}the record is {len(data):,} bytes; records are at most {max_bytes:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name}not UTF-8 text (byte {exc.start}); a record is JSON lines in UTF-8 (a pickle "
                          f"or other binary file is never read)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise RecordError(f"{name}the record is empty; its first line is the header")
    events: list[dict[str, Any]] = []
    try:
        number = 1
        head = _parse_line(lines[0])
        stack, config, device, started = _check_header(head)
        for number, line in enumerate(lines[1:], start=2):
            doc = _parse_line(line)
            _check_event(doc)
            if events and events[-1]["event"] in ("done", "error"):
                raise _Refused(f"a line after the {events[-1]['event']} line, which ends a record")
            events.append(doc)
    except _Refused as exc:
        raise RecordError(f"{name}line {number}: {exc.message}") from None
    last = events[-1] if events else None
    done = last if last is not None and last["event"] == "done" else None
    error = last if last is not None and last["event"] == "error" else None
    return RunRecord(head, stack, config, device, started, tuple(events), done, error)


def read(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> RunRecord:
    """Read a record from a regular file of at most ``max_bytes``; :class:`RecordError` if it cannot be used."""
    p = Path(path)
    try:
        data = read_bounded(p, max_bytes, "run record", "records")
    except Unreadable as exc:
        raise RecordError(f"{p}: {exc.reason}") from None
    return loads(data, p, max_bytes)
