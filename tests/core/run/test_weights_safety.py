"""Weights files written and read safely (issue 8): umask, atomic writes, header first, odd dtypes, odd paths."""
import os
import stat
import struct
import subprocess
import sys
import time

import pytest
import safetensors
import safetensors.torch
import torch
from safetensors.torch import save_file

from cnnviz.core.model import outputs
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.run import build, weights
from cnnviz.core.run.faults import EngineError


def small(bn=False):
    layers = [Layer("Conv2d", {"out_channels": 2, "kernel_size": 3}), Layer("ReLU")]
    if bn:
        layers.append(Layer("BatchNorm2d"))
    layers += [Layer("Flatten"), Layer("Linear", {"out_features": 3})]
    return Stack("small", InputSpec(1, 6, 6), tuple(layers))


@pytest.fixture
def net():
    s = small()
    return s, build.build_model(s, seed=0)


def state_of(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture
def umask(monkeypatch):
    """Set the process umask for one test (outputs caches it: forget the cached value), restored after."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(value):
        os.umask(value)
        monkeypatch.setattr(outputs, "_umask", None)

    yield set_to
    os.umask(saved)
    outputs._umask = None


# ------------------------------------------------------------------ 1. saving
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_follows_the_umask(tmp_path, net, umask, mask, mode):
    umask(mask)
    path = weights.save(net[1], net[0], tmp_path / "w.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]


def test_a_replaced_file_keeps_its_mode(tmp_path, net, umask):
    umask(0o022)
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old")
    path.chmod(0o640)
    weights.save(net[1], net[0], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert weights.header(path)[1]["format"] == "cnnviz.weights"


def test_a_folder_target_is_refused_with_a_sentence(tmp_path, net):
    folder = tmp_path / "w.safetensors"
    folder.mkdir()
    with pytest.raises(weights.WeightsError, match=r"it is a folder; name a file inside it"):
        weights.save(net[1], net[0], folder)
    assert folder.is_dir() and not os.listdir(folder)
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_a_fifo_target_is_refused_and_stays_a_fifo(tmp_path, net):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(weights.WeightsError, match=r"not a regular file"):
        weights.save(net[1], net[0], fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_a_read_only_folder_is_a_weights_error(tmp_path, net, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real(p, mode, **kw))
    with pytest.raises(weights.WeightsError, match=r"^cannot write .*: the folder .* is not writable$"):
        weights.save(net[1], net[0], tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


def _failing_save_file(error):
    """A save_file that writes the file (as a crash half-way would leave it), then fails with ``error``."""
    real = safetensors.torch.save_file

    def fake(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        raise error

    return fake


@pytest.mark.parametrize("error, reason", [
    (PermissionError(13, "Permission denied"), "Permission denied"),
    (safetensors.SafetensorError('Error while serializing: I/O error: Permission denied (os error 13) '
                                 'at path "/x/.tmpAbC"'), "Permission denied"),
    (safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
     "No space left on device"),
    (OSError(28, "No space left on device"), "No space left on device"),
])
def test_a_failed_write_is_a_weights_error_and_leaves_nothing_behind(tmp_path, net, monkeypatch, error, reason):
    old = tmp_path / "w.safetensors"
    old.write_bytes(b"the previous weights")
    monkeypatch.setattr(safetensors.torch, "save_file", _failing_save_file(error))
    with pytest.raises(weights.WeightsError, match=rf"^cannot write .*w\.safetensors: {reason}$"):
        weights.save(net[1], net[0], old)
    assert os.listdir(tmp_path) == ["w.safetensors"]
    assert old.read_bytes() == b"the previous weights"


def test_save_writes_through_outputs_atomic_write(tmp_path, net, monkeypatch):
    seen = []
    real = outputs.atomic_write

    def spy(path, data, **kw):
        seen.append((str(path), callable(data)))
        return real(path, data, **kw)

    monkeypatch.setattr(outputs, "atomic_write", spy)
    weights.save(net[1], net[0], tmp_path / "w.safetensors")
    assert seen == [(str(tmp_path / "w.safetensors"), True)]


def test_save_never_replaces_the_stack_it_was_given(tmp_path, net):
    stack_file = tmp_path / "net.cnnviz"
    stack_file.write_text("{}")
    with pytest.raises(weights.WeightsError, match="is the file being read"):
        weights.save(net[1], net[0], stack_file, stack_path=stack_file)
    assert stack_file.read_text() == "{}"


def test_check_destination_before_training(tmp_path):
    stack_file = tmp_path / "net.cnnviz"
    stack_file.write_text('{"format": "cnnviz.stack"}')
    assert weights.check_destination(tmp_path / "w.safetensors", stack_file) == tmp_path / "w.safetensors"
    with pytest.raises(weights.WeightsError, match="is the file being read; the weights would destroy it"):
        weights.check_destination(stack_file, stack_file, force=True)
    other = tmp_path / "other.cnnviz"
    other.write_text("{}")
    with pytest.raises(weights.WeightsError, match="holds a cnnviz stack, which the weights would replace.*--force"):
        weights.check_destination(other, stack_file)
    assert weights.check_destination(other, stack_file, force=True) == other
    assert weights.check_destination(tmp_path / "w.safetensors") == tmp_path / "w.safetensors"  # no stack
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(weights.WeightsError, match="not a regular file"):
        weights.check_destination(tmp_path / "fifo", stack_file)
    with pytest.raises(weights.WeightsError, match="is a folder"):
        weights.check_destination(tmp_path, stack_file)
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.check_destination(tmp_path / "nope" / "w.safetensors", stack_file)
    err = pytest.raises(weights.WeightsError, weights.check_destination, stack_file, stack_file).value
    assert isinstance(err, EngineError) and err.kind == "weights"


# ------------------------------------------------------------------ 2. the header first
def _raw_file(path, header: bytes, data: bytes = b"", length: int | None = None):
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header) if length is None else length))
        fh.write(header)
        fh.write(data)
    return path


@pytest.fixture
def no_tensor_read(monkeypatch):
    """Wrap safe_open so that any tensor read is recorded (and fails): the checks must come from the header."""
    reads, opened = [], []
    real = safetensors.safe_open

    class Spy:
        def __init__(self, *a, **kw):
            opened.append(a[0] if a else kw.get("filename"))
            self._fh = real(*a, **kw)

        def get_tensor(self, key):
            reads.append(key)
            raise AssertionError(f"tensor {key} read")

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._fh.__exit__(*exc)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    return reads, opened


def test_a_huge_header_is_refused_fast_and_unread(tmp_path, net, no_tensor_read):
    header = ("{" + ",".join(f'"{i}.weight":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}'
                             for i in range(300_000)) + "}").encode()  # 20 MiB of bogus entries
    header += b" " * (-len(header) % 8)
    assert len(header) > weights.MAX_HEADER_BYTES
    path = _raw_file(tmp_path / "huge.safetensors", header, b"\0" * 4 * 300_000)
    before = state_of(net[1])
    start = time.perf_counter()
    with pytest.raises(weights.WeightsError, match=r"its header is [\d,]+ bytes, more than the 16,777,216 "
                                                   r"\(16 MiB\) a weights file can need; it was not read"):
        weights.load_into(net[1], net[0], path)
    took = time.perf_counter() - start
    assert took < 1.0, took  # measured: about 0.1 ms (the header is never parsed); this was 22 s for 99 MB
    assert no_tensor_read == ([], [])  # safetensors never even opened it
    assert unchanged(net[1], before)


def test_a_length_claiming_more_than_the_file_is_refused(tmp_path, net, no_tensor_read):
    path = _raw_file(tmp_path / "claims.safetensors", b'{"a":{}}', length=2 ** 40)
    with pytest.raises(weights.WeightsError, match=r"not a safetensors file, or a truncated one: its header length "
                                                   r"says 1,099,511,627,776 bytes, and only 8 follow"):
        weights.load_into(net[1], net[0], path)
    path = _raw_file(tmp_path / "short.safetensors", b"{}")
    path.write_bytes(path.read_bytes()[:5])
    with pytest.raises(weights.WeightsError, match=r"not a safetensors file \(it has only 5 bytes\)"):
        weights.load_into(net[1], net[0], path)
    assert no_tensor_read == ([], [])


def test_names_shapes_and_dtypes_are_checked_before_any_tensor_is_read(tmp_path, net, no_tensor_read):
    s, model = net
    many = {k: v.clone() for k, v in model.state_dict().items()}
    many.update({f"9.bogus{i}": torch.zeros(1) for i in range(5_000)})  # a big (under the limit) header
    save_file(many, str(tmp_path / "extra.safetensors"))
    start = time.perf_counter()
    with pytest.raises(weights.WeightsError, match=r"^the file has 9.bogus0, which the stack does not have"):
        weights.load_into(model, s, tmp_path / "extra.safetensors")
    assert time.perf_counter() - start < 1.0
    bad_shape = {k: v.clone() for k, v in model.state_dict().items()}
    bad_shape["0.weight"] = torch.zeros(2, 1, 5, 5)
    save_file(bad_shape, str(tmp_path / "shape.safetensors"))
    with pytest.raises(weights.WeightsError, match=r"^layer 0 \(Conv2d\) weight: the file has 2×1×5×5"):
        weights.load_into(model, s, tmp_path / "shape.safetensors")
    bad_dtype = {k: v.clone() for k, v in model.state_dict().items()}
    bad_dtype["3.bias"] = torch.zeros(3, dtype=torch.int32)
    save_file(bad_dtype, str(tmp_path / "dtype.safetensors"))
    with pytest.raises(weights.WeightsError, match=r"^layer 3 \(Linear\) bias: the file has int32 values"):
        weights.load_into(model, s, tmp_path / "dtype.safetensors")
    reads, opened = no_tensor_read
    assert reads == [] and len(opened) == 3
    infos, meta = weights.header(tmp_path / "dtype.safetensors")
    assert infos["3.bias"] == weights.TensorInfo("I32", (3,)) and meta == {}


def test_a_file_that_fits_is_read_after_its_header(tmp_path, net):
    s, model = net
    path = weights.save(model, s, tmp_path / "w.safetensors")
    other = build.build_model(s, seed=5)
    assert weights.load_into(other, s, path) == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


# ------------------------------------------------------------------ 3. values torch (or the model) cannot hold
def _with(model, key, value):
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors[key] = value
    return tensors


def test_float64_beyond_float32_is_refused_naming_the_largest(tmp_path, net):
    s, model = net
    big = model.state_dict()["0.weight"].to(torch.float64)
    big[0, 0, 0, 0] = 1e300
    big[1, 0, 0, 0] = -1e200
    save_file(_with(model, "0.weight", big), str(tmp_path / "big.safetensors"))
    before = state_of(model)
    with pytest.raises(weights.WeightsError,
                       match=r"^layer 0 \(Conv2d\) weight holds values outside float32 \(largest 1e\+300\)$"):
        weights.load_into(model, s, tmp_path / "big.safetensors")
    assert unchanged(model, before)
    neg = model.state_dict()["3.bias"].to(torch.float64)
    neg[1] = -4e38
    save_file(_with(model, "3.bias", neg), str(tmp_path / "neg.safetensors"))
    with pytest.raises(weights.WeightsError, match=r"layer 3 \(Linear\) bias holds values outside float32 "
                                                   r"\(largest -4e\+38\)"):
        weights.load_into(model, s, tmp_path / "neg.safetensors")


def test_infinities_in_float64_are_loaded_with_the_usual_warning(tmp_path, net):
    s, model = net
    value = model.state_dict()["3.bias"].to(torch.float64)
    value[0] = float("inf")
    save_file(_with(model, "3.bias", value), str(tmp_path / "inf.safetensors"))
    warnings = weights.load_into(model, s, tmp_path / "inf.safetensors")
    assert warnings == ["layer 3 (Linear) bias holds NaN or Inf values"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_wider_and_narrower_floats_convert(tmp_path, net, dtype):
    s, model = net
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    target = build.build_model(s, seed=9)
    assert weights.load_into(target, s, tmp_path / "w.safetensors") == []
    for key, value in target.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, tensors[key].to(torch.float32))


@pytest.mark.parametrize("dtype, name", [
    (torch.float8_e4m3fn, "float8_e4m3fn"), (torch.float8_e5m2, "float8_e5m2"), (torch.int32, "int32"),
    (torch.int64, "int64"), (torch.bool, "bool"), (torch.complex64, "complex64"), (torch.uint8, "uint8"),
])
def test_other_dtypes_are_refused_naming_the_dtype_and_what_is_accepted(tmp_path, net, dtype, name):
    s, model = net
    value = model.state_dict()["0.weight"].to(dtype)
    save_file(_with(model, "0.weight", value), str(tmp_path / "w.safetensors"))
    before = state_of(model)
    with pytest.raises(weights.WeightsError) as info:
        weights.load_into(model, s, tmp_path / "w.safetensors")
    assert str(info.value).startswith(f"layer 0 (Conv2d) weight: the file has {name} values; the stack needs "
                                      f"float32 and accepts float16, bfloat16, float32 or float64")
    assert ("quantised" in str(info.value)) == name.startswith("float8")
    assert unchanged(model, before)


def test_an_integer_buffer_accepts_narrower_integers(tmp_path):
    s = small(bn=True)
    model = build.build_model(s, seed=0)
    tensors = _with(model, "2.num_batches_tracked", torch.tensor(7, dtype=torch.int32))
    save_file(tensors, str(tmp_path / "w.safetensors"))
    assert weights.load_into(model, s, tmp_path / "w.safetensors") == []
    assert model[2].num_batches_tracked.dtype == torch.int64 and int(model[2].num_batches_tracked) == 7
    save_file(_with(model, "2.num_batches_tracked", torch.tensor(1.0)), str(tmp_path / "f.safetensors"))
    with pytest.raises(weights.WeightsError, match=r"layer 2 \(BatchNorm2d\) num_batches_tracked: the file has "
                                                   r"float32 values; the stack needs int64 and accepts int8"):
        weights.load_into(model, s, tmp_path / "f.safetensors")


# ------------------------------------------------------------------ 4. odd paths to load
@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_blocking(tmp_path, net):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(weights.WeightsError, match=r"w\.safetensors is not a regular file"):
        weights.load_into(net[1], net[0], fifo)
    with pytest.raises(weights.WeightsError, match=r"is not a regular file"):
        weights.header(fifo)


def test_a_folder_missing_file_and_unreadable_file_say_so(tmp_path, net, monkeypatch):
    folder = tmp_path / "w.safetensors"
    folder.mkdir()
    with pytest.raises(weights.WeightsError, match=r"w\.safetensors is a folder, not a weights file$"):
        weights.load_into(net[1], net[0], folder)
    with pytest.raises(weights.WeightsError, match=r"no such file$"):
        weights.load_into(net[1], net[0], tmp_path / "absent.safetensors")
    path = weights.save(net[1], net[0], tmp_path / "ok.safetensors")
    with pytest.raises(weights.WeightsError, match=r"ok\.safetensors/x: Not a directory$"):
        weights.load_into(net[1], net[0], path / "x")
    real = os.open

    def denied(p, flags, *a, **kw):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real(p, flags, *a, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(weights.WeightsError, match=r"^cannot read weights from .*ok\.safetensors: Permission denied$"):
        weights.load_into(net[1], net[0], path)


# ------------------------------------------------------------------ 5. stale temporaries
def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    try:
        os.kill(child.pid, 0)
    except ProcessLookupError:
        return child.pid
    pytest.skip("the child's process id was reused at once")


def test_a_stale_temporary_is_removed_and_a_live_one_kept(tmp_path, net):
    target = tmp_path / "w.safetensors"
    prefix = outputs._temp_prefix(target)  # ".w.safetensors.cnnviz-<pid>-"
    live = tmp_path / f"{prefix}live01.tmp"
    dead = tmp_path / (prefix.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-") + "dead01.tmp")
    other = tmp_path / (prefix.replace("w.safetensors", "other.safetensors").replace(f"-{os.getpid()}-", "-1-")
                        + "x.tmp")
    # a killed save's scratch folder, holding safetensors' own temporary (".tmpXXXXXX", named by its writer)
    dead_dir = tmp_path / (prefix.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-") + "scratch.tmp")
    dead_dir.mkdir()
    (dead_dir / ".tmpAb12Cd").write_bytes(b"half written")
    for p in (live, dead, other, dead_dir):
        if not p.is_dir():
            p.write_bytes(b"half written")
        assert outputs._TMP_RE.match(p.name)
    weights.save(net[1], net[0], target)
    assert not dead.exists() and not dead_dir.exists()
    assert live.exists() and other.exists()  # this process's own (fresh), and another target's
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "w.safetensors"])


def test_safetensors_own_temporary_lives_in_a_scratch_folder_named_for_cleaning(tmp_path, net, monkeypatch):
    seen = []
    real = safetensors.torch.save_file

    def spy(tensors, filename, metadata=None):
        seen.append(filename)
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", spy)
    weights.save(net[1], net[0], tmp_path / "w.safetensors")
    folder = os.path.basename(os.path.dirname(seen[0]))
    match = outputs._TMP_RE.match(folder)
    assert match and match.group("name") == "w.safetensors" and match.group("pid") == str(os.getpid())
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_a_symbolic_link_target_replaces_the_file_it_names(tmp_path, net, umask):
    umask(0o022)
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"old")
    real.chmod(0o600)
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    weights.save(net[1], net[0], link)
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert weights.load_into(net[1], net[0], link) == []
    assert sorted(os.listdir(tmp_path)) == ["link.safetensors", "real.safetensors"]
