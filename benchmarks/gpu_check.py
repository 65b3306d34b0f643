"""Prove the engine's CUDA path in one short run (under 3 minutes) and write a JSON report.

    PYTHONPATH=. python benchmarks/gpu_check.py --out gpu-report.json [--device cuda] [--pytest]

Needs torch and numpy (and safetensors for the weights check); no Qt, no
cnnviz install, no pytest unless ``--pytest``. Checks, each recorded with its
numbers (a failing one does not stop the others):

1. ``devices``: what ``list_devices()`` sees; ``auto`` resolves to CUDA.
2. ``train``: ``cnnviz train`` on the digits net for 300 steps on the device; the
   done line, whose ``device`` must be ``cuda:N``, and held-out accuracy.
3. ``probes``: a probe's identity numbers (dL/dz vs softmax(z) − y, CE vs
   LogSoftmax+NLL, naive softmax overflowing), the double-softmax stack, train vs
   eval mode, and the device's output against the same weights on the CPU.
4. ``host_data``: training with the data left in pinned host memory (the path
   for sets too big for the card).
5. ``nan``: a huge learning rate stops within one step, naming a layer.
6. ``oom``: an absurd stack and batch run out of memory; the message, the memory
   back to where it was, and the next run working.
7. ``absent_device``: ``--device cuda:99`` is an error with exit status 2.
8. ``overhead``: ``benchmarks/train_overhead.py`` on the device (digits net and
   LeNet-5), with and without probes.
9. ``pytest`` (with ``--pytest``, if pytest is installed): the engine's tests.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnnviz import cli  # noqa: E402
from cnnviz.core.model import files  # noqa: E402
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack  # noqa: E402
from cnnviz.core.run import device_data, devices, engine, training

EXAMPLES = ROOT / "resources" / "examples"


def cli_train(*argv: str) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["train", *argv], out=out, err=err)
    lines = []
    for line in out.getvalue().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"text": line})
    return rc, lines, err.getvalue()


def check_devices(dev: str) -> dict:
    listed = [d.__dict__ | {"label": d.label} for d in devices.list_devices()]
    auto = devices.device_id(devices.resolve("auto"))
    resolved = devices.device_id(devices.resolve(dev))
    ok = resolved.startswith(("cuda", "mps")) and auto.startswith(("cuda", "mps"))
    return {"ok": ok, "devices": listed, "auto": auto, "resolved": resolved,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}


def check_train(dev: str) -> dict:
    start = time.perf_counter()
    rc, lines, err = cli_train(str(EXAMPLES / "digits.cnnviz"), "--json", "--device", dev, "--steps", "300")
    done = lines[-1] if lines else {}
    ok = (rc == 0 and done.get("event") == "done" and done.get("device") == devices.device_id(devices.resolve(dev))
          and (done.get("test_accuracy") or 0) >= 0.9)
    return {"ok": ok, "rc": rc, "done": done, "stderr": err[-2000:], "wall_s": time.perf_counter() - start}


def _stack(path: str) -> Stack:
    return files.load(EXAMPLES / path)


def check_probes(dev: str) -> dict:
    stack = _stack("digits.cnnviz")
    session = engine.Session(stack, replace(stack.training, device=dev))
    with session.rng_scope():
        for _ in range(100):
            session.step()
    probe = session.probe(3)
    ids = probe.identities
    timings = []
    for _ in range(20):
        t = time.perf_counter()
        session.probe(3)
        timings.append(time.perf_counter() - t)
    train_probe = session.probe(3, mode="train")
    modes_restored = all(m.training for m in session.model.modules())
    # The same weights on the CPU give the same output, relative to the largest logit (cuDNN convolutions
    # run in TF32 by default, about 3 decimal digits).
    cpu_model = engine.build.build_model(stack, seed=0)
    cpu_model.load_state_dict({k: v.cpu() for k, v in session.model.state_dict().items()})
    x = session.test_split.images[3:4].cpu()
    with torch.no_grad():
        cpu_out = cpu_model.eval()(x)[0].numpy()
    device_vs_cpu = float(np.abs(cpu_out - probe.output).max() / max(1.0, float(np.abs(cpu_out).max())))
    batch_ids = session.check_identities(32)
    double = Stack("double softmax", stack.input, stack.layers + (Layer("Softmax", {"dim": 1}),), Loss())
    dsession = engine.Session(double, replace(stack.training, device=dev))
    dprobe = dsession.probe(3)
    ok = (ids.holds and ids.dz.max_abs_diff < 1e-5 and ids.loss.max_abs_diff < 1e-5
          and not ids.stability.naive_finite and batch_ids.holds and not dprobe.identities.holds
          and dprobe.identities.at_output.holds and modes_restored and device_vs_cpu < 1e-2
          and not np.allclose(train_probe.output, probe.output))
    return {"ok": ok, "dz_max_diff": ids.dz.max_abs_diff, "ce_vs_nll": ids.loss.max_abs_diff,
            "batch32_dz_max_diff": batch_ids.dz.max_abs_diff, "naive_softmax_finite": ids.stability.naive_finite,
            "double_softmax_dz_diff": dprobe.identities.dz.max_abs_diff,
            "double_softmax_at_output_diff": dprobe.identities.at_output.max_abs_diff,
            "train_vs_eval_output_diff": float(np.abs(train_probe.output - probe.output).max()),
            "modes_restored": modes_restored, "device_vs_cpu_output": device_vs_cpu,
            "probe_ms_median": 1e3 * float(np.median(timings)), "notes": list(ids.notes)}


def check_host_data(dev: str) -> dict:
    stack = _stack("digits.cnnviz")
    saved = device_data.DEVICE_DATA_FRACTION
    device_data.DEVICE_DATA_FRACTION = 0.0
    try:
        session = engine.Session(stack, replace(stack.training, device=dev))
        on_device = session.train_split.on_device
        pinned = session.train_split.images.is_pinned() if not on_device else None
        result = training.Trainer(session, report_every=50).run(200)
        evaluation = session.evaluate()
    finally:
        device_data.DEVICE_DATA_FRACTION = saved
    return {"ok": not on_device and evaluation.accuracy > 0.85, "on_device": on_device, "pinned": pinned,
            "accuracy": evaluation.accuracy, "steps_per_second": result.steps_per_second}


def check_nan(dev: str) -> dict:
    stack = _stack("digits.cnnviz")
    session = engine.Session(stack, replace(stack.training, device=dev, optimizer="sgd", lr=1e12))
    try:
        with session.rng_scope():
            for _ in range(100):
                session.step()
    except engine.NonFiniteError as exc:
        finite = all(bool(torch.isfinite(p).all()) for p in session.model.parameters())
        return {"ok": exc.step == session.step_count + 1 and finite, "message": str(exc), "phase": exc.phase,
                "layer": exc.layer, "step": exc.step, "weights_finite": finite}
    return {"ok": False, "message": "no NaN after 100 steps at lr 1e12"}


def check_oom(dev: str) -> dict:
    device = devices.resolve(dev)
    if device.type == "cpu":
        return {"ok": True, "skipped": "out of memory is only provoked on CUDA/MPS"}
    devices.empty_cache(device)
    baseline = devices.memory_allocated(device)
    huge = Stack("absurd", InputSpec(1, 28, 28), (
        Layer("Conv2d", {"out_channels": 8192, "kernel_size": 1}), Layer("ReLU"),
        Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    config = replace(files.load(EXAMPLES / "lenet5.cnnviz").training, device=dev, batch_size=8192)
    out = {"baseline_bytes": baseline}
    t = time.perf_counter()
    try:  # far beyond the card: refused from the estimate, before anything is allocated
        engine.Session(huge, config)
        out["refused"] = None
    except engine.NotEnoughMemory as exc:
        out.update(refused=str(exc), seconds_to_refuse=time.perf_counter() - t,
                   bytes_after_refusal=devices.memory_allocated(device))
    # Built at batch 1, which fits, then asked for 8192 at run time: the allocator's own out-of-memory error.
    session = engine.Session(huge, replace(config, batch_size=1))
    session.set_batch_size(8192)
    out["session_bytes"] = devices.memory_allocated(device)
    t = time.perf_counter()
    try:
        session.step()
        out["error"] = "no out-of-memory error at batch 8192"
    except engine.OutOfMemory as exc:
        out.update(message=str(exc), suggested=exc.suggested_batch, seconds_to_error=time.perf_counter() - t)
    out["after_oom_bytes"] = devices.memory_allocated(device)
    out["reserved_after_oom"] = int(torch.cuda.memory_reserved(device)) if device.type == "cuda" else None
    session.close()
    del session
    out["after_close_bytes"] = devices.memory_allocated(device)
    rc, lines, err = cli_train(str(EXAMPLES / "digits.cnnviz"), "--json", "--device", dev, "--steps", "100")
    out["next_run"] = lines[-1] if lines else err
    out["ok"] = (bool(out["refused"]) and out["bytes_after_refusal"] <= baseline + (1 << 20)
                 and "message" in out and out["after_oom_bytes"] <= out["session_bytes"] + (1 << 20)
                 and out["after_close_bytes"] <= baseline + (1 << 20) and rc == 0
                 and "try a batch of 4096" in out["message"])
    return out


def check_absent_device() -> dict:
    rc, lines, err = cli_train(str(EXAMPLES / "digits.cnnviz"), "--device", "cuda:99", "--steps", "1")
    try:
        devices.resolve("cuda:99")
        raised = None
    except engine.DeviceError as exc:
        raised = str(exc)
    return {"ok": rc == 2 and raised is not None and "Traceback" not in err, "rc": rc, "stderr": err.strip(),
            "message": raised}


def check_overhead(dev: str) -> dict:
    import train_overhead

    results = {}
    ok = True
    for name, steps in (("digits.cnnviz", 50), ("lenet5.cnnviz", 40)):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            target = fh.name
        buf = io.StringIO()
        stdout = sys.stdout
        sys.stdout = buf
        try:
            train_overhead.main(["--device", dev, "--stack", str(EXAMPLES / name), "--steps", str(steps),
                                 "--repeats", "25", "--json", target])
        finally:
            sys.stdout = stdout
        print(buf.getvalue(), end="")
        data = json.loads(Path(target).read_text())
        os.unlink(target)
        results[name] = data
        ok = ok and data["ratios"]["engine+probes"] <= data["target"]
    return {"ok": ok, **results}


def check_pytest() -> dict:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"ok": True, "skipped": "pytest is not installed"}
    tests = [str(ROOT / "tests" / "core" / "run" / name) for name in
             ("test_engine.py", "test_engine_identities.py", "test_engine_training.py", "test_devices.py",
              "test_weights.py", "test_live_pieces.py")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          capture_output=True, text=True, timeout=150, cwd=ROOT, env=env)
    return {"ok": proc.returncode == 0, "rc": proc.returncode, "tail": proc.stdout[-3000:] + proc.stderr[-1000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Prove the engine's CUDA path; write a JSON report.")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--device", default="cuda", help="the device to prove (default cuda)")
    parser.add_argument("--pytest", action="store_true", help="also run the engine's tests (if pytest exists)")
    args = parser.parse_args(argv)
    report = {"host": platform.node(), "python": sys.version.split()[0], "torch": torch.__version__,
              "device_arg": args.device, "checks": {}}
    checks = [("devices", lambda: check_devices(args.device)), ("train", lambda: check_train(args.device)),
              ("probes", lambda: check_probes(args.device)), ("host_data", lambda: check_host_data(args.device)),
              ("nan", lambda: check_nan(args.device)), ("oom", lambda: check_oom(args.device)),
              ("absent_device", check_absent_device), ("overhead", lambda: check_overhead(args.device))]
    if args.pytest:
        checks.append(("pytest", check_pytest))
    started = time.perf_counter()
    for name, fn in checks:
        t = time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001  (record it and go on to the next check)
            if isinstance(exc, KeyboardInterrupt):
                raise
            result = {"ok": False, "exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - t, 2)
        report["checks"][name] = result
        print(f"[{'ok' if result.get('ok') else 'FAILED'}] {name} ({result['seconds']} s)", flush=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    report["ok"] = all(c.get("ok") for c in report["checks"].values())
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'} in {report['seconds']} s; "
          f"report in {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
