"""A probe takes only what its ProbeRequest asks for, with the same numbers as the whole probe for what it
includes, and its one host copy lands in a buffer reused once nothing holds the previous probe's arrays."""
import gc

import numpy as np
import pytest
import torch

from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import engine, probes, training
from cnnviz.core.run.training import ProbeRequest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STACK = Stack("tiny", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU", {"inplace": True}),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"),
    Layer("Linear", {"out_features": 16}), Layer("ReLU"), Layer("Linear", {"out_features": 10})))


@pytest.fixture(scope="module")
def s():
    session = engine.Session(STACK, TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0))
    for _ in range(3):
        session.step()
    yield session
    session.close()


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_the_default_request_takes_everything(s):
    p = training.take_probe(s, ProbeRequest(index=4))
    assert all(g is not None for g in p.activation_grads)
    assert p.input_grad is not None and p.identities is not None
    assert [n is None for n in p.grad_norms] == [n is None for n in p.weight_norms]
    assert p.grad_layers is None and p.param_grads


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_a_reduced_request_gives_the_same_numbers_and_omits_the_rest(s, mode):
    full = training.take_probe(s, ProbeRequest(index=4, mode=mode))
    part = training.take_probe(s, ProbeRequest(index=4, mode=mode, grad_layers=(2, 4), input_grad=False,
                                               param_grads=False, with_identities=True))
    for a, b in zip(full.activations, part.activations):
        assert np.array_equal(a, b)
    for i, (a, b) in enumerate(zip(full.activation_grads, part.activation_grads)):
        if i in (2, 4):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
        else:
            assert b is None
    assert part.input_grad is None
    assert part.grad_norms == (None,) * len(STACK.layers)
    assert part.weight_norms == pytest.approx(full.weight_norms)
    assert part.batch_grad_norms == pytest.approx(full.batch_grad_norms)
    for key in ("output", "logits", "softmax", "log_softmax"):
        assert np.array_equal(getattr(full, key), getattr(part, key))
    assert part.loss == full.loss and part.prediction == full.prediction and part.label == full.label
    # the identities still use autograd's dL/dz, taken for them although layer 6's gradient is not shown
    np.testing.assert_allclose(part.identities.dz.autograd, full.identities.dz.autograd, rtol=1e-6, atol=1e-8)
    assert part.identities.dz.holds and part.grad_layers == (2, 4) and not part.param_grads


def test_the_forward_pass_alone_when_no_gradient_is_asked_for(s, monkeypatch):
    request = ProbeRequest(index=7, grad_layers=(), input_grad=False, param_grads=False, with_identities=False)
    assert not request.needs_backward and ProbeRequest().needs_backward
    full = training.take_probe(s, ProbeRequest(index=7))
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or real(*a, **k))
    part = training.take_probe(s, request)
    assert calls == []  # no backward pass at all
    assert all(g is None for g in part.activation_grads) and part.identities is None and part.input_grad is None
    for a, b in zip(full.activations, part.activations):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(part.softmax, full.softmax, rtol=1e-6)
    assert part.loss == pytest.approx(full.loss, rel=1e-6)
    assert part.weight_norms == pytest.approx(full.weight_norms)


def test_only_the_parameter_gradients(s):
    full = training.take_probe(s, ProbeRequest(index=2))
    part = training.take_probe(s, ProbeRequest(index=2, grad_layers=(), input_grad=False, with_identities=False))
    assert part.grad_norms == pytest.approx(full.grad_norms)
    assert all(g is None for g in part.activation_grads)


def test_the_grad_norms_are_torchs(s):
    """dL/dθ of one sample, from torch directly, against the reduced probe's norms."""
    p = training.take_probe(s, ProbeRequest(index=3, grad_layers=(), input_grad=False, with_identities=False))
    x, y = s._split("test").rows(3, 4)
    s.model.eval()
    try:
        loss = s.loss_fn(s.model(x), y)
        params = [list(m.parameters()) for m in s.model]
        flat = [q for group in params for q in group]
        grads = iter(torch.autograd.grad(loss, flat))
    finally:
        s.model.train()
    for i, group in enumerate(params):
        if group:
            expected = float(torch.sqrt(sum((next(grads) ** 2).sum() for _ in group)))
            assert p.grad_norms[i] == pytest.approx(expected, rel=1e-5)
        else:
            assert p.grad_norms[i] is None


def test_the_host_buffer_is_reused_once_the_previous_probe_is_gone(s):
    probes._HOST._free_at.clear()
    gc.collect()
    first = s.probe(1)
    buffer = id(first.activations[0].base)  # an id: a reference here would hold the buffer
    assert all(id(a.base) == buffer for a in first.activations)
    kept = [a.copy() for a in first.activations]
    second = s.probe(5)  # the first is still held (the window shows it): a buffer of its own
    assert id(second.activations[0].base) != buffer
    assert all(np.array_equal(a, b) for a, b in zip(first.activations, kept))
    del first
    gc.collect()
    third = s.probe(6)
    assert id(third.activations[0].base) == buffer  # the same array, no new allocation
    assert len(probes._HOST._free_at) == 2
    again = s.probe(6)
    assert again.activations[0].base is not third.activations[0].base
    for a, b in zip(third.activations, again.activations):
        assert np.array_equal(a, b)


def test_the_pool_stays_bounded_while_a_recording_keeps_every_probe(s):
    recording = [s.probe(i % 4) for i in range(12)]
    assert len({id(p.activations[0].base) for p in recording}) == 12
    assert len(probes._HOST._free_at) <= probes._HOST.keep
    assert np.array_equal(recording[0].activations[-1], s.probe(0).activations[-1])


def test_asking_is_scoped_to_its_block(s):
    with probes.asking(grad_layers=(1,), input_grad=False, param_grads=False):
        inside = s.probe(0, with_identities=False)
    outside = s.probe(0, with_identities=False)
    assert [g is not None for g in inside.activation_grads] == [i == 1 for i in range(len(STACK.layers))]
    assert all(g is not None for g in outside.activation_grads) and outside.input_grad is not None


def test_an_image_request_takes_only_what_it_asks_for_too(s, tmp_path):
    from PIL import Image

    path = tmp_path / "dot.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(path)
    p = training.take_probe(s, ProbeRequest(image=str(path), grad_layers=(0,), input_grad=False,
                                            param_grads=False, with_identities=False))
    assert p.split == "image" and p.activation_grads[0] is not None and p.input_grad is None
    assert all(g is None for g in p.activation_grads[1:])


def test_the_budget_is_counted_in_the_loops_cpu_time_on_the_cpu(s):
    """A shared CPU's other processes do not count as the probes' cost (benchmarks/ui.py (d) measures it)."""
    import time

    assert training.Trainer(s)._budget_clock() is time.thread_time
    assert 10 <= training.PROBE_HZ and training.PROBE_BUDGET <= 0.05
