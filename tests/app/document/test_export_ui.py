"""The Export menu's Python export: with a live model, the trained weights go beside the code (issue 10)."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future

import pytest

torch = pytest.importorskip("torch")

from cnnviz.app.document.export_ui import Exporter
from cnnviz.core import data, shapes
from cnnviz.core.model import assets, files
from cnnviz.core.model.stack import StackDocument
from cnnviz.core.run import build, weights


class _Settings:
    def last_folder(self) -> str:
        return ""


def _exporter(stack, dialogs, live, opened=None):
    document = StackDocument(stack, analyse=shapes.infer)
    return Exporter(document, dialogs, _Settings(), stack_path=lambda: opened, select_layer=lambda i: None,
                    live_model=live, status=lambda text, ms: None, set_busy=lambda busy: None,
                    report_exception=dialogs.exceptions.append)


def _future(model):
    future: Future = Future()
    future.set_result(model)
    return future


@pytest.mark.parametrize("style", ["module", "functional"])
def test_python_export_writes_the_live_weights_beside_the_code(qtbot, dialogs, tmp_path, style):
    stack = files.load(assets.path("examples", "digits.cnnviz"))
    model = build.build_model(stack, seed=5).eval()
    exporter = _exporter(stack, dialogs, lambda: _future(model))
    dialogs.save_answers.append(str(tmp_path / "net.py"))
    exporter.export_python(style)
    qtbot.waitUntil(lambda: not exporter.busy, timeout=60_000)
    assert not dialogs.errors and not dialogs.exceptions
    assert (tmp_path / "net.safetensors").is_file()
    split = data.load("digits", stack.input.shape, stack.training.seed)
    x = torch.from_numpy(split.test.images[:4].copy())
    torch.save(x, tmp_path / "samples.pt")
    runner = ("import json, runpy, torch; net = runpy.run_path('net.py'); m = net['build_model'](net['WEIGHTS']); "
              "x = torch.load('samples.pt'); print(json.dumps([net['classify'](m, i) for i in x]))")
    done = subprocess.run([sys.executable, "-c", runner], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(data.normalize(x.numpy(), split.mean, split.std))), dim=1)
    for (name, p), row in zip(json.loads(done.stdout), probs):
        assert name == split.classes[int(row.argmax())] and p == pytest.approx(float(row.max()), abs=1e-5)
    loaded = build.build_model(stack, seed=0)
    weights.load_into(loaded, stack, tmp_path / "net.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_python_export_never_replaces_the_open_stacks_weights(qtbot, dialogs, tmp_path):
    stack = files.load(assets.path("examples", "digits.cnnviz"))
    opened = tmp_path / "digits.cnnviz"
    opened.write_bytes(assets.path("examples", "digits.cnnviz").read_bytes())
    saved = tmp_path / "digits.safetensors"
    saved.write_bytes(b"the weights the window saved")
    exporter = _exporter(stack, dialogs, lambda: _future(build.build_model(stack, seed=0)), opened=opened)
    dialogs.save_answers.append(str(tmp_path / "digits.py"))
    exporter.export_python()
    assert dialogs.errors and dialogs.errors[-1][0] == "Cannot export there"
    assert "saved for the open stack" in dialogs.errors[-1][1]
    assert saved.read_bytes() == b"the weights the window saved" and not (tmp_path / "digits.py").exists()


def test_without_a_live_model_the_code_comes_alone(qtbot, dialogs, tmp_path):
    stack = files.load(assets.path("examples", "digits.cnnviz"))
    exporter = _exporter(stack, dialogs, lambda: None)
    dialogs.save_answers.append(str(tmp_path / "net.py"))
    exporter.export_python()
    qtbot.waitUntil(lambda: not exporter.busy, timeout=60_000)
    assert (tmp_path / "net.py").is_file() and not (tmp_path / "net.safetensors").exists()
    assert "def build_model() -> nn.Module:" in (tmp_path / "net.py").read_text(encoding="utf-8")


def test_the_suggested_python_name_leaves_the_stacks_own_weights_alone(make_window, examples, dialogs, tmp_path):
    net = tmp_path / "net.cnnviz"
    net.write_bytes(examples["lenet5"].read_bytes())
    window = make_window(net)
    dialogs.save_answers.append(None)  # look at what is suggested, then cancel
    window.export_module_action.trigger()
    title, suggested = dialogs.questions[-1]
    assert suggested.endswith(str(tmp_path / "net_model.py"))
