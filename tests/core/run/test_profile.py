"""``core.run.profile``: what it measures is what torch does (saved tensors by hand and by an independent hook,
activation sizes, who has a backward), SPEC §3.4's object, cancellation, progress and the memory refusals."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from cnnviz.core.model import assets, files
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
