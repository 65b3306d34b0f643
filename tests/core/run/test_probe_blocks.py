"""A probe of a stack with blocks keeps every inner layer's output and, when asked, its activation gradient,
by path: the same tensors a forward hook on that module of the built model sees."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from cnnviz.core.model import assets, files
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import TrainingConfig
from cnnviz.core.run import build, engine, probes, training
from cnnviz.core.run.training import ProbeRequest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXAMPLES = {p.stem: p for p in assets.examples()}

def session_of(name: str) -> engine.Session:
    stack = files.load(EXAMPLES[name])
    config = replace(stack.training or TrainingConfig(), data="digits", device="cpu", batch_size=16, seed=0)
    return engine.Session(stack, config)

@pytest.fixture(scope="module", params=["resnet-mini", "inception-mini"])
def s(request):
    session = session_of(request.param)
    session.step()   # weights that are not the seed's, BatchNorm statistics that are not the initial ones
    yield session
    session.close()

def hooked(session, index: int):
    """Every leaf's output for test sample ``index`` by forward hooks on the built model, and dL/d(each)."""
    model = session.model
    seen: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(lambda _m, _i, out, key=str(path): seen.__setitem__(key, out))
               for path, _layer, module in build.leaves(session.stack, model)]
    was = model.training
    model.eval()
    try:
        x, y = session.test_split.rows(index, index + 1)
        out = model(x)
        loss = session.loss_fn(out, y)
        grads = torch.autograd.grad(loss, list(seen.values()), allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was)
    return ({k: v.detach()[0].numpy() for k, v in seen.items()},
            {k: None if g is None else g[0].numpy() for k, g in zip(seen, grads)})

def test_every_inner_output_is_the_forward_hooks(s):
    p = training.take_probe(s, ProbeRequest(index=5))
    outputs, grads = hooked(s, 5)
    inner = {k: v for k, v in outputs.items() if not LayerPath.of(k).top_level}
    assert inner and list(p.inner_activations) == list(inner)   # every leaf inside a block, in file order
    for key, want in inner.items():
        np.testing.assert_allclose(p.inner_activations[key], want, rtol=1e-4, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(p.inner_grads[key], grads[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for key, want in outputs.items():   # the top-level layers are as they were
        if LayerPath.of(key).top_level:
            np.testing.assert_allclose(p.activations[int(key)], want, rtol=1e-4, atol=1e-5, err_msg=key)

def test_only_the_inner_gradients_asked_for_are_taken(s):
    inner = list(training.take_probe(s, ProbeRequest(index=2)).inner_activations)
    first, last = inner[0], inner[-1]
    p = training.take_probe(s, ProbeRequest(index=2, grad_layers=(first, LayerPath.of(last), "1"),
                                            input_grad=False, param_grads=False, with_identities=False))
    assert set(p.inner_grads) == {first, last} and all(g is not None for g in p.inner_grads.values())
    assert p.grad_layers == (1, first, last)
    assert [i for i, g in enumerate(p.activation_grads) if g is not None] == [1]
    assert list(p.inner_activations) == inner   # the outputs always come
    _, grads = hooked(s, 2)
    np.testing.assert_allclose(p.inner_grads[first], grads[first], rtol=1e-4, atol=1e-6)
    alone = training.take_probe(s, ProbeRequest(index=2, grad_layers=(last,), input_grad=False, param_grads=False,
                                                 with_identities=False))
    assert list(alone.inner_grads) == [last] and all(g is None for g in alone.activation_grads)
    np.testing.assert_allclose(alone.inner_grads[last], grads[last], rtol=1e-4, atol=1e-6)
    none = training.take_probe(s, ProbeRequest(index=2, grad_layers=()))
    assert none.inner_grads == {} and len(none.inner_activations) == len(inner)

def test_a_stack_without_blocks_has_no_inner_layers():
    session = session_of("lenet5")
    try:
        p = probes.take(session, 0)
        assert p.inner_activations == {} and p.inner_grads == {}
        assert all(g is not None for g in p.activation_grads)
    finally:
        session.close()


def test_the_snapshot_carries_inner_weights_by_path(s, monkeypatch):
    from cnnviz.core.run import live

    keys = [str(path) for path, _layer, module in build.leaves(s.stack, s.model)
            if getattr(module, "weight", None) is not None and module.weight.dim() == 4 and not path.top_level]
    snap = live.LiveProbe(s)(ProbeRequest(index=1))
    assert keys and all(k in snap.weights for k in keys)
    np.testing.assert_array_equal(snap.weights[keys[0]], s.model.get_submodule(keys[0]).weight.detach().numpy())
    bias = s.model.get_submodule(keys[-1]).bias
    assert (keys[-1] in snap.biases) == (bias is not None)
    monkeypatch.setattr(live, "SMALL_WEIGHTS", 0)   # large weights travel for the selected layer alone
    snap = live.LiveProbe(s, selected=lambda: keys[-1])(ProbeRequest(index=1))
    assert list(snap.weights) == [keys[-1]]
