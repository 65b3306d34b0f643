"""Trained weights beside a stack, in safetensors (never pickle), checked against the stack's shapes.

Tensor names are the ``nn.Sequential``'s state-dict keys, so ``"3.weight"`` is
layer 3's weight, as in the sidebar and in exported code. The metadata holds
``format`` (``cnnviz.weights``), ``version``, the stack's name and
``architecture``, a hash of everything that decides the tensors (input size,
layer types and keywords): a file saved for another stack whose tensors still
fit is loaded with a warning; one whose names or shapes do not fit is refused
with a :class:`WeightsError` naming the first mismatch. No Qt.

Everything a person can cause is a :class:`WeightsError` (kind ``"weights"``,
so ``cnnviz train`` exits 2), never another exception.

**Writing** goes through :mod:`.outputs`: atomically, through a temporary file
named with the writer's process id (stale ones of killed writers are removed on
the next save, as are those of safetensors' own writer, which runs in a scratch
folder so named), nothing left behind on failure, a new file with the user's
umask (0644 under 022), a replaced file keeping its mode, and only regular
files replaced (never a folder, FIFO or device). :func:`check_destination` is
the check a command runs *before* training, so a bad ``--save-weights`` is
refused before any time is spent.

**Reading** looks at the header first and reads no tensor until the file is
known to fit the model:

1. the path must be a regular file (a folder or FIFO is refused without being
   opened, so nothing blocks);
2. the 8-byte little-endian header length must fit in the file and be at most
   :data:`MAX_HEADER_BYTES`;
3. names, shapes and dtypes are checked against the model from the header;
4. only then are the tensors read, and their values checked: a value that
   the model's dtype cannot hold (a float64 ``1e300`` for a float32 weight)
   is refused, never loaded as an infinity.

**Dtypes.** A floating-point tensor of the model accepts float16, bfloat16,
float32 or float64 from the file, converted to the model's dtype (values out
of its range are refused, see above). Float8 (``float8_e4m3fn``,
``float8_e5m2`` and the others), float4/float6, complex, bool and integer
tensors are refused for floating-point weights, with a sentence naming the
dtype: float8 and smaller formats come from quantised checkpoints whose values
are meaningless without the scales stored beside them, so they are refused
rather than converted. An integer buffer (BatchNorm's ``num_batches_tracked``)
accepts any integer dtype that fits int64 (int8 to int64, uint8 to uint32).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnviz.core.model import outputs
from cnnviz.core.model.stack import Stack
from cnnviz.core.run.faults import EngineError

FORMAT = "cnnviz.weights"
VERSION = "1"
SUFFIX = ".safetensors"

MAX_HEADER_BYTES = 16 << 20
"""The largest safetensors header (the JSON after the 8-byte length) this loader parses: 16 MiB.

A stack has at most :data:`~.layers.MAX_LAYERS` (512) layers of at most five
tensors each (BatchNorm's weight, bias, running mean and variance, batch
count), about 100 bytes of header apiece, plus metadata (the name, at most
10,000 characters, and the list of layer types): a quarter of a mebibyte at
most (a 512-layer stack with a 10,000-character name: 156 KB). 16 MiB is some
sixty times that, room for a foreign file's metadata; a bogus header just under
it (220,000 entries) is parsed and refused by name in about a second, with no
tensor read. Anything larger is refused without being parsed (the length is
the file's first 8 bytes)."""

# safetensors' dtype codes, by what a model's tensor accepts.
FLOAT_CODES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
INT_CODES = {"I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
             "U8": torch.uint8, "U16": torch.uint16, "U32": torch.uint32}
_NAMES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16",
          "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "F64": "float64",
          "I64": "int64", "U64": "uint64", "C64": "complex64", "C128": "complex128",
          "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
          "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz", "F4": "float4",
          "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2"}


class WeightsError(EngineError):
    """A weights file that cannot be read or does not fit the stack; the message names the first mismatch."""

    kind = "weights"


@dataclass(frozen=True)
class TensorInfo:
    """What a safetensors header says of one tensor: its dtype code (``"F32"``) and shape."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def dtype_name(self) -> str:
        return _NAMES.get(self.dtype, self.dtype.lower())

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorInfo":
        for code, dtype in (*FLOAT_CODES.items(), *INT_CODES.items()):
            if tensor.dtype == dtype:
                return cls(code, tuple(tensor.shape))
        name = str(tensor.dtype).removeprefix("torch.")
        code = next((c for c, n in _NAMES.items() if n == name), name)
        return cls(code, tuple(tensor.shape))


def architecture_key(stack: Stack) -> str:
    """A short hash of what decides the tensors' names and shapes (not the name, labels or training block)."""
    arch = {"input": list(stack.input.shape), "layers": [_architecture(layer) for layer in stack.layers]}
    text = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _architecture(layer) -> dict:
    out = {"type": layer.type, "params": dict(layer.params)}  # as before blocks: old files keep their key
    if layer.type == "Residual":
        out["body"] = [_architecture(x) for x in layer.body]
        out["shortcut"] = [_architecture(x) for x in layer.shortcut]
    elif layer.type == "Concat":
        out["branches"] = [[_architecture(x) for x in branch] for branch in layer.branches]
    return out


def beside(stack_path: str | os.PathLike) -> Path:
    """``lenet5.cnnviz`` → ``lenet5.safetensors``: where the window saves and looks for weights."""
    return Path(stack_path).with_suffix(SUFFIX)


def _dims(shape) -> str:
    return "×".join(str(int(d)) for d in shape) if len(shape) else "a scalar"


def _where(stack: Stack, key: str) -> str:
    """``3.body.0.weight`` → ``layer 3 → body → 0 (Conv2d) weight``: the deepest layer the name reaches."""
    from cnnviz.core.model.paths import LayerPath

    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        try:
            path = LayerPath.of(".".join(parts[:n]))
            layer = stack.layer_at(path)
        except (ValueError, TypeError, IndexError):
            continue
        return f"{path.words()} ({layer.label}) {'.'.join(parts[n:])}"
    return key


def _layer_order(key: str) -> tuple[int, str]:
    head, _, rest = key.partition(".")
    return (int(head), rest) if head.isdigit() else (1 << 30, key)


def _torch_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


_OS_ERROR = re.compile(r"(?:I/O error: )?(?P<reason>[^:()]+?) \(os error \d+\)")


def _reason(exc: BaseException) -> str:
    """The readable part of an OSError, or of safetensors' own error (``… I/O error: … (os error 28)``)."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    match = _OS_ERROR.search(text)
    return match.group("reason") if match else (text or type(exc).__name__)


# ------------------------------------------------------------------ writing
def check_destination(path: str | os.PathLike, stack_path: str | os.PathLike | None = None,
                      force: bool = False) -> Path:
    """The path ``--save-weights`` will write, checked before training starts; WeightsError if refused.

    Refused: the stack file being trained (``stack_path``), an existing stack
    file unless ``force``, a folder, FIFO or device, a folder that does not
    exist or cannot be written. A symbolic link is resolved to the file it names.
    """
    try:
        return outputs.check_target(path, inputs=(stack_path,) if stack_path is not None else (), force=force,
                                    what="the weights")
    except outputs.OutputRefused as exc:
        raise WeightsError(str(exc)) from None
    except ValueError as exc:  # a name the system cannot take (a NUL byte)
        raise WeightsError(f"cannot write {path}: {exc}") from None


def save(model: nn.Module, stack: Stack, path: str | os.PathLike, *,
         stack_path: str | os.PathLike | None = None) -> Path:
    """Write ``model``'s state dict to ``path`` (atomically), with the stack's name and architecture key.

    Only a regular file is replaced, never ``stack_path`` (the stack being
    read); whether an existing *stack file* may be replaced is decided before,
    by :func:`check_destination` (``cnnviz train --force``) or a save dialog.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    check_destination(path, stack_path, force=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "version": VERSION, "stack_name": stack.name,
                "architecture": architecture_key(stack), "layers": json.dumps([l.type for l in stack.layers])}

    def write(tmp: str) -> None:
        # safetensors (0.8) writes through a temporary of its own (".tmpXXXXXX") beside the name it is given,
        # which a killed process leaves behind under a name nothing recognises: give it a name inside a
        # scratch folder that carries this process's id, so a killed save's leftovers are cleaned next time.
        with outputs.scratch_folder(Path(os.path.realpath(path)) if path.is_symlink() else path) as scratch:
            written = scratch / path.name
            save_file(tensors, str(written), metadata=metadata)
            os.replace(written, tmp)

    try:
        outputs.atomic_write(path, write)
    except outputs.OutputRefused as exc:
        raise WeightsError(str(exc)) from None
    except (OSError, SafetensorError) as exc:
        raise WeightsError(f"cannot write {path}: {_reason(exc)}") from None
    return path


# ------------------------------------------------------------------ reading
def _check_source(path: Path) -> None:
    """WeightsError unless ``path`` is a regular file whose header length is sane; reads only 8 bytes."""
    cannot = f"cannot read weights from {path}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise WeightsError(f"{cannot}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a name the system cannot take (a NUL byte)
        raise WeightsError(f"{cannot}: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise WeightsError(f"{cannot}: {path} is a folder, not a weights file")
    if not stat.S_ISREG(info.st_mode):
        raise WeightsError(f"{cannot}: {path} is not a regular file (a device, FIFO or socket); "
                           f"weights are read only from regular files")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise WeightsError(f"{cannot}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WeightsError(f"{cannot}: {path} is not a regular file (a device, FIFO or socket); "
                               f"weights are read only from regular files")
        prefix = os.read(fd, 8)
    except OSError as exc:
        raise WeightsError(f"{cannot}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    size = info.st_size
    if len(prefix) < 8:
        raise WeightsError(f"{cannot}: not a safetensors file (it has only {size} bytes)")
    length = int.from_bytes(prefix, "little")
    if length > size - 8:
        raise WeightsError(f"{cannot}: not a safetensors file, or a truncated one: its header length says "
                           f"{length:,} bytes, and only {size - 8:,} follow")
    if length > MAX_HEADER_BYTES:
        raise WeightsError(f"{cannot}: its header is {length:,} bytes, more than the {MAX_HEADER_BYTES:,} "
                           f"({MAX_HEADER_BYTES >> 20} MiB) a weights file can need; it was not read")


class _Header(Mapping):
    """Tensor name → :class:`TensorInfo`, from the header, each looked up when first asked for: a file of
    many bogus names is refused by name without a look at each."""

    def __init__(self, fh, keys: Iterable[str], path: Path) -> None:
        self._fh, self._keys, self._infos, self._path = fh, list(keys), {}, path
        self._known = set(self._keys)

    def __getitem__(self, key: str) -> TensorInfo:
        if key not in self._known:
            raise KeyError(key)
        if key not in self._infos:
            try:
                piece = self._fh.get_slice(key)
                info = TensorInfo(str(piece.get_dtype()), tuple(int(d) for d in piece.get_shape()))
            except Exception as exc:  # noqa: BLE001  (safetensors' own error types)
                raise WeightsError(f"cannot read weights from {self._path}: {key}: {_reason(exc)}") from None
            self._infos[key] = info
        return self._infos[key]

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _Reader:
    """A checked safetensors file, opened: its header (names, dtypes, shapes, metadata) and, on demand, tensors."""

    def __init__(self, path: str | os.PathLike) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        _check_source(self.path)
        try:
            self._fh = safe_open(str(self.path), framework="pt", device="cpu")
        except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for a bad header)
            raise WeightsError(f"cannot read weights from {self.path}: not a safetensors file ({exc})") from None
        try:
            self.metadata = {str(k): str(v) for k, v in (self._fh.metadata() or {}).items()}
            self.infos = _Header(self._fh, self._fh.keys(), self.path)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise WeightsError(f"cannot read weights from {self.path}: not a safetensors file ({exc})") from None

    def tensor(self, key: str) -> torch.Tensor:
        try:
            return self._fh.get_tensor(key)
        except Exception as exc:  # noqa: BLE001  (an unreadable or vanished file, a dtype torch lacks)
            raise WeightsError(f"cannot read weights from {self.path}: {key}: {_reason(exc)}") from None

    def close(self) -> None:
        fh, self._fh = getattr(self, "_fh", None), None
        if fh is not None and hasattr(fh, "__exit__"):
            try:
                fh.__exit__(None, None, None)
            except Exception:  # noqa: BLE001  (closing a read-only mapping cannot lose anything)
                pass

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def header(path: str | os.PathLike) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors' dtypes and shapes, and the metadata, of a safetensors file, without reading any tensor."""
    with _Reader(path) as reader:
        return dict(reader.infos), dict(reader.metadata)


def read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on the CPU) and metadata of a safetensors file; WeightsError if it is not one.

    Reads every tensor: :func:`load_into` checks the header against the model first, and should be preferred.
    """
    with _Reader(path) as reader:
        return {key: reader.tensor(key) for key in reader.infos}, dict(reader.metadata)


def _accepted(want: torch.Tensor) -> Mapping[str, torch.dtype] | None:
    """The file dtypes a model tensor accepts (converted), or None for only its own."""
    if want.is_floating_point():
        return FLOAT_CODES
    if want.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        return INT_CODES
    return None


def check(model: nn.Module, stack: Stack, tensors: Mapping[str, TensorInfo | torch.Tensor]) -> None:
    """WeightsError naming the first tensor, in layer order, whose name, shape or dtype does not fit the model.

    ``tensors`` maps names to :class:`TensorInfo` (from :func:`header`) or to tensors.
    """
    expected = model.state_dict()
    for key, want in expected.items():
        if key not in tensors:
            raise WeightsError(f"{_where(stack, key)}: the file has none, the stack needs {_dims(want.shape)}")
        have = tensors[key]
        if not isinstance(have, TensorInfo):
            have = TensorInfo.of(have)
        if tuple(have.shape) != tuple(want.shape):
            raise WeightsError(f"{_where(stack, key)}: the file has {_dims(have.shape)}, "
                               f"the stack needs {_dims(want.shape)}")
        accepted = _accepted(want)
        needs = _torch_name(want.dtype)
        if accepted is None:
            if have.dtype_name != needs:
                raise WeightsError(f"{_where(stack, key)}: the file has {have.dtype_name} values, "
                                   f"the stack needs {needs}")
        elif have.dtype not in accepted:
            names = [_NAMES[c] for c in accepted]
            why = (" (float8 and smaller formats are quantised values, meaningless without their scales)"
                   if have.dtype.startswith(("F8", "F6", "F4")) else "")
            raise WeightsError(f"{_where(stack, key)}: the file has {have.dtype_name} values; the stack needs "
                               f"{needs} and accepts {', '.join(names[:-1])} or {names[-1]}{why}")
    extra = sorted((k for k in tensors if k not in expected), key=_layer_order)
    if extra:
        raise WeightsError(f"the file has {extra[0]}, which the stack does not have "
                           f"({_where(stack, extra[0])}): it was saved for another stack")


def _converted(stack: Stack, key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``value`` in ``target``'s dtype, or WeightsError if some value would not survive the conversion."""
    if value.dtype == target.dtype:
        return value
    if target.is_floating_point():
        out = value.to(target.dtype)
        lost = torch.isinf(out) & torch.isfinite(value)
        if bool(lost.any()):
            worst = value[lost].to(torch.float64)
            largest = float(worst[worst.abs().argmax()])
            raise WeightsError(f"{_where(stack, key)} holds values outside {_torch_name(target.dtype)} "
                               f"(largest {largest:g})")
        return out
    if value.numel():
        info = torch.iinfo(target.dtype)
        wide = value.to(torch.int64)
        low, high = int(wide.min()), int(wide.max())
        if low < info.min or high > info.max:
            worst = high if high > info.max else low
            raise WeightsError(f"{_where(stack, key)} holds values outside {_torch_name(target.dtype)} "
                               f"(largest {worst})")
    return value.to(target.dtype)


def load_into(model: nn.Module, stack: Stack, path: str | os.PathLike) -> list[str]:
    """Load ``path`` into ``model`` (built from ``stack``); returns warnings (another stack, non-finite values).

    The header is checked against the model before any tensor is read, and
    every value is checked before the model is touched: a refused file leaves
    the model as it was.
    """
    with _Reader(path) as reader:
        metadata = reader.metadata
        if metadata.get("format") not in (None, FORMAT):
            raise WeightsError(f"cannot read weights from {path}: its format is {metadata.get('format')!r}, "
                               f"not {FORMAT!r}")
        check(model, stack, reader.infos)
        state = model.state_dict()
        values = {key: _converted(stack, key, reader.tensor(key), state[key]) for key in state}
    warnings = []
    saved_for = metadata.get("architecture")
    if saved_for is not None and saved_for != architecture_key(stack):
        name = metadata.get("stack_name", "another stack")
        warnings.append(f"{Path(path).name} was saved for {name!r}, a different stack; its tensors fit "
                        f"{stack.name!r}, so they were loaded")
    with torch.no_grad():
        for key, value in values.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                warnings.append(f"{_where(stack, key)} holds NaN or Inf values")
            state[key].copy_(value)
    return warnings
