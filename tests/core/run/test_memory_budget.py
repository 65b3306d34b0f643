"""Memory bombs are refused before anything is allocated, with the numbers and a fix (issue 8, item 3).

Each refusal runs with a small free-memory figure put in place of the
machine's (``memory.cpu_free_bytes``), so it is the same on any machine and
nothing here allocates more than a few megabytes: the loader and the model
builder are replaced by functions that fail the test if they are reached.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cnnviz.core import data, shapes
from cnnviz.core.data import dataset
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.model.units import format_bytes
from cnnviz.core.run import build, engine, memory
from cnnviz.core.run.faults import NotEnoughMemory, OutOfMemory

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[3]
GiB = 1 << 30
LENET = assets.path("examples", "lenet5.cnnviz")


def config(**kw):
    base = dict(data="digits", device="cpu", lr=0.01, batch_size=64, seed=0, steps=10)
    base.update(kw)
    return TrainingConfig(**base)


@pytest.fixture
def free(monkeypatch):
    """``free(n)``: the CPU has ``n`` bytes free from now on in this test."""
    def set_free(n):
        monkeypatch.setattr(memory, "cpu_free_bytes", lambda: int(n))
    return set_free


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Loading data or building the model fails the test: a refusal must come before either.

    The loader's cache looks empty, so the data term is the same whatever other tests loaded.
    """
    def reached(*args, **kwargs):
        raise AssertionError("memory was allocated before the run was refused")

    monkeypatch.setattr(dataset, "_cache_get", lambda key: None)
    monkeypatch.setattr(data, "load", reached)
    monkeypatch.setattr(engine, "load_data", reached)
    monkeypatch.setattr(build, "build_model", reached)


def refused(stack, cfg, *, data_split=None) -> NotEnoughMemory:
    start = time.perf_counter()
    with pytest.raises(NotEnoughMemory) as info:
        engine.Session(stack, cfg, data=data_split)
    assert time.perf_counter() - start < 1.0
    err = info.value
    assert isinstance(err, OutOfMemory) and err.kind == "oom" and err.device == "cpu"
    assert err.needed_bytes > err.free_bytes
    return err


def linear_stack(name, shape, *features, bias=False):
    layers = [Layer("Flatten")] + [Layer("Linear", {"out_features": f, "bias": bias}) for f in features]
    return Stack(name, InputSpec(*shape), tuple(layers) + (Layer("Linear", {"out_features": 10}),))


# ------------------------------------------------------------------ the bombs
def test_two_billion_parameters_are_refused_before_anything_is_built(free, nothing_allocated):
    stack = linear_stack("Two billion", (1, 1024, 1024), 1024, 1 << 20)
    assert shapes.infer(stack).total_params > 2.1e9
    free(24 * GiB)
    err = refused(stack, config())
    message = str(err)
    assert message == ("training Two billion at batch 64 needs about 39.2 GiB (activations 1.0 GiB at batch 64, "
                       "parameters, gradients and Adam state 36.2 GiB, data 2.0 GiB) but the CPU has 24.0 GiB free: "
                       "the parameters, gradients and Adam state alone need 36.2 GiB; use fewer channels or "
                       "features (layer 1 (Linear) holds 1,073,741,824 parameters)")
    assert err.suggested_batch == 0 and err.batch_size == 64


def test_one_linear_of_two_to_the_thirty_parameters_is_refused(free, nothing_allocated):
    stack = linear_stack("Wide", (1, 128, 256), 32_768)
    assert max(r.params for r in shapes.infer(stack).layers) == 1 << 30
    free(8.2 * GiB)
    err = refused(stack, config(optimizer="sgd", momentum=0.0))
    assert "parameters and gradients 8.0 GiB" in str(err)  # plain SGD keeps no state: 4 + 4 bytes a parameter
    assert str(err).endswith("the CPU has 8.2 GiB free: the parameters and gradients need 8.0 GiB of the 8.5 GiB; "
                             "use fewer channels or features (layer 1 (Linear) holds 1,073,741,824 parameters)")
    free(8 * GiB)
    err = refused(stack, config())
    assert "parameters, gradients and Adam state 20.0 GiB" in str(err)  # + two moments + the step's sqrt(v)


def test_four_gibibytes_of_activations_per_sample_are_refused(free, nothing_allocated):
    stack = Stack("Wide maps", InputSpec(1, 2048, 2048), (
        Layer("Conv2d", {"out_channels": 256, "kernel_size": 1}), Layer("ReLU", {"inplace": True}),
        Layer("AdaptiveAvgPool2d", {"output_size": 1}), Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    assert shapes.infer(stack).layers[0].activation_elements == 1 << 30  # 4 GiB of float32 per sample
    free(4 * GiB)
    err = refused(stack, config(batch_size=8))
    assert "activations 96.4 GiB at batch 8" in str(err)
    assert str(err).endswith("one sample's activations alone need 12.0 GiB; use a smaller input, a stride or pooling, "
                             "or fewer channels (layer 0 (Conv2d) holds 1,073,741,824 values per sample)")
    assert err.suggested_batch == 0
    free(64 * GiB)
    err = refused(stack, config(batch_size=8))
    assert str(err).endswith("but the CPU has 64.0 GiB free: use a batch of at most 5")
    assert err.suggested_batch == 5


def test_a_batch_of_ten_million_is_refused_with_a_batch_that_fits(free, nothing_allocated, monkeypatch):
    stack = files.load(LENET)
    free(16 * GiB)
    err = refused(stack, config(batch_size=10_000_000))
    message = str(err)
    assert message == ("training LeNet-5 at batch 10,000,000 needs about 857.5 GiB (activations 857.5 GiB at batch "
                       "10,000,000, parameters, gradients and Adam state 1.1 MiB, data 11 MiB) but the CPU has "
                       "16.0 GiB free: use a batch of at most 180,000")
    assert err.suggested_batch == 180_000
    monkeypatch.undo()  # the real loader and builder again
    free(16 * GiB)
    session = engine.Session(stack, config(batch_size=err.suggested_batch))  # the suggestion is accepted
    assert session.memory.total_bytes <= 16 * GiB
    session.close()


def test_a_3x2048x2048_input_with_a_bundled_set_is_refused_before_the_data_is_loaded(free, nothing_allocated):
    stack = Stack("Huge photos", InputSpec(3, 2048, 2048), (
        Layer("Conv2d", {"out_channels": 8, "kernel_size": 4, "stride": 4}), Layer("ReLU"),
        Layer("AdaptiveAvgPool2d", {"output_size": 4}), Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    assert memory.images_loaded("digits", (3, 2048, 2048)) == 21  # what the loader's 1 GiB budget keeps
    free(1.5 * GiB)
    err = refused(stack, config(batch_size=4))
    assert "data 2.0 GiB" in str(err)  # the loader's 1,008 MiB and the normalised copy
    assert str(err).endswith("the data set at 3×2048×2048 alone takes 2.0 GiB; use a smaller input (the loader "
                             "keeps at most 1.0 GiB of images, and a copy is normalised)")
    free(8 * GiB)
    err = refused(stack, config(batch_size=64))
    assert str(err).endswith("at batch 64, parameters, gradients and Adam state 31 KiB, data 2.0 GiB) but the CPU "
                             "has 8.0 GiB free: use a batch of at most 36")


# ------------------------------------------------------------------ ordinary stacks
def test_the_examples_are_not_refused_with_the_machines_real_free_memory():
    free = memory.cpu_free_bytes()
    assert free is None or free > 0
    for path in assets.examples():
        stack = files.load(path)
        if not shapes.infer(stack).ok:
            continue
        est, seen = engine.check_memory(stack, config(batch_size=(stack.training or TrainingConfig()).batch_size))
        assert seen is None or seen > est.total_bytes
        assert est.total_bytes < 256 << 20, path.name  # a few MiB to tens of MiB


def test_lenet_trains_and_evaluates_with_the_default_chunk():
    session = engine.Session(files.load(LENET), config(batch_size=32))
    assert session.eval_chunk == memory.EVAL_CHUNK
    session.step()
    assert session.evaluate().n == len(session.data.test)
    session.close()


def test_parameters_gradients_and_adam_state_match_torch_exactly():
    session = engine.Session(files.load(LENET), config(batch_size=8))
    session.step()
    model, opt = session.model, session.optimizer
    est = session.memory
    assert est.weight_bytes == sum(p.nbytes for p in model.parameters()) == 4 * 61_706
    assert est.grad_bytes == sum(p.grad.nbytes for p in model.parameters())
    moments = sum(s[k].nbytes for s in opt.state.values() for k in ("exp_avg", "exp_avg_sq"))
    assert est.optimizer_bytes == moments  # Adam's scalar "step" tensors (4 bytes each) left out
    session.close()


def test_sgd_momentum_and_batchnorm_buffers_match_torch_exactly():
    stack = Stack("bn", InputSpec(1, 8, 8), (
        Layer("Conv2d", {"out_channels": 6, "kernel_size": 3}), Layer("BatchNorm2d"), Layer("ReLU"),
        Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    session = engine.Session(stack, config(optimizer="sgd", momentum=0.9, batch_size=8))
    session.step()
    model = session.model
    est = session.memory
    assert est.weight_bytes == sum(p.nbytes for p in model.parameters()) + sum(b.nbytes for b in model.buffers())
    assert est.optimizer_bytes == sum(s["momentum_buffer"].nbytes for s in session.optimizer.state.values())
    assert est.model_label == "parameters, gradients and momentum"
    session.close()


def saved_by_autograd(stack, batch: int) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward pass (parameters left out)."""
    model = build.build_model(stack, seed=0).train()
    report = shapes.infer(stack)
    x = torch.randn(batch, *report.input_shape)
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in params)


@pytest.mark.parametrize("name", ["lenet5", "tiny-vgg", "digits", "dilation-demo", "ceil-mode-demo"])
def test_what_is_kept_for_backward_matches_autograd_for_the_examples(name):
    stack = files.load(assets.path("examples", f"{name}.cnnviz"))
    est = memory.estimate(shapes.infer(stack), batch_size=4)
    assert est.saved_sample_bytes * 4 == saved_by_autograd(stack, 4)
    assert est.saved_sample_bytes < est.sample_bytes < 3 * est.saved_sample_bytes


def test_what_is_kept_for_backward_matches_autograd_for_every_kind_of_layer():
    L = Layer
    stack = Stack("mix", InputSpec(3, 16, 16), (
        L("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), L("BatchNorm2d"),
        L("ReLU", {"inplace": True}), L("Conv2d", {"out_channels": 8, "kernel_size": 3}), L("GELU"),
        L("AvgPool2d", {"kernel_size": 2}), L("LeakyReLU", {"inplace": True}), L("Dropout2d", {"p": 0.2}),
        L("Conv2d", {"out_channels": 6, "kernel_size": 1}), L("Tanh"), L("AdaptiveAvgPool2d", {"output_size": 2}),
        L("Sigmoid"), L("LeakyReLU"), L("MaxPool2d", {"kernel_size": 2}), L("Flatten"), L("Dropout", {"p": 0.3}),
        L("Linear", {"out_features": 10}), L("LogSoftmax", {"dim": 1})))
    est = memory.estimate(shapes.infer(stack), batch_size=8)
    # BatchNorm's per-channel mean and inverse deviation, Dropout2d's per-channel noise: not counted.
    assert est.saved_sample_bytes * 8 == pytest.approx(saved_by_autograd(stack, 8), rel=0.01)


# ------------------------------------------------------------------ evaluation in chunks
def test_a_run_that_trains_at_batch_2_also_evaluates(free):
    stack = Stack("big samples", InputSpec(1, 64, 64), (
        Layer("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
        Layer("MaxPool2d", {"kernel_size": 4}), Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    free(64 * GiB)
    est, _ = engine.check_memory(stack, config(batch_size=2))
    free(est.fixed_bytes + 2 * est.sample_bytes + est.sample_bytes // 2)
    with pytest.raises(NotEnoughMemory, match="use a batch of at most 2$"):
        engine.Session(stack, config(batch_size=3))
    session = engine.Session(stack, config(batch_size=2))
    assert 1 <= session.eval_chunk < 16
    assert session.eval_chunk == memory.eval_chunk(session.memory, est.fixed_bytes + 2.5 * est.sample_bytes)
    session.step()
    chunked = session.evaluate()
    whole = session.evaluate(chunk=1024)
    assert chunked.n == whole.n == len(session.data.test)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-5) and chunked.accuracy == whole.accuracy
    session.close()


def test_eval_chunk_is_1024_when_the_free_memory_is_unknown_or_plenty():
    est = memory.estimate(shapes.infer(files.load(LENET)), batch_size=64)
    assert memory.eval_chunk(est, None) == memory.eval_chunk(est, 16 * GiB) == 1024
    assert memory.eval_chunk(est, est.fixed_bytes) == 1  # never 0


# ------------------------------------------------------------------ the data term
@pytest.mark.parametrize("name", ["digits", "fashion-mnist", "shapes"])
def test_the_data_term_is_what_the_loader_really_returns_under_its_budget(name, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_BYTES", 2 << 20)  # a 2 MiB budget: trimming at a cheap size
    data.clear_cache()
    try:
        shape = (1, 24, 24)
        expected = memory.images_loaded(name, shape)
        assert expected == (2 << 20) // (4 * 24 * 24) < memory.BUNDLED_IMAGES[name]
        split = data.load(name, shape, 0)
        assert len(split.train) + len(split.test) == expected
        assert memory.dataset_bytes(name, shape, 0) == (memory.split_bytes(split), True)  # cached now
        assert memory.dataset_bytes(name, shape, 1) == (memory.split_bytes(split), False)
    finally:
        data.clear_cache()


def test_bundled_image_counts_are_the_sets_own():
    for name in ("digits", "fashion-mnist"):
        split = data.load(name, (1, 8, 8), 0)
        assert len(split.train) + len(split.test) == memory.BUNDLED_IMAGES[name]
    assert memory.dataset_bytes("folder:/somewhere", (1, 8, 8)) == (0, False)
    assert memory.dataset_bytes("no such set", (1, 8, 8)) == (0, False)
    assert memory.images_loaded("digits", (64, 4096, 4096)) == 0  # the loader refuses this size itself


# ------------------------------------------------------------------ building only (export)
def test_check_model_fits_counts_parameters_only():
    report = shapes.infer(files.load(LENET))
    assert memory.check_model_fits(report, 1 * GiB) == 4 * 61_706
    assert memory.check_model_fits(report, 1 * GiB, copies=2) == 8 * 61_706
    wide = shapes.infer(linear_stack("Wide", (1, 128, 256), 32_768))
    with pytest.raises(NotEnoughMemory) as info:
        memory.check_model_fits(wide, 2 * GiB)
    assert str(info.value) == ("building the model needs about 4.0 GiB for its 1,074,069,514 parameters but the CPU "
                               "has 2.0 GiB free: use fewer channels or features (layer 1 (Linear) holds "
                               "1,073,741,824 parameters)")
    assert info.value.kind == "oom"


def test_check_model_fits_reads_the_cpu_when_not_told(free):
    free(1 * GiB)
    with pytest.raises(NotEnoughMemory, match="the CPU has 1.0 GiB free"):
        memory.check_model_fits(shapes.infer(linear_stack("Wide", (1, 128, 256), 32_768)))


# ------------------------------------------------------------------ free memory on the CPU
def test_the_cpu_reads_meminfo_and_devices_passes_it_on(free):
    assert memory.cpu_free_bytes() is not None and memory.cpu_free_bytes() > 0
    free(123 << 20)
    assert engine.devices.free_memory(torch.device("cpu")) == 123 << 20


def test_meminfo_is_parsed(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       24683584 kB\nMemFree:  1 kB\nMemAvailable:   24002028 kB\n")
    assert memory._mem_available(str(path)) == 24002028 * 1024
    assert memory._mem_available(str(tmp_path / "absent")) is None


def cgroup_tree(tmp_path, proc_line, files_at):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    for folder, contents in files_at.items():
        (tmp_path / "fs" / folder).mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            (tmp_path / "fs" / folder / name).write_text(text)
    return str(proc), str(tmp_path / "fs")


def test_cgroup_v2_limit_minus_usage_without_reclaimable_cache(tmp_path):
    proc, root = cgroup_tree(tmp_path, "0::/user.slice/job", {
        ".": {},
        "user.slice": {"memory.max": str(8 * GiB), "memory.current": str(1 * GiB)},
        "user.slice/job": {"memory.max": str(4 * GiB), "memory.current": str(3 * GiB),
                           "memory.stat": f"anon 1\ninactive_file {GiB // 2}\n"},
    })
    assert memory._cgroup_room(proc, root) == GiB + GiB // 2  # the job's 4 − (3 − 0.5), tighter than its parent's


def test_cgroup_v1_limit_and_an_unlimited_group(tmp_path):
    proc, root = cgroup_tree(tmp_path, "4:memory:/process_api/abc", {
        "memory/process_api/abc": {"memory.limit_in_bytes": str(2 * GiB), "memory.usage_in_bytes": str(GiB // 4),
                                   "memory.stat": f"cache 5\ntotal_inactive_file {GiB // 4}\n"},
        "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": str(GiB)},
    })
    assert memory._cgroup_room(proc, root) == 2 * GiB
    proc, root = cgroup_tree(tmp_path / "other", "4:cpu,memory:/x", {
        "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": str(GiB)},
        "memory/x": {"memory.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": str(GiB)},
    })
    assert memory._cgroup_room(proc, root) is None
    assert memory._cgroup_room(str(tmp_path / "none"), root) is None


def test_cgroup_namespace_reads_the_top_of_the_mount(tmp_path):
    proc, root = cgroup_tree(tmp_path, "0::/not/mounted/here", {
        ".": {"memory.max": str(3 * GiB), "memory.current": str(GiB)},
    })
    assert memory._cgroup_room(proc, root) == 2 * GiB


def test_bytes_read_as_a_person_would():
    assert format_bytes(45.2 * GiB) == "45.2 GiB"
    assert format_bytes(31 << 20) == "31 MiB"
    assert format_bytes(0.9 * (1 << 20)) == "0.9 MiB"
    assert format_bytes(12 << 10) == "12 KiB"
    assert format_bytes(3 << 40) == "3.0 TiB"
    assert [memory._round_down(n) for n in (7, 99, 3_787, 190_476)] == [7, 99, 3_700, 190_000]


# ------------------------------------------------------------------ the command line, in a process of its own
BOMB_LAYERS = [{"type": "Flatten"}]
for _ in range(16):  # 34 billion parameters, 640 GiB with Adam: refused on any machine there is
    BOMB_LAYERS += [{"type": "Linear", "params": {"out_features": 1024, "bias": False}},
                    {"type": "Linear", "params": {"out_features": 1 << 20, "bias": False}}]
BOMB_LAYERS += [{"type": "Linear", "params": {"out_features": 10}}]
BOMB = {"format": "cnnviz.stack", "version": 1, "name": "Bomb", "input": {"channels": 1, "height": 1024, "width": 1024},
        "layers": BOMB_LAYERS, "training": {"data": "digits", "device": "cpu", "batch_size": 64, "steps": 10}}

MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    start = time.perf_counter()
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                      "seconds": time.perf_counter() - start,
                      "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
""")

TIMED = textwrap.dedent("""
    import io, json, resource, sys, time
    import torch
    from cnnviz import cli
    import cnnviz.core.run.engine
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    rc = cli.main(["train", sys.argv[1], "--json"], out=io.StringIO(), err=io.StringIO())
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start, "before": before,
                      "after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
""")


def measured(*argv) -> dict:
    """Run ``argv`` in a child of a fresh process, so RUSAGE_CHILDREN is that child's alone."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=120)
    return json.loads(result.stdout)


def test_cnnviz_train_refuses_a_bomb_at_once_in_little_memory(tmp_path):
    bomb = tmp_path / "bomb.cnnviz"
    bomb.write_text(json.dumps(BOMB), encoding="utf-8")
    run = measured(sys.executable, "-m", "cnnviz", "train", str(bomb), "--json")
    assert run["rc"] == 4, run["stderr"]
    lines = run["stdout"].splitlines()
    assert len(lines) == 1 and "Traceback" not in run["stderr"]
    error = json.loads(lines[0])
    assert error["event"] == "error" and error["kind"] == "oom"
    assert error["message"].startswith("training Bomb at batch 64 needs about ")
    assert "parameters, gradients and Adam state 516.2 GiB" in error["message"]
    # On the CPU the refusal comes before torch is imported: the whole process stays small and quick.
    assert run["maxrss"] < 200 << 20, run["maxrss"]
    assert run["seconds"] < 5, run["seconds"]  # the interpreter's start-up included, on a busy CI machine
    on_auto = dict(BOMB, training={**BOMB["training"], "device": "auto"})
    bomb.write_text(json.dumps(on_auto), encoding="utf-8")
    run = measured(sys.executable, "-m", "cnnviz", "train", str(bomb), "--json")
    assert run["rc"] == 4 and json.loads(run["stdout"])["kind"] == "oom"
    baseline = measured(sys.executable, "-c", "import torch")
    # With a GPU possible, torch is imported first (about 220 MB here); the refusal adds a few MB to it.
    assert run["maxrss"] - baseline["maxrss"] < 200 << 20, (run["maxrss"], baseline["maxrss"])
    timed = json.loads(subprocess.run([sys.executable, "-c", TIMED, str(bomb)], cwd=ROOT, capture_output=True,
                                      text=True, check=True, timeout=120).stdout)
    assert timed["rc"] == 4
    assert timed["seconds"] < 1.0  # after the imports: shape inference and arithmetic
    assert timed["after"] - timed["before"] < 200 << 20
