"""One output element of one layer, on a real sample, next to what torch computed (SPEC §3.3).

:func:`explain` builds the stack as the app does (``build.build_model`` with the
stack's seed, or ``--weights`` loaded into it), takes sample ``N`` of the data
set's held-out split normalised like the training data, runs it forward in eval
mode with a forward hook on the chosen layer, computes that layer's taps for the
element from the captured input (:mod:`.taps`, numpy) and reads ``torch_value``
from torch's own output. Runs on the CPU: one sample is no work. No Qt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz.core.lab.taps import Arithmetic, LabError, Target, json_number, locate, taps_of
from cnnviz.core.model.stack import Stack, TrainingConfig
from cnnviz.core.run import build, memory
from cnnviz.core.run.device_data import load_data
from cnnviz.core.run.faults import EngineError, StackRefused
from cnnviz.core.shapes import StackReport, infer

FORMAT = "cnnviz.explain"
VERSION = 1


class ExplainRefused(EngineError):
    """The layer, coordinate or sample asked for cannot be explained (the command line's mistake)."""

    kind = "config"


@dataclass(frozen=True)
class Explanation:
    """The arithmetic of one element (:class:`~.taps.Arithmetic`) and what torch's forward pass gave for it."""

    target: Target
    arithmetic: Arithmetic
    torch_value: float
    data: str
    sample: int
    label: str
    """The sample's class name."""
    weights: str | None = None
    notes: tuple[str, ...] = ()
    """Sentences for the user (a weights file saved for another stack, ...)."""
    torch_return_index: int | None = None
    """MaxPool2d: the index ``F.max_pool2d(..., return_indices=True)`` gave for the element."""

    @property
    def difference(self) -> float:
        return float(self.torch_value) - float(self.arithmetic.value)

    def to_json(self) -> dict[str, Any]:
        """SPEC §3.3's object: format, version, layer, type, at, taps, bias, value, torch_value (and argmax,
        return_index for MaxPool2d, divisor for AvgPool2d), then the sample it was computed on."""
        a = self.arithmetic.to_json()
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "layer": str(self.target.path),
                               "type": a.pop("type"), "at": a.pop("at"), "taps": a.pop("taps")}
        if "bias" in a:
            out["bias"] = a.pop("bias")
        out["value"] = a.pop("value")
        out["torch_value"] = json_number(self.torch_value)
        out.update(a)
        if self.torch_return_index is not None:
            out["torch_return_index"] = self.torch_return_index
        out["name"] = self.target.label
        out["input_shape"] = list(self.target.input_shape)
        out["output_shape"] = list(self.target.output_shape)
        out["sample"] = {"data": self.data, "split": "test", "index": self.sample, "label": self.label}
        out["weights"] = self.weights
        return out


def check(stack: Stack, path: str, at: str | tuple[int, ...]) -> tuple[StackReport, Target]:
    """Shape inference and the checked target, before anything is built: :class:`StackRefused` for an
    invalid stack, :class:`ExplainRefused` for a path or coordinate that cannot be explained."""
    report = infer(stack)
    if not report.ok:
        raise StackRefused(report.problem or "the stack cannot work")
    try:
        return report, locate(stack, report, path, at)
    except LabError as exc:
        raise ExplainRefused(str(exc)) from None


def explain(stack: Stack, path: str, at: str | tuple[int, ...], *, data: str | None = None, sample: int = 0,
            weights: str | None = None) -> Explanation:
    """The arithmetic of element ``at`` of layer ``path`` for sample ``sample`` of the held-out split of
    ``data`` (default: the file's training data, else fashion-mnist). Raises an :class:`EngineError`
    (``kind`` says which: ``stack``, ``config``, ``data``, ``weights``, ``oom``)."""
    report, target = check(stack, path, at)
    config = stack.training or TrainingConfig()
    name = data or config.data
    memory.check_model_fits(report)
    split = load_data(name, stack.input.shape, config.seed)
    test = split.test
    if not 0 <= sample < len(test):
        raise ExplainRefused(f"--sample {sample} is outside 0..{len(test) - 1}: the held-out split of "
                             f"{split.name} has {len(test):,} images")
    model = build.build_model(stack, seed=config.seed)
    notes: list[str] = list(getattr(split, "notes", ()))
    if weights:
        from cnnviz.core.run import weights as weight_files

        notes += weight_files.load_into(model, stack, weights)
    from cnnviz.core.data import normalize

    image = normalize(test.images[sample], split.mean, split.std)
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output) -> None:
        captured["input"] = inputs[0].detach().clone()
        captured["output"] = output.detach().clone()

    module = model[target.index]
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.from_numpy(np.ascontiguousarray(image))[None])
    finally:
        handle.remove()
    x = captured["input"][0].numpy()
    y = captured["output"][0]
    weight = bias = None
    if target.type in ("Conv2d", "Linear"):
        weight = module.weight.detach().numpy()
        bias = module.bias.detach().numpy() if module.bias is not None else None
    arithmetic = taps_of(target.type, target.resolved, x, target.at, weight=weight, bias=bias, origin=target.origin)
    torch_index = None
    if target.type == "MaxPool2d":
        _, indices = torch.nn.functional.max_pool2d(
            captured["input"], module.kernel_size, module.stride, module.padding, module.dilation,
            ceil_mode=module.ceil_mode, return_indices=True)
        torch_index = int(indices[(0, *target.at)])
    label_index = int(test.labels[sample])
    classes = tuple(test.classes)
    label = classes[label_index] if 0 <= label_index < len(classes) else str(label_index)
    return Explanation(target, arithmetic, float(y[target.at]), split.name, int(sample), label, weights,
                       tuple(notes), torch_index)


__all__ = ["FORMAT", "VERSION", "ExplainRefused", "Explanation", "LabError", "check", "explain"]
