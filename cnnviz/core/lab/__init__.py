"""The convolution lab's arithmetic: one output element of a layer, tap by tap, checked against torch.

- :mod:`.taps`: numpy only, no torch (the window's GUI thread animates with it): the
  :class:`~.taps.Window` geometry of Conv2d, MaxPool2d and AvgPool2d, the :class:`~.taps.Tap`\\ s
  and :class:`~.taps.Arithmetic` of one element, :func:`~.taps.locate` for a path and coordinate.
- :mod:`.explain`: torch: builds the stack, runs a real sample, captures the layer's input and output
  with a forward hook and returns an :class:`~.explain.Explanation` (SPEC §3.3's ``cnnviz.explain`` object).

Importing this package imports neither torch nor numpy; the names below load their module on first use.
"""
from __future__ import annotations

import importlib

_API = {
    "Window": "taps", "Tap": "taps", "Arithmetic": "taps", "Target": "taps", "LabError": "taps",
    "EXPLAINABLE": "taps", "window_of": "taps", "taps_of": "taps", "locate": "taps", "resolve": "taps",
    "Explanation": "explain", "explain": "explain",
}
__all__ = ["EXPLAINABLE", "Arithmetic", "Explanation", "LabError", "Tap", "Target", "Window", "explain", "locate",
           "resolve", "taps_of", "window_of"]
assert sorted(__all__) == sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
