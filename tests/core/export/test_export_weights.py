"""Export to Python with the trained weights, the class names and the normalisation (issue 10, item 2):
the exported file, run on its own, classifies an image as a model built by cnnviz does."""
from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnviz import cli
from cnnviz.core import data, export
from cnnviz.core.model import assets, files, outputs
from cnnviz.core.run import build, weights

DIGITS = assets.path("examples", "digits.cnnviz")

# Conv, BatchNorm (running statistics: cnnviz's names differ from the functional style's), Linear.
WITH_BATCHNORM = {
    "format": "cnnviz.stack", "version": 1, "name": "BN net",
    "input": {"channels": 1, "height": 8, "width": 8},
    "layers": [
        {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3}},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}},
    ],
    "training": {"data": "digits"},
}

# Blocks: BatchNorm inside a Residual's body and shortcut, and a Concat with an empty branch.
WITH_BLOCKS = {
    "format": "cnnviz.stack", "version": 2, "name": "Block net",
    "input": {"channels": 1, "height": 8, "width": 8},
    "layers": [
        {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        {"type": "Residual", "body": [{"type": "Conv2d", "params": {"out_channels": 6, "kernel_size": 3,
                                                                     "padding": 1}},
                                      {"type": "BatchNorm2d"}],
         "shortcut": [{"type": "Conv2d", "params": {"out_channels": 6, "kernel_size": 1}}, {"type": "BatchNorm2d"}]},
        {"type": "Concat", "branches": [[{"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 1}}], []]},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}},
    ],
    "training": {"data": "digits"},
}

# The subprocess: load the exported file from its own folder, classify the samples, print the logits.
RUNNER = """
import json, runpy, sys
import torch
net = runpy.run_path("net.py")
model = net["build_model"](net["WEIGHTS"]).eval()
x = torch.load("samples.pt")
with torch.no_grad():
    logits = model(net["preprocess"](x))
names = [net["classify"](model, image) for image in x]
print(json.dumps({"logits": logits.tolist(), "names": names, "classes": list(net["CLASSES"]),
                  "safetensors": "safetensors" in sys.modules}))
"""


def _trained_like(stack, seed: int = 3):
    """A model built by cnnviz with random (not seed-0) weights and BatchNorm statistics, as training leaves."""
    model = build.build_model(stack, seed=seed)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(17)
    return model.eval()


def _samples(stack, n: int = 6) -> torch.Tensor:
    split = data.load(stack.training.data, stack.input.shape, stack.training.seed)
    return torch.from_numpy(split.test.images[:n].copy())


def _reference(stack, weights_path: Path, x: torch.Tensor, split) -> torch.Tensor:
    model = build.build_model(stack, seed=0).eval()
    weights.load_into(model, stack, weights_path)
    with torch.no_grad():
        return model(torch.from_numpy(data.normalize(x.numpy(), split.mean, split.std)))


def _run(folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", RUNNER], cwd=folder, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("style", export.STYLES)
@pytest.mark.parametrize("which", ["digits", "batchnorm", "blocks"])
def test_exported_file_with_weights_classifies_as_cnnviz_does(tmp_path, style, which):
    stack = files.load(DIGITS) if which == "digits" else files.loads(json.dumps(
        WITH_BATCHNORM if which == "batchnorm" else WITH_BLOCKS))
    split = data.load(stack.training.data, stack.input.shape, stack.training.seed)
    model = _trained_like(stack)
    folder = tmp_path / "out"
    folder.mkdir()
    written = export.write_python_with_weights(stack, folder / "net.py", model, style, classes=split.classes,
                                               mean=split.mean, std=split.std)
    assert written.weights == folder / "net.safetensors" and written.weights.is_file()
    x = _samples(stack)
    torch.save(x, folder / "samples.pt")
    ran = _run(folder)
    reference = _reference(stack, written.weights, x, split)
    got = torch.tensor(ran["logits"])
    assert torch.allclose(got, reference, atol=1e-5), (got - reference).abs().max()
    probs = torch.softmax(reference, dim=1)
    for (name, p), row in zip(ran["names"], probs):
        assert name == split.classes[int(row.argmax())]
        assert p == pytest.approx(float(row.max()), abs=1e-5)
    assert ran["classes"] == list(split.classes)
    assert ran["safetensors"]


@pytest.mark.parametrize("style", export.STYLES)
def test_functional_weights_names_map_from_cnnviz_files(style):
    """The functional style's parameters (w0, mean1, seen1…) take the nn.Sequential's names (0.weight…)."""
    stack = files.loads(json.dumps(WITH_BATCHNORM))
    code = export.to_python(stack, style, weights="net.safetensors")
    namespace: dict = {"__file__": "/nowhere/net.py"}
    exec(compile(code, "<net>", "exec"), namespace)  # noqa: S102  (the generator's own output)
    assert namespace["WEIGHTS"] == str(Path("/nowhere/net.safetensors"))
    reference = _trained_like(stack)
    state = reference.state_dict()
    assert "1.running_var" in state and "1.num_batches_tracked" in state
    # build_model's own mapping, without safetensors: the names dict it holds
    tree = ast.parse(code)
    mine = namespace["build_model"]()
    if style == "functional":
        names = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "names")
        mine.load_state_dict({names.get(k, k): v for k, v in state.items()})
    else:
        mine.load_state_dict(state)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(mine.eval()(x), reference(x), atol=1e-6)


@pytest.mark.parametrize("style", export.STYLES)
def test_without_weights_the_file_imports_only_torch(tmp_path, style):
    stack = files.load(DIGITS)
    (tmp_path / "net.py").write_text(export.to_python(stack, style), encoding="utf-8")
    probe = ("import runpy, sys; runpy.run_path('net.py', run_name='__main__'); "
             "print('safetensors' in sys.modules, 'cnnviz' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"
    assert "safetensors" not in export.to_python(stack, style)


HOSTILE_CLASSES = (
    "x\n__import__('os').system('touch PWNED')  #",
    '"""; __import__("os").system("touch PWNED"); """',
    "'; __import__('os').system('touch PWNED'); '",
    "C:\\Users\\X\\", "\x1b[2J\x07", "\u202eevil\u202c", "a\u2028b", "nul\x00byte", "\ud800 lone", "😀 fine",
)


@pytest.mark.parametrize("style", export.STYLES)
def test_hostile_class_names_stay_data(tmp_path, style):
    stack = files.load(DIGITS)
    classes = HOSTILE_CLASSES
    code = export.to_python(stack, style, weights="x'); import os; os.system('touch PWNED') #.safetensors",
                            classes=classes, mean=[0.5], std=[0.25])
    tree = ast.parse(code)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "__import__" not in names
    assert all(not (isinstance(n, ast.Attribute) and n.attr == "system") for n in ast.walk(tree))
    (tmp_path / "net.py").write_text(code, encoding="utf-8", errors="surrogatepass")
    probe = "import runpy; net = runpy.run_path('net.py'); print(ascii(net['CLASSES']))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ascii(classes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py"]


def test_bad_normalisation_is_refused():
    stack = files.load(DIGITS)
    with pytest.raises(export.ExportError, match="mean and std"):
        export.to_python(stack, mean=[0.5])
    with pytest.raises(export.ExportError, match="finite"):
        export.to_python(stack, mean=[float("nan")], std=[1.0])
    with pytest.raises(export.ExportError, match="positive"):
        export.to_python(stack, mean=[0.5], std=[0.0])


def test_the_weights_never_go_over_a_stack_file(tmp_path):
    stack = files.load(DIGITS)
    (tmp_path / "net.safetensors").write_bytes(DIGITS.read_bytes())  # a stack file, named like weights
    with pytest.raises(outputs.OutputRefused, match="holds a cnnviz stack"):
        export.write_python_with_weights(stack, tmp_path / "net.py", build.build_model(stack, seed=0))
    assert not (tmp_path / "net.py").exists()
    with pytest.raises(outputs.OutputRefused, match="both the code and its weights"):
        export.write_python_with_weights(stack, tmp_path / "w.safetensors", build.build_model(stack, seed=0))


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("style", export.STYLES)
def test_cli_round_trip_with_weights(tmp_path, style):
    stack = files.load(DIGITS)
    trained = tmp_path / "trained.safetensors"
    weights.save(_trained_like(stack), stack, trained)
    folder = tmp_path / "out"
    folder.mkdir()
    rc, out, err = _cli("export", DIGITS, "--to", "python", "--style", style, "--weights", trained,
                        "-o", folder / "net.py")
    assert rc == 0, err
    assert (folder / "net.safetensors").is_file() and out == ""
    split = data.load("digits", stack.input.shape, stack.training.seed)
    x = _samples(stack)
    torch.save(x, folder / "samples.pt")
    ran = _run(folder)
    reference = _reference(stack, trained, x, split)
    assert torch.allclose(torch.tensor(ran["logits"]), reference, atol=1e-5)
    assert ran["classes"] == list(split.classes)


def test_cli_weights_without_output_is_a_usage_error(tmp_path):
    stack = files.load(DIGITS)
    trained = tmp_path / "trained.safetensors"
    weights.save(build.build_model(stack, seed=0), stack, trained)
    rc, out, err = _cli("export", DIGITS, "--to", "python", "--weights", trained)
    assert rc == 2 and out == ""
    assert "-o" in err


def test_cli_refuses_weights_that_do_not_fit(tmp_path):
    other = files.loads(json.dumps(WITH_BATCHNORM))
    wrong = tmp_path / "wrong.safetensors"
    weights.save(build.build_model(other, seed=0), other, wrong)
    rc, _, err = _cli("export", DIGITS, "--to", "python", "--weights", wrong, "-o", tmp_path / "net.py")
    assert rc == 2 and "layer" in err
    assert not (tmp_path / "net.py").exists() and not (tmp_path / "net.safetensors").exists()
