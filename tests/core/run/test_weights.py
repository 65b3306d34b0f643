"""Weights in safetensors beside the stack: round trip, mismatches refused by name, another stack warned about."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.run import build, weights
from cnnviz.core.run.faults import EngineError


def stack(k2=3, name="net", bn=True, relu_for_bn=False):
    layers = [Layer("Conv2d", {"out_channels": 6, "kernel_size": 3}), Layer("ReLU"),
              Layer("MaxPool2d", {"kernel_size": 2}),
              Layer("Conv2d", {"out_channels": 16, "kernel_size": k2, "padding": (k2 - 1) // 2})]
    if bn:
        layers.append(Layer("BatchNorm2d"))
    elif relu_for_bn:
        layers.append(Layer("ReLU"))
    layers += [Layer("Flatten"), Layer("Linear", {"out_features": 10})]
    return Stack(name, InputSpec(1, 16, 16), tuple(layers))


def test_round_trip_is_exact_including_buffers(tmp_path):
    s = stack()
    a = build.build_model(s, seed=1)
    with torch.no_grad():
        a[4].running_mean.add_(0.5)
        a[4].num_batches_tracked.fill_(7)
    path = weights.save(a, s, tmp_path / "net.safetensors")
    b = build.build_model(s, seed=2)
    assert weights.load_into(b, s, path) == []
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "cnnviz.weights" and meta["stack_name"] == "net"
    assert meta["architecture"] == weights.architecture_key(s)
    assert json.loads(meta["layers"])[0] == "Conv2d"
    assert not list(tmp_path.glob("*.tmp"))


def test_a_shape_mismatch_is_refused_naming_the_layer_and_both_shapes(tmp_path):
    path = weights.save(build.build_model(stack(k2=5), seed=0), stack(k2=5), tmp_path / "w.safetensors")
    target = stack(k2=3)
    model = build.build_model(target, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(weights.WeightsError,
                       match=r"^layer 3 \(Conv2d\) weight: the file has 16×6×5×5, the stack needs 16×6×3×3$"):
        weights.load_into(model, target, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_missing_and_extra_tensors_are_named(tmp_path):
    with_bn, without_bn = stack(bn=True), stack(bn=False, relu_for_bn=True)
    path = weights.save(build.build_model(without_bn, seed=0), without_bn, tmp_path / "a.safetensors")
    with pytest.raises(weights.WeightsError, match=r"layer 4 \(BatchNorm2d\) weight: the file has none"):
        weights.load_into(build.build_model(with_bn, seed=0), with_bn, path)
    path = weights.save(build.build_model(with_bn, seed=0), with_bn, tmp_path / "b.safetensors")
    with pytest.raises(weights.WeightsError, match=r"^the file has 4.bias, which the stack does not have "
                                                   r"\(layer 4 \(ReLU\) bias\)"):
        weights.load_into(build.build_model(without_bn, seed=0), without_bn, path)


def test_another_stack_with_fitting_tensors_loads_with_a_warning(tmp_path):
    a = stack(name="first")
    path = weights.save(build.build_model(a, seed=0), a, tmp_path / "w.safetensors")
    renamed = stack(name="renamed")
    assert weights.load_into(build.build_model(renamed, seed=0), renamed, path) == []  # same architecture
    other = Stack("other", a.input, tuple(a.layers[:1]) + (Layer("GELU"),) + tuple(a.layers[2:]))
    warnings = weights.load_into(build.build_model(other, seed=0), other, path)
    assert len(warnings) == 1 and "saved for 'first'" in warnings[0]


def test_unreadable_files_are_weights_errors(tmp_path):
    s = stack()
    model = build.build_model(s, seed=0)
    with pytest.raises(weights.WeightsError, match="no such file"):
        weights.load_into(model, s, tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04pickle, not safetensors")
    with pytest.raises(weights.WeightsError, match="not a safetensors file"):
        weights.load_into(model, s, junk)
    assert issubclass(weights.WeightsError, EngineError)


def test_foreign_file_without_metadata_loads_if_it_fits_and_nan_is_warned(tmp_path):
    s = stack(bn=False)
    model = build.build_model(s, seed=0)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors["5.bias"][0] = float("nan")
    path = tmp_path / "plain.safetensors"
    save_file(tensors, str(path))
    warnings = weights.load_into(build.build_model(s, seed=1), s, path)
    assert warnings == ["layer 5 (Linear) bias holds NaN or Inf values"]


def test_save_into_a_missing_folder_is_an_error(tmp_path):
    s = stack()
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.save(build.build_model(s), s, tmp_path / "nope" / "w.safetensors")
    assert weights.beside("dir/lenet5.cnnviz").name == "lenet5.safetensors"
