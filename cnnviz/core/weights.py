"""Trained weights beside a stack, in safetensors (never pickle), checked against the stack's shapes.

Tensor names are the ``nn.Sequential``'s state-dict keys, so ``"3.weight"`` is
layer 3's weight, as in the sidebar and in exported code. The metadata holds
``format`` (``cnnviz.weights``), ``version``, the stack's name and
``architecture``, a hash of everything that decides the tensors (input size,
layer types and keywords): a file saved for another stack whose tensors still
fit is loaded with a warning; one whose names or shapes do not fit is refused
with a :class:`WeightsError` naming the first mismatch. No Qt.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .faults import EngineError
from .stack import Stack

FORMAT = "cnnviz.weights"
VERSION = "1"
SUFFIX = ".safetensors"


class WeightsError(EngineError):
    """A weights file that cannot be read or does not fit the stack; the message names the first mismatch."""

    kind = "weights"


def architecture_key(stack: Stack) -> str:
    """A short hash of what decides the tensors' names and shapes (not the name, labels or training block)."""
    arch = {
        "input": list(stack.input.shape),
        "layers": [{"type": layer.type, "params": dict(layer.params)} for layer in stack.layers],
    }
    text = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def beside(stack_path: str | os.PathLike) -> Path:
    """``lenet5.cnnviz`` → ``lenet5.safetensors``: where the window saves and looks for weights."""
    return Path(stack_path).with_suffix(SUFFIX)


def _dims(shape) -> str:
    return "×".join(str(int(d)) for d in shape) if len(shape) else "a scalar"


def _where(stack: Stack, key: str) -> str:
    head, _, rest = key.partition(".")
    if head.isdigit() and int(head) < len(stack.layers):
        layer = stack.layers[int(head)]
        return f"layer {head} ({layer.label}) {rest}"
    return key


def _layer_order(key: str) -> tuple[int, str]:
    head, _, rest = key.partition(".")
    return (int(head), rest) if head.isdigit() else (1 << 30, key)


def save(model: nn.Module, stack: Stack, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict to ``path`` (atomically), with the stack's name and architecture key."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "version": VERSION, "stack_name": stack.name,
                "architecture": architecture_key(stack), "layers": json.dumps([l.type for l in stack.layers])}
    if not path.parent.is_dir():
        raise WeightsError(f"cannot write {path}: the folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except OSError as exc:
        raise WeightsError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on the CPU) and metadata of a safetensors file; WeightsError if it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"cannot read weights from {path}: no such file")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types for a bad header)
        raise WeightsError(f"cannot read weights from {path}: not a safetensors file ({exc})") from None
    return tensors, metadata


def check(model: nn.Module, stack: Stack, tensors: dict[str, torch.Tensor]) -> None:
    """WeightsError naming the first tensor, in layer order, whose name or shape does not fit the model."""
    expected = model.state_dict()
    for key, want in expected.items():
        if key not in tensors:
            raise WeightsError(f"{_where(stack, key)}: the file has none, the stack needs {_dims(want.shape)}")
        have = tensors[key]
        if tuple(have.shape) != tuple(want.shape):
            raise WeightsError(f"{_where(stack, key)}: the file has {_dims(have.shape)}, "
                               f"the stack needs {_dims(want.shape)}")
        if want.is_floating_point() != have.is_floating_point():
            raise WeightsError(f"{_where(stack, key)}: the file has {have.dtype}, the stack needs {want.dtype}")
    extra = sorted((k for k in tensors if k not in expected), key=_layer_order)
    if extra:
        raise WeightsError(f"the file has {extra[0]}, which the stack does not have "
                           f"({_where(stack, extra[0])}): it was saved for another stack")


def load_into(model: nn.Module, stack: Stack, path: str | os.PathLike) -> list[str]:
    """Load ``path`` into ``model`` (built from ``stack``); returns warnings (another stack, non-finite values)."""
    tensors, metadata = read(path)
    if metadata.get("format") not in (None, FORMAT):
        raise WeightsError(f"cannot read weights from {path}: its format is {metadata.get('format')!r}, "
                           f"not {FORMAT!r}")
    check(model, stack, tensors)
    warnings = []
    saved_for = metadata.get("architecture")
    if saved_for is not None and saved_for != architecture_key(stack):
        name = metadata.get("stack_name", "another stack")
        warnings.append(f"{Path(path).name} was saved for {name!r}, a different stack; its tensors fit "
                        f"{stack.name!r}, so they were loaded")
    state = model.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            target = state[key]
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                warnings.append(f"{_where(stack, key)} holds NaN or Inf values")
            target.copy_(value.to(target.dtype))
    return warnings
