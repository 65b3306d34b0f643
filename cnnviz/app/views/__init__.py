"""pyqtgraph views fed numpy arrays and plain Python values.

Each view is a standalone ``QWidget`` with a small data-setting API, a one-line
hint while it has nothing to show, and throttled repaints (about 30 per second;
``flush()`` draws a pending update at once). None imports torch or the engine,
so they can be tested alone and fed from a worker's results, on the GUI thread.

- :class:`FeatureMapView`: a layer's activation maps as one mosaic, the input beside them.
- :class:`FilterView`: a Conv2d's kernels, a row per output channel.
- :class:`OverviewView`: every layer's output for one sample, input to softmax, in one flow.
- :class:`SoftmaxView`: class probabilities, the true class marked, log switch.
- :class:`CurvesView`: loss and accuracy while training.
- :class:`GradientView`: dL/dz against softmax(z) − onehot(y), the cross-entropy check, norms.
- :class:`SummaryTableView`: the shape engine's report as a table with totals.
- :class:`ConfusionView`: the held-out confusion matrix, counts or row-normalised, per-class accuracy.
- :class:`MistakesView`: a gallery of held-out examples, most confident first.
- :class:`AttributionView`: saliency and Grad-CAM over the input image.

What they compute is pure numpy and imports without Qt: :mod:`.mosaic` (the
layout of a layer's maps), :mod:`.levels` (shared colour levels, readings) and
:mod:`.overview_layout` (the overview's columns, their geometry and pixels).
This package imports Qt only when a view is first asked for.
"""
from __future__ import annotations

import importlib

_VIEWS = {"AttributionView": "attribution_view", "ConfusionView": "confusion", "ConvLabView": "conv_lab",
          "CurvesView": "curves", "DenseLabView": "dense_lab",
          "FeatureMapView": "feature_maps", "FilterView": "filters", "GradientView": "gradients",
          "MistakesView": "mistakes", "OverviewView": "overview", "SoftmaxView": "softmax",
          "SummaryTableView": "summary_table"}
__all__ = sorted(_VIEWS)


def __getattr__(name: str):
    module = _VIEWS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
