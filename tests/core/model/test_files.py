"""Reading and writing ``.cnnviz`` files (SPEC §1).

Round trips of random valid stacks, every bundled example, the SPEC's own
example, atomic saving, migrations, and a corpus of broken and hostile files
(tests/core/corpus, with index.json naming the located message each must
get), plus hostile files too big to keep in git, made here.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.core.model import assets, files
from cnnviz.core.model.files import StackFileError
from cnnviz.core.model.layers import (
    BOOL,
    CATALOGUE,
    CHOICE,
    FLOAT,
    INT,
    LOSSES,
    MAX_INPUT_CHANNELS,
    MAX_INPUT_SIZE,
    OPT_FLOAT,
    OPT_INT,
    OPT_PAIR,
    PADDING,
    PAIR,
    SIZE,
    WEIGHTS,
)
from cnnviz.core.model.stack import DATASETS, OPTIMIZERS, SCHEDULES, InputSpec, Layer, Loss, Stack, TrainingConfig
from cnnviz.core.shapes import infer

CORPUS = Path(__file__).parent / "corpus"
INDEX = json.loads((CORPUS / "index.json").read_text(encoding="utf-8"))
CI = settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SPEC_EXAMPLE = """{
  "format": "cnnviz.stack",
  "version": 1,
  "name": "LeNet-5",
  "input": {"channels": 1, "height": 28, "width": 28},
  "layers": [
    {"type": "Conv2d", "params": {"out_channels": 6, "kernel_size": 5, "padding": 2}},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "params": {"kernel_size": 2}},
    {"type": "Conv2d", "params": {"in_channels": 6, "out_channels": 16, "kernel_size": [5, 5]}},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "params": {"kernel_size": 2, "ceil_mode": true}},
    {"type": "Flatten"},
    {"type": "Linear", "params": {"out_features": 120}},
    {"type": "ReLU"},
    {"type": "Linear", "params": {"out_features": 10}}
  ],
  "loss": {"type": "CrossEntropyLoss"}
}
"""


# ------------------------------------------------------------ random stacks
def valid_value(p):
    """Any value validation accepts for keyword ``p``, over its whole range."""
    ints = st.integers(int(p.min), int(p.max)) if p.min is not None else st.integers()
    pair = st.one_of(ints, st.lists(ints, min_size=2, max_size=2))
    floats = st.floats(p.min, p.max, exclude_min=not p.min_inclusive, allow_nan=False, allow_infinity=False)
    return {
        INT: ints, OPT_INT: st.one_of(st.none(), ints), FLOAT: floats, OPT_FLOAT: st.one_of(st.none(), floats),
        BOOL: st.booleans(), CHOICE: st.sampled_from(p.choices or ("",)), PAIR: pair,
        OPT_PAIR: st.one_of(st.none(), pair), PADDING: st.one_of(pair, st.sampled_from(["same", "valid"])),
        SIZE: st.one_of(ints, st.lists(st.one_of(st.none(), ints), min_size=2, max_size=2)),
        WEIGHTS: st.one_of(st.none(), st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=12)),
    }[p.kind]


@st.composite
def keywords(draw, spec):
    out = {}
    for p in spec.params:
        if p.required or draw(st.booleans()):
            out[p.name] = None if p.inferred and draw(st.booleans()) else draw(valid_value(p))
    return out


text = st.text(st.characters(codec="utf-8"), max_size=60)


@st.composite
def any_layer(draw):
    spec = CATALOGUE[draw(st.sampled_from(sorted(CATALOGUE)))]
    return Layer(spec.type, draw(keywords(spec)), draw(st.one_of(st.none(), text.filter(bool))))


@st.composite
def training(draw):
    return TrainingConfig(
        data=draw(st.sampled_from(DATASETS)), optimizer=draw(st.sampled_from(OPTIMIZERS)),
        lr=draw(st.floats(1e-8, 10, allow_nan=False)), momentum=draw(st.floats(0, 1)),
        weight_decay=draw(st.floats(0, 1)), batch_size=draw(st.integers(1, 4096)),
        seed=draw(st.integers(0, 2 ** 32 - 1)), device=draw(st.sampled_from(["auto", "cpu", "cuda", "cuda:1", "mps"])),
        steps=draw(st.integers(1, 10_000_000)), schedule=draw(st.sampled_from(SCHEDULES)))


@st.composite
def any_stack(draw):
    loss = LOSSES[draw(st.sampled_from(sorted(LOSSES)))]
    return Stack(
        name=draw(text), description=draw(text),
        input=InputSpec(draw(st.integers(1, MAX_INPUT_CHANNELS)), draw(st.integers(1, MAX_INPUT_SIZE)),
                        draw(st.integers(1, MAX_INPUT_SIZE))),
        layers=tuple(draw(st.lists(any_layer(), max_size=8))),
        loss=Loss(loss.type, draw(keywords(loss))),
        training=draw(st.one_of(st.none(), training())))


@CI
@given(any_stack())
def test_round_trip(stack):
    text_ = files.dumps(stack)
    again = files.loads(text_)
    assert again == stack
    assert files.dumps(again) == text_
    assert files.loads(text_.encode("utf-8")) == stack


@CI
@given(any_stack())
def test_dumps_is_one_layer_per_line_json(stack):
    text_ = files.dumps(stack)
    doc = json.loads(text_)
    assert doc["format"] == "cnnviz.stack" and doc["version"] == (2 if stack.has_blocks else 1)
    assert list(doc)[:2] == ["format", "version"]
    assert len(text_.encode("utf-8")) <= files.MAX_FILE_BYTES
    if stack.layers:
        lines = text_.splitlines()  # as an editor shows it: U+2028 and friends break lines too
        start = lines.index('  "layers": [')
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("  ]"))
        assert len(lines[start + 1:end]) == len(stack.layers)


# ----------------------------------------------------------------- examples
def test_spec_example_loads():
    stack = files.loads(SPEC_EXAMPLE)
    assert stack.name == "LeNet-5" and len(stack.layers) == 10
    assert stack.layers[3].params == {"in_channels": 6, "out_channels": 16, "kernel_size": [5, 5]}
    assert stack.loss == Loss("CrossEntropyLoss") and stack.training is None
    report = infer(stack)
    assert report.ok and report.output_shape == (10,)
    assert files.loads(files.dumps(stack)) == stack


@pytest.mark.parametrize("path", assets.examples(), ids=lambda p: p.name)
def test_every_example_loads_and_round_trips(path):
    stack = files.load(path)
    assert files.loads(files.dumps(stack)) == stack
    report = infer(stack)
    assert report.ok == (path.name != "broken.cnnviz"), report.first_error


def test_examples_are_there():
    assert {p.name for p in assets.examples()} >= {"lenet5.cnnviz", "tiny-vgg.cnnviz", "digits.cnnviz",
                                                    "dilation-demo.cnnviz", "ceil-mode-demo.cnnviz",
                                                    "broken.cnnviz"}


def test_optional_parts_default():
    stack = files.loads('{"format": "cnnviz.stack", "version": 1, '
                        '"input": {"channels": 3, "height": 5, "width": 7}, "layers": [{"type": "ReLU"}]}')
    assert stack == Stack(name="Untitled", input=InputSpec(3, 5, 7), layers=(Layer("ReLU"),))
    assert stack.loss.type == "CrossEntropyLoss" and stack.training is None and stack.description == ""


TRAINED = ('{"format": "cnnviz.stack", "version": 1, "input": {"channels": 1, "height": 4, "width": 4}, '
           '"layers": [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}], '
           '"training": {"lr": 0.01, "steps": 40%s}}')


def test_training_schedule_is_read_and_written_only_when_not_constant():
    old = files.loads(TRAINED % "")
    assert old.training.schedule == "constant"
    assert "schedule" not in files.dumps(old), "a file without a schedule is written back as it was"
    assert files.loads(TRAINED % ', "schedule": "constant"').training == old.training
    cosine = files.loads(TRAINED % ', "schedule": "cosine"')
    assert cosine.training == TrainingConfig(lr=0.01, steps=40, schedule="cosine")
    text_ = files.dumps(cosine)
    assert json.loads(text_)["training"]["schedule"] == "cosine"
    assert files.loads(text_) == cosine and files.dumps(files.loads(text_)) == text_


@pytest.mark.parametrize("value", ['"linear"', '"Cosine"', "1", "null", '["cosine"]'])
def test_an_unknown_training_schedule_is_refused_naming_the_key_and_the_choices(value):
    with pytest.raises(StackFileError) as info:
        files.loads(TRAINED % f', "schedule": {value}')
    assert info.value.location == "training.schedule"
    assert "'constant'" in str(info.value) and "'cosine'" in str(info.value)


def test_inferred_counts_may_be_null_and_round_trip():
    stack = files.loads('{"format": "cnnviz.stack", "version": 1, "input": {"channels": 3, "height": 5, '
                        '"width": 5}, "layers": [{"type": "Conv2d", "params": {"in_channels": null, '
                        '"out_channels": 2, "kernel_size": 3}}]}')
    assert stack.layers[0].params["in_channels"] is None
    assert infer(stack).layers[0].resolved["in_channels"] == 3
    assert files.loads(files.dumps(stack)) == stack


def test_utf8_bom_and_unicode_names():
    stack = Stack(name="Réseau — 网络 🧠", layers=(Layer("ReLU", name="ẞ"),))
    data = files.dumps(stack).encode("utf-8")
    assert files.loads(b"\xef\xbb\xbf" + data) == stack
    assert "网络".encode("utf-8") in data, "written as UTF-8, not \\u escapes"


# -------------------------------------------------------------- the corpus
@pytest.mark.parametrize("name", sorted(INDEX))
def test_corpus_file_is_refused_with_located_message(name):
    expected = INDEX[name]
    path = CORPUS / name
    with pytest.raises(StackFileError) as info:
        files.load(path)
    err = info.value
    assert err.location == expected["location"], err
    for phrase in expected["says"]:
        assert phrase in err.message, f"{phrase!r} not in {err.message!r}"
    assert err.path == str(path) and str(err).startswith(f"{path}: ")
    assert len(err.message) < 400, "a hostile file must not make a huge message"
    with pytest.raises(StackFileError):
        files.loads(path.read_bytes())


def test_corpus_index_lists_every_file():
    on_disk = {p.name for p in CORPUS.glob("*.cnnviz")}
    assert on_disk == set(INDEX)
    assert len(INDEX) >= 60


def test_a_file_is_never_executed(tmp_path, monkeypatch):
    marker = Path("/tmp/cnnviz-pwned")
    marker.unlink(missing_ok=True)
    before = set(sys.modules)
    for name in ("type-os-system.cnnviz", "type-import.cnnviz", "type-dotted.cnnviz"):
        with pytest.raises(StackFileError):
            files.load(CORPUS / name)
    assert not marker.exists()
    assert set(sys.modules) - before == set(), "reading a file imported something"
    source = Path(files.__file__).read_text(encoding="utf-8")
    for word in ("eval(", "exec(", "pickle", "importlib", "__import__", "getattr("):
        assert word not in source, f"files.py uses {word}"


# --------------------------------------------- hostile files made on the fly
def _doc(layers: str = "", extra: str = "") -> str:
    return ('{"format": "cnnviz.stack", "version": 1, "input": {"channels": 1, "height": 8, "width": 8}, '
            f'"layers": [{layers}]{extra}}}')


def _refused(tmp_path: Path, data: bytes | str, name: str = "hostile.cnnviz") -> StackFileError:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    with pytest.raises(StackFileError) as info:
        files.load(path)
    with pytest.raises(StackFileError):
        files.loads(data)
    assert len(info.value.message) < 400
    return info.value


def test_huge_file(tmp_path):
    err = _refused(tmp_path, _doc(extra=', "description": "' + "x" * (files.MAX_FILE_BYTES + 10) + '"'))
    assert "stack files are at most 1,048,576" in err.message and err.location == ""


def test_million_layers(tmp_path):
    err = _refused(tmp_path, _doc(", ".join(['{"type": "ReLU"}'] * 1_000_000)))
    assert "bytes; stack files are at most" in err.message


def test_many_layers_within_the_size_limit(tmp_path):
    err = _refused(tmp_path, _doc(",".join(["0"] * 100_000)))
    assert err.location == "layers" and "100000 layers; at most 512" in err.message


def test_layer_count_limit_is_inclusive():
    assert len(files.loads(_doc(", ".join(['{"type": "ReLU"}'] * 512))).layers) == 512


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a": ', "}")])
def test_deep_nesting(tmp_path, opener, closer):
    err = _refused(tmp_path, opener * 100_000 + "1" + closer * 100_000)
    assert "nested too deeply" in err.message


def test_nesting_just_inside_the_parser_but_past_the_limit(tmp_path):
    err = _refused(tmp_path, _doc(extra=', "name": ' + "[" * 40 + "]" * 40))
    assert err.location.startswith("name[0]") and f"at most {files.MAX_DEPTH} levels" in err.message


def test_blocks_nest_eight_deep_and_no_deeper(tmp_path):
    def nested(depth):
        entry = '{"type": "ReLU"}'
        for _ in range(depth):
            entry = '{"type": "Concat", "branches": [[' + entry + ']]}'
        return _doc(entry).replace('"version": 1', '"version": 2')

    stack = files.loads(nested(8))
    assert len(list(stack.walk())) == 9
    err = _refused(tmp_path, nested(9))
    assert "blocks nest at most 8 deep" in err.message
    assert err.location == "layers[0]" + ".branches[0][0]" * 8


def test_layers_are_counted_at_every_depth(tmp_path):
    from cnnviz.core.model.layers import MAX_LAYERS

    inner = ", ".join(['{"type": "ReLU"}'] * MAX_LAYERS)
    doc = _doc('{"type": "Residual", "body": [' + inner + ']}').replace('"version": 1', '"version": 2')
    err = _refused(tmp_path, doc)
    assert f"more than {MAX_LAYERS} layers (counted at every depth" in err.message


def test_huge_key_and_value_make_short_messages(tmp_path):
    key = "k" * 100_000
    err = _refused(tmp_path, _doc('{"type": "Conv2d", "params": {"' + key + '": 1}}'))
    assert err.location.startswith("layers[0].params.kkk") and len(err.location) < 80
    err = _refused(tmp_path, _doc('{"type": "' + key + '"}'))
    assert err.location == "layers[0].type"
    err = _refused(tmp_path, _doc(extra=', "' + key + '": 1'))
    assert len(err.location) < 80


def test_lone_surrogate_in_python_text():
    with pytest.raises(StackFileError) as info:
        files.loads(_doc().replace('"layers"', '"name": "\ud800", "layers"'))
    assert "surrogate" in info.value.message


def test_folder_and_missing_path(tmp_path):
    with pytest.raises(StackFileError) as info:
        files.load(tmp_path)
    assert info.value.message == "is a folder, not a stack file" and info.value.path == str(tmp_path)
    missing = tmp_path / "nope.cnnviz"
    with pytest.raises(StackFileError) as info:
        files.load(missing)
    assert info.value.message == "no such file" and str(info.value) == f"{missing}: no such file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.cnnviz"
    os.mkfifo(fifo)
    with pytest.raises(StackFileError) as info:
        files.load(fifo)
    assert info.value.message == "is not a regular file"


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.cnnviz"
    files.save(Stack(name="old"), real)
    link = tmp_path / "link.cnnviz"
    link.symlink_to(real)
    assert files.save(_lenet(), link) == link
    assert link.is_symlink() and files.load(real) == _lenet()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.cnnviz", "real.cnnviz"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.cnnviz"
    path.write_text(SPEC_EXAMPLE)
    path.chmod(0)
    with pytest.raises(StackFileError) as info:
        files.load(path)
    assert info.value.message == "permission denied"


# ----------------------------------------------------------------- versions
def test_migration_hook_runs(monkeypatch):
    """A fake version 3 whose migration from 2 renames the old top-level key "net" to "layers"."""
    calls = []

    def v2_to_v3(doc):
        calls.append(doc["version"])
        if "net" in doc:
            doc["layers"] = doc.pop("net")
        return doc

    monkeypatch.setattr(files, "VERSION", 3)
    monkeypatch.setattr(files, "MIGRATIONS", {1: files.MIGRATIONS[1], 2: v2_to_v3})
    old = _doc('{"type": "ReLU"}').replace('"layers"', '"net"').replace('"version": 1', '"version": 2')
    stack = files.loads(old)
    assert calls == [2] and stack.layers == (Layer("ReLU"),)
    with pytest.raises(StackFileError) as info:
        files.loads(_doc().replace('"version": 1', '"version": 4'))
    assert info.value.location == "version" and "reads versions up to 3" in info.value.message


def test_a_file_without_blocks_is_written_as_version_1_and_one_with_blocks_as_version_2():
    from cnnviz.core.model.stack import residual

    flat = Stack("flat", InputSpec(1, 8, 8), (Layer("ReLU"),))
    assert json.loads(files.dumps(flat))["version"] == 1
    nested = Stack("nested", InputSpec(1, 8, 8), (residual([Layer("ReLU")]),))
    text_ = files.dumps(nested)
    assert json.loads(text_)["version"] == 2
    assert files.loads(text_) == nested
    with pytest.raises(StackFileError) as info:  # a block in a file marked version 1
        files.loads(text_.replace('"version": 2', '"version": 1'))
    assert info.value.location == "layers[0].type" and "blocks need version 2" in info.value.message


def test_missing_migration_is_a_located_refusal(monkeypatch):
    monkeypatch.setattr(files, "VERSION", 3)
    monkeypatch.setattr(files, "MIGRATIONS", {1: lambda doc: doc})
    with pytest.raises(StackFileError) as info:
        files.loads(_doc())
    assert info.value.location == "version" and "cannot convert it to version 3" in info.value.message


def test_current_reader_has_no_pending_migrations():
    assert all(v < files.VERSION for v in files.MIGRATIONS)
    assert all(v in files.MIGRATIONS for v in range(1, files.VERSION))


# ------------------------------------------------------------------- saving
def _lenet() -> Stack:
    return files.loads(SPEC_EXAMPLE)


def test_save_writes_what_load_reads(tmp_path):
    path = files.save(_lenet(), tmp_path / "net.cnnviz")
    assert files.load(path) == _lenet()
    assert path.read_text(encoding="utf-8") == files.dumps(_lenet())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["net.cnnviz"]


def test_save_keeps_the_file_mode(tmp_path):
    path = tmp_path / "net.cnnviz"
    path.write_text("old")
    path.chmod(0o600)
    files.save(_lenet(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("crash_in", ["replace", "fsync", "write"])
def test_crash_mid_save_leaves_the_old_file(tmp_path, monkeypatch, crash_in):
    path = tmp_path / "net.cnnviz"
    files.save(Stack(name="old"), path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if crash_in == "write":
        real_fdopen = os.fdopen

        class Torn:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                self.fh.write(data[:10])
                crash()

            def __getattr__(self, name):
                return getattr(self.fh, name)

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Torn(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, crash_in, crash)
    with pytest.raises(OSError):
        files.save(_lenet(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.cnnviz"], "no temporary file is left behind"
    assert files.load(path).name == "old"


def test_keyboard_interrupt_mid_save_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "net.cnnviz"

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        files.save(_lenet(), path)
    assert list(tmp_path.iterdir()) == []
