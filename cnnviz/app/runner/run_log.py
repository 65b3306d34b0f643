"""Every training run in the window, recorded: :class:`RunLog` turns the worker's signals into run records.

A *run* is one line of weights: it begins with the first training progress after a build from the
seed (or from a weights file) or a Reset, and ends when those weights are discarded: a build that
keeps none of them, a Reset, steps going back, the window closing. A build that keeps trained
weights (an edit of a trained network: :class:`~.messages.Built` ``kept``) goes on with the same run,
as the Curves view does; the header then holds the stack and settings last trained.

The record (:mod:`cnnviz.core.run.records`: header, ``step`` and ``eval`` lines, ``done``) is written
whole, atomically (a temporary file renamed over it), at every held-out evaluation, when training
pauses, when the stack cannot run, and when the run ends, with the final held-out metrics and
confusion matrix (the run's last evaluation) in its ``done`` line. A run cut short (the program
killed) keeps its last checkpoint, without ``done``.

**Off the GUI thread.** The slots only append small dicts to lists; each checkpoint hands the writer
thread a copy of those lists (references: microseconds) and the writer serialises, writes, fsyncs
and keeps the folder under its cap (:func:`~cnnviz.core.run.run_store.prune`, never the record being
written). The latest checkpoint of a record wins: the writer skips those superseded while it was busy.

**Caps.** At most :data:`MAX_STEP_POINTS` progress points and :data:`MAX_EVAL_POINTS` evaluations
are kept per run (beyond, every other one is dropped, the first and the latest kept: the curve keeps
its shape over the whole run), and a record is at most :data:`MAX_RUN_BYTES` (the writer thins
further, and leaves out a confusion matrix that alone would not fit).

**Errors** (disk full, a folder that cannot be written) become one sentence on :attr:`RunLog.failed`
for the status bar, once until a write succeeds again; never an exception in the GUI.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from cnnviz.core.model import outputs
from cnnviz.core.model.stack import Stack, TrainingConfig
from cnnviz.core.run import records, run_store

log = logging.getLogger("cnnviz.runner")

MAX_STEP_POINTS = 20_000
MAX_EVAL_POINTS = 5_000
MAX_RUN_BYTES = 8 << 20
"""8 MiB per record: 20,000 progress points take about 1.5 MiB."""

Context = Callable[[], "tuple[Stack, TrainingConfig, str]"]


def _finite(x: float | None, digits: int = 6) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(x) else None


def _fraction(x: float | None) -> float | None:
    v = _finite(x, 4)
    return v if v is not None and 0 <= v <= 1 else None


def thin_kind(lines: list[bytes], evals: list[bool], kind: bool) -> tuple[list[bytes], list[bool]]:
    """``lines`` with every other line of one kind (``kind`` True: the evaluations) dropped, the first and
    the last of that kind kept, the others all kept, in order. ``evals`` says which line is an evaluation.
    Numpy and ``itertools.compress``: a fraction of a millisecond for 20,000 lines."""
    flags = np.fromiter(evals, dtype=bool, count=len(evals))
    mine = np.flatnonzero(flags == kind)
    if len(mine) < 3:
        return list(lines), list(evals)
    keep = np.ones(len(lines), dtype=bool)
    keep[mine[1:-1:2]] = False
    mask = keep.tolist()
    return list(itertools.compress(lines, mask)), list(itertools.compress(evals, mask))


def done_line(steps: int, device: str, last_progress, evaluation, ended: str) -> dict[str, Any]:
    """The ``done`` line: the run's step count and, from its last held-out evaluation, the final metrics."""
    done: dict[str, Any] = {"event": "done", "steps": int(steps), "device": device,
                            "final_loss": _finite(last_progress.loss) if last_progress is not None else None,
                            "test_accuracy": None, "ended": ended}
    if evaluation is not None:
        done.update(test_accuracy=_fraction(evaluation.accuracy), test_loss=_finite(evaluation.loss),
                    evaluated_step=int(evaluation.step))
        if evaluation.confusion:
            done["confusion"] = [[int(c) for c in row] for row in evaluation.confusion]
            done["per_class_accuracy"] = [None if a is None else _fraction(a) for a in
                                          (evaluation.per_class_accuracy or [None] * len(evaluation.confusion))]
            classes = list(evaluation.classes) or [str(i) for i in range(len(evaluation.confusion))]
            done["classes"] = [str(c) for c in classes]
        if evaluation.counted is not None and evaluation.counted != evaluation.n:
            done["counted"] = int(evaluation.counted)
    return done


def line(event: dict[str, Any]) -> bytes:
    """A progress point or evaluation as the record holds it: its JSON line, serialised once when it arrives
    (microseconds), so a checkpoint only joins bytes (one C call: the writer thread takes no GIL time
    worth a frame from the GUI thread)."""
    return json.dumps(event, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


def serialise(head: dict, lines: list[bytes], evals: list[bool], done: dict | None,
              max_bytes: int = MAX_RUN_BYTES) -> bytes:
    """The record's bytes, at most ``max_bytes``: progress points thinned (then evaluations, then the done
    line's matrix left out) until it fits; :class:`records.RecordError` if even the header does not."""
    first = records.dumps(head, ())
    while True:
        tail = records.dumps({}, [done]).split(b"\n", 1)[1] if done is not None else b""
        size = len(first) + len(tail) + sum(map(len, lines))
        if size <= max_bytes:
            return b"".join([first, *lines, tail])
        n_evals = sum(evals)
        n_steps = len(evals) - n_evals
        if n_steps > 2 and n_steps >= n_evals:
            lines, evals = thin_kind(lines, evals, False)
        elif n_evals > 2:
            lines, evals = thin_kind(lines, evals, True)
        elif n_steps > 2:
            lines, evals = thin_kind(lines, evals, False)
        elif done is not None and "confusion" in done:
            done = {k: v for k, v in done.items() if k not in ("confusion", "per_class_accuracy", "classes")}
            done["confusion_left_out"] = "too large for the record"
        else:
            raise records.RecordError(f"the record would be {size:,} bytes; records are at most {max_bytes:,}")


class _Job:
    __slots__ = ("done", "evals", "head", "lines", "path")

    def __init__(self, path: Path, head: dict, lines: list[bytes], evals: list[bool], done: dict | None) -> None:
        self.path, self.head, self.lines, self.evals, self.done = path, head, lines, evals, done


class _Writer:
    """One daemon thread writing records; for each record only the latest job waiting is written."""

    def __init__(self, write: Callable[[_Job], None]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._jobs: dict[Path, _Job] = {}
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                return
            self._jobs[job.path] = job   # a newer checkpoint of the same record replaces the one waiting
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cnnviz run records", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                path = next(iter(self._jobs))
                job = self._jobs.pop(path)
                self._busy = True
            try:
                self._write(job)
            except Exception:
                log.exception("writing the run record %s failed", job.path)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every job waiting is written; False if that took longer than ``timeout`` seconds."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> bool:
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return done


class RunLog(QObject):
    """Records the worker's runs in ``folder``; see the module docstring.

    ``worker`` is the :class:`~.worker.RunWorker` (or any object with its ``ready``, ``progressed``,
    ``evaluated``, ``stateChanged`` and ``refused`` signals); ``current()`` returns the stack, training
    settings and device id of the session being trained (the controller's ``built``), asked at a run's
    first progress and after each build that keeps its weights; ``source()`` the stack file's path, for
    the record's name (None: unsaved). ``background=False`` writes on the calling thread (tests).

    ``failed(message)``: a record could not be written (once, until a write succeeds again).
    ``written(path)``: a record was written (the Runs panel refreshes).
    """

    failed = Signal(str)
    written = Signal(object)
    _wrote = Signal(object, object)  # from the writer thread: the path, and None or the sentence why not

    def __init__(self, worker, current: Context, folder: str | os.PathLike, parent: QObject | None = None, *,
                 source: Callable[[], Any] | None = None, max_run_bytes: int = MAX_RUN_BYTES,
                 max_total_bytes: int = run_store.MAX_TOTAL_BYTES, max_runs: int = run_store.MAX_RUNS,
                 max_step_points: int = MAX_STEP_POINTS, max_eval_points: int = MAX_EVAL_POINTS,
                 background: bool = True) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self._current = current
        self._source = source or (lambda: None)
        self.max_run_bytes = max_run_bytes
        self.max_total_bytes = max_total_bytes
        self.max_runs = max_runs
        self.max_step_points = max(4, int(max_step_points))
        self.max_eval_points = max(4, int(max_eval_points))
        self._writer = _Writer(self._write) if background else None
        self._assigned: set[str] = set()
        self._reported: str | None = None
        self._closed = False
        self._new_run()
        self.path: Path | None = None
        """The record of the run going on, or None (no run, or one not yet trained)."""
        self._wrote.connect(self._on_wrote)
        worker.ready.connect(self._ready)
        worker.progressed.connect(self._progressed)
        worker.evaluated.connect(self._evaluated)
        worker.stateChanged.connect(self._state_changed)
        worker.refused.connect(lambda *_: self.checkpoint())

    # ------------------------------------------------------------ the run
    def _new_run(self) -> None:
        self.path = None
        self._head: dict | None = None
        self._device = ""
        self._lines: list[bytes] = []   # the step and eval lines, in the order they came
        self._is_eval: list[bool] = []
        self._n_evals = 0
        self._last_progress = None
        self._last_eval = None
        self._last_step = -1
        self._dirty = False
        self._context_stale = False

    @property
    def active(self) -> bool:
        return self.path is not None

    @property
    def points(self) -> tuple[int, int]:
        """The progress points and evaluations the run's record holds now."""
        return len(self._lines) - self._n_evals, self._n_evals

    def _context(self):
        """``current()``, or None after saying why not (a bug in the caller: logged, the run not recorded)."""
        try:
            return self._current()
        except Exception as exc:
            log.exception("the run's stack could not be read for its record")
            self._on_wrote(None, f"The run was not recorded: {exc}")
            return None

    def _begin(self) -> bool:
        context = self._context()
        if context is None:
            return False
        stack, config, device = context
        started = records.utc_now()
        source = self._source()
        name = records.file_name(source, started, self.folder)
        base, n = name[:-len(records.SUFFIX)], 2
        while name in self._assigned:
            name = f"{base}-{n}{records.SUFFIX}"
            n += 1
        self._assigned.add(name)
        self.path = self.folder / name
        self._device = str(device)
        self._head = records.header(stack, config, self._device, started)
        return True

    def _refresh_context(self) -> None:
        context = self._context()
        if context is None:
            return
        stack, config, device = context
        self._device = str(device)
        self._head = {**self._head, "stack": stack.to_dict(), "config": config.as_dict(), "device": self._device}
        self._context_stale = False

    def end(self, reason: str = "ended") -> None:
        """The run's weights are discarded: write its record with the ``done`` line, and forget it."""
        if self.path is not None:
            last = max(self._last_step, self._last_eval.step if self._last_eval is not None else 0, 0)
            self._submit(done_line(last, self._device, self._last_progress, self._last_eval,
                                   reason))
        self._new_run()

    def checkpoint(self) -> None:
        """Write what the run has so far (without ``done``), if anything new came since the last write."""
        if self.path is not None and self._dirty:
            self._submit(None)

    def _submit(self, done: dict | None) -> None:
        self._dirty = False
        job = _Job(self.path, self._head, self._lines.copy(), self._is_eval.copy(), done)
        if self._writer is not None:
            self._writer.put(job)
        else:
            self._write(job)

    # ------------------------------------------------------------ the worker's signals
    def _ready(self, info) -> None:
        if self._closed:
            return
        if getattr(info, "kept", ""):
            self._context_stale = True   # the same weights, edited: the run goes on
            self.checkpoint()
        else:
            self.end("rebuilt")

    def _state_changed(self, state, step: int) -> None:
        if self._closed:
            return
        value = getattr(state, "value", state)
        if value == "reset":
            self.end("reset")
        elif value == "paused":
            self.checkpoint()

    def _progressed(self, p) -> None:
        if self._closed:
            return
        step = int(p.step)
        if self.path is not None and step <= self._last_step:
            self.end("restarted")   # steps went back: other weights than the run's
        if self.path is None:
            if not self._begin():
                return
        elif self._context_stale:
            self._refresh_context()
        self._last_step, self._last_progress = step, p
        self._lines.append(line({"event": "step", "step": step, "loss": _finite(p.loss),
                                 "accuracy": _fraction(p.accuracy)}))
        self._is_eval.append(False)
        if len(self._lines) - self._n_evals > self.max_step_points:
            self._lines, self._is_eval = thin_kind(self._lines, self._is_eval, False)
        self._dirty = True

    def _evaluated(self, e) -> None:
        if self._closed or self.path is None:
            return   # an evaluation of weights not trained in this window: no run to record it in
        step = int(e.step)
        self._last_eval = e
        self._lines.append(line({"event": "eval", "step": step, "loss": _finite(e.loss),
                                 "accuracy": _fraction(e.accuracy), "split": str(e.split), "n": int(e.n)}))
        self._is_eval.append(True)
        self._n_evals += 1
        if self._n_evals > self.max_eval_points:
            self._lines, self._is_eval = thin_kind(self._lines, self._is_eval, True)
            self._n_evals = sum(self._is_eval)
        self._dirty = True
        self.checkpoint()

    # ------------------------------------------------------------ writing (the writer thread)
    def _write(self, job: _Job) -> None:
        try:
            data = serialise(job.head, job.lines, job.evals, job.done, self.max_run_bytes)
            self.folder.mkdir(parents=True, exist_ok=True)
            target = outputs.check_target(job.path, what="the run record")
            outputs.atomic_write(target, data)
            run_store.prune(self.folder, max_bytes=self.max_total_bytes, max_runs=self.max_runs, keep=(job.path,))
        except (outputs.OutputRefused, records.RecordError) as exc:
            self._wrote.emit(job.path, f"The run was not recorded: {exc}")
        except OSError as exc:
            self._wrote.emit(job.path, f"The run was not recorded in {self.folder}: {exc.strerror or exc}")
        else:
            self._wrote.emit(job.path, None)

    def _on_wrote(self, path: Path, error: str | None) -> None:
        if error is None:
            self._reported = None
            self.written.emit(path)
        elif error != self._reported:
            self._reported = error
            self.failed.emit(error)

    # ------------------------------------------------------------ the end
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every checkpoint handed to the writer is written (tests; closing)."""
        return True if self._writer is None else self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """The window is closing: end the run (its record with ``done``) and wait for the writer, at most
        ``timeout`` seconds. Signals that come later are ignored."""
        if self._closed:
            return True
        self.end("closed")
        self._closed = True
        return True if self._writer is None else self._writer.close(timeout)
