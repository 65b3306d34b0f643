"""BatchNorm1d in a classifier head (Linear → BatchNorm1d → ReLU) through every place a layer goes: the
catalogue and palette group, the file round-trip, training, the Python and ONNX exports (their outputs equal
to the built model's, running statistics included), the memory count and the display text."""
from __future__ import annotations

import ast
import inspect
import json

import numpy as np
import pytest
import torch

from cnnviz.core import export, shapes
from cnnviz.core.model import files
from cnnviz.core.model.layers import CATALOGUE, by_group
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import build, engine, memory
from tests.core.run.test_engine import synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEAD = Stack("BN head", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}),
    Layer("ReLU"),
    Layer("Flatten"),
    Layer("Linear", {"out_features": 16}),
    Layer("BatchNorm1d", {"eps": 1e-3, "momentum": 0.3}),
    Layer("ReLU"),
    Layer("Linear", {"out_features": 10}),
))


def test_batchnorm1d_is_a_normalisation_entry_with_torchs_keywords():
    spec = CATALOGUE["BatchNorm1d"]
    assert spec in by_group()["normalisation"] and spec.learnable
    assert [p.name for p in spec.params] == ["num_features", "eps", "momentum", "affine", "track_running_stats",
                                             "bias"]
    assert spec.param("num_features").inferred and not spec.param("num_features").required
    torch_defaults = inspect.signature(torch.nn.BatchNorm1d.__init__).parameters
    for p in spec.params[1:]:
        assert torch_defaults[p.name].default == p.default, p.name


def test_inferred_count_params_and_running_statistics_in_the_memory_estimate():
    report = shapes.infer(HEAD)
    bn = report.layers[4]
    assert report.ok and bn.error is None and bn.output_shape == (16,) and bn.params == 32
    assert bn.resolved["num_features"] == 16
    model = build.build_model(HEAD, seed=0)
    assert isinstance(model[4], torch.nn.BatchNorm1d) and model[4].num_features == 16
    assert build.count_parameters(model) == report.total_params
    without = Stack("no bn", HEAD.input, HEAD.layers[:4] + HEAD.layers[5:])
    est, est_without = (memory.estimate(shapes.infer(s), batch_size=8) for s in (HEAD, without))
    assert est.weight_bytes - est_without.weight_bytes == 4 * 32 + 2 * 4 * 16 + 8  # weights, statistics, count
    assert est.saved_sample_bytes > est_without.saved_sample_bytes  # its input is kept for backward
    assert "BatchNorm1d" in memory.SAVES_INPUT


def test_file_round_trip_keeps_the_layer_and_its_keywords(tmp_path):
    path = tmp_path / "head.cnnviz"
    files.save(HEAD, path)
    again = files.load(path)
    assert again.layers[4].type == "BatchNorm1d" and dict(again.layers[4].params) == {"eps": 1e-3, "momentum": 0.3}
    assert [layer.type for layer in again.layers] == [layer.type for layer in HEAD.layers]
    assert shapes.infer(again) == shapes.infer(HEAD)


def test_a_file_with_a_wrong_batchnorm1d_keyword_is_refused_by_place():
    text = files.dumps(HEAD).replace('"momentum": 0.3', '"momentum": 0.3, "num_feature": 4')
    with pytest.raises(files.StackFileError, match=r"layers\[4\]\.params\.num_feature: BatchNorm1d has no keyword"):
        files.loads(text)


def _trained():
    """A few steps of the engine: the weights and running statistics move away from their start."""
    session = engine.Session(HEAD, TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0),
                             data=synthetic())
    start = {k: v.clone() for k, v in session.model.state_dict().items()}
    for _ in range(5):
        session.step()
    model = session.model
    state = model.state_dict()
    assert int(state["4.num_batches_tracked"]) == 5
    for key in ("4.weight", "4.bias", "4.running_mean", "4.running_var"):
        assert not torch.equal(state[key], start[key]), key
    assert np.isfinite(session.read_stats()[0])
    return model.cpu().eval()


@pytest.fixture(scope="module")
def trained():
    with torch.random.fork_rng():
        return _trained()


@pytest.mark.parametrize("style", export.STYLES)
def test_python_export_of_the_trained_head_gives_the_built_models_outputs(trained, style):
    code = export.to_python(HEAD, style, weights="head.safetensors")
    tree = ast.parse(code)
    made = "nn.BatchNorm1d(16, eps=0.001, momentum=0.3)," if style == "module" else "F.batch_norm(x, self.mean4"
    assert made in code
    namespace: dict = {"__file__": "/nowhere/head.py"}
    exec(compile(code, f"<{style}>", "exec"), namespace)  # noqa: S102  (the generator's own output)
    mine = namespace["build_model"]()
    state = trained.state_dict()
    names = {}
    if style == "functional":
        names = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "names")
        assert {"4.running_mean", "4.running_var", "4.num_batches_tracked"} <= set(names)
        state = {names.get(k, k): v for k, v in state.items()}
    mine.load_state_dict(state)
    x = torch.randn(6, *HEAD.input.shape)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(x), trained(x), atol=1e-5, rtol=1e-5)
        # training mode too: the batch's statistics, and the running ones updated alike
        mine.train()
        reference = build.build_model(HEAD, seed=0)
        reference.load_state_dict(trained.state_dict())
        reference.train()
        torch.testing.assert_close(mine(x), reference(x), atol=1e-5, rtol=1e-5)
        running = mine.state_dict()[names.get("4.running_mean", "4.running_mean")]
        torch.testing.assert_close(running, reference[4].running_mean)


def test_onnx_export_of_the_trained_head_keeps_batchnorm_and_gives_the_same_outputs(trained, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    written = export.to_onnx(HEAD, tmp_path / "head.onnx", model=trained)
    model = onnx.load(str(written.path))
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node].count("BatchNormalization") == 1
    x = torch.randn(5, *HEAD.input.shape)
    (y,) = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, trained(x).numpy(), atol=1e-5, rtol=1e-5)


def test_onnx_export_then_import_gives_the_stack_back(trained, tmp_path):
    pytest.importorskip("onnx")
    from cnnviz.core import importer

    written = export.to_onnx(HEAD, tmp_path / "head.onnx", model=trained)
    imported = importer.read(written.path)
    assert [(layer.type, dict(layer.params)) for layer in imported.stack.layers][3:6] == [
        ("Linear", {"out_features": 16}), ("BatchNorm1d", {"eps": 0.001, "momentum": 0.3}), ("ReLU", {})]


def test_train_script_trains_the_head_with_the_losses_of_cnnviz_train(tmp_path, capsys):
    """The exported training script builds BatchNorm1d as cnnviz does: the same losses step by step."""
    from dataclasses import replace

    from cnnviz.cli import main
    from cnnviz.core.export.train_script import to_train_script
    from tests.core.export.test_train_script import _run

    stack = replace(HEAD, training=TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=1,
                                                  steps=4))
    stack_path = files.save(stack, tmp_path / "head.cnnviz")
    script = tmp_path / "train.py"
    script.write_text(to_train_script(stack), encoding="utf-8")
    lines = _run([script, "--steps", "4", "--save-weights", "w.safetensors"], tmp_path)
    assert lines[-1]["event"] == "done" and lines[-1]["steps"] == 4
    assert main(["train", str(stack_path), "--json"]) == 0
    theirs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ours = [o["loss"] for o in lines if o["event"] == "step"]
    assert ours and ours == pytest.approx([t["loss"] for t in theirs if t["event"] == "step"], rel=1e-4)
    assert main(["train", str(stack_path), "--steps", "1", "--json", "--load-weights",
                 str(tmp_path / "w.safetensors")]) == 0
