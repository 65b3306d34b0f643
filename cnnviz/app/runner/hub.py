"""The views of a running network, placed in the window and fed from one probe at a time.

:class:`ViewsHub` creates the views, puts them in the window's areas, and
routes each :class:`~cnnviz.core.run.live.Snapshot` to them according to
the selected row of the stack (the controller tells it with :meth:`~ViewsHub.select`):
that layer's activations to the feature maps,
its activation gradients to the gradient maps, its weights to the filters (for a layer
inside a block, the probe's ``inner_activations`` / ``inner_grads`` and the weights
under its path string; the labs take its input from the layer before it in its list);
the sample's softmax and true class to the bars; the loss-head identities and
the per-layer norms to the gradient view; every layer's output to the overview
(the centre's first tab, the selected layer's column drawn large), whose clicked
thumbnail selects its layer (``layerActivated``; ``pathActivated`` for a layer
inside a block) and focuses its channel in the feature maps. The last snapshot is kept, so
selecting another layer shows its maps at once, with no new torch work.
It is handed the document (the layers' names) and the window's places for
views (:class:`~cnnviz.app.runner.services.Places`), not the window.
GUI thread only; no torch.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal

from cnnviz.app.runner.services import Places
from cnnviz.app.views import (
    CurvesView,
    FeatureMapView,
    FilterView,
    GradientView,
    OverviewView,
    SoftmaxView,
    SummaryTableView,
)
from cnnviz.app.views.conv_lab import ConvLabView
from cnnviz.app.views.dense_lab import DenseLabView
from cnnviz.app.views.gradients import fmt_difference
from cnnviz.app.views.health import HealthView
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Stack, StackDocument
from cnnviz.core.run.live import Snapshot
from cnnviz.core.shapes import fmt_shape


def network_key(stack: Stack) -> tuple:
    """What a probe depends on: input, layers and loss (not the name, nor the training settings)."""
    return (stack.input, stack.layers, stack.loss)


class ViewsHub(QObject):
    """Owns the run views, placed in ``places``, and shows snapshots in them."""

    filtersWanted = Signal()    # the selected layer's weights are not in the last snapshot: probe again
    layerActivated = Signal(int)  # a layer's row in the summary table, or its overview column, was activated
    channelActivated = Signal(int, int)  # (layer, channel) clicked in the overview, after layerActivated
    pathActivated = Signal(str)  # the overview column of a layer inside a block was clicked: its path string
    needsChanged = Signal()     # what the shown views need from a probe changed (see needs())

    def __init__(self, document: StackDocument, places: Places, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.overview = OverviewView()
        self.overview.setObjectName("view_overview")
        self.maps = FeatureMapView()
        self.maps.setObjectName("view_feature_maps")
        self.grad_maps = FeatureMapView()
        self.grad_maps.setObjectName("view_gradient_maps")
        self.grad_maps.set_level_mode("symmetric")
        self.filters = FilterView()
        self.filters.setObjectName("view_filters")
        self.summary = SummaryTableView()
        self.summary.setObjectName("view_summary")
        self.softmax = SoftmaxView()
        self.softmax.setObjectName("view_softmax")
        self.curves = CurvesView()
        self.curves.setObjectName("view_curves")
        self.gradient = GradientView()
        self.gradient.setObjectName("view_gradient")

        # The centre's tabs get the room; the right column keeps what changes while training in sight.
        # The overview first: the window opens on it, the selected layer's column large.
        places.add_view(self.overview, "center", "Overview")
        places.add_view(self.maps, "center", "Feature maps")
        self.conv_lab = ConvLabView()
        self.conv_lab.setObjectName("view_conv_lab")
        self.dense_lab = DenseLabView()
        self.dense_lab.setObjectName("view_dense_lab")
        places.add_view(self.conv_lab, "center", "Convolution lab")
        places.add_view(self.dense_lab, "center", "Dense lab")
        places.add_view(self.grad_maps, "center", "Gradient maps")
        places.add_view(self.filters, "center", "Filters")
        places.add_view(self.gradient, "center", "Loss head: dL/dz")
        places.add_view(self.summary, "center", "Summary")
        self.health = HealthView()
        self.health.setObjectName("view_health")
        places.add_view(self.health, "center", "Training health")
        self.softmax_dock = places.add_view(self.softmax, "right", "Softmax")
        self.curves_dock = places.add_view(self.curves, "right", "Loss and accuracy")
        places.resizeDocks([self.softmax_dock, self.curves_dock], [400, 450], Qt.Orientation.Vertical)
        places.resizeDocks([self.softmax_dock], [430], Qt.Orientation.Horizontal)

        self.snapshot: Snapshot | None = None
        self._report = None
        self._stale = False
        self._key: tuple | None = None
        self._message = ""
        self._selection: tuple[str, int] = ("", -1)
        self._inner: str | None = None   # the selected layer's path string when it is inside a block
        self.summary.layerActivated.connect(self.layerActivated)
        self.overview.thumbnailClicked.connect(self._overview_clicked)
        self.overview.pathClicked.connect(self._overview_path_clicked)
        self.grad_maps.shownChanged.connect(self._views_shown)
        self.gradient.shownChanged.connect(self._views_shown)
        self._needs = self.needs()

    # ================================================================ what the probes take
    def needs(self) -> dict:
        """The gradients the shown views draw, as :class:`~cnnviz.core.run.training.ProbeRequest` fields:
        the selected layer's activation gradient (or the input's) while the gradient maps are shown, the
        per-layer gradient norms and the loss head's identities while the loss-head view is; nothing
        else. A probe for the overview, the feature maps, the labs and the softmax is a forward pass."""
        kind, index = self._selection
        maps = self.grad_maps.isVisible()
        head = self.gradient.isVisible()
        if not maps:
            grad_layers: tuple[int | str, ...] | None = ()
        elif kind == "layer" and self._inner is not None:
            grad_layers = (self._inner,)
        elif kind == "layer" and index >= 0:
            grad_layers = (index,)
        elif kind == "input":
            grad_layers = ()
        else:
            grad_layers = None   # the output's (the last layer's): every layer's, the count not known here
        # Training health always (it is a history: the tab, once opened, shows the run so far); it rides on
        # the step a probe follows, within a share of the loop of its own (training.HEALTH_BUDGET), never
        # out of the probes' share: a probe without it (health waiting for its budget) goes as it is.
        return {"grad_layers": grad_layers, "input_grad": maps and kind == "input", "param_grads": head,
                "with_identities": head, "health": True}

    def _views_shown(self, *_) -> None:
        self._update_needs()

    def _update_needs(self) -> None:
        needs = self.needs()
        if needs != self._needs:
            self._needs = needs
            self.needsChanged.emit()
            self.route()   # the views say they are reading what the last probe did not take

    @property
    def message(self) -> str:
        """What the probe views say instead of showing a snapshot ("" while they show one)."""
        return self._message

    @property
    def stale(self) -> bool:
        """True while the stack has changed since the snapshot shown was taken."""
        return self._stale

    # ================================================================ inputs
    def set_report(self, stack: Stack, report) -> None:
        """A new stack (every edit): the summary table, and whether the last snapshot still fits it."""
        self.summary.set_report(report)
        self.overview.set_report(report)
        self._report = report
        key = network_key(stack)
        if key != self._key:
            self._key = key
            self._stale = self.snapshot is not None

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        if snapshot.health is not None:
            self.health.add(snapshot.health)
        self._stale = False
        self._message = ""
        self.route()

    def show_message(self, message: str, keep: bool = False) -> None:
        """Nothing to show (loading, a stack that cannot run): the message in every probe view.

        ``keep`` leaves a snapshot already shown in place (a message about the
        next one, e.g. "loading" after an edit, should not blank the screen).
        """
        if keep and self.snapshot is not None:
            return
        self._message = message
        self.snapshot = None
        for view in (self.maps, self.grad_maps, self.filters, self.softmax, self.gradient, self.conv_lab,
                     self.dense_lab):
            view.clear(message)
        self.overview.clear(message)  # the columns up to the break when the stack cannot run

    def clear_curves(self) -> None:
        self.curves.clear()
        self.health.clear()

    def add_progress(self, progress) -> None:
        self.curves.append_train(progress.step, progress.loss, progress.accuracy)

    def add_evaluation(self, evaluation) -> None:
        self.curves.append_test(evaluation.step, evaluation.loss, evaluation.accuracy)

    # ================================================================ routing
    def select(self, kind: str, index: int, path=None) -> None:
        """The selected row of the stack (as the window's ``selectionChanged`` says it): show it.

        ``path``: the selected layer's path when it is inside block ``index`` (its maps, gradient and
        weights are shown then, not the block's); None, or a top-level path, for the row ``index`` itself."""
        path = LayerPath.of(path) if path is not None and kind == "layer" else None
        self._inner = str(path) if path is not None and not path.top_level else None
        self._selection = (kind, index)
        if kind == "layer" and index >= 0:
            self.health.set_layer(index)
        self.overview.set_selected(self._inner or (index if kind == "layer" else -1 if kind == "input" else None))
        self.route()
        self._update_needs()

    def route(self) -> None:
        """Show the last snapshot for the selected row (no torch work: the arrays are already here).

        Called for every new snapshot and every change of the selected row.
        """
        snap = self.snapshot
        if snap is None:
            return
        if snap.error:
            for view in (self.maps, self.grad_maps, self.softmax, self.gradient, self.conv_lab, self.dense_lab):
                view.clear(snap.error)
            self.overview.show_schematic(snap.error, error=True)
            self._route_filters(snap, self._selection)
            return
        if self._stale:
            note = "Running the changed stack…"
            for view in (self.maps, self.grad_maps, self.filters, self.conv_lab):
                view.clear(note)
            self.overview.show_stale(note)
            return
        p = snap.probe
        kind, index = self._selection
        own = snap.target.image is not None
        self.overview.set_probe(p, true_class=None if own else p.label)
        self.maps.set_input(p.image)
        fields = self._report.layers if self._report is not None else ()
        rf = fields[index].receptive_field if kind == "layer" and 0 <= index < len(fields) else None
        inner = self._inner if kind == "layer" and self._inner in p.inner_activations else None
        if inner is not None:
            rf = getattr(self._report_at(inner), "receptive_field", None)
        self.maps.set_receptive_field(rf)
        self.grad_maps.set_receptive_field(rf)
        if inner is not None:
            self._route_inner(p, inner)
        elif kind == "layer" and 0 <= index < len(p.activations):
            label = p.layer_labels[index]
            act = p.activations[index]
            what = self._vector_meaning(p, index)
            self.maps.set_maps(act, f"layer {index} · {label} · {fmt_shape(act.shape)}{self._as_maps(what)}", **what)
            grad = p.activation_grads[index]
            if grad is None and p.grad_layers is not None and index not in p.grad_layers:
                self.grad_maps.clear(f"Reading dL/d(output of layer {index})…")   # the next probe takes it
            elif grad is None:
                self.grad_maps.clear(f"The loss does not depend on layer {index} ({label})'s output")
            else:
                self.grad_maps.set_maps(grad, f"dL/d(output of layer {index} · {label}){self._as_maps(what)}", **what)
        elif kind == "input" or not p.activations:
            self.maps.set_maps(p.image, f"input · {fmt_shape(p.image.shape)}")
            if p.input_grad is None:
                self.grad_maps.clear("Reading dL/d(input)…")   # not taken by this probe: the next one does
            else:
                self.grad_maps.set_maps(p.input_grad, "dL/d(input): which pixels the loss is sensitive to")
        else:
            last = len(p.activations) - 1
            what = self._vector_meaning(p, last)
            self.maps.set_maps(p.activations[last], f"output · layer {last} · {p.layer_labels[last]}", **what)
            grad = p.activation_grads[last]
            if grad is not None:
                self.grad_maps.set_maps(grad, f"dL/d(output of layer {last})", **what)
            elif p.grad_layers is not None and last not in p.grad_layers:
                self.grad_maps.clear(f"Reading dL/d(output of layer {last})…")
        self._route_filters(snap, (kind, index))
        self.softmax.set_distribution(p.softmax, p.log_softmax, true_class=None if own else p.label,
                                      classes=p.classes)
        self._route_gradient(p, own)
        self._route_labs(snap, kind, index, own)

    def _report_at(self, path: str):
        try:
            return self._report.at(path) if self._report is not None else None
        except (IndexError, ValueError, TypeError):
            return None

    def _label_at(self, path: str) -> str:
        try:
            return self.document.stack.layer_at(path).label
        except (IndexError, ValueError, TypeError, KeyError):
            return path

    def _route_inner(self, p, key: str) -> None:
        """The maps and the gradient of the layer at ``key`` inside a block."""
        words = LayerPath.of(key).words()
        label = self._label_at(key)
        act = p.inner_activations[key]
        what = self._inner_meaning(key, act)
        self.maps.set_maps(act, f"{words} · {label} · {fmt_shape(act.shape)}{self._as_maps(what)}", **what)
        if key not in p.inner_grads:
            self.grad_maps.clear(f"Reading dL/d(output of {words})…")   # the next probe takes it
        elif p.inner_grads[key] is None:
            self.grad_maps.clear(f"The loss does not depend on {words} ({label})'s output")
        else:
            self.grad_maps.set_maps(p.inner_grads[key], f"dL/d(output of {words} · {label})")

    def _inner_meaning(self, key: str, act) -> dict:
        """FeatureMapView's keywords for a 1-D output inside a block: a Flatten's (or an elementwise layer's
        right after it in the same list) is shown as the C×H×W it was flattened from."""
        if np.ndim(act) != 1:
            return {}
        path = LayerPath.of(key)
        while True:
            r = self._report_at(str(path))
            if r is None:
                return {}
            if r.type == "Flatten":
                shape = r.input_shape
                ok = shape is not None and len(shape) == 3 and math.prod(shape) == np.size(act)
                return {"origin_shape": tuple(shape)} if ok else {}
            if r.type == "Linear" or r.input_shape != r.output_shape or path.index == 0:
                return {}
            path = path.sibling(path.index - 1)

    def _lab_input(self, snap: Snapshot, index: int):
        """What layer ``index`` receives: the previous layer's output, or the image normalised as the model
        sees it for layer 0 (None when the normalisation did not travel)."""
        p = snap.probe
        if index > 0:
            return p.activations[index - 1]
        if snap.normalization is None:
            return None
        image = np.asarray(p.image, np.float32)
        mean, std = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in snap.normalization)
        if image.ndim != 3 or mean.shape[0] not in (1, image.shape[0]) or std.shape[0] != mean.shape[0]:
            return None   # the lab then says it has no input, rather than guess
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((image - mean) / std).astype(np.float32)

    def _inner_input(self, snap: Snapshot, path: LayerPath):
        """What the layer at ``path`` inside a block receives: the output of the layer before it in its list,
        or the block's own input for the first (a nested block's output is in the probe as its inner layers' are)."""
        if path.index > 0:
            return snap.probe.inner_activations.get(str(path.sibling(path.index - 1)))
        _at, key = path.segments[-1]
        block = LayerPath(*path[:len(path) - 1 - len(key)])
        return self._lab_input(snap, block.index) if block.top_level else self._inner_input(snap, block)

    def _route_labs(self, snap: Snapshot, kind: str, index: int, own: bool) -> None:
        """The labs: the selected layer's arithmetic on this sample (each lab draws only while shown)."""
        from cnnviz.core.lab.taps import SPATIAL, flat_origin

        p = snap.probe
        report = self._report
        rows = report.layers if report is not None else ()
        inner = self._inner if kind == "layer" else None
        r = self._report_at(inner) if inner is not None else None
        if inner is not None and (r is None or inner not in p.inner_activations):
            where = LayerPath.of(inner).words()
            self.conv_lab.clear(f"{where} has no values in this probe: select a Conv2d, MaxPool2d or AvgPool2d layer")
            self.dense_lab.clear_linear(f"{where} has no values in this probe: select a Linear layer")
        elif inner is not None or (kind == "layer" and 0 <= index < len(p.activations) and index < len(rows)):
            if inner is not None:
                key, out, origin = inner, p.inner_activations[inner], None
                title = f"{LayerPath.of(inner).words()} · {self._label_at(inner)} ({r.type})"
                x = self._inner_input(snap, LayerPath.of(inner))
            else:
                r = rows[index]
                key, out, origin = index, p.activations[index], flat_origin(report, index)
                title = f"layer {index} · {p.layer_labels[index]} ({r.type})"
                x = self._lab_input(snap, index)
            if r.type in SPATIAL:
                has_bias = bool(r.resolved.get("bias", True)) if r.type == "Conv2d" else False
                self.conv_lab.set_layer(r.type, r.resolved, x, out, snap.weights.get(key),
                                        snap.biases.get(key), formula=r.formula, title=title, has_bias=has_bias)
            else:
                self.conv_lab.clear(f"{title} has no sliding window: select a Conv2d, MaxPool2d or AvgPool2d "
                                    f"layer" + (" (a Linear's dot products are in the Dense lab)"
                                                if r.type == "Linear" else ""))
            if r.type == "Linear":
                self.dense_lab.set_linear(x, snap.weights.get(key), snap.biases.get(key), out, origin=origin,
                                          title=title, has_bias=bool(r.resolved.get("bias", True)))
            else:
                self.dense_lab.clear_linear(f"{title} is not a Linear: select a Linear layer to see its dot products")
        else:
            self.conv_lab.clear("Select a Conv2d, MaxPool2d or AvgPool2d layer to see its window slide")
            self.dense_lab.clear_linear("Select a Linear layer to see its dot products")
        loss = report.loss if report is not None else None
        self.dense_lab.set_logits(p.logits, p.label, loss_type=loss.type if loss is not None else "CrossEntropyLoss",
                                  loss_resolved=loss.resolved if loss is not None else None, classes=p.classes,
                                  torch_loss=None if own else p.loss)

    def _overview_clicked(self, layer: int, channel: int) -> None:
        """A thumbnail (or a column) of the overview was clicked: select its layer, focus its channel."""
        self.layerActivated.emit(layer)
        if channel >= 0:
            if self._selection == ("layer", layer):
                self.maps.enlarge(channel)  # the feature-map tab shows that channel (vectors have none to enlarge)
            self.channelActivated.emit(layer, channel)

    def _overview_path_clicked(self, path: str, channel: int) -> None:
        """The column of a layer inside a block was clicked: select that layer, focus its channel."""
        self.pathActivated.emit(path)
        if channel >= 0 and self._inner == path:
            self.maps.enlarge(channel)

    def _vector_meaning(self, p, index: int) -> dict:
        """What the values of a 1-D activation are, as FeatureMapView's keywords: ``classes`` for the
        logits (this and every later output hold one value per class), ``origin_shape`` for a
        Flatten's output (or an elementwise layer's after it): the (C, H, W) it was flattened from."""
        act = p.activations[index]
        if np.ndim(act) != 1:
            return {}
        k = len(p.classes)
        if k and act.size == k and all(np.ndim(a) == 1 and np.size(a) == k for a in p.activations[index:]):
            return {"classes": p.classes}
        layers = self._report.layers if self._report is not None else ()
        i = index
        while 0 <= i < len(layers):
            r = layers[i]
            if r.type == "Flatten":
                shape = r.input_shape
                if shape is not None and len(shape) == 3 and math.prod(shape) == act.size:
                    return {"origin_shape": tuple(shape)}
                return {}
            if r.type == "Linear" or r.input_shape != r.output_shape:
                return {}
            i -= 1
        return {}

    @staticmethod
    def _as_maps(what: dict) -> str:
        shape = what.get("origin_shape")
        return f" · shown as the {fmt_shape(shape)} it was flattened from" if shape else ""

    def _route_filters(self, snap: Snapshot, selection: tuple[str, int]) -> None:
        kind, index = selection
        if kind != "layer" or index < 0:
            self.filters.clear("Select a Conv2d or Linear layer to see its weights")
            return
        if self._inner is not None:
            self._route_inner_filters(snap, self._inner)
            return
        stack = self.document.stack
        label = stack.layers[index].label if index < len(stack.layers) else f"layer {index}"
        weights = snap.weights.get(index)
        if weights is not None:
            self.filters.set_weights(weights, f"layer {index} · {label} · weights {fmt_shape(weights.shape)}")
        elif index < len(stack.layers) and stack.layers[index].type in ("Conv2d", "Linear") and not self._stale:
            self.filters.clear(f"Reading the weights of layer {index}…")
            self.filtersWanted.emit()
        else:
            self.filters.clear(f"Layer {index} ({label}) has no filters: select a Conv2d or Linear layer")

    def _route_inner_filters(self, snap: Snapshot, key: str) -> None:
        words = LayerPath.of(key).words()
        label = self._label_at(key)
        weights = snap.weights.get(key)
        try:
            kind = self.document.stack.layer_at(key).type
        except (IndexError, ValueError, TypeError, KeyError):
            kind = ""
        if weights is not None:
            self.filters.set_weights(weights, f"{words} · {label} · weights {fmt_shape(weights.shape)}")
        elif kind in ("Conv2d", "Linear") and not self._stale and not snap.error:
            self.filters.clear(f"Reading the weights of {words}…")
            self.filtersWanted.emit()
        else:
            self.filters.clear(f"{words} ({label}) has no filters: select a Conv2d or Linear layer")

    def _route_gradient(self, p, own: bool) -> None:
        ids = p.identities
        labels = [f"{i} {label}" for i, label in enumerate(p.layer_labels)]
        if p.param_grads:   # (not taken while the view was hidden: the next probe brings them)
            self.gradient.set_norms(labels, p.weight_norms, p.grad_norms)
        if ids is None:
            return
        where = f"sample {p.index}" if not own else "your image"
        note = f"{where}: z = {ids.z_source}."
        if own:
            note += f" Your image has no label: the loss is taken for the predicted class ({p.label_name})."
        if ids.head is not None or not ids.dz.holds:
            note += " " + " ".join(ids.notes)  # the lesson of the head: double softmax, NLLLoss on scores, …
        if ids.at_output is not None:
            note += (f" At the loss input p = softmax(z): max |dL/dp − (softmax(p) − onehot(y))| = "
                     f"{fmt_difference(ids.at_output.max_abs_diff)}.")
        self.gradient.set_identity(ids.dz.autograd, ids.dz.formula, p.classes, note=note, agrees=ids.dz.holds)
        ce = float(ids.loss.cross_entropy.reshape(-1)[0])
        nll = float(ids.loss.nll_of_log_softmax.reshape(-1)[0])
        self.gradient.set_losses(ce, nll)

    def flush(self) -> None:
        for view in (self.overview, self.maps, self.grad_maps, self.filters, self.softmax, self.curves,
                     self.gradient, self.conv_lab, self.dense_lab, self.health):
            view.flush()

