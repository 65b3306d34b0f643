"""The engine's Session: learning, determinism, reset, faults (NaN, OOM, class count, device), probes, modes."""
import pickle

import numpy as np
import pytest
import torch

from cnnviz.core import data
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack, TrainingConfig
from cnnviz.core.run import engine, identities
from cnnviz.core.run.faults import (
    DataUnavailable,
    DeviceError,
    EngineError,
    LayerFailed,
    NonFiniteError,
    OutOfMemory,
    StackRefused,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(out=10, head=(), loss=Loss(), relu=None, extra=(), channels=1, size=8):
    layers = [Layer("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
              Layer("ReLU", relu or {}),
              Layer("MaxPool2d", {"kernel_size": 2}),
              *extra,
              Layer("Flatten"),
              Layer("Linear", {"out_features": out}),
              *head]
    return Stack("tiny", InputSpec(channels, size, size), tuple(layers), loss)


def config(**kw):
    base = dict(data="digits", device="cpu", lr=0.01, batch_size=32, seed=0, steps=100)
    base.update(kw)
    return TrainingConfig(**base)


def synthetic(n_train=64, n_test=32, shape=(1, 8, 8), classes=10, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)

    def part(n):
        x = (rng.random((n, *shape), dtype=np.float32) * scale).astype(np.float32)
        y = rng.integers(0, classes, n).astype(np.int64)
        return data.Dataset(x, y, tuple(str(i) for i in range(classes)))

    return data.DataSplit("synthetic", part(n_train), part(n_test), tuple(str(i) for i in range(classes)),
                          "test data", (0.0,) * shape[0], (1.0,) * shape[0])


def losses(session, n):
    out = []
    for _ in range(n):
        session.step()
        out.append(session.read_stats()[0])
    return out


def test_learning_happens_on_digits():
    session = engine.Session(tiny(), config())
    before = session.evaluate()
    with session.rng_scope():
        first = losses(session, 10)
        for _ in range(140):
            session.step()
    stats = session.read_stats()
    after = session.evaluate()
    assert session.step_count == 150
    assert stats[0] < np.mean(first) * 0.5
    assert after.loss < before.loss * 0.5
    assert after.accuracy > max(0.8, before.accuracy + 0.4)
    assert after.n == len(session.data.test) and after.split == "test"


def test_same_seed_same_losses_and_another_seed_differs():
    stack = tiny(extra=(Layer("Dropout", {"p": 0.3}),))
    a = losses(engine.Session(stack, config()), 15)
    torch.rand(10)  # the global random stream moving in between changes nothing
    b = losses(engine.Session(stack, config()), 15)
    c = losses(engine.Session(stack, config(seed=1)), 15)
    assert a == b
    assert a != c


def test_reset_reproduces_the_initial_weights_and_losses():
    session = engine.Session(tiny(extra=(Layer("Dropout", {"p": 0.2}),)), config(optimizer="sgd"))
    initial = {k: v.clone() for k, v in session.model.state_dict().items()}
    first = losses(session, 5)
    assert any(not torch.equal(initial[k], v) for k, v in session.model.state_dict().items())
    session.reset()
    assert session.step_count == 0
    assert all(torch.equal(initial[k], v) for k, v in session.model.state_dict().items())
    assert losses(session, 5) == first


def test_shape_error_is_refused_before_building_with_the_cores_message():
    bad = Stack("bad", InputSpec(1, 8, 8), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 9}),
                                             Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    with pytest.raises(StackRefused, match=r"^layer 0 \(Conv2d\): kernel 9"):
        engine.Session(bad, config(device="cuda:7"))  # refused before the device is even looked at


def test_class_count_must_match_the_data_set():
    with pytest.raises(StackRefused, match="the stack scores 7 classes but digits has 10: set the last "
                                           "Linear's out_features to 10"):
        engine.Session(tiny(out=7), config())
    conv_only = Stack("maps", InputSpec(1, 8, 8), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),))
    with pytest.raises(StackRefused, match="not one score per class"):
        engine.Session(conv_only, config())


def test_absent_device_and_unknown_data_are_engine_errors():
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda:0 was asked for"):
            engine.Session(tiny(), config(device="cuda:0"))
    with pytest.raises(DataUnavailable, match="no data set called 'nope'"):
        engine.Session(tiny(), config(data="nope"))


def test_nan_from_overflowing_input_stops_at_once_naming_the_first_layer():
    split = synthetic(scale=3e38)  # finite images; the first convolution overflows to inf
    session = engine.Session(tiny(), config(), data=split)
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    with pytest.raises(NonFiniteError) as info:
        session.step()
    err = info.value
    assert err.step == 1 and err.phase == "forward" and err.layer == 0 and err.label == "Conv2d"
    assert "layer 0 (Conv2d)" in str(err) and "step 1" in str(err) and "add BatchNorm2d before it" in str(err)
    assert session.step_count == 0
    assert all(torch.equal(before[k], v) for k, v in session.model.state_dict().items())  # weights untouched


def test_nan_from_a_huge_learning_rate_stops_within_one_step():
    session = engine.Session(tiny(), config(optimizer="sgd", lr=1e12, batch_size=64))
    with pytest.raises(NonFiniteError) as info:
        for _ in range(50):
            session.step()
    err = info.value
    assert err.step == session.step_count + 1
    assert err.phase in ("forward", "backward", "loss")
    if err.phase != "loss":
        assert err.layer is not None and f"layer {err.layer} ({err.label})" in str(err)
    assert "lower the learning rate (now 1e+12)" in str(err)
    for p in session.model.parameters():  # the bad step never reached the weights
        assert torch.isfinite(p).all()


def test_nan_in_the_data_is_named_as_the_input():
    split = synthetic()
    images = split.train.images.copy()
    images[:] = np.nan
    split = data.DataSplit("bad", data.Dataset(images, split.train.labels, split.classes), split.test,
                           split.classes, "", (0.0,), (1.0,))
    with pytest.raises(NonFiniteError, match="input images contain NaN"):
        engine.Session(tiny(), config(), data=split).step()


def test_out_of_memory_is_caught_with_a_smaller_batch_suggested_and_the_session_survives(monkeypatch):
    session = engine.Session(tiny(), config(batch_size=64))
    real_forward = session.model.forward
    calls = {"n": 0}

    def exhausted(x):
        calls["n"] += 1
        big = torch.empty(1000)  # a tensor in the failing frame: must be released
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 80.00 GiB {big.shape}")

    monkeypatch.setattr(session.model, "forward", exhausted)
    with pytest.raises(OutOfMemory) as info:
        session.step()
    err = info.value
    assert err.kind == "oom" and err.batch_size == 64 and err.suggested_batch == 32
    assert "out of memory on cpu (" in str(err) and "at batch 64: try a batch of 32" in str(err)
    assert err.__context__ is None and err.__cause__ is None  # no traceback holding the step's tensors
    monkeypatch.setattr(session.model, "forward", real_forward)
    session.set_batch_size(err.suggested_batch)
    session.step()
    assert session.step_count == 1


def test_probe_holds_every_layer_with_gradients_and_is_picklable():
    stack = tiny(relu={"inplace": True})
    session = engine.Session(stack, config())
    losses(session, 3)
    grads_before = [p.grad.clone() for p in session.model.parameters()]
    probe = session.probe(5)
    assert probe.step == 3 and probe.index == 5 and probe.split == "test" and probe.mode == "eval"
    assert len(probe.activations) == len(stack.layers) == len(probe.activation_grads)
    shapes = [(8, 8, 8), (8, 8, 8), (8, 4, 4), (128,), (10,)]
    assert [a.shape for a in probe.activations] == shapes
    assert [None if g is None else g.shape for g in probe.activation_grads] == shapes
    assert probe.image.shape == (1, 8, 8) and probe.image.min() >= 0 and probe.image.max() <= 1
    assert probe.input_grad.shape == (1, 8, 8)
    assert probe.label == int(session.data.test.labels[5]) and probe.label_name == str(probe.label)
    assert probe.weight_norms[0] > 0 and probe.weight_norms[1] is None and probe.batch_grad_norms[0] > 0
    assert abs(probe.softmax.sum() - 1) < 1e-5
    np.testing.assert_allclose(probe.logits, probe.output)
    assert probe.identities is not None and probe.identities.holds
    assert probe.identities.dz.max_abs_diff < 1e-6
    # The ReLU ran in place on a clone: conv's kept output still has negatives, ReLU's has none.
    assert probe.activations[0].min() < 0 and probe.activations[1].min() >= 0
    # dL/d(conv output) = dL/d(relu output) masked where the conv output was negative.
    mask = probe.activations[0] > 0
    np.testing.assert_allclose(probe.activation_grads[0], probe.activation_grads[1] * mask, atol=1e-7)
    # The training gradients (.grad) are left alone, and a probe is plain data.
    for before, p in zip(grads_before, session.model.parameters()):
        assert torch.equal(before, p.grad)
    again = pickle.loads(pickle.dumps(probe))
    np.testing.assert_array_equal(again.activations[2], probe.activations[2])
    assert again.identities.dz.max_abs_diff == probe.identities.dz.max_abs_diff


def test_probe_loss_and_dz_agree_with_a_plain_forward():
    session = engine.Session(tiny(), config())
    probe = session.probe(2)
    x = session.test_split.images[2:3]
    y = session.test_split.labels[2:3]
    with torch.no_grad():
        z = session.model.eval()(x)
    session.model.train()
    assert abs(probe.loss - float(torch.nn.functional.cross_entropy(z, y))) < 1e-5
    expected = torch.softmax(z, 1)[0].numpy() - np.eye(10)[int(y)]
    np.testing.assert_allclose(probe.activation_grads[-1], expected, atol=1e-6)


def test_train_and_eval_mode_differ_with_dropout_and_the_mode_is_restored():
    stack = tiny(extra=(Layer("Dropout", {"p": 0.5}), Layer("BatchNorm2d")))
    session = engine.Session(stack, config())
    model = session.model
    model[3].eval()  # a mixed state must come back exactly as it was
    modes = [m.training for m in model.modules()]
    running = model[4].running_mean.clone()
    ev1, ev2 = session.probe(0, mode="eval"), session.probe(0, mode="eval")
    tr = session.probe(0, mode="train")
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[4].running_mean, running)  # the train-mode probe left BN's statistics alone
    np.testing.assert_array_equal(ev1.output, ev2.output)
    assert not np.allclose(tr.output, ev1.output)
    assert tr.mode == "train"
    zeroed = tr.activations[3] == 0
    assert 0.2 < zeroed.mean() < 0.8  # about half the values dropped


def test_train_mode_probe_does_not_move_the_training_random_stream():
    stack = tiny(extra=(Layer("Dropout", {"p": 0.3}),))
    a = engine.Session(stack, config())
    b = engine.Session(stack, config())
    with a.rng_scope(), b.rng_scope():
        pass
    la = []
    lb = []
    with a.rng_scope():
        for _ in range(5):
            a.step()
            a.probe(1, mode="train")
            la.append(a.read_stats()[0])
    with b.rng_scope():
        for _ in range(5):
            b.step()
            lb.append(b.read_stats()[0])
    assert la == lb


@pytest.mark.parametrize("head,loss", [((Layer("LogSoftmax", {"dim": 1}),), Loss("NLLLoss")),
                                       ((Layer("Softmax", {"dim": 1}),), Loss())])
def test_probe_z_is_the_input_of_a_final_softmax(head, loss):
    session = engine.Session(tiny(head=head, loss=loss), config())
    probe = session.probe(0)
    ids = probe.identities
    assert session.z_source == f"the input of layer 5 ({head[0].type})"
    np.testing.assert_allclose(probe.logits, probe.activations[4])
    if head[0].type == "LogSoftmax":
        assert ids.holds
        np.testing.assert_allclose(probe.output, np.log(probe.softmax), atol=1e-5)
    else:
        assert not ids.holds and ids.at_output.holds
        np.testing.assert_allclose(probe.output, probe.softmax, atol=1e-6)
    batch = session.check_identities(8)
    assert batch.n == 8 and batch.holds == ids.holds


def test_evaluate_restores_the_mode_and_counts_the_whole_split():
    session = engine.Session(tiny(extra=(Layer("Dropout", {"p": 0.5}),)), config())
    assert session.model.training
    a = session.evaluate()
    b = session.evaluate()
    assert session.model.training
    assert a == b and a.n == len(session.data.test)


def test_loss_options_train(monkeypatch):
    weight = [1.0] * 9 + [3.0]
    for loss in (Loss(params={"reduction": "sum"}), Loss(params={"label_smoothing": 0.1, "weight": weight}),
                 Loss(params={"ignore_index": 3}), Loss(params={"reduction": "none"})):
        session = engine.Session(tiny(loss=loss), config())
        values = losses(session, 20)
        assert all(np.isfinite(values)) and values[-1] < values[0]
        assert session.evaluate().accuracy > 0.3


def test_weights_save_and_load_through_the_session(tmp_path):
    a = engine.Session(tiny(), config())
    losses(a, 5)
    path = a.save_weights(tmp_path / "w.safetensors")
    b = engine.Session(tiny(), config(seed=3))
    assert b.load_weights(path) == []
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_close_drops_the_device_tensors():
    session = engine.Session(tiny(), config())
    session.close()
    assert not hasattr(session, "model") and not hasattr(session, "train_split")


def test_errors_are_one_family():
    for cls in (DeviceError, StackRefused, DataUnavailable, NonFiniteError, OutOfMemory):
        assert issubclass(cls, EngineError)


def test_identities_module_matches_the_session_head():
    session = engine.Session(tiny(), config())
    assert session.head is None and session.z_index == 4
    assert identities.stack_head(["Linear", "Softmax"], [None, 0]) is None  # over the batch: not a class head


def test_gradient_overflow_with_a_finite_loss_is_named_in_the_backward_pass():
    stack = Stack("grad overflow", InputSpec(1, 8, 8), (Layer("Flatten"), Layer("Linear", {"out_features": 16}),
                                                        Layer("Linear", {"out_features": 10})))
    session = engine.Session(stack, config(), data=synthetic())
    with torch.no_grad():
        session.model[1].weight.fill_(1e-30)
        session.model[1].bias.zero_()
        session.model[2].weight.fill_(3e38)
        session.model[2].weight[::2] *= -1
        session.model[2].bias.zero_()
    with pytest.raises(NonFiniteError) as info:
        session.step()
    err = info.value
    # dL/d(layer 1's output) is still finite (1.5e38); layer 1's weight gradient, that times the input, is not.
    assert err.phase == "backward" and err.layer == 1 and err.label == "Linear"
    assert "the gradient became NaN or Inf at layer 1 (Linear) in the backward pass" in str(err)
    assert str(err).endswith("or add BatchNorm1d")  # a Linear of flat features: BatchNorm2d cannot go there
    assert float(session.model[2].weight.detach().abs().max()) == pytest.approx(3e38)  # not updated


def test_a_layer_that_fails_while_probing_is_named_and_the_model_is_left_as_it_was():
    stack = Stack("bn on 1x1", InputSpec(1, 8, 8), (
        Layer("Conv2d", {"out_channels": 4, "kernel_size": 8}), Layer("BatchNorm2d"), Layer("Flatten"),
        Layer("Linear", {"out_features": 10})))
    session = engine.Session(stack, config())
    running = session.model[1].running_var.clone()
    with pytest.raises(LayerFailed, match=r"^layer 1 \(BatchNorm2d\) failed in train mode: ValueError: "
                                          r"Expected more than 1 value per channel"):
        session.probe(0, mode="train")
    assert all(m.training for m in session.model.modules())
    assert torch.equal(session.model[1].running_var, running)
    assert session.probe(0, mode="eval").prediction in range(10)


def test_probe_image_takes_an_image_outside_the_data_set():
    from dataclasses import replace

    from cnnviz.core.model import assets, files
    from cnnviz.core.run.engine import Session

    stack = files.load(assets.path("examples", "digits.cnnviz"))
    session = Session(stack, replace(stack.training, device="cpu"))
    sample = session.probe(3, split="test")
    own = session.probe_image(sample.image, label=sample.label)
    np.testing.assert_allclose(own.logits, sample.logits, atol=1e-5)
    assert own.split == "image" and own.label == sample.label
    guessed = session.probe_image(sample.image)
    assert guessed.label == guessed.prediction == sample.prediction
    with pytest.raises(EngineError, match="the image is 1×4×4 but the stack takes 1×8×8"):
        session.probe_image(np.zeros((1, 4, 4), np.float32))
