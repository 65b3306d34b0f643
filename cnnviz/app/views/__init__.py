"""pyqtgraph views fed numpy arrays and plain Python values.

Each view is a standalone ``QWidget`` with a small data-setting API, a one-line
hint while it has nothing to show, and throttled repaints (about 30 per second;
``flush()`` draws a pending update at once). None imports torch or the engine,
so they can be tested alone and fed from a worker's results, on the GUI thread.

- :class:`FeatureMapView`: a layer's activation maps as one mosaic, the input beside them.
- :class:`FilterView`: a Conv2d's kernels, a row per output channel.
- :class:`SoftmaxView`: class probabilities, the true class marked, log switch.
- :class:`CurvesView`: loss and accuracy while training.
- :class:`GradientView`: dL/dz against softmax(z) − onehot(y), the cross-entropy check, norms.
- :class:`SummaryTableView`: the shape engine's report as a table with totals.
"""
from cnnviz.app.views.curves import CurvesView
from cnnviz.app.views.feature_maps import FeatureMapView
from cnnviz.app.views.filters import FilterView
from cnnviz.app.views.gradients import GradientView
from cnnviz.app.views.softmax import SoftmaxView
from cnnviz.app.views.summary_table import SummaryTableView

__all__ = ["CurvesView", "FeatureMapView", "FilterView", "GradientView", "SoftmaxView", "SummaryTableView"]
