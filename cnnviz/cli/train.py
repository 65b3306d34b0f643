"""``cnnviz train FILE``: headless training with a progress bar or JSON lines (SPEC §2).

Settings come from the command line, then the file's ``training`` block, then
the defaults of :class:`~cnnviz.core.model.stack.TrainingConfig`. A ``cosine``
schedule anneals the learning rate to 0 over the run's steps (``--steps``, else
the file's).

With ``--json`` every line of standard output is one JSON object:
``{"event": "step", ...}`` every ``report`` steps (training loss per sample
and accuracy over those steps), ``{"event": "eval", ...}`` a few times on the
held-out split, and last either ``{"event": "done", "steps", "device",
"final_loss", "test_accuracy", "steps_per_second", ...}`` (``device`` is where
the work ran; ``test_accuracy`` is measured on the held-out split, with its
``confusion`` matrix (rows the true class, columns the predicted one),
``per_class_accuracy`` (null for a class without held-out examples) and the
``classes``; with ``"interrupted": true`` after Ctrl+C) or ``{"event":
"error", "kind", "message", ...}``. Without ``--json``: the device and data on
standard output, a progress bar on standard error, the per-class accuracy and
a summary line at the end. ``--record DIR`` writes the same lines, after a
header, as a run record in ``DIR`` (``core/run/records.py``).

Exit status: 0 done; 1 the stack is invalid or does not fit the data set's
classes (a shape error prints the summary first); 2 the device is absent or
malformed, the data set unknown, or a weights file unusable; 4 training
failed (NaN/Inf, out of memory); 130 interrupted by Ctrl+C (after the done
line). No traceback for any of these. No Qt.
"""
from __future__ import annotations

import json
import math
import signal
import threading
from typing import Any, TextIO

from cnnviz.cli.exits import Exit
from cnnviz.cli.output import write

EXIT_FOR_KIND = {"stack": Exit.INVALID, "device": Exit.USAGE, "data": Exit.USAGE, "weights": Exit.USAGE,
                 "config": Exit.USAGE, "nonfinite": Exit.FAILED, "oom": Exit.FAILED, "layer": Exit.FAILED}
BAR = 24


def _finite(x: float | None, digits: int = 6) -> float | None:
    return round(x, digits) if x is not None and math.isfinite(x) else None


class _Output:
    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out, self.err, self.json = out, err, as_json
        self.tty = bool(getattr(err, "isatty", lambda: False)())
        self.bar_open = False

    def _write(self, stream: TextIO, text: str, *, json_text: bool = False) -> None:
        write(text, stream, json_text=json_text)
        stream.flush()

    def event(self, obj: dict[str, Any]) -> None:
        self._write(self.out, json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n", json_text=True)

    def say(self, text: str) -> None:
        self.end_bar()
        self._write(self.out, text + "\n")

    def warn(self, text: str) -> None:
        self.end_bar()
        self._write(self.err, f"cnnviz train: {text}\n")

    def progress(self, step: int, total: int, loss: float, accuracy: float, rate: float) -> None:
        done = min(1.0, step / total) if total else 1.0
        filled = round(done * BAR)
        line = (f"step {step:>{len(str(total))}}/{total} [{'#' * filled}{'.' * (BAR - filled)}] "
                f"loss {loss:.4f}  accuracy {accuracy:6.1%}  {rate:,.0f} steps/s")
        if self.tty:
            self.err.write("\r")  # the one carriage return cnnviz writes itself: the writer escapes any other
            self._write(self.err, line)
            self.bar_open = True
        else:
            self._write(self.err, line + "\n")

    def end_bar(self) -> None:
        if self.bar_open:
            self._write(self.err, "\n")
            self.bar_open = False


def cmd_train(args, out: TextIO, err: TextIO) -> int:
    """``cnnviz train FILE ...``."""
    from cnnviz.cli import distributed
    from cnnviz.cli.summary import load_stack

    if distributed.wants_launch(args):  # --nproc-per-node: torchrun starts the ranks (SPEC §3.5)
        return distributed.launch(args, _Output(out, err, bool(args.json)), _check_save_weights(args))
    if distributed.in_rank():
        return distributed.run_rank(args, out, err, run=run, output=_Output, fail=_fail)
    return run(load_stack(args.file), args, out, err)


def run(stack, args, out: TextIO, err: TextIO, *, rank=None) -> int:
    """Train ``stack`` as ``args`` asks (attributes that are None fall back to the file, then the defaults).

    ``rank`` (``cli/distributed.py``'s ``RankContext``): one rank of a distributed run, which makes the
    session and installs the signals; only rank 0 writes files, and the ``done`` line has ``world_size``."""
    from cnnviz.core.model.stack import config_with
    from cnnviz.core.run.faults import EngineError, NonFiniteError

    def arg(name: str) -> Any:
        return getattr(args, name, None)

    io = _Output(out, err, bool(arg("json")))
    config = config_with(stack.training, data=arg("data"), steps=arg("steps"), batch_size=arg("batch_size"),
                         lr=arg("lr"), optimizer=arg("optimizer"), device=arg("device"), seed=arg("seed"),
                         schedule=arg("schedule"))  # the session's horizon is config.steps: this run's
    steps = int(config.steps)
    device_id = None
    io_refusal = _check_save_weights(args)
    if io_refusal:
        return _refuse(io, "weights", io_refusal)
    started = None
    record_target = None
    if arg("record") and (rank is None or rank.is_main):
        from cnnviz.core.model import outputs
        from cnnviz.core.run import records

        started = records.utc_now()
        try:
            record_target = records.target_in(arg("record"), arg("file"), started)
        except outputs.OutputRefused as exc:
            return _refuse(io, "record", str(exc))
    too_big = _fits_before_torch(stack, config)
    if too_big is not None:
        return _fail(io, too_big)

    from cnnviz.core.run import engine, training  # torch: only once the run is known to fit in this machine
    events: list[dict[str, Any]] = []  # what the record holds after its header
    session = None

    def fail(exc: EngineError, **extra: Any) -> int:
        if session is not None and record_target is not None:
            line = {"event": "error", "kind": exc.kind, "message": str(exc), **extra}
            refusal = _write_record(record_target, session, config, started, events + [line], arg("file"))
            if refusal:
                io.warn(refusal)
        return _fail(io, exc, **extra)

    try:
        session = rank.make_session(stack, config) if rank is not None else engine.Session(stack, config)
    except engine.StackRefused as exc:
        from cnnviz.core import shapes
        from cnnviz.core.shapes import summary

        report = shapes.infer(stack)
        if not report.ok:
            io._write(err, summary.to_text(stack, report))
        return fail(exc)
    except EngineError as exc:
        return fail(exc)
    device_id = session.device_info.id
    if arg("load_weights"):
        try:
            for warning in session.load_weights(arg("load_weights")):
                io.warn(warning)
        except EngineError as exc:
            return fail(exc, device=device_id)
    for note in getattr(session.data, "notes", ()) + session.notes:
        io.warn(note)
    if not io.json:
        io.say(f"training {session.describe()}, {steps:,} steps")

    report = max(1, min(50, steps // 10))
    control = training.Control()

    def on_progress(p: training.Progress) -> None:
        line = {"event": "step", "step": p.step, "loss": _finite(p.loss), "accuracy": _finite(p.accuracy, 4)}
        events.append(line)
        if io.json:
            io.event(line)
        else:
            io.progress(p.step, steps, p.loss, p.accuracy, p.steps_per_second)

    def on_eval(e: engine.Evaluation) -> None:
        line = {"event": "eval", "step": e.step, "loss": _finite(e.loss), "accuracy": _finite(e.accuracy, 4),
                "split": e.split, "n": e.n}
        events.append(line)
        if io.json:
            io.event(line)

    trainer = training.Trainer(session, control, on_progress=on_progress, on_eval=on_eval, report_every=report,
                               eval_every=max(report, steps // 5) if steps >= 10 else None)
    interrupted: list[str] = []
    restore = (rank.install_signals if rank is not None else _install_sigint)(control, interrupted, io)
    try:
        try:
            result = trainer.run(steps)
        except NonFiniteError as exc:
            return fail(exc, step=exc.step, phase=exc.phase, layer=exc.layer, device=device_id,
                        steps=session.step_count)
        except EngineError as exc:
            return fail(exc, device=device_id, steps=session.step_count)
        try:
            final = trainer.last_eval if (trainer.last_eval and trainer.last_eval.step == session.step_count) \
                else session.evaluate("test")
        except EngineError as exc:
            return fail(exc, device=device_id, steps=session.step_count)
    finally:
        restore()
    io.end_bar()
    saved = None
    if arg("save_weights") and (rank is None or rank.is_main):
        try:
            saved = str(session.save_weights(arg("save_weights")))
        except EngineError as exc:
            return fail(exc, device=device_id, steps=session.step_count)
    last = result.last_progress
    done = {"event": "done", "steps": session.step_count, "device": device_id,
            "final_loss": _finite(last.loss) if last else None, "test_accuracy": _finite(final.accuracy, 4),
            "steps_per_second": round(result.steps_per_second, 1), "test_loss": _finite(final.loss),
            "seconds": round(result.seconds, 3), "interrupted": bool(interrupted),
            "confusion": [list(row) for row in final.confusion or ()],
            "per_class_accuracy": [_finite(a, 4) for a in final.per_class_accuracy or ()],
            "classes": list(final.classes)}
    if rank is not None:
        done["world_size"] = rank.world_size
    if final.counted is not None and final.counted != final.n:
        done["counted"] = final.counted  # ignore_index: the held-out samples the accuracy and matrix count
    if interrupted:
        done["signal"] = interrupted[0]
    if saved:
        done["weights"] = saved
    if record_target is not None:
        done["record"] = str(record_target)
        refusal = _write_record(record_target, session, config, started, events + [done], arg("file"))
        if refusal:
            del done["record"]
            return _refuse(io, "record", refusal, device=device_id, steps=session.step_count)
    if io.json:
        io.event(done)
    else:
        per_class = _per_class_line(final)
        if per_class:
            io.say(per_class)
        loss = f"{last.loss:.4f}" if last else "n/a"
        stopped = " (interrupted)" if interrupted else ""
        io.say(f"done{stopped}: {session.step_count:,} steps in {result.seconds:.1f} s "
               f"({result.steps_per_second:,.1f} steps/s) on {device_id}; final training loss {loss}; "
               f"held-out accuracy {final.accuracy:.1%} on {final.n:,} images")
        if saved:
            io.say(f"weights written to {saved}")
        if record_target is not None:
            io.say(f"run record written to {record_target}")
    return Exit.INTERRUPTED if interrupted else Exit.OK


PER_CLASS_SHOWN = 12
"""Classes the text summary names one by one; with more, it names the worst ones."""


def _per_class_line(final) -> str | None:
    """``per-class accuracy: 0 98%, 1 91%, …`` (the worst few when there are many classes), or None."""
    from cnnviz.core.model.text import one_line

    accuracies = final.per_class_accuracy
    if not accuracies:
        return None
    named = [(one_line(name)[:24], a) for name, a in zip(final.classes, accuracies)]
    shown = [(n, a) for n, a in named if a is not None]
    title = "per-class held-out accuracy"
    if len(shown) > PER_CLASS_SHOWN:
        shown = sorted(shown, key=lambda item: item[1])[:PER_CLASS_SHOWN // 2]
        title += f" (the worst {len(shown)} of {len(named)})"
    text = ", ".join(f"{n} {a:.0%}" for n, a in shown)
    empty = sum(a is None for _, a in named)
    if empty:
        text += f"; {empty} class{'es' if empty > 1 else ''} without held-out examples"
    return f"{title}: {text}"


def _refuse(io: _Output, kind: str, message: str, **extra: Any) -> int:
    """A file that cannot be written: the error line (or a sentence), exit 2."""
    io.end_bar()
    if io.json:
        io.event({"event": "error", "kind": kind, "message": message, **extra})
    else:
        io.warn(message)
    return Exit.USAGE


def _write_record(target, session, config, started, events, source) -> str | None:
    """Write the run record; why not, as a sentence, or None."""
    from cnnviz.core.model import outputs
    from cnnviz.core.run import records

    head = records.header(session.stack, config, session.device_info.id, started)
    try:
        records.write(target, head, events, inputs=(source,))
    except (outputs.OutputRefused, records.RecordError) as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot write the run record {target}: {exc.strerror or exc}"
    return None


def _fail(io: _Output, exc, **extra: Any) -> int:
    """Report an EngineError as the error line (or a sentence) and return its exit status."""
    io.end_bar()
    if io.json:
        io.event({"event": "error", "kind": exc.kind, "message": str(exc), **extra})
    else:
        io.warn(str(exc))
    return EXIT_FOR_KIND.get(exc.kind, Exit.FAILED)


def _fits_before_torch(stack, config):
    """A run that cannot fit, found before torch is imported (a bomb then costs no more than shape
    inference): on the CPU (``--device cpu``, or ``auto`` on a machine without any GPU driver) the whole
    estimate; on any other device the model's parameters, which
    are built in this machine's memory before they move to the device. None when it fits, or when the
    stack is invalid (the session says why, with the summary)."""
    from cnnviz.core import shapes
    from cnnviz.core.model.text import one_line
    from cnnviz.core.run import memory
    from cnnviz.core.run.faults import NotEnoughMemory

    report = shapes.infer(stack)
    if not report.ok or report.num_classes is None:
        return None
    free = memory.cpu_free_bytes()
    try:
        if config.device == "cpu" or (config.device == "auto" and not memory.accelerator_possible()):
            memory.check_run(report, config, device_type="cpu", free=free, name=one_line(stack.name))
        else:
            memory.check_model_fits(report, free, where="this machine's memory")
    except NotEnoughMemory as exc:
        return exc
    return None


def _check_save_weights(args) -> str | None:
    """Why ``--save-weights`` cannot be written, found before training starts (not after the run)."""
    target = getattr(args, "save_weights", None)
    if not target:
        return None
    from cnnviz.core.model import outputs

    try:
        outputs.check_target(target, inputs=(getattr(args, "file", None),), force=bool(getattr(args, "force", False)),
                             what="--save-weights")
    except outputs.OutputRefused as exc:
        return str(exc)
    return None


STOP_SIGNALS = ("SIGINT", "SIGTERM")
"""Ctrl+C and a polite kill (SIGTERM, what ``kill``, systemd and job schedulers send) end a run alike:
after the current step, with the ``done`` line, exit 130."""


def _install_sigint(control, interrupted: list, io: _Output):
    """The first SIGINT or SIGTERM: stop after the current step; a second one aborts. Returns the undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signal.Signals(signum).name)
        control.cancel()
        if not io.json:
            io.warn("stopping after this step (Ctrl+C again to abort)")

    previous = {}
    try:
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                previous[number] = signal.signal(number, handler)
    except ValueError:  # not the main thread of the main interpreter
        return lambda: None

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore
