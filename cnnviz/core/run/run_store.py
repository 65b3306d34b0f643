"""The window's folder of run records: listing, the size cap, deleting, and what differs between two stacks.

Each training run in the window is one record (:mod:`.records`: JSON lines, never pickle) in
:func:`default_folder` (platformdirs' data folder, ``runs/``). Nothing here trusts the folder:

- :func:`list_runs` reads every ``*.run.jsonl`` through :func:`records.read`; a file that cannot be
  used (not a record, hostile, a link, a device) is listed as unreadable with the reason, never raised.
  A cache keyed by each file's size, modification time and inode makes listing again cheap.
- :func:`prune` keeps the folder under :data:`MAX_TOTAL_BYTES` and :data:`MAX_RUNS`, removing the
  least recently written records first, never the ones named in ``keep`` (the run being written).
- :func:`delete` removes one record of the folder, and nothing else.
- :func:`stack_diff` says what differs between two stacks (input, loss, layers added, removed and
  changed, by path, blocks included), :func:`config_diff` between two training configurations.

Standard library only; no Qt, no torch.
"""
from __future__ import annotations

import difflib
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Layer, Stack, TrainingConfig
from cnnviz.core.run import records

APP_NAME = "cnnviz"
MAX_TOTAL_BYTES = 200 << 20
"""200 MiB of records in all; beyond it the oldest go first."""
MAX_RUNS = 500
"""At most this many records; beyond it the oldest go first."""


class RunStoreError(OSError):
    """A record that cannot be deleted; the message says why."""


def default_folder() -> Path:
    """Where the window keeps its run records: ``<platformdirs user data dir>/runs`` (not created here)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "runs"


# ------------------------------------------------------------------ listing
@dataclass(frozen=True)
class RunEntry:
    """One record of the folder as the Runs panel lists it; ``problem`` is why it cannot be used, or None."""

    path: Path
    size: int
    modified: float
    problem: str | None = None
    stack_name: str = ""
    started: str = ""
    steps: int | None = None
    accuracy: float | None = None
    """The final held-out accuracy (the ``done`` line's), else the last held-out evaluation's, else None."""
    finished: bool = False
    """The record has its ``done`` (or ``error``) line; an unfinished one is being written or was cut short."""
    error: str = ""
    """The message of the record's ``error`` line (a run that failed), or ""."""
    record: records.RunRecord | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def readable(self) -> bool:
        return self.problem is None


def _summary(path: Path, size: int, modified: float, record: records.RunRecord) -> RunEntry:
    last_eval = next((e for e in reversed(record.evals) if e.get("split", "test") == "test"), None)
    accuracy = steps = None
    done = record.done
    if done is not None:
        accuracy = done.get("test_accuracy")
        steps = done.get("steps")
    if accuracy is None and last_eval is not None:
        accuracy = last_eval.get("accuracy")
    if not isinstance(steps, int) or isinstance(steps, bool):
        steps = max((e["step"] for e in record.events if e["event"] in ("step", "eval")), default=None)
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool) or not 0 <= accuracy <= 1:
        accuracy = None
    error = record.error.get("message") if record.error is not None else ""
    return RunEntry(path, size, modified, None, record.stack.name, record.started, steps, accuracy,
                    done is not None or record.error is not None, str(error or "")[:500], record)


def _entry(path: Path, cache: dict | None, keep_records: bool = True) -> RunEntry:
    try:
        info = os.lstat(path)
    except OSError as exc:
        return RunEntry(path, 0, 0.0, f"cannot be read ({exc.strerror or exc})")
    size, modified = int(info.st_size), float(info.st_mtime)
    if stat.S_ISLNK(info.st_mode):
        return RunEntry(path, size, modified, "a link, not a record: records in this folder are plain files")
    if not stat.S_ISREG(info.st_mode):
        return RunEntry(path, 0, modified, "not a regular file (a folder, device, FIFO or socket is never read)")
    key = (info.st_size, info.st_mtime_ns, info.st_ino)
    key = (*key, keep_records)
    if cache is not None:
        hit = cache.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
    try:
        entry = _summary(path, size, modified, records.read(path))
        if not keep_records:
            entry = replace(entry, record=None)
    except records.RecordError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        entry = RunEntry(path, size, modified, reason.removeprefix(prefix))
    if cache is not None:
        cache[path] = (key, entry)
    return entry


def _record_paths(folder: Path) -> list[Path]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [folder / n for n in names if n.endswith(records.SUFFIX) and not n.startswith(".")]


def _newest_first(entry: RunEntry) -> tuple:
    return (entry.started or "", entry.modified, entry.name)


def list_runs(folder: str | os.PathLike, cache: dict | None = None, keep_records: bool = True) -> list[RunEntry]:
    """Every record in ``folder``, newest first (by the time it started, else when it was written); never raises.

    ``cache`` (a dict the caller keeps) holds what was read, keyed by each file's size, time and inode,
    so listing again reads only the records written since. ``keep_records=False``: the entries hold
    only the summary (``record`` None), so a long list costs little memory; read one with :func:`records.read`.
    """
    where = Path(folder)
    paths = _record_paths(where)
    entries = [_entry(p, cache, keep_records) for p in paths]
    if cache is not None:
        for stale in set(cache) - set(paths):
            del cache[stale]
    return sorted(entries, key=_newest_first, reverse=True)


# ------------------------------------------------------------------ the cap, deleting
def prune(folder: str | os.PathLike, *, max_bytes: int = MAX_TOTAL_BYTES, max_runs: int = MAX_RUNS,
          keep: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Remove the least recently written records until ``folder`` holds at most ``max_runs`` of at most
    ``max_bytes`` in all; never one in ``keep``. The paths removed (a file that cannot be removed is skipped)."""
    where = Path(folder)
    kept = {os.path.abspath(p) for p in keep}
    files: list[tuple[float, str, int, Path]] = []
    for path in _record_paths(where):
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            files.append((info.st_mtime, path.name, int(info.st_size) if stat.S_ISREG(info.st_mode) else 0, path))
    files.sort()
    total, count = sum(f[2] for f in files), len(files)
    removed: list[Path] = []
    for _, _, size, path in files:
        if total <= max_bytes and count <= max_runs:
            break
        if os.path.abspath(path) in kept:
            continue
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
        total -= size
        count -= 1
    return removed


def delete(path: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Remove the record ``path`` of ``folder`` (a link is removed, never what it names);
    :class:`RunStoreError` for anything else: another folder, not a record's name, a folder, gone."""
    p = Path(path)
    if Path(os.path.abspath(p.parent)) != Path(os.path.abspath(folder)):
        raise RunStoreError(f"{p} is not in the runs folder {folder}; only its records are deleted here")
    if not p.name.endswith(records.SUFFIX) or p.name.startswith("."):
        raise RunStoreError(f"{p.name} is not a run record's name (*{records.SUFFIX})")
    try:
        info = os.lstat(p)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            raise RunStoreError(f"{p.name} is not a file; only records are deleted here")
        os.unlink(p)
    except RunStoreError:
        raise
    except FileNotFoundError:
        raise RunStoreError(f"{p.name} is already gone") from None
    except OSError as exc:
        raise RunStoreError(f"cannot delete {p.name}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------ what differs
class _Unset:
    """A keyword a layer does not set (its default, or inferred)."""

    _instance: _Unset | None = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(default)"

    def __bool__(self) -> bool:
        return False


UNSET = _Unset()


@dataclass(frozen=True)
class KeywordChange:
    """One keyword that differs: its value in the first stack and in the second (:data:`UNSET` when not set)."""

    key: str
    a: Any
    b: Any

    def text(self) -> str:
        return f"{self.key}: {_value(self.a)} → {_value(self.b)}"


@dataclass(frozen=True)
class LayerChange:
    """A layer only in the first stack (``removed``), only in the second (``added``), or in both and
    different (``changed``: its type, label or keywords). Paths are each stack's own."""

    kind: str
    a_path: LayerPath | None
    b_path: LayerPath | None
    a_type: str | None
    b_type: str | None
    keywords: tuple[KeywordChange, ...] = ()

    def text(self) -> str:
        if self.kind == "added":
            return f"added {self.b_path.words()}: {self.b_type}"
        if self.kind == "removed":
            return f"removed {self.a_path.words()}: {self.a_type}"
        where = self.a_path.words() if self.a_path == self.b_path else \
            f"{self.a_path.words()} (now {self.b_path.words()})"
        what = "; ".join(k.text() for k in self.keywords)
        return f"changed {where} ({self.b_type}): {what}"


@dataclass(frozen=True)
class StackDiff:
    """What differs between two stacks; empty when they define the same network."""

    name: tuple[str, str] | None = None
    input: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    loss: tuple[KeywordChange, ...] = ()
    layers: tuple[LayerChange, ...] = ()

    @property
    def empty(self) -> bool:
        return self.input is None and not self.loss and not self.layers

    def lines(self) -> list[str]:
        """One sentence per difference, in reading order (plain text: names are data)."""
        out = []
        if self.name is not None:
            out.append(f"name: {_value(self.name[0])} → {_value(self.name[1])}")
        if self.input is not None:
            a, b = self.input
            out.append(f"input: {'×'.join(map(str, a))} → {'×'.join(map(str, b))}")
        out += [f"loss {k.text()}" for k in self.loss]
        out += [c.text() for c in self.layers]
        return out


def _value(v: Any) -> str:
    if v is UNSET:
        return "(default)"
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:g}"
    text = repr(v) if isinstance(v, str) else str(v)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= 80 else text[:79] + "…"


def keyword_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[KeywordChange, ...]:
    """The keywords set differently in ``a`` and ``b`` (sorted by name; :data:`UNSET` where one does not set it)."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key, UNSET), b.get(key, UNSET)
        if key in a and key in b and type(va) is type(vb) and va == vb:
            continue
        if va is UNSET and vb is UNSET:
            continue
        out.append(KeywordChange(str(key), va, vb))
    return tuple(out)


def _diff_lists(a_layers, b_layers, a_path, b_path, out: list[LayerChange]) -> None:
    """Align two lists of layers (a layer inserted is one added, not every one after it changed), then
    compare the pairs, going into blocks. ``a_path``/``b_path`` make a list's paths from an index.

    First by content, so the layers alike in both are matched with each other; then, in each stretch
    between them, by type, so a keyword edit is one layer changed rather than one removed and one added."""
    by_content = difflib.SequenceMatcher(None, list(a_layers), list(b_layers), autojunk=False)
    for tag, i1, i2, j1, j2 in by_content.get_opcodes():
        if tag == "equal":
            continue
        by_type = difflib.SequenceMatcher(None, [x.type for x in a_layers[i1:i2]],
                                          [x.type for x in b_layers[j1:j2]], autojunk=False)
        for kind, k1, k2, m1, m2 in by_type.get_opcodes():
            if kind == "equal":
                for i, j in zip(range(i1 + k1, i1 + k2), range(j1 + m1, j1 + m2)):
                    _diff_layer(a_layers[i], b_layers[j], a_path(i), b_path(j), out)
                continue
            for i in range(i1 + k1, i1 + k2):
                out.extend(_all(a_layers[i], a_path(i), "removed"))
            for j in range(j1 + m1, j1 + m2):
                out.extend(_all(b_layers[j], b_path(j), "added"))


def _all(layer: Layer, path: LayerPath, kind: str) -> list[LayerChange]:
    """A layer added or removed: it, and (for a block) every layer inside it."""
    result = []
    for sub_path, sub in layer.walk(path):
        if kind == "added":
            result.append(LayerChange(kind, None, sub_path, None, sub.type))
        else:
            result.append(LayerChange(kind, sub_path, None, sub.type, None))
    return result


def _diff_layer(a: Layer, b: Layer, pa: LayerPath, pb: LayerPath, out: list[LayerChange]) -> None:
    changes = list(keyword_changes(a.params, b.params))
    if (a.name or None) != (b.name or None):
        changes.insert(0, KeywordChange("label", a.name or UNSET, b.name or UNSET))
    a_lists, b_lists = dict(a.lists()), dict(b.lists())
    if a.type == "Concat" and len(a.branches) != len(b.branches):
        changes.append(KeywordChange("branches", len(a.branches), len(b.branches)))
    if changes:
        out.append(LayerChange("changed", pa, pb, a.type, b.type, tuple(changes)))
    for key in list(a_lists) + [k for k in b_lists if k not in a_lists]:
        la, lb = a_lists.get(key, ()), b_lists.get(key, ())
        _diff_lists(la, lb, lambda i, k=key: pa.child(k, i), lambda j, k=key: pb.child(k, j), out)


def stack_diff(a: Stack, b: Stack) -> StackDiff:
    """What differs between ``a`` and ``b``: the input shape, the loss (type and keywords), and the layers
    added, removed and changed (with each keyword's two values), by path, blocks included. The stacks'
    names are reported too, though they do not make two networks differ."""
    name = (a.name, b.name) if a.name != b.name else None
    shape = (a.input.shape, b.input.shape) if a.input.shape != b.input.shape else None
    loss = list(keyword_changes(a.loss.params, b.loss.params))
    if a.loss.type != b.loss.type:
        loss.insert(0, KeywordChange("type", a.loss.type, b.loss.type))
    layers: list[LayerChange] = []
    _diff_lists(a.layers, b.layers, LayerPath, LayerPath, layers)
    return StackDiff(name, shape, tuple(loss), tuple(layers))


def config_diff(a: TrainingConfig, b: TrainingConfig) -> tuple[KeywordChange, ...]:
    """The training settings that differ between two runs (every field, also those ``as_dict`` leaves out at
    their default, such as a constant ``schedule``: a record without one ran at a constant rate)."""
    fields = TrainingConfig.__dataclass_fields__
    return keyword_changes({f: getattr(a, f) for f in fields}, {f: getattr(b, f) for f in fields})
