"""The ``cnnviz`` command (SPEC §2): ``summary``, ``train``, ``export``, or the window.

Exit status: 0 all well; 1 the file was read but the stack is invalid (the
summary is still printed); 2 the file cannot be read or the command line is
wrong (an absent device, an unknown data set included); 3 an internal error (a
bug: one line here, the traceback in a log file); 4 training failed (NaN/Inf,
out of memory); 130 interrupted by Ctrl+C.
A user's mistake never prints a traceback. ``summary`` imports no torch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Sequence, TextIO

from . import __version__
from .core import files, outputs
from .core.text import for_terminal

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
SUBCOMMANDS = ("summary", "train", "export")


class UsageError(Exception):
    """A command-line or input problem to report with exit status 2."""


def _setting(name: str):
    """An argparse type for a training setting, with the same range the file format allows for it
    (``files.TRAINING_PARAMS``): one range for the command line and the file."""
    from .core.layers import FLOAT
    from .core.validate import check_value

    param = files.TRAINING_PARAMS[name]

    def parse(text: str):
        try:
            value = float(text) if param.kind == FLOAT else int(text)
        except ValueError:
            kind = "a number" if param.kind == FLOAT else "a whole number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {_quoted(text)}") from None
        problem = check_value(param, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _positive_float(text: str) -> float:
    """A learning rate: any positive finite number (a huge one is how a person sees training diverge)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_quoted(text)}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _quoted(text: str) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return repr(for_terminal(shown))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnviz",
        description="Explore convolutional networks: exact shapes, real PyTorch runs, live views. "
                    "Without a subcommand, opens the explorer window (on FILE if given).",
        epilog="Exit status: 0 ok, 1 invalid stack, 2 unreadable file or bad command line (absent device, "
               "unknown data set), 3 internal error, 4 training failed (NaN, out of memory), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{summary,train,export}")

    p = sub.add_parser("summary", help="per-layer table: output shapes, parameters, errors and warnings")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--json", action="store_true", help="print one JSON object (format cnnviz.summary)")

    p = sub.add_parser("train", help="train headless on a bundled data set and report progress")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--data", help="digits, fashion-mnist, shapes, or folder:PATH (default: the file's, else "
                                  "fashion-mnist)")
    p.add_argument("--steps", type=_setting("steps"), help="optimizer steps (default: the file's, else 500)")
    p.add_argument("--batch-size", type=_setting("batch_size"),
                   help="samples per step, 1 to 4096 (default: the file's, else 64)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default: the file's, else 0.001)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), help="default: the file's, else adam")
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=_setting("seed"), help="random seed, 0 to 2**32-1 (default: the file's, else 0)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a progress bar")
    p.add_argument("--save-weights", metavar="PATH", help="write the trained weights (safetensors)")
    p.add_argument("--force", action="store_true", help="let --save-weights replace an existing stack file")
    p.add_argument("--load-weights", metavar="PATH", help="start from these weights (safetensors)")

    p = sub.add_parser("export", help="write the stack as PyTorch code or an ONNX model")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--to", required=True, choices=("python", "onnx"), help="the output format")
    p.add_argument("-o", "--output", help="output path (python: default standard output; onnx: default "
                                          "FILE's name with .onnx in the current folder)")
    p.add_argument("--style", choices=("module", "functional"), default="module",
                   help="python only: nn.Sequential of nn layers (default), or explicit parameters with "
                        "torch.nn.functional")
    p.add_argument("--weights", metavar="PATH", help="onnx only: weights to include (safetensors)")
    p.add_argument("--force", action="store_true", help="let -o replace an existing stack file")
    return parser


def _load(path: str) -> files.Stack:
    try:
        return files.load(path)
    except files.StackFileError as exc:
        raise UsageError(f"cannot use {exc}") from None


def _write(text: str, out: TextIO, *, json_text: bool = False) -> None:
    """Write to a terminal or pipe: every control character that did not come from cnnviz itself is
    escaped (text from a file is data), and what the stream's encoding cannot hold is spelt in ASCII."""
    text = for_terminal(text, json_text=json_text)
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = (text.replace("×", "x").replace("✗", "!").replace("⚠", "!").replace("→", "->")
                .replace("…", "...").replace("≥", ">=").replace("≤", "<=").replace("⌊", "floor(")
                .replace("⌋", ")").replace("⌈", "ceil(").replace("⌉", ")").replace("−", "-").replace("·", "*"))
        text = text.encode(encoding, errors="replace").decode(encoding)
    out.write(text)


def cmd_summary(args, out: TextIO, err: TextIO) -> int:
    from .core import shapes, summary

    stack = _load(args.file)
    report = shapes.infer(stack)
    if args.json:
        _write(json.dumps(summary.to_json(stack, report), ensure_ascii=False) + "\n", out, json_text=True)
    else:
        _write(summary.to_text(stack, report), out)
    return EXIT_OK if report.ok else EXIT_INVALID


def cmd_export(args, out: TextIO, err: TextIO) -> int:
    from .core import export, shapes, summary

    stack = _load(args.file)
    report = shapes.infer(stack)
    if not report.ok:
        _write(summary.to_text(stack, report), err)
        bad = report.first_error
        where = f"layer {bad.index} ({bad.label})" if bad else "the loss"
        _write(f"cnnviz: nothing exported: {where} cannot work (see above)\n", err)
        return EXIT_INVALID
    if args.to == "python":
        if args.weights:
            raise UsageError("--weights applies to --to onnx only (Python code holds no weights)")
        to_stdout = not args.output or args.output == "-"
        target = None if to_stdout else _output_target(args)
        code = export.to_python(stack, args.style)
        if to_stdout:
            _write(code, out)
            return EXIT_OK
        _save_text(target, code)
        _write(f"wrote {args.output}\n", err)
        return EXIT_OK
    if not args.output:
        args.output = str(Path.cwd() / (Path(args.file).stem + ".onnx"))
    target = _output_target(args)
    model = None
    if args.weights:
        from .core import build, memory, weights
        from .core.faults import NotEnoughMemory

        try:
            memory.check_model_fits(report, copies=2)
        except NotEnoughMemory as exc:
            raise UsageError(f"cannot export: {exc}") from None
        model = build.build_model(stack, seed=0)
        try:
            weights.load_into(model, stack, args.weights)
        except weights.WeightsError as exc:
            raise UsageError(str(exc)) from None
    try:
        export.to_onnx(stack, target, model=model)
    except (export.ExportError, outputs.OutputRefused) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    _write(f"wrote {target}\n", err)
    return EXIT_OK


def _output_target(args) -> Path:
    """``-o``'s path, checked before any work: never the stack being read, never an existing stack
    without ``--force``, never a device, FIFO or folder."""
    try:
        return outputs.check_target(args.output, inputs=(args.file,), force=args.force, what="the export")
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None


def _save_text(path: Path, text: str) -> None:
    try:
        outputs.atomic_write(path, text.encode("utf-8"))
    except outputs.OutputRefused as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_train(args, out: TextIO, err: TextIO) -> int:
    from . import train_cli

    stack = _load(args.file)
    return train_cli.run(stack, args, out, err)


COMMANDS = {"summary": cmd_summary, "train": cmd_train, "export": cmd_export}


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
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    try:
        with _sigterm_as_interrupt():
            return COMMANDS[args.command](args, out, err)
    except UsageError as exc:
        _write(f"cnnviz {args.command}: {exc}\n", err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _write(f"cnnviz {args.command}: interrupted\n", err)
        return 130
    except BrokenPipeError:  # ``cnnviz train ... | head -1``: the reader has all it wanted
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # a bug: one line for the user, the traceback in a log
        log = _log_crash()
        _write(f"cnnviz {args.command}: internal error: {type(exc).__name__}: {exc}\n"
               f"  this is a bug in cnnviz; the details are in {log}\n", err)
        return EXIT_INTERNAL


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


def _silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's last flush at exit does not
    report the closed pipe a second time (the recipe of Python's ``signal`` documentation)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _log_crash() -> str:
    import datetime
    import traceback

    try:
        from platformdirs import user_log_dir

        folder = Path(user_log_dir("cnnviz", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "cli-errors.log"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.datetime.now().isoformat()} cnnviz {__version__}\n")
            fh.write(traceback.format_exc())
        return str(path)
    except Exception:  # noqa: BLE001  (no log is better than a second traceback)
        return "(no log could be written)"
