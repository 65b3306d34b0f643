"""Trained weights kept across rebuilds by layer identity and shape (:mod:`cnnviz.core.run.kept`), headless.

The edits are the document's own (``set_param``, ``MoveLayer``, ``RemoveLayer`` and their inverses), so the
layer identities are the ones the window's stack carries.
"""
from dataclasses import replace

import numpy as np
import pytest

from cnnviz.core.model.stack import (
    InputSpec,
    InsertLayer,
    Layer,
    MoveLayer,
    RemoveLayer,
    Stack,
    TrainingConfig,
    set_param,
)
from cnnviz.core.run import engine
from cnnviz.core.run.kept import KeptWeights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STACK = Stack("tiny", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"),
    Layer("Linear", {"out_features": 10})))
"""Conv2d weights 4×1×3×3, Linear 10×64."""


def session(stack=STACK, **kw):
    base = dict(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0)
    base.update(kw)
    return engine.Session(stack, TrainingConfig(**base))


def trained(stack=STACK, steps=5, **kw):
    s = session(stack, **kw)
    with s.rng_scope():
        for _ in range(steps):
            s.step()
    return s


def weights(s, i):
    return s.model[i].weight.detach().cpu().numpy().copy()


def apply(stack, edit):
    new, inverse = edit.apply(stack)
    return new, inverse


def test_an_unchanged_stack_gets_every_trained_weight_and_the_step_count_back():
    kept = KeptWeights()
    old = trained()
    assert kept.remember(old) == 2
    new = session()
    assert not np.allclose(weights(new, 0), weights(old, 0))
    restored = kept.restore(new)
    assert restored.kept == ("0", "4") and restored.fresh == () and restored.step == 5
    np.testing.assert_array_equal(weights(new, 0), weights(old, 0))
    np.testing.assert_array_equal(weights(new, 4), weights(old, 4))
    np.testing.assert_array_equal(new.model[4].bias.detach().numpy(), old.model[4].bias.detach().numpy())
    assert new.step_count == 5
    assert restored.sentence() == "kept the trained weights of 2 of 2 layers with parameters"


def test_weights_survive_an_invalid_stack_in_between_and_an_undo_brings_them_back():
    """The issue's journey: an edit makes the stack invalid (no session at all), Ctrl+Z makes it valid again."""
    kept = KeptWeights()
    old = trained()
    kept.remember(old)  # the worker remembers the session it drops for the invalid stack
    broken, undo = apply(STACK, set_param(STACK, 2, "kernel_size", 40))
    back, _ = apply(broken, undo)
    assert [layer.uid for layer in back.layers] == [layer.uid for layer in STACK.layers]
    new = session(back)
    assert kept.restore(new).kept == ("0", "4")
    np.testing.assert_array_equal(weights(new, 0), weights(old, 0))
    assert new.step_count == 5


def test_a_layer_whose_shape_changed_starts_fresh_and_undo_restores_it():
    kept = KeptWeights()
    old = trained()
    kept.remember(old)
    wider, undo = apply(STACK, set_param(STACK, 0, "out_channels", 6))  # conv 6×1×3×3 and Linear 10×96
    mid = session(wider)
    seed_conv = weights(mid, 0)
    restored = kept.restore(mid)
    assert restored.kept == () and [i for i, _ in restored.fresh] == ["0", "4"]
    assert "parameters changed shape" in restored.fresh[0][1]
    np.testing.assert_array_equal(weights(mid, 0), seed_conv)  # nothing forced into the wrong shape
    assert mid.step_count == 0
    # trained a little in the wider form, then undone: the narrow weights are still remembered
    with mid.rng_scope():
        mid.step()
    kept.remember(mid)
    back, _ = apply(wider, undo)
    new = session(back)
    assert kept.restore(new).kept == ("0", "4")
    np.testing.assert_array_equal(weights(new, 0), weights(old, 0))
    np.testing.assert_array_equal(weights(new, 4), weights(old, 4))


def test_a_partly_kept_network_says_which_layers_start_again():
    kept = KeptWeights()
    kept.remember(trained())
    changed, _ = apply(STACK, set_param(STACK, 4, "bias", False))  # the Linear loses its bias: other shapes
    restored = kept.restore(session(changed))
    assert restored.kept == ("0",) and [i for i, _ in restored.fresh] == ["4"]
    text = restored.sentence(changed)
    assert text.startswith("kept the trained weights of 1 of 2 layers with parameters; Linear (layer 4) starts "
                           "again from the seed's weights (its parameters changed shape)")
    assert "undo brings the trained ones back" in text


def test_two_identical_layers_are_two_layers_and_keep_their_own_weights_through_a_move():
    twin = Layer("Conv2d", {"out_channels": 1, "kernel_size": 3, "padding": 1})
    stack = Stack("twins", InputSpec(1, 8, 8), (
        twin, twin.copy(), Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    assert stack.layers[0] == stack.layers[1] and stack.layers[0].uid != stack.layers[1].uid
    kept = KeptWeights()
    old = trained(stack)
    assert not np.allclose(weights(old, 0), weights(old, 1))
    kept.remember(old)
    swapped, _ = apply(stack, MoveLayer(1, 0))
    new = session(swapped)
    assert kept.restore(new).kept == ("0", "1", "3")
    np.testing.assert_array_equal(weights(new, 0), weights(old, 1))  # by identity, not by position
    np.testing.assert_array_equal(weights(new, 1), weights(old, 0))


def test_a_removed_layer_comes_back_with_its_weights_on_undo():
    kept = KeptWeights()
    stack = replace(STACK, layers=STACK.layers[:4] + (Layer("Linear", {"out_features": 32}), Layer("ReLU"),
                                                      Layer("Linear", {"out_features": 10})))
    old = trained(stack)
    kept.remember(old)
    without, undo = apply(stack, RemoveLayer(4))  # the last Linear now reads 64 features: a new shape
    mid = session(without)
    kept.restore(mid)
    kept.remember(mid)  # untrained: remembers nothing, forgets nothing
    back, _ = apply(without, undo)
    assert isinstance(undo, InsertLayer) and back.layers[4].uid == stack.layers[4].uid
    new = session(back)
    assert kept.restore(new).kept == ("0", "4", "6")
    np.testing.assert_array_equal(weights(new, 4), weights(old, 4))


def test_another_data_set_or_seed_gets_nothing_back():
    kept = KeptWeights()
    kept.remember(trained())
    assert kept.restore(session(seed=1)).kept == ()
    other = session(data="shapes")
    assert kept.restore(other).kept == () and other.step_count == 0


def test_the_budget_drops_the_least_recently_used_weights_first():
    conv_bytes = (4 * 9 + 4) * 4
    linear_bytes = (10 * 64 + 10) * 4
    kept = KeptWeights(budget=conv_bytes + linear_bytes)
    kept.remember(trained())
    assert len(kept) == 2 and kept.nbytes == conv_bytes + linear_bytes
    biasless, _ = apply(STACK, set_param(STACK, 4, "bias", False))
    kept.remember(trained(biasless))  # a Linear without bias is new; the one with a bias is the oldest and goes
    assert len(kept) == 2 and kept.nbytes <= kept.budget
    restored = kept.restore(session())
    assert restored.kept == ("0",) and [i for i, _ in restored.fresh] == ["4"]


def test_a_layer_larger_than_the_budget_is_not_kept_and_forget_empties_it():
    kept = KeptWeights(budget=1000)
    kept.remember(trained())
    assert len(kept) == 1  # the Conv2d (160 bytes) fits, the Linear (2,600 bytes) does not
    assert kept.step == 5
    kept.forget()
    assert len(kept) == 0 and kept.step == 0 and kept.restore(session()).kept == ()


def test_an_untrained_session_is_not_remembered():
    kept = KeptWeights()
    assert kept.remember(session()) == 0 and len(kept) == 0


def test_layers_inside_a_block_keep_their_weights_one_by_one():
    from cnnviz.core.model.stack import residual

    block = residual([Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
                      Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1})])
    stack = replace(STACK, layers=(STACK.layers[0], block) + STACK.layers[1:])
    kept = KeptWeights()
    old = trained(stack)
    kept.remember(old)
    # the second conv of the body changes its kernel (other shapes); the first keeps its weights
    changed, undo = apply(stack, set_param(stack, "1.body.2", "kernel_size", 1))
    changed, _ = apply(changed, set_param(changed, "1.body.2", "padding", 0))
    mid = session(changed)
    restored = kept.restore(mid)
    assert restored.kept == ("0", "1.body.0", "5") and [p for p, _ in restored.fresh] == ["1.body.2"]
    assert "Conv2d (layer 1 → body → 2)" in restored.sentence(changed)
    np.testing.assert_array_equal(mid.model.get_submodule("1.body.0").weight.detach().numpy(),
                                  old.model.get_submodule("1.body.0").weight.detach().numpy())


def test_a_batchnorm1d_keeps_its_weights_and_running_statistics_and_inserting_one_keeps_the_rest():
    head = Stack("head", InputSpec(1, 8, 8), (
        Layer("Flatten"), Layer("Linear", {"out_features": 12}), Layer("BatchNorm1d"), Layer("ReLU"),
        Layer("Linear", {"out_features": 10})))
    kept = KeptWeights()
    old = trained(head)
    kept.remember(old)
    new = session(head)
    assert kept.restore(new).kept == ("1", "2", "4")
    for key, value in old.model[2].state_dict().items():  # weight, bias, running mean and variance, the count
        np.testing.assert_array_equal(new.model[2].state_dict()[key].numpy(), value.numpy())
    assert int(new.model[2].num_batches_tracked) == 5
    # a second BatchNorm1d inserted before the last Linear: new, so from the seed; the others keep theirs
    wider, _ = apply(head, InsertLayer(4, Layer("BatchNorm1d")))
    mid = session(wider)
    restored = kept.restore(mid)
    assert restored.kept == ("1", "2", "5") and restored.fresh == ()
    np.testing.assert_array_equal(weights(mid, 5), weights(old, 4))
    assert float(mid.model[4].running_var.min()) == 1.0 and int(mid.model[4].num_batches_tracked) == 0
