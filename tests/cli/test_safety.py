"""A stack file is data, never code, also after export; no command destroys a file (issue: safety).

Each test here failed on the code before the fix: an exported file that ran
the file's text as code, exports and ``--save-weights`` over their own input,
raw terminal control characters, SIGTERM without the ``done`` line, a closed
pipe reported as an internal error, a 201-digit seed as exit 3.
"""
from __future__ import annotations

import ast
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz import cli
from cnnviz.core import export
from cnnviz.core.model import assets, files, outputs

ROOT = Path(__file__).resolve().parents[2]
LENET = assets.path("examples", "lenet5.cnnviz")

# Text crafted to break out of a comment, a docstring or a string, or to act on a terminal.
HOSTILE = [
    "x\n__import__('os').system('touch PWNED')  #",
    "x\r__import__('os').system('touch PWNED')  #",
    'C:\\Users\\X',
    'end with a backslash\\',
    '"""; __import__("os").system("touch PWNED"); """',
    "'''; __import__('os').system('touch PWNED'); '''",
    '"', "'", "\\N{BULLET}", "\\x00",
    "a\u2028__import__('os').system('touch PWNED')",
    "a\u2029b\x85c\x0bd\x0ce",
    "nul\x00byte",
    "non-BMP \U0001F600 \U00010348",
    "\x1b[2J\x1b]0;title\x07bell",
    "\u202eevil\u202c",
]


def _stack_doc(text: str) -> dict:
    return {
        "format": "cnnviz.stack", "version": 1, "name": text, "description": f"{text} and again: {text}",
        "input": {"channels": 1, "height": 8, "width": 8},
        "layers": [
            {"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 3}, "name": text},
            {"type": "BatchNorm2d", "name": text + "2"},
            {"type": "ReLU", "name": text + "3"},
            {"type": "Flatten", "name": text + "4"},
            {"type": "Linear", "params": {"out_features": 3}, "name": text + "5"},
        ],
    }


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([str(a) for a in argv], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _cnnviz(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "cnnviz", *map(str, argv)], capture_output=True, text=True,
                          cwd=kwargs.pop("cwd", ROOT), timeout=kwargs.pop("timeout", 120), **kwargs)


# ------------------------------------------------------------------ 1. code injection
@pytest.mark.parametrize("style", export.STYLES)
def test_hostile_text_exports_to_a_file_that_runs_and_creates_nothing(tmp_path, style):
    """Every hostile name, label and description in one go: the exported file runs as a program,
    prints the right shape, and no code from the file ran (no file appears in its folder)."""
    work = tmp_path / "work"
    work.mkdir()
    for n, text in enumerate(HOSTILE):
        stack = files.loads(json.dumps(_stack_doc(text)))
        code = export.to_python(stack, style)
        names = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
        assert "__import__" not in names and "os" not in names, text
        script = work / f"net{n}.py"
        script.write_text(code, encoding="utf-8")
    before = sorted(p.name for p in work.iterdir())
    runner = "; ".join(f"import runpy; runpy.run_path('net{n}.py', run_name='__main__')" for n in range(len(HOSTILE)))
    done = subprocess.run([sys.executable, "-c", runner], cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("output (2, 3), ") == len(HOSTILE), done.stdout
    assert sorted(p.name for p in work.iterdir() if p.name != "__pycache__") == before
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


@pytest.mark.parametrize("style", export.STYLES)
def test_hostile_text_survives_as_data(style):
    """The text is still there to read (escaped), not dropped: the module docstring names the stack."""
    stack = files.loads(json.dumps(_stack_doc('C:\\Users\\X "q"')))
    tree = ast.parse(export.to_python(stack, style))
    assert ast.get_docstring(tree).startswith('C:\\Users\\X "q": exported by cnnviz')


def test_the_generator_refuses_to_return_code_that_does_not_parse(monkeypatch):
    stack = files.load(LENET)
    monkeypatch.setattr(export.python, "_footer", lambda *a: ["def broken(:"])
    with pytest.raises(export.ExportError, match="does not parse"):
        export.to_python(stack)


# ------------------------------------------------------------------ 2. never over the input
def _lenet_copy(folder: Path, name: str = "net.cnnviz") -> Path:
    path = folder / name
    path.write_bytes(LENET.read_bytes())
    return path


@pytest.mark.parametrize("argv", [
    ["export", "{net}", "--to", "python", "-o", "{net}"],
    ["export", "{net}", "--to", "python", "-o", "{link}"],
    ["export", "{net}", "--to", "onnx", "-o", "{net}"],
    ["export", "{net}", "--to", "python", "-o", "{other}"],
    ["export", "{net}", "--to", "onnx", "-o", "{other}"],
    ["train", "{net}", "--steps", "1", "--data", "digits", "--save-weights", "{net}"],
    ["train", "{net}", "--steps", "1", "--data", "digits", "--save-weights", "{other}"],
    ["train", "{net}", "--steps", "1", "--data", "digits", "--save-weights", "{net}", "--force"],
])
def test_no_command_writes_over_its_input_or_another_stack(tmp_path, argv):
    net = _lenet_copy(tmp_path)
    other = _lenet_copy(tmp_path, "other.cnnviz")
    (tmp_path / "link.py").symlink_to(net)
    names = {"net": net, "other": other, "link": tmp_path / "link.py"}
    before = {p: p.read_bytes() for p in (net, other)}
    rc, out, err = run(*[a.format(**names) for a in argv])
    assert rc == 2, err
    assert "step" not in out  # refused before training started
    assert {p: p.read_bytes() for p in (net, other)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.py", "net.cnnviz", "other.cnnviz"]
    if "--force" in argv:
        assert "the file being read" in err
    elif argv[-1] == "{other}":
        assert "holds a cnnviz stack" in err and "--force" in err
    else:
        assert "the file being read" in err


def test_force_replaces_another_stack_on_purpose(tmp_path):
    net = _lenet_copy(tmp_path)
    other = _lenet_copy(tmp_path, "other.cnnviz")
    rc, out, err = run("export", net, "--to", "python", "-o", other, "--force")
    assert rc == 0, err
    assert other.read_text(encoding="utf-8").startswith('"""LeNet-5')


def test_a_stack_under_another_suffix_is_protected_too(tmp_path):
    net = _lenet_copy(tmp_path)
    disguised = _lenet_copy(tmp_path, "model.json")
    rc, out, err = run("export", net, "--to", "python", "-o", disguised)
    assert rc == 2 and "holds a cnnviz stack" in err
    assert disguised.read_bytes() == LENET.read_bytes()


def _special_files(folder: Path) -> list[Path]:
    fifo = folder / "fifo.py"
    os.mkfifo(fifo)
    made = [fifo, folder / "dir.py"]
    made[1].mkdir()
    try:
        dev = folder / "null.py"
        os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a private /dev/null, so the real one is never at risk
        made.append(dev)
    except (PermissionError, OSError):
        pass
    return made


@pytest.mark.timeout(60)
@pytest.mark.parametrize("to", ["python", "onnx"])
def test_nothing_but_a_regular_file_is_ever_replaced(tmp_path, to):
    net = _lenet_copy(tmp_path)
    for target in _special_files(tmp_path):
        kind = stat.S_IFMT(target.lstat().st_mode)
        rc, out, err = run("export", net, "--to", to, "-o", target)
        assert rc == 2, (target, err)
        assert "regular file" in err or "folder" in err, err
        assert stat.S_IFMT(target.lstat().st_mode) == kind


@pytest.mark.timeout(60)
def test_save_weights_to_a_special_file_is_refused_before_training(tmp_path):
    net = _lenet_copy(tmp_path)
    for target in _special_files(tmp_path):
        kind = stat.S_IFMT(target.lstat().st_mode)
        rc, out, err = run("train", net, "--steps", "1", "--data", "digits", "--json", "--save-weights", target)
        assert rc == 2, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["event"] for line in lines] == ["error"], lines
        assert stat.S_IFMT(target.lstat().st_mode) == kind


def test_save_weights_into_a_missing_folder_is_refused_before_training(tmp_path):
    net = _lenet_copy(tmp_path)
    started = time.perf_counter()
    rc, out, err = run("train", net, "--steps", "100000", "--data", "digits", "--json",
                       "--save-weights", tmp_path / "no" / "such" / "w.safetensors")
    assert rc == 2
    assert time.perf_counter() - started < 5
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["event"] == "error" and "does not exist" in line["message"]


def test_a_failed_onnx_export_leaves_nothing_behind(tmp_path, monkeypatch):
    """torch's exporter writes external data (``1.weight``) beside its output, then fails: nothing remains."""
    import torch

    def failing_export(model, args, f, **kwargs):
        Path(f).write_bytes(b"partial")
        (Path(f).parent / "1.weight").write_bytes(b"\0" * 64)
        raise RuntimeError("simulated exporter failure")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    target = tmp_path / "net.onnx"
    with pytest.raises(export.ExportError, match="simulated"):
        export.to_onnx(files.load(LENET), target)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_would_need_external_data_is_refused_cleanly(tmp_path, monkeypatch):
    import torch

    def external_export(model, args, f, **kwargs):
        Path(f).write_bytes(b"model")
        (Path(f).parent / "1.weight").write_bytes(b"\0" * 64)

    monkeypatch.setattr(torch.onnx, "export", external_export)
    monkeypatch.setattr(export.onnx, "_check_onnx", lambda path: None)
    with pytest.raises(export.ExportError, match="external data"):
        export.to_onnx(files.load(LENET), tmp_path / "net.onnx")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 10. leftovers and modes
def test_outputs_follow_the_umask(tmp_path):
    pytest.importorskip("onnx")
    old = os.umask(0o022)
    try:
        rc, _, err = run("export", LENET, "--to", "python", "-o", tmp_path / "net.py")
        assert rc == 0, err
        rc, _, err = run("export", LENET, "--to", "onnx", "-o", tmp_path / "net.onnx")
        assert rc == 0, err
        files.save(files.load(LENET), tmp_path / "copy.cnnviz")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        assert modes == {"net.py": 0o644, "net.onnx": 0o644, "copy.cnnviz": 0o644}
        os.umask(0o077)
        outputs._umask = None
        files.save(files.load(LENET), tmp_path / "private.cnnviz")
        assert stat.S_IMODE((tmp_path / "private.cnnviz").stat().st_mode) == 0o600
    finally:
        os.umask(old)
        outputs._umask = None


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_save_removes_what_killed_saves_left_and_keeps_a_live_writers(tmp_path):
    target = tmp_path / "net.cnnviz"
    files.save(files.load(LENET), target)
    dead = tmp_path / f".net.cnnviz.cnnviz-{_dead_pid()}-abc123.tmp"
    live = tmp_path / f".net.cnnviz.cnnviz-{os.getpid()}-def456.tmp"
    unrelated = tmp_path / ".other.cnnviz.cnnviz-1-xyz.tmp"
    for p in (dead, live, unrelated):
        p.write_text("{", encoding="utf-8")
    files.save(files.load(LENET), target)
    assert not dead.exists()
    assert live.exists() and unrelated.exists()


def test_kill_during_saves_leaves_no_temporary_after_the_next_save(tmp_path):
    """A writer killed mid-save (SIGKILL, no clean-up at all) leaves its temporary; the next save removes it."""
    target = tmp_path / "net.cnnviz"
    code = ("import os, sys; from cnnviz.core.model import files; s = files.load(sys.argv[1]); "
            "orig = os.replace\n"
            "def stop(*a): os.kill(os.getpid(), 9)\n"
            "os.replace = stop; files.save(s, sys.argv[2])")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", code, str(LENET), str(target)], timeout=60)
        # each killed save cleaned its dead predecessor's temporary and left its own
        assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1
    files.save(files.load(LENET), target)
    assert [p.name for p in tmp_path.iterdir()] == ["net.cnnviz"]


# ------------------------------------------------------------------ 4. terminal control characters
def test_control_characters_from_the_file_never_reach_the_terminal(tmp_path):
    path = tmp_path / "evil.cnnviz"
    doc = _stack_doc("\x1b[2J\x1b]0;owned\x07\rname\x00\u202e\x9b31m")
    path.write_text(json.dumps(doc), encoding="utf-8")
    rc, out, err = run("summary", path)
    assert rc == 0, err
    for ch in "\x1b\x07\r\x00\u202e\x9b":
        assert ch not in out + err, repr(ch)
    assert "\\x1b[2J" in out  # still readable, as an escape
    rc, out, err = run("summary", path, "--json")
    assert json.loads(out)["name"] == doc["name"]  # JSON keeps the exact text, escaped the JSON way
    for ch in "\x1b\x07\r\x00\u202e\x9b":
        assert ch not in out, repr(ch)


def test_training_text_output_escapes_the_file_text(tmp_path):
    path = tmp_path / "evil.cnnviz"
    doc = json.loads(LENET.read_text(encoding="utf-8"))
    doc["name"] = "\x1b[31mred\x07\rover"
    path.write_text(json.dumps(doc), encoding="utf-8")
    rc, out, err = run("train", path, "--steps", "2", "--data", "digits")
    assert rc == 1 or rc == 0, err  # LeNet's 28×28 input takes digits resized; either way nothing raw
    for ch in "\x1b\x07":
        assert ch not in out + err
    assert "\r" not in out


def test_a_key_with_control_characters_is_escaped_in_the_refusal(tmp_path):
    path = tmp_path / "evil.cnnviz"
    path.write_text('{"format": "cnnviz.stack", "version": 1, "\\u001b[2Jkey": 1}', encoding="utf-8")
    rc, out, err = run("summary", path)
    assert rc == 2 and "\x1b" not in err and "\\x1b[2Jkey" in err


# ------------------------------------------------------------------ 6 and 9. the user's mistakes are exit 2
@pytest.mark.parametrize("argv, says", [
    (["--seed", str(2 ** 70)], "out of range"),
    (["--seed", "-1"], "out of range"),
    (["--batch-size", "10000000"], "4096"),
    (["--batch-size", "0"], "out of range"),
    (["--steps", "x"], "whole number"),
])
def test_settings_out_of_the_file_formats_range_are_usage_errors(argv, says, capsys):
    rc, out, err = run("train", LENET, *argv)
    err += capsys.readouterr().err  # argparse writes its usage message to sys.stderr
    assert rc == 2
    assert says in err and "Traceback" not in err and "internal error" not in err


def test_the_command_line_and_the_file_share_one_batch_range():
    from cnnviz.core.model.files import TRAINING_PARAMS

    assert run("train", LENET, "--batch-size", str(TRAINING_PARAMS["batch_size"].max + 1))[0] == 2
    doc = json.loads(LENET.read_text(encoding="utf-8"))
    doc["training"] = {"batch_size": TRAINING_PARAMS["batch_size"].max + 1}
    with pytest.raises(files.StackFileError, match="batch_size"):
        files.loads(json.dumps(doc))


@pytest.mark.timeout(120)
def test_a_closed_pipe_ends_quietly_with_0(tmp_path):
    err = tmp_path / "stderr.txt"
    done = subprocess.run(f"set -o pipefail; {sys.executable} -m cnnviz train {LENET} --data digits --steps 3000 "
                          f"--json 2> {err} | head -1", shell=True, capture_output=True, text=True, cwd=ROOT,
                          timeout=110, executable="/bin/bash")
    assert json.loads(done.stdout.splitlines()[0])["event"] == "step"
    assert done.returncode == 0, err.read_text()  # pipefail: cnnviz's own status, not head's
    stderr = err.read_text()
    assert "internal error" not in stderr and "Traceback" not in stderr and "Broken pipe" not in stderr, stderr


# ------------------------------------------------------------------ 8. SIGTERM
@pytest.mark.timeout(120)
def test_sigterm_ends_training_with_the_done_line():
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", str(LENET), "--data", "digits",
                             "--steps", "1000000", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "step"
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    last = json.loads(rest.strip().splitlines()[-1])
    assert proc.returncode == 130, err
    assert last["event"] == "done" and last["interrupted"] is True and last["signal"] == "SIGTERM"
    assert "Traceback" not in err
