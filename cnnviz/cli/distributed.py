"""``cnnviz train FILE ... --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT]`` (SPEC §3.5).

The launcher side: cnnviz does not start ranks itself, it hands its own
``train`` command to PyTorch's launcher, ``torch.distributed.run`` (torchrun),
in this process (``torch.distributed.run.run``), which starts N ranks of
``python -m cnnviz train FILE ...`` on this node with torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
One node without ``--rdzv-endpoint`` is torchrun's ``--standalone`` (a free
port on localhost); several nodes meet at ``--rdzv-endpoint`` (torchrun's c10d
rendezvous; with ``--node-rank``, its static one, the endpoint being node 0's
address).

Checked before any rank starts (exit 2): ``--batch-size`` is the *global*
batch and must divide by the number of ranks; ``--device`` is ``auto``,
``cpu`` or ``cuda`` (``cuda:N`` names one GPU for every rank and ``mps`` has
no distributed backend); the launcher's own options make sense. An invalid
stack is exit 1 with its summary, as without ranks.

Inside a rank (:func:`run_rank`) the command is ``cli/train.py``'s own run
with a :class:`~cnnviz.core.run.distributed.DistributedSession`: standard
output and error only from rank 0 (JSON lines only from rank 0; its ``done``
line gains ``"world_size"``), ``--save-weights`` and ``--record`` written by
rank 0 alone. Ctrl+C reaches the launcher (torchrun starts the ranks in
sessions of their own), which passes it to every rank; they stop at one agreed
step and rank 0 prints the ``done`` line (exit 130). A second Ctrl+C, SIGTERM
to the launcher, or a rank that fails ends every rank with exit 4; torchrun
waits for all of them, so no process is left behind. No Qt.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from typing import Any, TextIO

from cnnviz.cli.exits import Exit

LAUNCH_OPTIONS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
RANK_STATUSES = (Exit.INVALID, Exit.USAGE, Exit.FAILED, Exit.INTERRUPTED)
"""The statuses a rank ends with after printing its own last line."""
ENDPOINT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def in_rank(env: Any = None) -> bool:
    """Whether this process is a rank that torchrun started (without importing torch)."""
    env = os.environ if env is None else env
    return all(env.get(name) for name in TORCHRUN_VARS)


def wants_launch(args) -> bool:
    """``--nproc-per-node`` (or another launcher option) given, outside a rank."""
    return not in_rank() and any(getattr(args, name, None) is not None for name in LAUNCH_OPTIONS)


# ------------------------------------------------------------------ checks before launching
def _config(stack, args):
    from cnnviz.core.model.stack import config_with

    def arg(name: str) -> Any:
        return getattr(args, name, None)

    return config_with(stack.training, data=arg("data"), steps=arg("steps"), batch_size=arg("batch_size"),
                       lr=arg("lr"), optimizer=arg("optimizer"), device=arg("device"), seed=arg("seed"),
                       schedule=arg("schedule"))


def device_refusal(spec: str | None) -> str | None:
    """Why ``--device`` cannot go with ``--nproc-per-node`` (None: auto, cpu and cuda can)."""
    text = "auto" if spec is None else str(spec).strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return None
    if text == "mps":
        return ("--device mps cannot go with --nproc-per-node: torch.distributed has no MPS backend; "
                "use --device cpu")
    if re.fullmatch(r"cuda:\d+", text):
        return (f"--device {text} cannot go with --nproc-per-node: it names one GPU, and each rank takes its own "
                "(cuda:LOCAL_RANK); use --device cuda, and CUDA_VISIBLE_DEVICES to choose the GPUs")
    return f"unknown device {spec!r} with --nproc-per-node: expected auto, cpu or cuda"


def launch_refusal(args, config) -> str | None:
    """Why this launch cannot start (a sentence), or None."""
    nproc = getattr(args, "nproc_per_node", None)
    if nproc is None:
        given = [f"--{name.replace('_', '-')}" for name in LAUNCH_OPTIONS[1:] if getattr(args, name, None) is not None]
        return f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --nproc-per-node N"
    nnodes = getattr(args, "nnodes", None) or 1
    node_rank = getattr(args, "node_rank", None)
    endpoint = getattr(args, "rdzv_endpoint", None)
    if nproc < 1 or nnodes < 1:
        return "--nproc-per-node and --nnodes must be at least 1"
    if node_rank is not None and not 0 <= node_rank < nnodes:
        return f"--node-rank {node_rank} must be between 0 and {nnodes - 1} (--nnodes {nnodes})"
    if nnodes > 1 and not endpoint:
        return f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, where the nodes meet"
    if endpoint and not ENDPOINT_RE.match(endpoint):
        return f"--rdzv-endpoint {endpoint!r} is not HOST:PORT (for example 10.0.0.1:29400)"
    refusal = device_refusal(config.device)
    if refusal:
        return refusal
    world = nproc * nnodes
    batch = int(config.batch_size)
    if batch % world:
        lower, upper = batch - batch % world, batch - batch % world + world
        options = f"{lower} or {upper}" if lower else f"{upper}"
        return (f"--batch-size {batch} is the global batch and must divide by the {world} ranks "
                f"({nnodes} node{'s' if nnodes > 1 else ''} × {nproc}): try {options}")
    return None


def torchrun_argv(args, train_argv: list[str]) -> list[str]:
    """torchrun's command line that starts the ranks of ``python -m cnnviz train ...``."""
    nproc = int(args.nproc_per_node)
    nnodes = int(getattr(args, "nnodes", None) or 1)
    endpoint = getattr(args, "rdzv_endpoint", None)
    node_rank = getattr(args, "node_rank", None)
    argv = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes), "--max-restarts", "0"]
    if not endpoint:
        argv.append("--standalone")  # one node: a c10d rendezvous on a free port of localhost
    elif node_rank is not None:  # static: node 0's address and port, each node its rank
        host, port = endpoint.rsplit(":", 1)
        argv += ["--node-rank", str(node_rank), "--master-addr", host.strip("[]"), "--master-port", port]
    else:
        run_id = os.environ.get("CNNVIZ_RUN_ID") or os.environ.get("SLURM_JOB_ID") or "cnnviz"
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id]
    return argv + ["-m", "cnnviz", "train", *train_argv]


def train_argv(args) -> list[str]:
    """The ``train`` command line of ``args`` without the launcher's options (what every rank runs)."""
    import argparse

    from cnnviz.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    argv = [str(args.file)]
    for action in sub._actions:
        if not action.option_strings or action.dest in LAUNCH_OPTIONS or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(flag)
        elif value is not None:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


# ------------------------------------------------------------------ the launcher
def _refuse(io, kind: str, message: str) -> int:
    """The error line (or a sentence) of a launch refused before any rank starts: exit 2."""
    io.end_bar()
    if io.json:
        io.event({"event": "error", "kind": kind, "message": message})
    else:
        io.warn(message)
    return Exit.USAGE


def launch(args, io, save_refusal: str | None = None) -> int:
    """Check, then run torchrun in this process; the exit status is rank 0's (4 when a rank failed).

    ``io`` is ``cli/train.py``'s output (JSON lines or sentences); ``save_refusal`` why ``--save-weights``
    cannot be written, found by it before anything starts."""
    from cnnviz.cli.summary import load_stack

    out, err = io.out, io.err
    stack = load_stack(args.file)
    config = _config(stack, args)
    refusal = launch_refusal(args, config)
    if refusal:
        return _refuse(io, "config", refusal)
    from cnnviz.core import shapes
    from cnnviz.core.shapes import summary

    report = shapes.infer(stack)
    if not report.ok:
        io._write(err, summary.to_text(stack, report))
        _refuse(io, "stack", f"the stack cannot be trained: {report.problem}")
        return Exit.INVALID
    if save_refusal:
        return _refuse(io, "weights", save_refusal)
    argv = torchrun_argv(args, train_argv(args))
    out.flush()
    err.flush()
    return _run_torchrun(argv, io)


def _children() -> list[int]:
    """This process's child processes whose command line is cnnviz's (the ranks), from /proc."""
    me = os.getpid()
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{me}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{me}/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
    if not pids:
        with contextlib.suppress(OSError):
            for name in os.listdir("/proc"):
                if name.isdigit():
                    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{name}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                            pids.add(int(name))
    ranks = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"cnnviz" in f.read():
                ranks.append(pid)
    return ranks


def _signal_ranks(signum: int) -> None:
    for pid in _children():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def _run_torchrun(argv: list[str], io) -> int:
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    stops: list[int] = []

    def on_sigint(signum, frame) -> None:
        stops.append(signum)
        if len(stops) == 1:
            if not io.json:
                io.warn("stopping every rank after the step they agree on (Ctrl+C again to abort)")
            _signal_ranks(signal.SIGINT)
        else:
            _signal_ranks(signal.SIGTERM)

    # torchrun turns SIGTERM (and SIGHUP, SIGQUIT) into closing the ranks; Ctrl+C stays cnnviz's, passed on.
    options = {o for action in torchrun.get_args_parser()._actions for o in action.option_strings}
    if "--signals-to-handle" in options:
        argv = ["--signals-to-handle", "SIGTERM,SIGHUP,SIGQUIT", *argv]
    saved_env = os.environ.get("TORCHELASTIC_SIGNALS_TO_HANDLE")
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGTERM,SIGHUP,SIGQUIT"  # torch versions without the option
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, on_sigint)
    try:
        torchrun.run(torchrun.parse_args(argv))
        return Exit.OK
    except ChildFailedError as exc:
        return _failed(exc.failures, io)
    except SignalException as exc:  # rank 0 has said so in its last line
        if not io.json:
            io.warn(f"the launcher was stopped ({exc.sigval.name}): every rank was stopped")
        return Exit.FAILED
    except Exception as exc:  # noqa: BLE001  (rendezvous and launch errors: one sentence, no traceback)
        return _launcher_failed(io, f"the ranks could not start: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if saved_env is None:
            os.environ.pop("TORCHELASTIC_SIGNALS_TO_HANDLE", None)
        else:
            os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = saved_env


def _describe(rank: int, failure) -> str:
    code = failure.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"rank {rank} (pid {failure.pid}) was killed by {signal.Signals(-code).name}"
    return f"rank {rank} (pid {failure.pid}) exited with status {code}"


def _failed(failures: dict, io) -> int:
    """Rank 0's status when it ended on its own terms (it printed its last line); else 4, said once."""
    main = failures.get(0)
    if main is not None and main.exitcode in RANK_STATUSES:
        if main.exitcode == Exit.FAILED and not io.json:
            others = [_describe(r, f) for r, f in sorted(failures.items()) if r != 0]
            if others:
                io.warn("; ".join(others))
        return int(main.exitcode)
    if main is None and not failures:
        return Exit.OK
    said = "; ".join(_describe(r, f) for r, f in sorted(failures.items()))
    return _launcher_failed(io, f"{said}: every rank has stopped")


def _launcher_failed(io, message: str) -> int:
    io.end_bar()
    if io.json:
        io.event({"event": "error", "kind": "rank", "message": message})
    else:
        io.warn(message)
    return Exit.FAILED


# ------------------------------------------------------------------ inside a rank
class RankContext:
    """What ``cli/train.py``'s run asks of a rank: the session, the signals, who writes."""

    def __init__(self, info, early_stops: list | None = None) -> None:
        self.info = info
        self.session = None
        self.early_stops = early_stops if early_stops is not None else []  # Ctrl+C before the session existed

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def world_size(self) -> int:
        return self.info.world_size

    def make_session(self, stack, config):
        from cnnviz.core.run.distributed import DistributedSession

        self.session = DistributedSession(stack, config, rank=self.info)
        return self.session

    def install_signals(self, control, interrupted: list, io):
        """Ctrl+C: every rank stops at the step they agree on; a second one aborts. (SIGTERM is
        :func:`run_rank`'s: exit 4 at once.)"""
        session = self.session

        def agreed() -> None:
            if not interrupted:
                interrupted.append("SIGINT")
            control.cancel()

        session.on_stop = agreed

        def handler(signum, frame):
            if session.stop_agreed or session.stop_requested:
                raise KeyboardInterrupt
            session.request_stop()

        previous = signal.signal(signal.SIGINT, handler)
        if self.early_stops:
            session.request_stop()
        return lambda: signal.signal(signal.SIGINT, previous)


def run_rank(args, out: TextIO, err: TextIO, *, run, output, fail) -> int:
    """One rank: ``run`` (``cli/train.py``'s, with its ``output`` class and ``fail`` reporter) with a
    distributed session; rank 0 writes; every rank leaves the group; the process ends here."""
    from cnnviz.cli.summary import load_stack

    stack = load_stack(args.file)
    config = _config(stack, args)
    main = os.environ.get("RANK") == "0"
    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  (closed below)
    rank_out, rank_err = (out, err) if main else (sink, sink)
    io = output(rank_out, rank_err, bool(getattr(args, "json", False)))
    label = f"rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}"

    finished: list[bool] = []

    def on_sigterm() -> None:
        message = f"{label} was stopped (SIGTERM): another rank failed or the launcher was stopped"
        if finished:  # its last line is out already
            return
        if main and io.json:
            io.event({"event": "error", "kind": "rank", "message": message})
        elif main:
            io.warn(message)
        else:
            err.write(f"cnnviz train: {message}\n")

    from cnnviz.core.run import distributed
    from cnnviz.core.run.faults import EngineError

    early_stops: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: early_stops.append(signum))  # until the session's own
    final: list[int] = []
    # Left installed to the end: a SIGTERM while this rank leaves still ends it with its own status.
    distributed.exit_on_sigterm(on_sigterm, status=lambda: final[0] if final else int(Exit.FAILED))
    holder: list = []

    def body() -> int:
        refusal = device_refusal(config.device)
        if refusal:
            return _refuse(io, "device", refusal)
        try:
            info = distributed.setup(config.device)
        except EngineError as exc:
            return fail(io, exc)
        holder.append(RankContext(info, early_stops))
        return run(stack, args, rank_out, rank_err, rank=holder[0])

    status = Exit.FAILED
    try:
        status = body()
    finally:
        finished.append(True)
        final.append(int(status))
        reached = distributed.shutdown()
        sink.close()
        sys.stdout.flush()
    if not main and reached:
        # Rank 0 has written the run's last line and carries its status; a non-zero status here would make
        # torchrun stop rank 0 before it has exited.
        status = Exit.OK
    elif not main and status != Exit.OK:
        failure = getattr(holder[0].session, "failure", None) if holder else None
        err.write(f"cnnviz train: {label} stopped with status {int(status)}{': ' + failure if failure else ''}\n")
    # A rank is a process of its own that torchrun started: it ends here, with its status, before the
    # command's SIGTERM handling is undone (torchrun stopping it now must not turn a status into a signal).
    for stream in (out, err, sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(int(status))
