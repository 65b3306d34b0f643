"""``cnnviz.core.importer``: an explicit ``Pad`` folded into the Conv or pool that reads it, a Conv's own uneven
pads as torch's ``padding="same"``, BatchNorm on N×F features; models built with torch, exported by both of
torch's exporters, imported, built and compared with the torch model; and the refusals, with their messages."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper
from torch import nn

from cnnviz.core import importer
from tests.core.importer.test_onnx_import import EXPORTERS, HAS_DYNAMO, export, imported_model

SHAPE = (2, 7, 9)


def same_as_torch(model, imported, tmp_path, shape=SHAPE, tol=1e-5):
    _stack, net = imported_model(imported, tmp_path)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32))
    with torch.no_grad():
        expected, got = model.eval()(x), net(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=tol, atol=tol)


CASES = {
    "zero pad, then conv": (lambda: nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(2, 3, 3)),
                            [("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1})]),
    "zero pad, then a padded conv": (lambda: nn.Sequential(nn.ZeroPad2d((2, 2, 1, 1)), nn.Conv2d(2, 3, 3, padding=1)),
                                     [("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": [2, 3]})]),
    "uneven zero pad as 'same'": (lambda: nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(2, 3, 2)),
                                  [("Conv2d", {"out_channels": 3, "kernel_size": 2, "padding": "same"})]),
    "padding='same', even kernel": (lambda: nn.Conv2d(2, 3, 4, padding="same"),
                                    [("Conv2d", {"out_channels": 3, "kernel_size": 4, "padding": "same"})]),
    "reflect": (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                [("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1, "padding_mode": "reflect"})]),
    "replicate": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=(1, 2), padding_mode="replicate", bias=False),
                  [("Conv2d", {"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": [1, 2],
                               "bias": False, "padding_mode": "replicate"})]),
    "reflection pad module": (lambda: nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(2, 3, 5)),
                              [("Conv2d", {"out_channels": 3, "kernel_size": 5, "padding": 2,
                                           "padding_mode": "reflect"})]),
    "reflect 'same', even kernel": (
        lambda: nn.Conv2d(2, 3, (2, 4), padding="same", padding_mode="reflect"),
        [("Conv2d", {"out_channels": 3, "kernel_size": [2, 4], "padding": "same", "padding_mode": "reflect"})]),
    "circular": (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
                 [("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1, "padding_mode": "circular"})]),
    "circular of H only, 'same'": (
        lambda: nn.Conv2d(2, 3, (4, 1), padding="same", padding_mode="circular"),
        [("Conv2d", {"out_channels": 3, "kernel_size": [4, 1], "padding": "same", "padding_mode": "circular"})]),
    "relu, zero pad, max pool": (lambda: nn.Sequential(nn.ReLU(), nn.ZeroPad2d(1), nn.MaxPool2d(3, 2)),
                                 [("ReLU", {}), ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1})]),
    "zero pad, avg pool": (lambda: nn.Sequential(nn.ZeroPad2d(1), nn.AvgPool2d(3, 2)),
                           [("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1})]),
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("case", list(CASES))
def test_pads_fold_into_the_layer_that_reads_them(case, exporter, tmp_path):
    torch.manual_seed(0)
    make, expected = CASES[case]
    model = nn.Sequential(make(), nn.Flatten())
    path = export(model, SHAPE, tmp_path / "pad.onnx", exporter)
    imported = importer.read(path)
    assert [(layer.type, layer.params) for layer in imported.stack.layers] == [*expected, ("Flatten", {})]
    same_as_torch(model, imported, tmp_path)


def test_a_concat_on_h_that_is_no_circular_pad_is_refused_by_axis(tmp_path):
    class Edges(nn.Module):
        def forward(self, x):  # the first row on top, the last below: no wrap
            return torch.flatten(torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2), 1)

    with pytest.raises(importer.ImportRefused, match=r"\(Concat\) joins paths from 'input' on axis 2, and a Concat "
                                                     r"block joins channels only \(axis 1\); cnnviz imports Conv"):
        importer.read(export(Edges(), SHAPE, tmp_path / "edges.onnx", "torchscript"))


# ------------------------------------------------------------------ hand-written graphs
def _model(nodes, inits=(), shape=("N", 2, 6, 6), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
                              initializer=[onnx.numpy_helper.from_array(v, k) for k, v in dict(inits).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _pad(pads, mode="constant", value=None, axes=None, name="pad", out="p", src="input"):
    inits = {f"{name}_pads": np.array(pads, np.int64)}
    inputs = [src, f"{name}_pads"]
    if value is not None or axes is not None:
        inputs.append("" if value is None else f"{name}_value")
        if value is not None:
            inits[f"{name}_value"] = np.array(value, np.float32)
    if axes is not None:
        inputs.append(f"{name}_axes")
        inits[f"{name}_axes"] = np.array(axes, np.int64)
    return helper.make_node("Pad", inputs, [out], name=name, mode=mode), inits


WEIGHT = {"w": np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)}


def _read(nodes, inits=(), **kw):
    return importer.read_bytes(_model(nodes, inits, **kw).SerializeToString())


def test_opset_9_pad_attributes_and_opset_18_axes(tmp_path):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32))
    expected = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 2, 2), mode="replicate"),
                                    torch.from_numpy(WEIGHT["w"]))
    old = [helper.make_node("Pad", ["input"], ["p"], name="pad", mode="edge", pads=[0, 0, 2, 1, 0, 0, 2, 1]),
           helper.make_node("Conv", ["p", "w"], ["output"], name="conv", kernel_shape=[3, 3])]
    pad, inits = _pad([2, 1, 2, 1], mode="edge", axes=[-2, -1])
    new = [pad, helper.make_node("Conv", ["p", "w"], ["output"], name="conv", kernel_shape=[3, 3])]
    for imported in (_read(old, WEIGHT, opset=9), _read(new, {**WEIGHT, **inits}, opset=18)):
        assert [(layer.type, layer.params) for layer in imported.stack.layers] == [
            ("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": [2, 1], "bias": False,
                        "padding_mode": "replicate"})]
        _stack, net = imported_model(imported, tmp_path)
        with torch.no_grad():
            np.testing.assert_allclose(net(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_an_all_zero_pad_is_an_identity():
    pad, inits = _pad([0] * 8, mode="reflect")
    imported = _read([pad, helper.make_node("Relu", ["p"], ["output"])], inits)
    assert [layer.type for layer in imported.stack.layers] == ["Identity", "ReLU"]


def conv(src="p", **attrs):
    return helper.make_node("Conv", [src, "w"], ["output"], name="conv", kernel_shape=[3, 3], **attrs)


REFUSED = {
    "a zero pad before a max pool of values that may be negative": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1]),
         (helper.make_node("MaxPool", ["p"], ["output"], name="pool", kernel_shape=[3, 3]), {})],
        (r"'pad' \(Pad\) cannot be expressed: zero padding \(top 1, bottom 1, left 1, right 1\) before node 'pool' "
         r"\(MaxPool\), whose input may be negative: torch's MaxPool2d pads with −infinity.*after a ReLU")),
    "uneven pads at stride 2": (
        [_pad([0, 0, 0, 0, 0, 0, 1, 1]), (conv(strides=[2, 2]), WEIGHT)],
        (r"'pad' \(Pad\) cannot be expressed: its pads and those of node 'conv' \(Conv\) together "
         r"\(top 0, bottom 1, left 0, right 1\) differ between the two sides.*padding='same'")),
    "uneven pads of a conv's own": (
        [(conv(src="input", pads=[1, 0, 0, 1]), WEIGHT)],
        r"'conv' \(Conv\) cannot be expressed: its pads \(top 1, bottom 0, left 0, right 1\) differ"),
    "reflect pads before a conv that pads zeros": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1], mode="reflect"), (conv(pads=[1, 1, 1, 1]), WEIGHT)],
        (r"reflect padding \(top 1, bottom 1, left 1, right 1\) before node 'conv' \(Conv\), which pads zeros of "
         r"its own")),
    "a border of ones": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1], value=1.0), (conv(), WEIGHT)], r"a border of 1 \(torch's layers pad with"),
    "padding the channels": (
        [_pad([0, 1, 0, 0, 0, 1, 0, 0]), (conv(), WEIGHT)], r"pad the batch or the channels"),
    "a crop": ([_pad([0, 0, -1, 0, 0, 0, 0, 0]), (conv(), WEIGHT)], r"negative pads .*a crop"),
    "a pad before an activation": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1], mode="edge"), (helper.make_node("Relu", ["p"], ["output"], name="act"), {})],
        (r"edge padding \(top 1, bottom 1, left 1, right 1\) before node 'act' \(Relu\): this cnnviz's catalogue has "
         r"no padding layer.*Conv2d\(padding=\.\.\., padding_mode=\.\.\.\)")),
    "a pad read by two nodes": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1]), (helper.make_node("Conv", ["p", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
                                          WEIGHT),
         (helper.make_node("Conv", ["p", "w"], ["d"], name="conv2", kernel_shape=[3, 3]), {}),
         (helper.make_node("Add", ["c", "d"], ["output"], name="add"), {})],
        r"before node 'conv' \(Conv\) and node 'conv2' \(Conv\): this cnnviz's catalogue has no padding layer"),
    "a zero pad before an average pool that does not count its own": (
        [_pad([0, 0, 1, 0, 0, 0, 1, 0]), (helper.make_node("AveragePool", ["p"], ["output"], name="pool",
                                                           kernel_shape=[3, 3], pads=[0, 1, 0, 1]), {})],
        r"pads top 0, bottom 0, left 1, right 1 of its own without counting it \(count_include_pad 0\)"),
    "a zero pad before a pool with ceil_mode": (
        [_pad([0, 0, 1, 1, 0, 0, 1, 1]), (helper.make_node("AveragePool", ["p"], ["output"], name="pool",
                                                           kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), {})],
        r"zero padding \(top 1, bottom 1, left 1, right 1\) before node 'pool' \(AveragePool\) with ceil_mode"),
    "more than half the window": (
        [_pad([0, 0, 2, 2, 0, 0, 2, 2]), (helper.make_node("AveragePool", ["p"], ["output"], name="pool",
                                                           kernel_shape=[3, 3]), {})],
        (r"padding \[2, 2\] in all before node 'pool' \(AveragePool\), whose window is \[3, 3\]: torch's AvgPool2d "
         r"pads at most half")),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_pads_that_cannot_fold_are_refused_by_node_with_the_reason(case):
    parts, match = REFUSED[case]
    nodes, inits = [], {}
    for node, more in parts:
        nodes.append(node)
        inits.update(more)
    with pytest.raises(importer.ImportRefused, match=match) as info:
        _read(nodes, inits)
    assert "cnnviz imports Conv" in str(info.value) and "Pad (of H and W" in str(info.value)


def test_a_zero_pad_folds_into_a_max_pool_after_clip_to_0_6_and_not_after_tanh(tmp_path):
    def graph(first):
        pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1], src="c")
        nodes = [first, pad,
                 helper.make_node("MaxPool", ["p"], ["output"], name="pool", kernel_shape=[3, 3], strides=[2, 2])]
        return nodes, {**inits, "low": np.array(0, np.float32), "high": np.array(6, np.float32)}

    imported = _read(*graph(helper.make_node("Clip", ["input", "low", "high"], ["c"], name="clip")))
    assert [(layer.type, layer.params) for layer in imported.stack.layers] == [
        ("ReLU6", {}), ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1})]
    _stack, net = imported_model(imported, tmp_path)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32))
    expected = nn.functional.max_pool2d(nn.functional.pad(x.clamp(0, 6), (1, 1, 1, 1)), 3, 2)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(importer.ImportRefused, match="whose input may be negative"):
        _read(*graph(helper.make_node("Tanh", ["input"], ["c"], name="tanh")))


# ------------------------------------------------------------------ BatchNorm on N×F
def bn_head(**kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 7 * 9, 5), nn.BatchNorm1d(5, **kw), nn.ReLU())
    bn = model[2]
    bn.running_mean.copy_(torch.rand(5) - 0.5)
    bn.running_var.copy_(torch.rand(5) + 0.5)
    bn.weight.data.copy_(torch.rand(5) + 0.5)
    bn.bias.data.copy_(torch.rand(5) - 0.5)
    return model.eval()


def test_batch_norm_of_features_imports_as_batchnorm1d_with_its_statistics_and_the_same_outputs(tmp_path):
    """TorchScript keeps an eval-mode BatchNorm1d as BatchNormalization on N×F: it imports as BatchNorm1d, with
    torch's running statistics, weights, eps and momentum, and the imported stack computes what torch does."""
    model = bn_head(eps=1e-3, momentum=0.25)
    imported = importer.read(export(model, SHAPE, tmp_path / "bn1d.onnx", "torchscript"))
    assert [(layer.type, layer.params) for layer in imported.stack.layers] == [
        ("Flatten", {}), ("Linear", {"out_features": 5}), ("BatchNorm1d", {"eps": 0.001, "momentum": 0.25}),
        ("ReLU", {})]
    _stack, net = imported_model(imported, tmp_path)
    for key in ("weight", "bias", "running_mean", "running_var"):
        np.testing.assert_allclose(net[2].state_dict()[key].numpy(), model[2].state_dict()[key].numpy(), rtol=1e-6)
    same_as_torch(model, imported, tmp_path)


def test_batch_norm_of_features_folded_into_its_linear_imports_with_the_same_outputs(tmp_path):
    """A BatchNorm1d folded before export (torch's fusion, or the dynamo exporter's optimiser) imports as the
    Linear alone, with the same outputs."""
    model = bn_head()
    fused = nn.Sequential(model[0], torch.nn.utils.fusion.fuse_linear_bn_eval(model[1], model[2]), model[3])
    imported = importer.read(export(fused, SHAPE, tmp_path / "fused.onnx", "torchscript"))
    assert [layer.type for layer in imported.stack.layers] == ["Flatten", "Linear", "ReLU"]
    same_as_torch(model, imported, tmp_path)
    if HAS_DYNAMO:
        imported = importer.read(export(model, SHAPE, tmp_path / "dynamo.onnx", "dynamo"))
        assert [layer.type for layer in imported.stack.layers] == ["Flatten", "Linear", "ReLU"]
        same_as_torch(model, imported, tmp_path)
