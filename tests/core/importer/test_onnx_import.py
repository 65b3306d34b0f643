"""``cnnviz.core.importer``: models built here with torch, exported by both of torch's exporters, read back
as stacks whose weights give the ONNX model's outputs (onnx's reference evaluator); and every refusal."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from cnnviz.core import importer
from cnnviz.core.model import files
from cnnviz.core.run import weights
from cnnviz.core.run.build import build_model
from cnnviz.core.shapes import infer
from tests.core.importer import models

HAS_DYNAMO = importlib.util.find_spec("onnxscript") is not None

EXPORTERS = ["torchscript", pytest.param("dynamo", marks=pytest.mark.skipif(
    not HAS_DYNAMO, reason="torch's dynamo exporter needs onnxscript (pip install 'cnnviz[onnx]')"))]


def export(model, shape, path, exporter, dynamic_hw=False, opset=None, fixed_batch=False):
    """``model`` as ONNX at ``path``, with a symbolic batch (and height and width when asked), or a batch of 2."""
    model.eval()
    x = torch.zeros(2, *shape)
    if exporter == "torchscript":
        axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
        kw = {"dynamo": False, "do_constant_folding": False}
        if not fixed_batch:
            kw["dynamic_axes"] = {"input": axes, "output": {0: "N"}}
    else:
        kw = {"dynamo": True, "external_data": False}
        if not fixed_batch:
            kw["dynamic_shapes"] = ({0: torch.export.Dim("N")},)
    if opset is not None:
        kw["opset_version"] = opset
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"], **kw)
    return path


def randomise_batch_norms(model):
    """Running statistics and affine weights away from 0 and 1, so a lost BatchNorm shows."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model


def imported_model(imported, tmp_path):
    """The imported stack built by torch with the weights as written to disk (what ``train --load-weights``
    reads)."""
    stack_path, weights_path = importer.write(imported, tmp_path / "imported.cnnviz", force=True)
    stack = files.load(stack_path)
    net = build_model(stack, seed=123).eval()
    if weights_path is not None:
        assert weights.load_into(net, stack, weights_path) == []
    return stack, net


def assert_same_outputs(onnx_path, net, shape, batch=3, tol=1e-4):
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    expected = ReferenceEvaluator(onnx.load(str(onnx_path))).run(None, {"input": x})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def types(layers):
    out = []
    for layer in layers:
        out.append(layer.type)
        for _key, inner in layer.lists():
            out.append(types(inner))
    return out


# ------------------------------------------------------------------ every mapped op, both exporters
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_every_chain_op_imports_with_the_models_outputs(exporter, tmp_path):
    torch.manual_seed(0)
    shape = (3, 20, 24)
    model = randomise_batch_norms(models.Ops(shape))
    path = export(model, shape, tmp_path / "ops.onnx", exporter)
    imported = importer.read(path)
    got = [layer.type for layer in imported.stack.layers]
    expected = ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "LeakyReLU", "MaxPool2d", "ELU", "GELU", "Conv2d",
                "GELU", "AvgPool2d", "Sigmoid", "AvgPool2d", "Tanh", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU",
                "MaxPool2d", "Flatten", "Linear", "Linear", "LogSoftmax"]
    if exporter == "dynamo":  # its optimiser folds an eval-mode BatchNorm into the convolution before it
        expected.remove("BatchNorm2d")
    assert got == expected
    layers = imported.stack.layers

    def params(type_name):
        return [layer.params for layer in layers if layer.type == type_name]

    assert params("Conv2d")[1] == {"out_channels": 8, "kernel_size": [3, 5], "stride": [1, 2], "padding": [2, 1],
                                   "dilation": [2, 1], "groups": 2, "bias": False}
    assert params("LeakyReLU") == [{"negative_slope": 0.2}]
    assert params("MaxPool2d") == [{"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                                   {"kernel_size": 2}]
    assert params("ELU") == [{"alpha": 0.5}]
    gelus = [layer.params for layer in layers if layer.type == "GELU"]
    assert gelus == [{"approximate": "tanh"}, {}]
    pools = [layer.params for layer in layers if layer.type == "AvgPool2d"]
    assert pools == [{"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
                     {"kernel_size": 2, "ceil_mode": True}]
    if exporter == "torchscript":
        assert params("BatchNorm2d") == [{"eps": 0.001, "momentum": 0.3}]
    assert imported.stack.loss.type == "NLLLoss"  # the model ends with LogSoftmax
    assert imported.parameters == sum(p.numel() for p in model.parameters()) or exporter == "dynamo"
    stack, net = imported_model(imported, tmp_path)
    assert infer(stack).ok
    assert_same_outputs(path, net, shape)


@pytest.mark.parametrize("exporter, opset", [("torchscript", 17), pytest.param("dynamo", 18, marks=EXPORTERS[1].marks)])
def test_older_opsets_spell_gelu_in_arithmetic_and_a_fixed_batch(exporter, opset, tmp_path):
    """Opset 17 and 18 (the defaults of earlier torch releases) have no Gelu op: the exporters write its
    arithmetic (Div, Erf, Add, Mul; Pow, Tanh for the tanh form), recognised by value; a model exported with a
    fixed batch of 2 flattens with Reshape [2, -1] or [2, F]."""
    torch.manual_seed(0)
    shape = (2, 6, 6)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.GELU(approximate="tanh"), torch.nn.GELU(),
                                torch.nn.Flatten(), torch.nn.Linear(48, 4))
    path = export(model, shape, tmp_path / "gelu.onnx", exporter, opset=opset, fixed_batch=True)
    assert {n.op_type for n in onnx.load(str(path)).graph.node} >= {"Erf", "Tanh", "Mul"}
    imported = importer.read(path)
    assert [layer.params for layer in imported.stack.layers if layer.type == "GELU"] == [{"approximate": "tanh"}, {}]
    assert imported.opset == opset
    _stack, net = imported_model(imported, tmp_path)
    assert_same_outputs(path, net, shape, batch=2)


@pytest.mark.parametrize("kind", ["mean", "keepdim", "gap", "squeeze", "view"])
def test_heads_pool_flatten_and_matmul_add(kind, tmp_path):
    torch.manual_seed(0)
    model = models.Heads(kind)
    path = export(model, (3, 8, 8), tmp_path / "head.onnx", "torchscript")
    imported = importer.read(path)
    pooled = [] if kind == "view" else ["AdaptiveAvgPool2d"]
    assert [layer.type for layer in imported.stack.layers] == ["Conv2d", *pooled, "Flatten", "Linear", "Softmax"]
    assert imported.stack.layers[-1].params == {"dim": 1}
    _stack, net = imported_model(imported, tmp_path)
    assert_same_outputs(path, net, (3, 8, 8))


@pytest.mark.skipif(not HAS_DYNAMO, reason="torch's dynamo exporter needs onnxscript")
def test_dynamo_squeezes_after_a_global_pool(tmp_path):
    torch.manual_seed(0)
    for kind in ("squeeze",):
        path = export(models.Heads(kind), (3, 8, 8), tmp_path / f"{kind}.onnx", "dynamo")
        imported = importer.read(path)
        assert "Flatten" in [layer.type for layer in imported.stack.layers]
        _stack, net = imported_model(imported, tmp_path)
        assert_same_outputs(path, net, (3, 8, 8))


# ------------------------------------------------------------------ blocks
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_resnet_blocks_become_residuals(exporter, tmp_path):
    torch.manual_seed(0)
    model = randomise_batch_norms(models.ResNetTiny())
    path = export(model, (1, 12, 12), tmp_path / "resnet.onnx", exporter)
    imported = importer.read(path)
    blocks = [layer for layer in imported.stack.layers if layer.is_block]
    assert [b.type for b in blocks] == ["Residual", "Residual"]
    identity, projection = blocks
    assert identity.shortcut == ()  # x + body(x): the identity is the shortcut, whichever side of the Add
    bn = ["BatchNorm2d"] if exporter == "torchscript" else []
    assert [layer.type for layer in identity.body] == ["Conv2d", *bn, "ReLU", "Conv2d", *bn]
    assert [layer.type for layer in projection.shortcut] == ["Conv2d", *bn]
    assert projection.shortcut[0].params["stride"] == 2
    stack, net = imported_model(imported, tmp_path)
    assert infer(stack).output_shape == (10,)
    assert_same_outputs(path, net, (1, 12, 12))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_nested_blocks_identity_branches_and_feature_concat(exporter, tmp_path):
    torch.manual_seed(0)
    model = randomise_batch_norms(models.Nested())
    path = export(model, (3, 8, 8), tmp_path / "nested.onnx", exporter)
    imported = importer.read(path)
    layers = imported.stack.layers
    assert [layer.type for layer in layers] == ["Conv2d", "Residual", "Concat", "Residual", "Conv2d", "Flatten",
                                                "Concat"]
    outer = layers[1]
    assert outer.shortcut == () and outer.body[0].type == "Residual" and outer.body[0].shortcut == ()
    assert [len(b) for b in layers[2].branches] == [1, 3, 0, 2]  # the identity branch in its place
    assert layers[3].shortcut == () and layers[3].body[0].type == "Concat"
    assert [b[0].type for b in layers[6].branches] == ["Linear", "Linear"]
    keys = set(imported.weights)
    assert "1.body.0.body.0.weight" in keys and "2.branches.3.1.bias" in keys and "3.body.0.branches.1.0.weight" in keys
    _stack, net = imported_model(imported, tmp_path)
    assert_same_outputs(path, net, (3, 8, 8))


def test_add_of_a_path_and_itself_and_symbolic_input(tmp_path):
    class Twice(torch.nn.Module):
        def forward(self, x):
            return torch.flatten(x + x, 1)

    path = export(Twice(), (1, 4, 4), tmp_path / "twice.onnx", "torchscript", dynamic_hw=True)
    with pytest.raises(importer.ImportRefused, match="--input C,H,W"):
        importer.read(path)
    imported = importer.read(path, (1, 5, 6))
    assert types(imported.stack.layers) == ["Residual", [], [], "Flatten"]
    assert imported.stack.input.shape == (1, 5, 6)
    _stack, net = imported_model(imported, tmp_path)
    assert_same_outputs(path, net, (1, 5, 6))
    with pytest.raises(importer.ImportRefused, match="disagrees"):
        importer.read(export(Twice(), (1, 4, 4), tmp_path / "fixed.onnx", "torchscript"), (1, 5, 6))


def test_folded_batch_norm_imports_as_convolution_with_bias(tmp_path):
    torch.manual_seed(0)
    model = randomise_batch_norms(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, bias=False), torch.nn.BatchNorm2d(4),
                                                      torch.nn.ReLU(), torch.nn.Flatten()))
    path = tmp_path / "folded.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, 1, 6, 6),), str(path), dynamo=False,
                          do_constant_folding=True, input_names=["input"], output_names=["output"],
                          training=torch.onnx.TrainingMode.EVAL)
    imported = importer.read(path)
    assert [layer.type for layer in imported.stack.layers] == ["Conv2d", "ReLU", "Flatten"]
    assert imported.stack.layers[0].params.get("bias", True) is True
    _stack, net = imported_model(imported, tmp_path)
    assert_same_outputs(path, net, (1, 6, 6), batch=1)


def test_hand_written_graph_old_opset_attributes(tmp_path):
    """Opset 9's attribute forms (Clip's min/max, Dropout's ratio, ReduceMean's axes), Identity, Gemm with
    transB 0, Elu and HardSigmoid with torch's numbers."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c"], ["r6"], name="clip", min=0.0, max=6.0),
        helper.make_node("Elu", ["r6"], ["e"], name="elu", alpha=0.7),
        helper.make_node("HardSigmoid", ["e"], ["hs"], name="hsig", alpha=1 / 6, beta=0.5),
        helper.make_node("Dropout", ["hs"], ["d"], name="drop", ratio=0.25),
        helper.make_node("Identity", ["d"], ["i"], name="id"),
        helper.make_node("ReduceMean", ["i"], ["m"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["m", "g"], ["output"], name="fc", transB=0),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 5, 5])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
                              initializer=[onnx.numpy_helper.from_array(w, "w"),
                                           onnx.numpy_helper.from_array(g, "g")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    imported = importer.read(path)
    assert [(layer.type, layer.params) for layer in imported.stack.layers] == [
        ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False}), ("ReLU6", {}),
        ("ELU", {"alpha": 0.7}), ("Hardsigmoid", {}), ("Dropout", {"p": 0.25}), ("Identity", {}),
        ("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten", {}), ("Linear", {"out_features": 3, "bias": False})]
    _stack, net = imported_model(imported, tmp_path)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    c = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    h = torch.nn.functional.hardsigmoid(torch.nn.functional.elu(c.clamp(0, 6), 0.7))
    expected = h.mean((2, 3)) @ torch.from_numpy(g)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ refusals
def _graph_model(nodes, inits=(), inputs=None, outputs=None, opset=17):
    inputs = inputs or [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])]
    outputs = outputs or [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_op_is_named_with_its_type_and_the_supported_ops(tmp_path):
    model = _graph_model([helper.make_node("LRN", ["input"], ["output"], name="norm\x1b[31m1", size=3)])
    with pytest.raises(importer.ImportRefused) as info:
        importer.read_bytes(model.SerializeToString())
    message = str(info.value)
    assert "'norm\\x1b[31m1' (LRN)" in message  # the name as data, escaped
    assert "cnnviz imports Conv, MaxPool" in message and "Concat (on channels" in message


@pytest.mark.parametrize("module, match", [
    (models.MulOfPaths(), r"\(Mul\) combines 2 paths"),
    (models.Transposed(), r"\(Transpose\) cannot be expressed"),
    (models.NotFlatten(), r"\(Reshape\) cannot be expressed: a reshape of N×1×6×6 to \[N, 2, -1\]"),
])
def test_what_cannot_be_expressed_is_refused_by_node(module, match, tmp_path):
    path = export(module, (1, 6, 6), tmp_path / "bad.onnx", "torchscript")
    with pytest.raises(importer.ImportRefused, match=match) as info:
        importer.read(path)
    assert "cnnviz imports Conv" in str(info.value)


def test_several_inputs_or_outputs_are_refused():
    two_in = _graph_model([helper.make_node("Add", ["input", "b"], ["output"])],
                          inputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, 4, 4]) for n in ("input", "b")])
    with pytest.raises(importer.ImportRefused, match="2 inputs"):
        importer.read_bytes(two_in.SerializeToString())
    two_out = _graph_model([helper.make_node("Relu", ["input"], ["output"]), helper.make_node("Sigmoid", ["input"], ["o2"])],
                           outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("output", "o2")])
    with pytest.raises(importer.ImportRefused, match="2 outputs"):
        importer.read_bytes(two_out.SerializeToString())


def test_broken_files_are_refused(tmp_path):
    torch.manual_seed(0)
    data = export(models.ResNetTiny(), (1, 12, 12), tmp_path / "good.onnx", "torchscript").read_bytes()
    for cut in (len(data) // 2, len(data) - 7, 11):
        with pytest.raises(importer.ImportRefused, match="not an ONNX model|broken|cannot"):
            importer.read_bytes(data[:cut])
    for junk in (b"", b"{\"format\": \"cnnviz.stack\"}", b"\xff" * 100, "caf\u00e9 au lait".encode()):
        with pytest.raises(importer.ImportRefused):
            importer.read_bytes(junk)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(importer.ImportRefused, match="is a folder"):
        importer.read(folder)


def test_external_data_is_never_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(16, np.float32).tobytes())
    (tmp_path / "models").mkdir()
    for location, match in (("../secret.bin", "outside the model's folder"), (str(secret), "outside"),
                            ("weights.bin", "self-contained")):
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 1, 4, 4])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "64")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        model = _graph_model([helper.make_node("Conv", ["input", "w"], ["output"], kernel_shape=[4, 4])], [weight])
        path = tmp_path / "models" / "m.onnx"
        path.write_bytes(model.SerializeToString())
        (tmp_path / "models" / "weights.bin").write_bytes(secret.read_bytes())
        with pytest.raises(importer.ImportRefused, match=match):
            importer.read(path)


def test_huge_declared_tensors_are_refused_before_allocation():
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20, 3, 3], raw_data=b"\0" * 16)
    model = _graph_model([helper.make_node("Conv", ["input", "w"], ["output"])], [huge])
    with pytest.raises(importer.ImportRefused, match="at most 200,000,000"):
        importer.read_bytes(model.SerializeToString())
    lying = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8, 1, 3, 3], raw_data=b"\0" * 16)
    model = _graph_model([helper.make_node("Conv", ["input", "w"], ["output"])], [lying])
    with pytest.raises(importer.ImportRefused, match="holds 16 bytes: the file is broken"):
        importer.read_bytes(model.SerializeToString())
    doubling, previous = [], "c0"  # constant arithmetic that doubles 40 times: refused before it is done
    for k in range(40):
        doubling.append(helper.make_node("Concat", [previous, previous], [f"c{k + 1}"], axis=0))
        previous = f"c{k + 1}"
    doubling.append(helper.make_node("Reshape", ["input", previous], ["output"]))
    model = _graph_model(doubling, [onnx.numpy_helper.from_array(np.ones(1000, np.int64), "c0")])
    with pytest.raises(importer.ImportRefused, match="folds at most 16,777,216"):
        importer.read_bytes(model.SerializeToString())
    const = helper.make_node("ConstantOfShape", ["shape"], ["big"])
    shape = onnx.numpy_helper.from_array(np.array([1 << 40], np.int64), "shape")
    model = _graph_model([const, helper.make_node("Add", ["input", "big"], ["output"])], [shape])
    with pytest.raises(importer.ImportRefused, match="makes a tensor of shape"):
        importer.read_bytes(model.SerializeToString())


def test_a_mutated_model_is_imported_or_refused_never_a_crash(tmp_path):
    import random

    torch.manual_seed(0)
    data = export(models.Nested(), (3, 8, 8), tmp_path / "nested.onnx", "torchscript").read_bytes()
    rng = random.Random(0)
    outcomes = set()
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            importer.read_bytes(bytes(mutated))
            outcomes.add("imported")
        except importer.ImportRefused:
            outcomes.add("refused")
    assert outcomes == {"imported", "refused"}


def test_limits_on_nodes_and_opsets(monkeypatch):
    model = _graph_model([helper.make_node("Relu", ["input"], ["output"])], opset=99)
    with pytest.raises(importer.ImportRefused, match="opset 99"):
        importer.read_bytes(model.SerializeToString())
    wrong_kind = _graph_model([helper.make_node("Flatten", ["input"], ["output"], name="f", axis=2.5)])
    with pytest.raises(importer.ImportRefused, match="'f' \\(Flatten\\): its attribute 'axis' is not an integer"):
        importer.read_bytes(wrong_kind.SerializeToString())
    monkeypatch.setattr(importer.onnx, "MAX_NODES", 2)
    chain = [helper.make_node("Relu", ["input"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["output"])]
    with pytest.raises(importer.ImportRefused, match="3 nodes; cnnviz imports at most 2"):
        importer.read_bytes(_graph_model(chain).SerializeToString())


def test_reading_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, onnx; from onnx import helper, TensorProto\n"
            "from cnnviz.core import importer\n"
            "g = helper.make_graph([helper.make_node('Relu', ['input'], ['output'])], 'g', "
            "[helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 1, 4, 4])], "
            "[helper.make_tensor_value_info('output', TensorProto.FLOAT, None)])\n"
            "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])\n"
            "print(importer.read_bytes(m.SerializeToString()).stack.layers[0].type, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.split() == ["ReLU", "False"], out.stderr
