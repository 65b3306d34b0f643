"""Shapes by PyTorch's own rules, without tensors (standard library only).

- :mod:`.inference`: :func:`infer`, a :class:`StackReport` for a stack in microseconds a layer.
- :mod:`.rules`: one shape rule per layer type; :mod:`.formulas`: the size formulas and receptive fields.
- :mod:`.reports`: what inference reports; :mod:`.lints`: warnings that do not stop a stack.
- :mod:`.summary`: the torchinfo-like table and SPEC's ``summary --json`` object.
"""
from cnnviz.core.shapes.inference import STRICTER, infer
from cnnviz.core.shapes.reports import LayerReport, LossReport, ReceptiveField, StackReport, fmt_shape

__all__ = ["STRICTER", "LayerReport", "LossReport", "ReceptiveField", "StackReport", "fmt_shape", "infer"]
