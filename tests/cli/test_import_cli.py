"""``cnnviz import MODEL.onnx -o STACK.cnnviz [--input C,H,W] [--force]`` (SPEC §3.2): the summary, the files
it writes and refuses to write, and the round trip ``cnnviz export --to onnx`` → ``cnnviz import`` for every
example and for block stacks (same summary; with the weights, the same outputs)."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper

from cnnviz import cli
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import InputSpec, Layer, Stack, concat, residual
from cnnviz.core.run import weights
from cnnviz.core.run.build import build_model
from cnnviz.core.shapes import infer


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def relu_model(shape=("N", 1, 4, 4)):
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["r"], name="relu"),
                               helper.make_node("Flatten", ["r"], ["output"], name="flat")], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def L(type_name, **params):
    return Layer(type_name, params)


BLOCK_STACKS = [
    Stack("resnet-ish", InputSpec(1, 12, 12), (
        L("Conv2d", out_channels=8, kernel_size=3, padding=1), L("BatchNorm2d"), L("ReLU"),
        residual([L("Conv2d", out_channels=8, kernel_size=3, padding=1), L("BatchNorm2d"), L("ReLU"),
                  L("Conv2d", out_channels=8, kernel_size=3, padding=1), L("BatchNorm2d")]),
        L("ReLU"),
        residual([L("Conv2d", out_channels=16, kernel_size=3, stride=2, padding=1), L("BatchNorm2d"), L("ReLU"),
                  L("Conv2d", out_channels=16, kernel_size=3, padding=1), L("BatchNorm2d")],
                 [L("Conv2d", out_channels=16, kernel_size=1, stride=2), L("BatchNorm2d")]),
        L("ReLU"), L("AdaptiveAvgPool2d", output_size=1), L("Flatten"), L("Linear", out_features=10))),
    Stack("inception-ish", InputSpec(3, 10, 10), (
        L("Conv2d", out_channels=6, kernel_size=3),
        concat([L("Conv2d", out_channels=4, kernel_size=1)],
               [L("Conv2d", out_channels=2, kernel_size=1), L("ReLU"), L("Conv2d", out_channels=4, kernel_size=3,
                                                                            padding=1)],
               [],
               [L("MaxPool2d", kernel_size=3, stride=1, padding=1), L("Conv2d", out_channels=2, kernel_size=1)],
               [residual([L("Conv2d", out_channels=6, kernel_size=3, padding=1), L("Tanh")])]),
        L("MaxPool2d", kernel_size=2), L("Flatten"),
        concat([L("Linear", out_features=5)], [L("Linear", out_features=3), L("Sigmoid")]),
        L("LogSoftmax", dim=1))),
]


def rows(stack):
    """(type, output shape, parameters) of every layer at every depth; Dropout left out (an exported model in
    eval mode has none)."""
    report = infer(stack)
    by_path = dict(stack.walk())
    return [(r.type, r.output_shape, r.params) for r in report.walk() if by_path[r.path].type != "Dropout"]


def round_trip(stack_path, tmp_path, name):
    onnx_path = tmp_path / f"{name}.onnx"
    rc, _out, err = run("export", stack_path, "--to", "onnx", "-o", onnx_path)
    assert rc == 0, err
    imported_path = tmp_path / f"{name}-imported.cnnviz"
    rc, out, err = run("import", onnx_path, "-o", imported_path)
    assert rc == 0, err
    assert "Total params" in out
    return files.load(imported_path), imported_path


def same_outputs(original, seed_model, imported, imported_path):
    net = build_model(imported, seed=99).eval()
    assert weights.load_into(net, imported, weights.beside(imported_path)) == []
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, *original.input.shape)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), seed_model.eval()(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("example", [p for p in assets.examples() if p.name != "broken.cnnviz"], ids=lambda p: p.stem)
def test_examples_round_trip_through_onnx(example, tmp_path):
    original = files.load(example)
    imported, imported_path = round_trip(example, tmp_path, example.stem)
    assert rows(imported) == rows(original)
    assert imported.input == original.input
    same_outputs(original, build_model(original, seed=0), imported, imported_path)  # export's weights: seed 0


@pytest.mark.parametrize("index", range(len(BLOCK_STACKS)), ids=[s.name for s in BLOCK_STACKS])
def test_block_stacks_round_trip_with_trained_weights(index, tmp_path):
    original = BLOCK_STACKS[index]
    stack_path = tmp_path / "blocks.cnnviz"
    files.save(original, stack_path)
    model = build_model(original, seed=5)
    gen = torch.Generator().manual_seed(2)
    for name, buffer in model.named_buffers():  # "trained" statistics, so a lost BatchNorm would show
        if "running_var" in name:
            buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
        elif "running_mean" in name:
            buffer.copy_(torch.rand(buffer.shape, generator=gen) - 0.5)
    trained = tmp_path / "trained.safetensors"
    weights.save(model, original, trained)
    onnx_path = tmp_path / "blocks.onnx"
    rc, _out, err = run("export", stack_path, "--to", "onnx", "-o", onnx_path, "--weights", trained)
    assert rc == 0, err
    rc, _out, err = run("import", onnx_path, "-o", tmp_path / "back.cnnviz")
    assert rc == 0, err
    imported = files.load(tmp_path / "back.cnnviz")
    assert rows(imported) == rows(original)
    assert [layer.entry() for layer in imported.layers] == [layer.entry() for layer in original.layers]
    same_outputs(original, model, imported, tmp_path / "back.cnnviz")


def test_import_writes_stack_and_weights_and_prints_the_summary(tmp_path):
    stack = BLOCK_STACKS[0]
    files.save(stack, tmp_path / "s.cnnviz")
    assert run("export", tmp_path / "s.cnnviz", "--to", "onnx", "-o", tmp_path / "s.onnx")[0] == 0
    rc, out, err = run("import", tmp_path / "s.onnx", "-o", tmp_path / "net.cnnviz")
    assert rc == 0, err
    assert out.startswith("s: input 1×12×12") and "Residual" in out and "3.body.0" in out
    assert "net.safetensors" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.cnnviz", "net.safetensors", "s.cnnviz", "s.onnx"]
    assert run("summary", tmp_path / "net.cnnviz")[0] == 0
    # an existing stack is not replaced without --force; with it, it is
    before = (tmp_path / "net.cnnviz").read_bytes()
    rc, _out, err = run("import", tmp_path / "s.onnx", "-o", tmp_path / "net.cnnviz")
    assert rc == 2 and "--force" in err and "Traceback" not in err
    assert (tmp_path / "net.cnnviz").read_bytes() == before
    assert run("import", tmp_path / "s.onnx", "-o", tmp_path / "net.cnnviz", "--force")[0] == 0
    # the weights can never be -o itself, nor the model read
    rc, _out, err = run("import", tmp_path / "s.onnx", "-o", tmp_path / "w.safetensors")
    assert rc == 2 and "is -o itself" in err
    rc, _out, err = run("import", tmp_path / "s.onnx", "-o", tmp_path / "s.onnx", "--force")
    assert rc == 2 and "the file being read" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.cnnviz", "net.safetensors", "s.cnnviz", "s.onnx"]


def test_train_load_weights_reads_the_imported_weights(tmp_path):
    files.save(BLOCK_STACKS[0], tmp_path / "s.cnnviz")
    assert run("export", tmp_path / "s.cnnviz", "--to", "onnx", "-o", tmp_path / "s.onnx")[0] == 0
    assert run("import", tmp_path / "s.onnx", "-o", tmp_path / "net.cnnviz")[0] == 0
    rc, _out, err = run("train", tmp_path / "net.cnnviz", "--data", "shapes", "--steps", "1", "--batch-size", "4",
                       "--load-weights", tmp_path / "net.safetensors", "--json", "--device", "cpu")
    assert rc == 0, err


def test_refusals_exit_2_and_write_nothing(tmp_path):
    cases = {
        "lrn.onnx": helper.make_model(helper.make_graph(
            [helper.make_node("LRN", ["input"], ["output"], name="local_norm", size=3)], "g",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)]),
            opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
        "truncated.onnx": relu_model().SerializeToString()[:-9],
        "text.onnx": b"this is not a model\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, _out, err = run("import", tmp_path / "lrn.onnx", "-o", tmp_path / "out.cnnviz")
    assert rc == 2 and "'local_norm' (LRN)" in err and "cnnviz imports Conv" in err
    for name in ("truncated.onnx", "text.onnx", "missing.onnx"):
        rc, _out, err = run("import", tmp_path / name, "-o", tmp_path / "out.cnnviz")
        assert rc == 2 and err.startswith("cnnviz import: nothing imported:") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_input_gives_the_sizes_the_model_leaves_open(tmp_path):
    onnx.save(relu_model(("N", "C", "H", "W")), str(tmp_path / "open.onnx"))
    rc, _out, err = run("import", tmp_path / "open.onnx", "-o", tmp_path / "a.cnnviz")
    assert rc == 2 and "--input C,H,W" in err
    rc, out, err = run("import", tmp_path / "open.onnx", "-o", tmp_path / "a.cnnviz", "--input", "2,6,7")
    assert rc == 0, err
    assert files.load(tmp_path / "a.cnnviz").input.shape == (2, 6, 7) and "84" in out
    assert "carries no weights" in err and not (tmp_path / "a.safetensors").exists()
    assert run("import", tmp_path / "open.onnx", "-o", tmp_path / "b.cnnviz", "--input", "2,6")[0] == 2
    assert run("import", tmp_path / "open.onnx", "-o", tmp_path / "b.cnnviz", "--input", "0,6,6")[0] == 2


def test_import_is_listed_in_help():
    out = subprocess.run([sys.executable, "-m", "cnnviz", "import", "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0 and "--input C,H,W" in out.stdout
    assert "import" in cli.SUBCOMMANDS


PADDED = Stack("padded", InputSpec(2, 9, 10), (
    L("Conv2d", out_channels=4, kernel_size=3, padding=1, padding_mode="reflect"), L("ReLU"),
    L("Conv2d", out_channels=4, kernel_size=[2, 4], padding="same", padding_mode="replicate"),
    L("Conv2d", out_channels=3, kernel_size=4, padding="same"), L("ReLU"),
    L("Conv2d", out_channels=3, kernel_size=3, padding=[2, 1], padding_mode="circular"), L("Flatten"),
    L("Linear", out_features=5)))


def test_padding_modes_and_same_round_trip_through_pads(tmp_path):
    """The exporter writes reflect and replicate padding, and 'same' with an even kernel, as a Pad before the
    Conv (or uneven pads), circular padding as Slices and Concats: ``cnnviz import`` folds them back into the
    same layers, with the same outputs."""
    stack_path = tmp_path / "padded.cnnviz"
    files.save(PADDED, stack_path)
    onnx_path = tmp_path / "padded.onnx"
    rc, _out, err = run("export", stack_path, "--to", "onnx", "-o", onnx_path)
    assert rc == 0, err
    assert "Pad" in {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    rc, out, err = run("import", onnx_path, "-o", tmp_path / "back.cnnviz")
    assert rc == 0, err
    assert "Total params" in out
    imported = files.load(tmp_path / "back.cnnviz")
    assert [layer.entry() for layer in imported.layers] == [layer.entry() for layer in PADDED.layers]
    same_outputs(PADDED, build_model(PADDED, seed=0), imported, tmp_path / "back.cnnviz")


def test_a_zero_pad_before_a_max_pool_is_refused_with_exit_2(tmp_path):
    model = torch.nn.Sequential(torch.nn.ZeroPad2d(1), torch.nn.MaxPool2d(3, 2), torch.nn.Flatten()).eval()
    path = tmp_path / "padpool.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 6, 6),), str(path), dynamo=False, input_names=["input"],
                          output_names=["output"])
    rc, _out, err = run("import", path, "-o", tmp_path / "out.cnnviz")
    assert rc == 2 and "(Pad) cannot be expressed: zero padding (top 1, bottom 1, left 1, right 1)" in err, err
    assert "torch's MaxPool2d pads with −infinity" in err and not (tmp_path / "out.cnnviz").exists()
