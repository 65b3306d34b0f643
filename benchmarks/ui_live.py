"""(d) of ``benchmarks/ui.py``: the live views' cost while the window trains, probes on against off.

:func:`live_cost` runs the alternated blocks in a window ``ui.py`` opened, :func:`print_live` prints one
request's figures against its target; see ``ui.py``'s docstring for the method and the figures.
"""
from __future__ import annotations

import statistics
import time

from _stats import paired_cost
from PySide6.QtCore import QEventLoop, QTimer

TARGET_REFRESH_HZ = 10.0
TARGET_COST = 0.05
"""(d): the views refresh at least 10 times a second while training, for at most 5 % of the throughput."""
TARGET_COST_ALL = 0.10
"""(d): everything live (the views and the debugging views' recording, training health) at most 10 %: the
throughput at least 0.9× probes off, the one budget the seeing and the debugging issues share."""


def pump(seconds: float) -> None:
    """Run the event loop for ``seconds``, as the app's ``exec`` does (a loop of ``processEvents`` and sleeps
    delays every event by the sleep and makes the GUI thread's work look dearer than it is)."""
    loop = QEventLoop()
    QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()



def open_live_window(stack_name: str, width: int = 1400, height: int = 900):
    """A live window on a bundled example, shown, with its first forward pass in (its folders in a new temporary
    one): what (d) and ``benchmarks/replay.py`` measure in."""
    import tempfile
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from cnnviz.app.window.dialogs import Dialogs
    from cnnviz.app.window.main_window import MainWindow
    from cnnviz.app.window.settings import Settings
    from cnnviz.core.model import assets

    app = QApplication.instance()
    tmp = Path(tempfile.mkdtemp(prefix="cnnviz-bench-"))
    window = MainWindow(assets.path("examples", f"{stack_name}.cnnviz"), settings=Settings(tmp / "s.ini"),
                        autosave_dir=tmp, dialogs=Dialogs(), live=True)
    window.resize(width, height)
    window.show()
    runner = window.runner
    deadline = time.perf_counter() + 120
    while runner.hub.snapshot is None and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    if runner.hub.snapshot is None:
        raise SystemExit("the first forward pass never came")
    pump(0.5)
    return window


def describe_request(request) -> str:
    """What a ProbeRequest asks beyond the forward pass, in words."""
    parts = []
    layers = getattr(request, "grad_layers", None)
    if layers is None:
        parts.append("every activation gradient")
    elif layers:
        parts.append(f"the activation gradient of {', '.join(map(str, layers))}")
    for field, words in (("input_grad", "the input's gradient"), ("param_grads", "the weights' gradients"),
                         ("with_identities", "the loss identities"), ("health", "training health")):
        if getattr(request, field, False):
            parts.append(words)
    return ", ".join(parts) or "the forward pass alone"


def live_cost(runner, trainer, ident: int, pairs: int, block_s: float, gui_cpu: dict | None = None,
              profiler=None) -> dict:
    """(d): in the window while it trains, blocks of ``block_s`` seconds with the loop's probes on and off,
    alternated (``pairs`` of each, the order flipped every pair); per block the steps done, the worker
    thread's CPU time, the probes taken and the refreshes the views got (``ViewsHub.show_snapshot``).

    "Off" is the loop with no probe listener (``Trainer.on_probe`` None: no probe is taken and the views are
    not redrawn), the same as training with every view closed. ``trainer`` is the worker's, ``ident`` its
    thread's native id; ``gui_cpu``: the GUI thread's CPU by view, filled while each block runs (and read
    after it); ``profiler``: a cProfile enabled in the blocks with probes on."""
    gui_cpu = {} if gui_cpu is None else gui_cpu
    session = trainer.session
    listener, probe = trainer.on_probe, trainer.probe
    counts = {"probes": 0, "shown": 0, "probe_cpu": 0.0}

    def counted_probe(request):  # on the worker thread
        counts["probes"] += 1
        start = time.thread_time()
        try:
            return probe(request)
        finally:
            counts["probe_cpu"] += time.thread_time() - start

    hub = runner.hub
    show = hub.show_snapshot

    def counted_show(snap):
        counts["shown"] += 1
        return show(snap)

    trainer.probe = counted_probe
    hub.show_snapshot = counted_show
    try:
        cpu_clock = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        cpu_clock = None

    def block(on: bool) -> dict:
        trainer.on_probe = listener if on else None
        pump(0.25)  # let the switch settle (a pending probe, a paced refresh)
        counts.update(probes=0, shown=0, probe_cpu=0.0)
        steps0, t0 = session.step_count, time.perf_counter()
        cpu0 = time.clock_gettime(cpu_clock) if cpu_clock is not None else 0.0
        gui0 = time.thread_time()  # this is the GUI thread
        gui_cpu.clear()
        if on and profiler is not None:
            profiler.enable()
        pump(block_s)
        if on and profiler is not None:
            profiler.disable()
        gui = time.thread_time() - gui0
        views = {key: value / block_s for key, value in gui_cpu.items()}
        seconds = time.perf_counter() - t0
        steps = session.step_count - steps0
        cpu = (time.clock_gettime(cpu_clock) - cpu0) if cpu_clock is not None else float("nan")
        return {"steps_per_s": steps / seconds, "cpu_ms_per_step": 1e3 * cpu / max(steps, 1),
                "probes_per_s": counts["probes"] / seconds, "shown_per_s": counts["shown"] / seconds,
                "probe_share": counts["probe_cpu"] / cpu if cpu > 0 else float("nan"),
                "probe_ms": 1e3 * counts["probe_cpu"] / max(counts["probes"], 1), "gui_share": gui / seconds,
                "views": views}

    on_blocks, off_blocks = [], []
    try:
        for k in range(pairs):
            first_on = k % 2 == 0
            a = block(first_on)
            b = block(not first_on)
            (on_blocks if first_on else off_blocks).append(a)
            (off_blocks if first_on else on_blocks).append(b)
    finally:
        trainer.on_probe, trainer.probe = listener, probe
        hub.show_snapshot = show

    def med(blocks, key):
        return statistics.median(b[key] for b in blocks)

    throughput = [on["steps_per_s"] / max(off["steps_per_s"], 1e-9) for on, off in zip(on_blocks, off_blocks)]
    cpu = [off["cpu_ms_per_step"] / max(on["cpu_ms_per_step"], 1e-9) for on, off in zip(on_blocks, off_blocks)]
    keys = {key for b in on_blocks + off_blocks for key in b["views"]}
    views = {key: (statistics.mean(b["views"].get(key, 0.0) for b in on_blocks),
                   statistics.mean(b["views"].get(key, 0.0) for b in off_blocks)) for key in keys}
    return {"pairs": pairs, "block_s": block_s, "views": views,
            "shown_per_s": med(on_blocks, "shown_per_s"), "probes_per_s": med(on_blocks, "probes_per_s"),
            "steps_on": med(on_blocks, "steps_per_s"), "steps_off": med(off_blocks, "steps_per_s"),
            "throughput_ratio": paired_cost([b["steps_per_s"] for b in on_blocks],
                                            [b["steps_per_s"] for b in off_blocks]),
            "throughput_mean": paired_cost([b["steps_per_s"] for b in on_blocks],
                                           [b["steps_per_s"] for b in off_blocks], centre="mean"),
            "throughput_all": throughput,
            "cpu_on": med(on_blocks, "cpu_ms_per_step"), "cpu_off": med(off_blocks, "cpu_ms_per_step"),
            "cpu_ratio": statistics.median(cpu), "probe_share": med(on_blocks, "probe_share"),
            "probe_ms": med(on_blocks, "probe_ms"), "gui_on": med(on_blocks, "gui_share"),
            "gui_off": med(off_blocks, "gui_share")}


def print_live(r: dict, d: dict, what: str, limit: float) -> bool:
    """Print (d) for one request; ``limit``: the largest cost it may have (TARGET_COST for the views alone,
    TARGET_COST_ALL for everything live)."""
    ratio, low, high = d["throughput_ratio"]
    cost = 1.0 - ratio
    good = d["shown_per_s"] >= TARGET_REFRESH_HZ and cost <= limit
    print(f"(d) live views while training {r['stack']}, {what}: {d['pairs']}+{d['pairs']} alternated blocks "
          f"of {d['block_s']:g} s with the loop's probes on and off (medians)")
    print(f"    refreshes shown {d['shown_per_s']:.1f}/s from {d['probes_per_s']:.1f} probes/s taken")
    pairs = sorted(d["throughput_all"])
    mean, mean_low, mean_high = d["throughput_mean"]
    print(f"    steps/s on {d['steps_on']:.0f}, off {d['steps_off']:.0f}: throughput ratio on/off (median of the "
          f"pairs) {ratio:.3f}, cost {100 * cost:.1f} % (95 % interval {100 * (1 - high):.1f} to "
          f"{100 * (1 - low):.1f} %); geometric mean {mean:.3f}, cost {100 * (1 - mean):.1f} % (interval "
          f"{100 * (1 - mean_high):.1f} to {100 * (1 - mean_low):.1f} %); the pairs' ratios {pairs[0]:.2f} to "
          f"{pairs[-1]:.2f}")
    print(f"    worker CPU per step on {d['cpu_on']:.2f} ms, off {d['cpu_off']:.2f} ms: ratio off/on "
          f"{d['cpu_ratio']:.3f}; probes took {100 * d['probe_share']:.1f} % of the worker's CPU time "
          f"({d['probe_ms']:.2f} ms CPU each): what they cost the throughput, other processes' load aside")
    extra = (d["gui_on"] - d["gui_off"]) * 1e3 / max(d["shown_per_s"], 1e-9)
    print(f"    the GUI thread used {100 * d['gui_on']:.0f} % of a core with probes on, {100 * d['gui_off']:.0f} % "
          f"off: {extra:.1f} ms of CPU per refresh, competing with the worker for the cores")
    top = sorted(d["views"].items(), key=lambda kv: kv[1][0] - kv[1][1], reverse=True)[:8]
    if top:
        print("    by view, ms of GUI CPU per second on/off: " + "; ".join(
            f"{name} {kind} {1e3 * on:.0f}/{1e3 * off:.0f}" for (kind, name), (on, off) in top))
    resolved = (1 - high <= limit) == (1 - low <= limit)
    print(f"    target ≥ {TARGET_REFRESH_HZ:g} refreshes/s at a cost ≤ {100 * limit:g} %: "
          f"{'OK' if good else 'MISSED'}"
          f"{'' if resolved else ' (the interval spans the target: more pairs would tell)'}")
    return good
