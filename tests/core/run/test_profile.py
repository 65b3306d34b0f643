"""``core.run.profile``: what it measures is what torch does (saved tensors by hand and by an independent hook,
activation sizes, who has a backward), SPEC §3.4's object, cancellation, progress and the memory refusals."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from cnnviz.core.model import assets, files
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import InputSpec as Input
from cnnviz.core.model.stack import Layer, Stack, TrainingConfig
from cnnviz.core.run import memory, profile
from cnnviz.core.run.faults import NotEnoughMemory, OutOfMemory, StackRefused
from cnnviz.core.shapes import infer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = {"warmup": 1, "repeats": 2, "device": "cpu"}


def stack_of(*layers, shape=(1, 4, 4), training=None) -> Stack:
    return Stack(name="t", input=Input(*shape), layers=tuple(Layer(t, p) for t, p in layers), training=training)


MLP = stack_of(("Flatten", {}), ("Linear", {"out_features": 5}), ("ReLU", {}), ("Linear", {"out_features": 3}))
CONV = stack_of(("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
                ("MaxPool2d", {"kernel_size": 2}), ("Flatten", {}), ("Linear", {"out_features": 3}),
                shape=(2, 6, 6))


def independent_saved(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(bytes of non-parameter storages, bytes of parameter storages) saved by one forward, seen by our own hook."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return (sum(n for p, n in seen.items() if p not in params), sum(n for p, n in seen.items() if p in params))


def test_saved_bytes_of_an_mlp_by_hand():
    b = 4
    p = profile.profile_stack(MLP, batch_size=b, **QUICK)
    flat, lin1, relu, lin2 = p.layers
    # Flatten: a view; nothing before it trains, so it has no backward and saves nothing.
    assert (flat.saved_bytes, flat.backward_ms, flat.input_grad, flat.shares_input) == (0, 0.0, False, True)
    # Linear(16→5) saves its input (b×16 float32) for its weight gradient; its input needs no gradient (as the
    # batch in a real step), so autograd does not keep its weight.
    assert lin1.saved_bytes == b * 16 * 4
    assert lin1.saved_param_bytes == 0
    assert lin1.param_bytes == (5 * 16 + 5) * 4
    # ReLU saves its output (b×5), the next Linear its input: the same storage, in both rows.
    assert relu.saved_bytes == b * 5 * 4 and relu.input_grad
    # The second one's input needs a gradient: its weight (a parameter, counted apart) is saved too.
    assert lin2.saved_bytes == b * 5 * 4 and lin2.saved_param_bytes == 3 * 5 * 4
    # Over the whole step each storage counts once: input of Linear 1, ReLU's output, the loss's own.
    loss_saved = p.saved_bytes_total - (b * 16 * 4 + b * 5 * 4)
    assert 0 < loss_saved <= b * 3 * 4 + b * 8 + 8  # log-probabilities, the targets, a scalar
    assert all(not layer.flags for layer in p.layers)


def test_saved_bytes_match_an_independent_hook():
    b = 3
    p = profile.profile_stack(CONV, batch_size=b, **QUICK)
    torch.manual_seed(0)
    x = torch.randn(b, 2, 6, 6)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    saved, saved_params = independent_saved(conv, x)  # the data batch: no gradient needed, as in the profile
    assert (p.layers[0].saved_bytes, p.layers[0].saved_param_bytes) == (saved, saved_params) == (b * 2 * 36 * 4,
                                                                                                 4 * 2 * 9 * 4)
    h = torch.randn(b, 4, 6, 6, requires_grad=True)
    assert p.layers[1].saved_bytes == independent_saved(nn.ReLU(), h)[0] == b * 4 * 36 * 4
    # MaxPool2d keeps its input and its int64 indices.
    assert p.layers[2].saved_bytes == independent_saved(nn.MaxPool2d(2), h)[0] == b * 4 * 36 * 4 + b * 4 * 9 * 8
    assert p.layers[4].saved_bytes == b * 36 * 4
    for layer in p.layers:
        assert layer.saved_bytes == layer.analytic_saved_bytes  # memory.py's model, layer by layer
    est = memory.estimate(infer(CONV), batch_size=b)
    assert p.analytic_saved_bytes_total == b * est.saved_sample_bytes


def test_a_batchnorm1d_saves_its_input_as_the_estimate_says():
    b = 4
    head = stack_of(("Flatten", {}), ("Linear", {"out_features": 6}), ("BatchNorm1d", {}), ("ReLU", {}),
                    ("Linear", {"out_features": 3}))
    p = profile.profile_stack(head, batch_size=b, **QUICK)
    bn = p.layers[2]
    by_hook = independent_saved(nn.BatchNorm1d(6), torch.randn(b, 6, requires_grad=True))[0]
    # its input (b×6), and the batch's mean and inverse deviation (6 each), which the estimate leaves out
    assert bn.saved_bytes == by_hook and 0 <= by_hook - b * 6 * 4 <= 1024
    assert bn.analytic_saved_bytes == b * 6 * 4


def test_activation_bytes_are_the_output_tensors():
    b = 5
    p = profile.profile_stack(CONV, batch_size=b, **QUICK)
    report = infer(CONV)
    for layer, r in zip(p.layers, report.layers):
        assert layer.output_shape == r.output_shape
        assert layer.activation_bytes == b * math.prod(r.output_shape) * 4 == layer.analytic_activation_bytes
        assert layer.macs == r.macs
    assert [layer.shares_input for layer in p.layers] == [False, False, False, True, False]


def test_json_is_spec_3_4():
    p = profile.profile_stack(CONV, batch_size=2, **QUICK)
    obj = json.loads(json.dumps(p.to_json(), allow_nan=False))
    assert obj["format"] == "cnnviz.profile" and obj["version"] == 1
    assert obj["device"] == "cpu" and obj["batch_size"] == 2
    assert obj["peak_allocated_bytes"] is None  # CPU
    assert obj["step_ms"] > 0 and obj["layers_sum_ms"] > 0
    assert obj["layers_sum_ms"] == pytest.approx(sum(x["forward_ms"] + x["backward_ms"] for x in obj["layers"]),
                                                 abs=1e-3)
    assert [x["path"] for x in obj["layers"]] == [str(i) for i in range(len(CONV.layers))]
    assert [x["type"] for x in obj["layers"]] == [layer.type for layer in CONV.layers]
    for x in obj["layers"]:
        for key in ("forward_ms", "backward_ms"):
            assert isinstance(x[key], float) and x[key] >= 0
        for key in ("param_bytes", "activation_bytes", "saved_bytes", "macs", "analytic_activation_bytes"):
            assert isinstance(x[key], int) and x[key] >= 0
        assert isinstance(x["flags"], list)
        assert x["forward_ms"] > 0
    assert obj["layers"][0]["backward_ms"] > 0  # the Conv2d computes its weight gradient


def test_layer_count_and_defaults_follow_the_file():
    lenet = files.load(assets.path("examples", "lenet5.cnnviz"))
    p = profile.profile_stack(lenet, config=lenet.training, warmup=0, repeats=1, device="cpu")
    assert len(p.layers) == len(lenet.layers) == 12
    assert p.batch_size == lenet.training.batch_size == 64
    assert p.step_ms > 0
    small = stack_of(*[(t, dict(q)) for t, q in ((layer.type, layer.params) for layer in MLP.layers)],
                     training=TrainingConfig(batch_size=7))
    assert profile.profile_stack(small, warmup=0, repeats=1, device="cpu").batch_size == 7
    assert profile.profile_stack(MLP, warmup=0, repeats=1, device="cpu").batch_size == 64


def test_a_layer_before_any_parameters_has_no_backward_and_an_inplace_one_works():
    s = stack_of(("ReLU", {}), ("Conv2d", {"out_channels": 2, "kernel_size": 1}), ("ReLU", {"inplace": True}),
                 ("Flatten", {}), ("Linear", {"out_features": 2}))
    p = profile.profile_stack(s, batch_size=2, **QUICK)
    lead, _conv, inplace, _flat, _lin = p.layers
    assert (lead.input_grad, lead.backward_ms, lead.saved_bytes, lead.analytic_saved_bytes) == (False, 0.0, 0, 0)
    assert inplace.shares_input and inplace.input_grad
    assert inplace.saved_bytes == 2 * 2 * 16 * 4 == inplace.analytic_saved_bytes


def test_a_disagreement_with_the_estimate_is_flagged():
    # memory.py does not count Dropout2d's per-channel mask; the profile sees it and says so.
    s = stack_of(("Conv2d", {"out_channels": 64, "kernel_size": 1}), ("Dropout2d", {}), ("Flatten", {}),
                 ("Linear", {"out_features": 2}), shape=(1, 2, 2))
    p = profile.profile_stack(s, batch_size=8, **QUICK)
    drop = p.layers[1]
    assert drop.analytic_saved_bytes == 0 and drop.saved_bytes >= 8 * 64 * 4
    assert len(drop.flags) == 1 and drop.flags[0].startswith("saved bytes")
    assert not p.layers[0].flags
    assert profile._disagrees(10_000, 4_000) and not profile._disagrees(10_000, 6_000)
    assert not profile._disagrees(600, 0)  # under FLOOR_BYTES


def test_should_stop_cancels_and_progress_counts():
    seen = []
    p = profile.profile_stack(MLP, batch_size=2, progress=lambda d, t: seen.append((d, t)), **QUICK)
    total = len(MLP.layers) + 1
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert p.layers

    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(profile.Cancelled):
        profile.profile_stack(MLP, batch_size=2, should_stop=stop, **QUICK)
    assert len(calls) == 4  # checked between measurements, and it stopped at the first True
    with pytest.raises(profile.Cancelled):
        profile.profile_stack(MLP, batch_size=2, should_stop=lambda: True, **QUICK)


def test_a_cancel_from_another_thread_ends_the_profile():
    import threading

    stop = threading.Event()
    seen, raised = [], []

    def progress(done, total):
        seen.append(done)
        if done == 2:  # the window's GUI thread cancels while the worker profiles
            threading.Thread(target=stop.set).start()
            stop.wait(5)

    def work():
        try:
            profile.profile_stack(MLP, batch_size=2, should_stop=stop.is_set, progress=progress, **QUICK)
        except profile.Cancelled as exc:
            raised.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(30)
    assert raised and raised[0].kind == "cancelled"
    assert seen == [0, 1, 2]


def test_refused_stacks():
    with pytest.raises(StackRefused, match="layer 1"):
        profile.profile_stack(stack_of(("Flatten", {}), ("Conv2d", {"out_channels": 2, "kernel_size": 3})), **QUICK)
    with pytest.raises(StackRefused, match="not one score per class"):
        profile.profile_stack(stack_of(("Conv2d", {"out_channels": 2, "kernel_size": 3})), **QUICK)


def test_a_bomb_is_refused_before_anything_is_allocated(monkeypatch):
    monkeypatch.setattr(memory, "cpu_free_bytes", lambda: 10 * 1024 * 1024)
    built = []
    monkeypatch.setattr(profile.build, "build_model", lambda *a, **k: built.append(1))
    with pytest.raises(NotEnoughMemory, match="use a batch of at most") as info:
        profile.profile_stack(CONV, batch_size=4096, **QUICK)
    assert info.value.suggested_batch < 4096 and not built


def test_running_out_of_memory_is_out_of_memory(monkeypatch):
    def oom(self, x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(nn.ReLU, "forward", oom)
    with pytest.raises(OutOfMemory, match="try a batch of 4") as info:
        profile.profile_stack(MLP, batch_size=8, **QUICK)
    assert info.value.kind == "oom" and info.value.suggested_batch == 4


def test_an_unexpected_layer_failure_names_the_layer(monkeypatch):
    def broken(self, x):
        raise RuntimeError("something torch did not like")

    monkeypatch.setattr(nn.ReLU, "forward", broken)
    with pytest.raises(profile.LayerFailed, match=r"layer 2 \(ReLU\) failed while profiling: something torch"):
        profile.profile_stack(MLP, batch_size=2, **QUICK)


# ------------------------------------------------------------------ blocks: a row per layer at every depth
RESIDUAL = Stack(name="r", input=Input(2, 6, 6), layers=(
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
    Layer("Residual", name="stage", body=(Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
                                          Layer("BatchNorm2d"), Layer("ReLU"),
                                          Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1})),
          shortcut=(Layer("Conv2d", {"out_channels": 4, "kernel_size": 1}),)),
    Layer("Concat", branches=((Layer("ReLU", {"inplace": True}), Layer("Conv2d", {"out_channels": 2, "kernel_size": 1})),
                              (),
                              (Layer("Residual", body=(Layer("Conv2d", {"out_channels": 4, "kernel_size": 1}),)),))),
    Layer("Flatten"), Layer("Linear", {"out_features": 3})))
OLD_LAYER_KEYS = {"path", "type", "forward_ms", "backward_ms", "param_bytes", "activation_bytes", "saved_bytes",
                  "macs", "analytic_activation_bytes", "flags", "name", "output_shape", "saved_param_bytes",
                  "analytic_saved_bytes", "analytic_param_bytes", "gmacs_per_s", "shares_input", "input_grad", "runs"}
OLD_KEYS = {"format", "version", "device", "batch_size", "layers", "step_ms", "layers_sum_ms", "peak_allocated_bytes",
            "name", "device_name", "step_parts_ms", "layers_sum_over_step", "saved_bytes_total",
            "analytic_saved_bytes_total", "optimizer", "warmup", "repeats", "seconds", "threads", "torch"}


def test_every_layer_inside_a_block_has_a_row_by_path_and_the_block_one_of_its_own():
    seen = []
    p = profile.profile_stack(RESIDUAL, batch_size=2, progress=lambda d, t: seen.append((d, t)), **QUICK)
    walked = [(str(path), layer) for path, layer in RESIDUAL.walk()]
    assert [x.path for x in p.layers] == [path for path, _ in walked]
    leaves = {path for path, layer in walked if not layer.is_block}
    assert {"1.body.0", "1.body.3", "1.shortcut.0", "2.branches.0.0", "2.branches.0.1", "2.branches.2.0.body.0"} \
        <= leaves <= {x.path for x in p.layers}
    rows = {x.path: x for x in p.layers}
    assert [(x.path, x.type) for x in p.layers if x.block] == [("1", "Residual"), ("2", "Concat"),
                                                              ("2.branches.2.0", "Residual")]
    assert rows["1"].label == "stage" and rows["1"].depth == 0 and rows["1.body.2"].depth == 1
    assert rows["2.branches.2.0.body.0"].depth == 2 and rows["2.branches.2.0.body.0"].top_index == 2
    for x in p.layers:
        assert x.forward_ms > 0
    for path in ("1", "2"):
        # The block on its own, merge included: a forward and, its input needing a gradient, a backward.
        assert rows[path].forward_ms > 0 and rows[path].backward_ms > 0 and rows[path].input_grad
    # Each row's figures are its own module's: the block's output and parameters, the inner Conv2d's.
    report = infer(RESIDUAL)
    assert rows["1"].output_shape == report.layers[1].output_shape
    assert rows["1"].param_bytes == 4 * report.layers[1].params == sum(
        rows[k].param_bytes for k in ("1.body.0", "1.body.1", "1.body.3", "1.shortcut.0"))
    assert rows["1.shortcut.0"].macs == 4 * 4 * 36 and rows["1.shortcut.0"].input_grad
    # The sum of the layers counts the stack's own rows only: a block once.
    assert p.layers_sum_ms == pytest.approx(sum(x.forward_ms + x.backward_ms for x in p.layers if x.depth == 0))
    assert p.layers_sum_ms < sum(x.forward_ms + x.backward_ms for x in p.layers)
    assert seen[0] == (0, len(walked) + 1) and seen[-1] == (len(walked) + 1,) * 2


def test_an_inplace_layer_first_in_a_branch_leaves_the_blocks_input_alone(monkeypatch):
    # Concat's first branch starts with ReLU(inplace=True): were it given the recorded input itself, the
    # other branches (and the block's own row) would read rectified values, and the backward would fail
    # on a leaf changed in place.
    inputs = {}
    real = profile._profile_layer

    def spy(path, module, r, recorded, **kw):
        inputs[path] = recorded.clone()
        return real(path, module, r, recorded, **kw)

    monkeypatch.setattr(profile, "_profile_layer", spy)
    p = profile.profile_stack(RESIDUAL, batch_size=2, **QUICK)
    assert inputs["2"].min() < 0  # the Residual's sum, not rectified
    for path in ("2.branches.0.0", "2.branches.2.0", "2.branches.2.0.body.0"):
        assert torch.equal(inputs[path], inputs["2"])
    assert torch.equal(inputs["2.branches.0.1"], inputs["2"].clamp(min=0))
    rows = {x.path: x for x in p.layers}
    relu = rows["2.branches.0.0"]
    assert relu.shares_input and relu.input_grad and relu.saved_bytes == 2 * 4 * 36 * 4
    assert rows["2"].forward_ms > 0 and not rows["2"].shares_input


def test_a_blocks_saved_bytes_follow_its_storages():
    p = profile.profile_stack(RESIDUAL, batch_size=3, **QUICK)
    rows = {x.path: x for x in p.layers}
    b, n = 3, 4 * 36
    # body: Conv2d saves the block's input, BatchNorm2d the conv's output, ReLU its output, which the last
    # Conv2d saves as its input (once); the shortcut's Conv2d saves the block's input again (once).
    assert rows["1"].analytic_saved_bytes == 4 * b * n * 3
    assert not rows["1"].flags and not rows["2"].flags
    assert abs(rows["1"].saved_bytes - rows["1"].analytic_saved_bytes) <= 1024  # BatchNorm2d's statistics
    assert rows["1"].saved_bytes < sum(rows[k].saved_bytes for k in rows if k.startswith("1."))


def test_the_json_keeps_every_key_and_adds_depth_and_block():
    p = profile.profile_stack(RESIDUAL, batch_size=2, **QUICK)
    obj = json.loads(json.dumps(p.to_json(), allow_nan=False))
    assert OLD_KEYS <= set(obj)
    for x in obj["layers"]:
        assert OLD_LAYER_KEYS <= set(x) and set(x) - OLD_LAYER_KEYS == {"depth", "block"}
        assert x["depth"] == LayerPath.of(x["path"]).depth
    assert [x["block"] for x in obj["layers"]].count(True) == 3
    assert obj["layers_sum_ms"] == pytest.approx(
        sum(x["forward_ms"] + x["backward_ms"] for x in obj["layers"] if x["depth"] == 0), abs=1e-3)
    flat = profile.profile_stack(MLP, batch_size=2, **QUICK).to_json()
    assert all(x["depth"] == 0 and x["block"] is False for x in flat["layers"])


def test_a_failure_inside_a_block_names_the_path_and_the_top_level_layer(monkeypatch):
    def broken(self, x):
        raise RuntimeError("something torch did not like")

    monkeypatch.setattr(nn.BatchNorm2d, "forward", broken)
    with pytest.raises(profile.LayerFailed, match=r"layer 1 \(stage\) failed") as info:
        profile.profile_stack(RESIDUAL, batch_size=2, **QUICK)
    assert info.value.layer == 1
