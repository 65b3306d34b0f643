"""Stack → torch module, and the Python/ONNX exports, checked against torch itself."""
import ast
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from cnnviz.core import export, shapes
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec, Layer, Loss, Stack, concat, residual
from cnnviz.core.run import build

VALID = [p for p in assets.examples() if p.name != "broken.cnnviz"]

# Every catalogue type and the unusual keywords, in one stack that still works.
EVERYTHING = Stack("Everything", InputSpec(3, 20, 18), (
    Layer("Conv2d", {"out_channels": 8, "kernel_size": [3, 4], "padding": "same", "padding_mode": "reflect",
                     "dilation": [1, 2]}),
    Layer("BatchNorm2d", {"momentum": None}),
    Layer("LeakyReLU", {"negative_slope": 0.2}),
    Layer("Conv2d", {"out_channels": 8, "kernel_size": 3, "groups": 4, "stride": [2, 1], "padding": [1, 0],
                     "padding_mode": "circular", "bias": False}),
    Layer("GELU", {"approximate": "tanh"}),
    Layer("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1, "ceil_mode": True}),
    Layer("Dropout2d", {"p": 0.1}),
    Layer("AvgPool2d", {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False, "divisor_override": 3,
                        "padding": 1}),
    Layer("BatchNorm2d", {"affine": False, "track_running_stats": False}),
    Layer("ELU", {"alpha": 0.7}),
    Layer("Hardswish"),
    Layer("Tanh"),
    Layer("AdaptiveAvgPool2d", {"output_size": [None, 2]}),
    Layer("Sigmoid"),
    Layer("Identity"),
    Layer("Flatten"),
    Layer("Dropout", {"p": 0.3}),
    Layer("Linear", {"out_features": 12, "bias": False}),
    Layer("SiLU", {"inplace": True}),
    Layer("Hardsigmoid"),
    Layer("ReLU6", {"inplace": True}),
    Layer("ELU", {"inplace": True}),
    Layer("Hardswish", {"inplace": True}),
    Layer("Linear", {"out_features": 16}),
    Layer("Hardsigmoid", {"inplace": True}),
    Layer("ReLU6"),
    Layer("SiLU"),
    Layer("ReLU", {"inplace": True}),
    Layer("Linear", {"out_features": 5}),
    Layer("LogSoftmax", {"dim": 1}),
), Loss("NLLLoss", {"weight": [1, 2, 1, 1, 0.5]}))


def _conv(c, k=3, **kw):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": k, **kw})


# Blocks (SPEC §3.1): a projection and an identity shortcut, a Concat with an empty branch holding a
# nested Residual, every parameter inside a block.
BLOCKY = Stack("Blocky", InputSpec(2, 12, 12), (
    _conv(8, padding=1),
    residual([_conv(16, stride=2, padding=1), Layer("BatchNorm2d"), Layer("ReLU"), _conv(16, padding=1),
              Layer("BatchNorm2d")], [_conv(16, 1, stride=2, bias=False), Layer("BatchNorm2d")], name="down"),
    Layer("ReLU"),
    concat([_conv(4, 1)],
           [residual([_conv(16, padding=1, padding_mode="reflect"), Layer("BatchNorm2d")])],
           []),
    Layer("AdaptiveAvgPool2d", {"output_size": 1}),
    Layer("Flatten"),
    residual([Layer("Linear", {"out_features": 36}), Layer("ReLU")]),
    Layer("Linear", {"out_features": 5}),
))


def _stacks():
    return [files.load(p) for p in VALID] + [EVERYTHING, BLOCKY]


@pytest.mark.parametrize("stack", _stacks(), ids=lambda s: s.name)
def test_built_model_matches_inferred_shapes_and_params(stack):
    report = shapes.infer(stack)
    assert report.ok
    model = build.build_model(stack, seed=0).eval()
    assert build.count_parameters(model) == report.total_params
    x = torch.randn(2, *stack.input.shape)
    for i, module in enumerate(model):
        x = module(x)
        assert tuple(x.shape[1:]) == report.layers[i].output_shape, (i, module)


def test_build_refuses_an_invalid_stack_with_the_core_message():
    stack = files.load(assets.path("examples", "broken.cnnviz"))
    with pytest.raises(build.StackInvalid, match=r"layer 6 \(Conv2d\): kernel 5"):
        build.build_model(stack)


def test_seeded_build_is_deterministic_and_leaves_the_global_generator_alone():
    stack = files.load(VALID[0])
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build.build_model(stack, seed=7)
    after = torch.rand(1)
    b = build.build_model(stack, seed=7)
    assert before == after
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_loss_takes_its_keywords():
    loss = build.build_loss(Loss("CrossEntropyLoss", {"label_smoothing": 0.1, "reduction": "sum",
                                                      "weight": [1.0, 2.0]}))
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.1 and loss.reduction == "sum" and loss.weight.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("style", export.STYLES)
@pytest.mark.parametrize("stack", _stacks(), ids=lambda s: s.name)
def test_python_export_gives_same_shapes_params_and_numbers(stack, style):
    code = export.to_python(stack, style)
    tree = ast.parse(code)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"torch", "math"}
    namespace: dict = {}
    exec(compile(code, f"<{style}>", "exec"), namespace)
    model = namespace["build_model"]()
    reference = build.build_model(stack, seed=0)
    assert sum(p.numel() for p in model.parameters()) == build.count_parameters(reference)
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), reference.parameters()):
            assert mine.shape == theirs.shape
            mine.copy_(theirs)
    x = torch.randn(4, *stack.input.shape)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        getattr(reference, mode)()
        torch.manual_seed(0)
        y = model(x)
        torch.manual_seed(0)
        ref = reference(x)
        assert y.shape == ref.shape
        assert torch.allclose(y, ref, atol=1e-5), (mode, (y - ref).abs().max())
    assert isinstance(namespace["build_loss"](), type(build.build_loss(stack.loss)))


def test_exported_file_runs_standalone(tmp_path):
    target = tmp_path / "net.py"
    target.write_text(export.to_python(EVERYTHING, "functional"))
    result = subprocess.run([sys.executable, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    params = shapes.infer(EVERYTHING).total_params
    assert result.stdout.strip() == f"output (2, 5), {params:,} parameters"


def test_export_refuses_an_invalid_stack():
    with pytest.raises(export.ExportError, match="layer 6"):
        export.to_python(files.load(assets.path("examples", "broken.cnnviz")))


# torch's TorchScript exporter cannot export BatchNorm2d without running statistics, nor adaptive
# pooling after AvgPool2d with divisor_override; its dynamo exporter mis-infers AvgPool2d with
# divisor_override and ceil_mode. Without those two layers:
EXPORTABLE = replace(EVERYTHING, layers=tuple(layer for i, layer in enumerate(EVERYTHING.layers) if i not in (7, 8)))


@pytest.mark.parametrize("stack", [files.load(p) for p in VALID] + [EXPORTABLE, BLOCKY], ids=lambda s: s.name)
def test_onnx_export_is_valid_with_symbolic_batch(stack, tmp_path):
    onnx = pytest.importorskip("onnx")
    written = export.to_onnx(stack, tmp_path / "m.onnx")
    # The examples take the fast exporter, which needs only torch; the catalogue-wide stack needs dynamo
    # (TorchScript cannot export AvgPool2d's divisor_override followed by adaptive pooling).
    assert written.exporter == ("dynamo" if stack is EXPORTABLE else "torchscript")
    model = onnx.load(str(written.path))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == list(stack.input.shape)
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out_dims[1:] == list(shapes.infer(stack).output_shape)
    ops = [node.op_type for node in model.graph.node]
    if stack is BLOCKY:  # the merges are ONNX's own nodes, and BatchNorm stays itself (SPEC §3.1)
        assert ops.count("Add") >= 3 and "Concat" in ops and ops.count("BatchNormalization") == 4
        from onnx.reference import ReferenceEvaluator

        reference = build.build_model(stack, seed=0).eval()
        x = torch.randn(3, *stack.input.shape)
        (y,) = ReferenceEvaluator(model).run(None, {inp.name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), reference(x).detach(), atol=1e-4, rtol=1e-4)


def test_onnx_export_that_torch_cannot_do_is_a_clear_error_and_writes_nothing(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(export.ExportError, match="torch could not export this stack to ONNX: torchscript"):
        export.to_onnx(EVERYTHING, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_export_falls_back_to_the_dynamo_exporter(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    stack = Stack("bn", InputSpec(3, 8, 8), (Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),
                                             Layer("BatchNorm2d", {"track_running_stats": False}),
                                             Layer("Flatten"), Layer("Linear", {"out_features": 3})))
    written = export.to_onnx(stack, tmp_path / "m.onnx")
    assert written.exporter == "dynamo"  # TorchScript cannot export BatchNorm2d without running statistics
    onnx.checker.check_model(onnx.load(str(written.path)))


def test_onnx_export_keeps_the_live_model_mode(tmp_path):
    pytest.importorskip("onnx")
    stack = files.load(assets.path("examples", "digits.cnnviz"))
    model = build.build_model(stack, seed=0).train()
    export.to_onnx(stack, tmp_path / "m.onnx", model=model)
    assert model.training


def test_softmax_without_dim_exports_torchs_implicit_choice():
    stack = replace(files.load(VALID[0]), layers=files.load(VALID[0]).layers + (Layer("Softmax"),))
    code = export.to_python(stack, "functional")
    assert "F.softmax(x, dim=1)" in code
