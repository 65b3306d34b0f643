"""A block nested in a block: the probe keeps its merged output by its path, as a forward hook on that module
sees it, so selecting it shows its own maps (not the outer block's) and the layer after it has its input."""
import numpy as np
import pytest
import torch

from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig, concat, residual
from cnnviz.core.run import engine, training
from cnnviz.core.run.training import ProbeRequest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv(c):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": 3, "padding": 1})


NESTED = Stack("nested", InputSpec(1, 8, 8), (
    conv(4),
    residual([conv(4), residual([conv(4), Layer("ReLU")]), Layer("ReLU")]),       # 1.body.1 is a Residual
    concat([conv(2), concat([conv(1)], [conv(1)])], [conv(4)]),                   # 2.branches.0.1 a Concat
    Layer("Flatten"), Layer("Linear", {"out_features": 10})))


@pytest.fixture(scope="module")
def s():
    session = engine.Session(NESTED, TrainingConfig(data="digits", device="cpu", batch_size=16, seed=0))
    session.step()
    yield session
    session.close()


def test_a_nested_blocks_output_is_in_the_probe_as_its_module_computes_it(s):
    model = s.model
    seen = {}
    targets = {"1.body.1": model.get_submodule("1.body.1"), "2.branches.0.1": model.get_submodule("2.branches.0.1"),
               "1.body.1.body.0": model.get_submodule("1.body.1.body.0")}
    handles = [m.register_forward_hook(lambda _m, _i, out, key=k: seen.__setitem__(key, out.detach()[0].numpy()))
               for k, m in targets.items()]
    try:
        was = model.training
        model.eval()
        x, _y = s.test_split.rows(3, 4)
        with torch.no_grad():
            model(x)
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    p = training.take_probe(s, ProbeRequest(index=3))
    for key, want in seen.items():
        assert key in p.inner_activations, key
        np.testing.assert_allclose(p.inner_activations[key], want, rtol=1e-4, atol=1e-5, err_msg=key)
    assert p.inner_activations["2.branches.0.1"].shape == (2, 8, 8)   # its two branches, one channel each
    keys = list(p.inner_activations)
    assert keys.index("1.body.1.body.1") < keys.index("1.body.1") < keys.index("1.body.2")   # in the order run


def test_a_nested_blocks_gradient_is_taken_when_asked(s):
    p = training.take_probe(s, ProbeRequest(index=3, grad_layers=("1.body.1",)))
    g = p.inner_grads.get("1.body.1")
    assert g is not None and g.shape == (4, 8, 8) and np.isfinite(g).all() and np.abs(g).sum() > 0
