"""pyqtgraph views fed numpy arrays and plain Python values.

Each view is a standalone ``QWidget`` with a small data-setting API, a one-line
hint while it has nothing to show, and throttled repaints. None imports torch
or the engine, so they can be tested alone and fed from a worker's results
(on the GUI thread).
"""
from .feature_maps import FeatureMapView

__all__ = ["FeatureMapView"]
