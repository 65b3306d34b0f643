"""PyTorch code with its trained weights: ``NAME.py`` and ``NAME.safetensors`` beside it (torch imported here).

The code comes from :func:`.python.to_python` (which needs no torch); the
weights are written by :func:`cnnviz.core.run.weights.save` (format
``cnnviz.weights``, atomically, never over a stack file unless ``force``),
first, so the ``.py`` never names a file that is not there.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cnnviz.core.export.python import ExportError, checked_report, to_python
from cnnviz.core.model import outputs
from cnnviz.core.model.stack import Stack

WEIGHTS_SUFFIX = ".safetensors"


class WrittenCode(NamedTuple):
    """Where the code and its weights went."""

    code: Path
    weights: Path


def weights_beside(target: str | os.PathLike) -> Path:
    """``net.py`` → ``net.safetensors``: where the weights of an exported file go."""
    return Path(target).with_suffix(WEIGHTS_SUFFIX)


def check_targets(target: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                  force: bool = False, protect: Iterable[str | os.PathLike | None] = ()) -> tuple[Path, Path]:
    """The code's and the weights' paths, checked before any work (:class:`.outputs.OutputRefused` if refused).

    ``force`` lets the code replace an existing stack file; the weights written
    beside it never replace one, nor a file of ``protect`` (the weights saved beside
    the open stack, which the window loads when it opens the stack).
    """
    given = Path(target)
    if given.suffix.lower() == WEIGHTS_SUFFIX:
        raise outputs.OutputRefused(f"{given} would be both the code and its weights: name the Python file "
                                    f"with .py")
    sources = tuple(p for p in inputs if p is not None)
    code = outputs.check_target(given, inputs=sources, force=force, what="the export")
    weights = outputs.check_target(weights_beside(given), inputs=sources, force=False, what="the export's weights")
    for kept in protect:
        if kept is not None and _same(weights, Path(kept)):
            raise outputs.OutputRefused(f"{weights.name}, where the exported weights would go, holds the weights "
                                        f"saved for the open stack: choose another name for the Python file")
    return code, weights


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_python_with_weights(stack: Stack, target: str | os.PathLike, model: Any, style: str = "module", *,
                              classes: Sequence[str] | None = None, mean: Sequence[float] | None = None,
                              std: Sequence[float] | None = None, inputs: Iterable[str | os.PathLike | None] = (),
                              force: bool = False, protect: Iterable[str | os.PathLike | None] = ()) -> WrittenCode:
    """Write ``target`` (the code) and ``NAME.safetensors`` beside it (``model``'s weights).

    ``model`` is the ``nn.Sequential`` built from ``stack`` (trained weights),
    or its state dict. ``inputs`` are files being read (never written over);
    ``force`` lets the code replace an existing stack file (the weights never
    do, nor a file of ``protect``: see :func:`check_targets`). ExportError when the
    stack cannot run or the weights do not fit; OutputRefused for a refused target.
    """
    import torch
    from torch import nn

    from cnnviz.core.run import build, weights

    checked_report(stack)
    code_path, weights_path = check_targets(target, inputs=inputs, force=force, protect=protect)
    code = to_python(stack, style, weights=weights_path.name, classes=classes, mean=mean, std=std)
    if isinstance(model, Mapping):
        state = model
        model = build.build_model(stack, seed=0)
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise ExportError(f"the weights do not fit the stack: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ExportError(f"cannot export the weights of a {type(model).__name__}")
    reference = build.build_model(stack, seed=0)
    try:
        weights.check(reference, stack, model.state_dict())
    except weights.WeightsError as exc:
        raise ExportError(str(exc)) from None
    with torch.no_grad():
        cpu = {key: value.detach().to("cpu") for key, value in model.state_dict().items()}
    reference.load_state_dict(cpu)
    try:
        weights.save(reference, stack, weights_path)
    except weights.WeightsError as exc:
        raise ExportError(str(exc)) from None
    outputs.atomic_write(code_path, code.encode("utf-8"))
    return WrittenCode(Path(target), weights_path)
