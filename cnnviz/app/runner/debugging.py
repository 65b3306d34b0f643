"""Why the network is wrong: the confusion matrix, its mistakes and saliency / Grad-CAM, wired to the run.

:class:`Debugging` owns three views and puts them in the window's centre:
*Confusion* (the held-out confusion matrix beside the gallery of one cell's
examples) and *Saliency* (saliency and Grad-CAM of the current sample). It is
handed the :class:`~.controller.RunController` and reads what it already
knows (the session the views show, the current sample, the worker); the
controller only creates it and passes it each evaluation and each snapshot
it shows.

* **Evaluations.** The worker's trainer evaluates the held-out split every
  :data:`~.worker.EVAL_EVERY` steps with each sample's prediction and
  confidence (``Evaluation.samples``: one max per sample on the device, one
  copy). Each one redraws the matrix (the view redraws at most four times a
  second) and the gallery of the chosen cell, or of every mistake. *Evaluate
  now* (and showing the tab while paused on weights not yet evaluated) asks
  the worker for one at its next step boundary.
* **Mistakes.** Clicking an example makes it the current sample: the
  toolbar's sample box, then ``set_target``, so every view follows.
* **Saliency and Grad-CAM** are computed on the worker, at a step boundary
  (:meth:`~.worker.RunWorker.call_at_boundary`), for the current held-out
  sample or the person's own image (read once per path on the worker and
  normalised as its probe is: :class:`~.own_image.OwnImage`; with no true
  class, the predicted one is explained by default), the chosen class and
  layer, while the tab is shown: for each new sample, image, choice or step
  shown (at most :data:`ATTRIBUTION_HZ` a second while training, one request
  in flight). Results come back with a queued signal; nothing here waits on
  the worker. An image that cannot be read any more gets a sentence.

GUI thread only; no torch (the worker's functions import it there).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QSplitter

from cnnviz.app.runner.hub import network_key
from cnnviz.app.runner.messages import Built, RunState
from cnnviz.app.runner.own_image import OwnImage, image_name, one_line
from cnnviz.app.views.attribution_view import AttributionView
from cnnviz.app.views.confusion import ConfusionView
from cnnviz.app.views.mistakes import MistakesView, select_examples
from cnnviz.core.shapes import fmt_shape

log = logging.getLogger("cnnviz.runner")

ATTRIBUTION_HZ = 4.0
"""While training, saliency and Grad-CAM are recomputed at most this often."""
HEADS = ("Softmax", "LogSoftmax")


@dataclass(frozen=True)
class Attributed:
    """What the worker computed for one request (plain arrays, copied off the device)."""

    key: tuple
    index: int
    step: int
    class_index: int
    predicted: int
    score: float
    image: np.ndarray
    saliency: np.ndarray
    cam: np.ndarray | None
    layer: int | None
    note: str = ""
    error: str = ""
    path: str = ""
    """The person's own image explained ("" for held-out sample ``index``)."""


def gradcam_layers(stack, report) -> tuple[list[tuple[int, str]], int | None]:
    """The layers Grad-CAM may weigh, ``(index, label)``: a C×H×W output before the class scores; and the
    default, the last of them (:func:`cnnviz.core.run.attribution.default_layer`'s rule, without torch)."""
    layers = stack.layers
    n = len(layers)
    end = n - 1
    if n and layers[-1].type in HEADS and layers[-1].params.get("dim", None) in (None, 1, -1):
        end = n - 2
    shapes = report.layers if report is not None else ()
    out = []
    for i in range(min(end, len(shapes))):
        shape = shapes[i].output_shape
        if shape is not None and len(shape) == 3:
            out.append((i, f"layer {i} · {layers[i].label} · {fmt_shape(shape)}"))
    return out, (out[-1][0] if out else None)


class Debugging(QObject):
    """The *Confusion* and *Saliency* tabs of the running network; see the module docstring."""

    _evaluated = Signal(object)   # an Evaluation asked for with Evaluate now (from the worker thread)
    _attributed = Signal(object)  # an Attributed, or an exception (from the worker thread)

    def __init__(self, runner, places, parent: QObject | None = None) -> None:
        super().__init__(parent or runner)
        self.runner = runner
        self.confusion = ConfusionView()
        self.confusion.setObjectName("view_confusion")
        self.mistakes = MistakesView()
        self.mistakes.setObjectName("view_mistakes")
        self.attribution = AttributionView()
        self.attribution.setObjectName("view_attribution")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setObjectName("view_confusion_tab")
        split.addWidget(self.confusion)
        split.addWidget(self.mistakes)
        split.setStretchFactor(0, 4)  # the matrix takes the room; the gallery keeps a column or two
        split.setStretchFactor(1, 1)
        split.setSizes([700, 220])
        split.setChildrenCollapsible(False)
        self.confusion_tab = split
        places.add_view(split, "center", "Confusion")
        places.add_view(self.attribution, "center", "Saliency")

        self.evaluation = None
        """The last held-out evaluation shown (an ``Evaluation`` with ``samples``), or None."""
        self._evaluation_generation = -1
        self.cell: tuple[int, int] | None = None
        """The cell whose examples the gallery lists (None: every mistake)."""
        self._built: Built | None = None
        self._evaluating = False
        self._mistakes_dirty = False
        self._in_flight: tuple | None = None
        self._wanted: tuple | None = None
        self._shown_key: tuple | None = None
        self._asked_at = 0.0
        self.attributions = 0
        """Saliency and Grad-CAM results shown (read by tests)."""
        self._own_image = OwnImage()  # used on the worker thread only
        self._pace = QTimer(self)
        self._pace.setSingleShot(True)
        self._pace.timeout.connect(self._attribute)

        self.confusion.cellClicked.connect(self._cell_clicked)
        self.confusion.evaluateRequested.connect(self.evaluate_now)
        self.mistakes.allRequested.connect(lambda: self._cell_clicked(-1, -1))
        self.mistakes.exampleClicked.connect(self.show_sample)
        self.attribution.choiceChanged.connect(self.refresh_attribution)
        self._evaluated.connect(self.add_evaluation)
        self._attributed.connect(self._show_attribution)
        w = runner.worker
        w.ready.connect(self._ready)
        w.refused.connect(self._refused)
        for view in (self.confusion_tab, self.attribution):
            view.installEventFilter(self)

    # ================================================================ the session
    def _ready(self, info: Built) -> None:
        if info.generation != self.runner.generation:
            return
        old = self._built
        self._built = info
        if old is None or old.classes != info.classes or len(old.test_labels) != len(info.test_labels):
            self.evaluation = None
            self.cell = None
            self.confusion.clear()
            self.mistakes.clear()
        elif self.evaluation is not None and self._evaluation_generation != info.generation:
            self._show_matrix(stale=True)  # of the network before the edit, until the next evaluation
        self._update_choices()

    def _refused(self, generation: int, kind: str, message: str) -> None:
        if generation != self.runner.generation:
            return
        self._built = None
        self.evaluation = None
        self.attribution.clear(message)
        self.confusion.clear(message)
        self.mistakes.clear(message)

    def _update_choices(self) -> None:
        built = self._built
        if built is None:
            return
        layers, default = gradcam_layers(self.runner.document.stack, self.runner.document.report)
        self.attribution.set_choices(built.classes, layers, default)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Show:
            if watched is self.confusion_tab:
                QTimer.singleShot(0, self, self._confusion_shown)
            elif watched is self.attribution:
                QTimer.singleShot(0, self, self.refresh_attribution)
        return False

    # ================================================================ evaluations
    def add_evaluation(self, evaluation) -> None:
        """A held-out evaluation (the worker's, every EVAL_EVERY steps, or Evaluate now's)."""
        built = self._built or self.runner.built
        if evaluation is None or built is None or evaluation.confusion is None or evaluation.split != "test":
            return
        labels = built.test_labels
        if tuple(evaluation.classes) != tuple(built.classes) or evaluation.n != len(labels):
            return  # of a session the views no longer show
        self.evaluation = evaluation
        self._evaluation_generation = self.runner.generation
        self._show_matrix()
        self._refresh_mistakes()

    def _show_matrix(self, stale: bool = False) -> None:
        e = self.evaluation
        counted = e.counted if e.counted is not None else e.n
        caption = (f"Held-out images at step {e.step:,}: {100 * e.accuracy:.1f}% of {counted:,} right "
                   f"(loss {e.loss:.4g}). Rows: the true class; columns: the predicted class. "
                   f"Click a cell for its examples.")
        if stale:
            caption = "Of the network before the last change (Evaluate now for this one). " + caption
        self.confusion.set_matrix(e.confusion, e.classes, e.per_class_accuracy, caption)

    def evaluate_now(self) -> None:
        """Evaluate the held-out split at the worker's next step boundary (the result comes back queued)."""
        if self._evaluating or self.runner.built is None:
            return
        self._evaluating = True
        key = network_key(self.runner.document.stack)

        def work(session):
            if session is None or network_key(session.stack) != key:
                return None
            return session.evaluate("test", per_sample=True)

        future = self.runner.worker.call_at_boundary(work)

        def done(f) -> None:
            self._evaluating = False
            if f.cancelled():
                return
            error = f.exception()
            if error is not None:
                log.warning("evaluating the held-out split failed: %s", error)
                return
            if f.result() is not None:
                self._evaluated.emit(f.result())

        future.add_done_callback(done)

    def _confusion_shown(self) -> None:
        """The tab is shown: draw what waited, and evaluate weights not yet evaluated while paused."""
        runner = self.runner
        if self._mistakes_dirty:
            self._refresh_mistakes()
        snap = runner.hub.snapshot
        if runner.state is not RunState.PAUSED or snap is None or snap.probe is None:
            return
        e = self.evaluation
        if e is None or e.step != snap.probe.step or self._evaluation_generation != runner.generation:
            self.evaluate_now()

    # ================================================================ mistakes
    def _cell_clicked(self, t: int, p: int) -> None:
        self.cell = None if t < 0 else (t, p)
        self.confusion.select_cell(self.cell)
        self._refresh_mistakes(force=True)

    def _refresh_mistakes(self, force: bool = False) -> None:
        e, built = self.evaluation, self._built or self.runner.built
        if e is None or built is None or e.samples is None:
            return
        if not force and not self.mistakes.isVisible():
            self._mistakes_dirty = True
            return
        self._mistakes_dirty = False
        labels = built.test_labels
        preds, confs = e.predictions, e.confidences
        ignore = built.stack.loss.params.get("ignore_index") if built.stack.loss is not None else None
        indices = select_examples(labels, preds, confs, self.cell, ignore_index=ignore)
        classes = e.classes
        if self.cell is None:
            title = "Mistakes"
        else:
            t, p = self.cell
            title = f"True {classes[t]}, predicted {classes[p]}" + (" (right)" if t == p else "")
        self.mistakes.set_examples(indices, built.test_images, labels, preds, confs, classes, title)
        self.mistakes.set_current(self.runner.target.index if self.runner.target.image is None else None)

    def show_sample(self, index: int) -> None:
        """Make held-out sample ``index`` the current one: the toolbar's sample box, and every view follows."""
        runner = self.runner
        runner.toolbar.set_sample(index)  # emits sampleChanged, which sets the target
        runner.set_target(replace(runner.target, index=index, image=None))  # when the box held it already

    # ================================================================ saliency and Grad-CAM
    def snapshot_shown(self, snap) -> None:
        """The controller showed ``snap``: the current sample or its weights may have changed."""
        if snap.probe is not None and self.attribution.isVisible():
            self.refresh_attribution()
        if self.mistakes.isVisible() and snap.target.image is None:
            self.mistakes.set_current(snap.target.index)

    def refresh_attribution(self) -> None:
        runner = self.runner
        if not self.attribution.isVisible() or runner.built is None:
            return
        snap = runner.hub.snapshot
        if snap is None or snap.probe is None or snap.generation != runner.generation:
            return
        self._update_choices()
        sample = runner.target.image or runner.target.index
        key = (runner.generation, sample, snap.probe.step, self.attribution.chosen_class,
               self.attribution.chosen_layer)
        if key == self._shown_key:
            return
        self._wanted = key
        if self._in_flight is not None:
            return  # asked again when the answer comes
        wait = 1.0 / ATTRIBUTION_HZ - (time.monotonic() - self._asked_at)
        if runner.state is RunState.RUNNING and wait > 0:
            if not self._pace.isActive():
                self._pace.start(int(1000 * wait) + 1)
            return
        self._attribute()

    def _attribute(self) -> None:
        key = self._wanted
        if key is None or self._in_flight is not None:
            return
        self._in_flight = key
        self._asked_at = time.monotonic()
        _, sample, _, class_index, layer = key
        stack_key = network_key(self.runner.document.stack)
        own = self._own_image

        def work(session):
            if session is None or network_key(session.stack) != stack_key:
                return None
            if isinstance(sample, str):
                return attribute_image_on_worker(session, key, sample, class_index, layer, own)
            return attribute_on_worker(session, key, sample, class_index, layer)

        future = self.runner.worker.call_at_boundary(work)

        def done(f) -> None:
            if f.cancelled():
                self._attributed.emit(None)
                return
            error = f.exception()
            self._attributed.emit(error if error is not None else f.result())

        future.add_done_callback(done)

    def _show_attribution(self, result) -> None:
        asked, self._in_flight = self._in_flight, None
        if isinstance(result, BaseException):
            log.error("saliency and Grad-CAM failed", exc_info=result)
            self.attribution.clear(f"Saliency and Grad-CAM could not be computed: {result}")
            self._shown_key = asked
        elif isinstance(result, Attributed) and result.key[0] == self.runner.generation:
            self._shown_key = result.key
            if result.error:
                self.attribution.clear(result.error)
            else:
                self._show(result)
        elif not isinstance(result, Attributed):
            # No session, or one for another network (being built again): nothing to show, and nothing
            # asked again until the next snapshot says what changed.
            self._shown_key = asked
        if self._wanted is not None and self._wanted != self._shown_key:
            self.refresh_attribution()

    @property
    def attribution_key(self) -> tuple | None:
        """What the Saliency tab shows: (generation, sample, step, class or None, layer or None), or None;
        the sample is a held-out index, or the path of the person's own image."""
        return self._shown_key

    def _show(self, r: Attributed) -> None:
        self.attributions += 1
        classes = self._built.classes if self._built is not None else ()

        def name(c: int) -> str:
            return f"{c} ({classes[c]})" if 0 <= c < len(classes) else str(c)

        which = "the predicted class" if r.class_index == r.predicted else f"predicted {name(r.predicted)}"
        stack = self.runner.document.stack
        where = ""
        if r.cam is not None and r.layer is not None and r.layer < len(stack.layers):
            where = f" Grad-CAM at layer {r.layer} ({stack.layers[r.layer].label})."
        what = f"Your image {image_name(r.path)}" if r.path else f"Sample {r.index}"
        caption = (f"{what} at step {r.step:,}: class {name(r.class_index)}, {which}; its score "
                   f"z = {r.score:.4g} (the logit before any Softmax).{where} Brighter: the score depends "
                   f"more on those pixels.")
        self.attribution.set_result(r.image, r.saliency, r.cam, caption, cam_note=r.note)

    def flush(self) -> None:
        for view in (self.confusion, self.mistakes, self.attribution):
            view.flush()


def attribute_on_worker(session, key: tuple, index: int, class_index: int | None, layer: int | None) -> Attributed:
    """Saliency and Grad-CAM of held-out sample ``index`` of ``session`` (on the worker thread, on the device)."""
    data = session.test_split
    image = np.asarray(session.data.test.images[index], dtype=np.float32).copy() if 0 <= index < data.n else None
    if image is None:
        return _failed(key, index, session.step_count, f"There is no held-out sample {index} (the split has {data.n}).")
    x, _ = data.rows(index, index + 1)
    return _attribute_input(session, key, index, image, x, class_index, layer)


def attribute_image_on_worker(session, key: tuple, path: str, class_index: int | None, layer: int | None,
                              own: OwnImage) -> Attributed:
    """Saliency and Grad-CAM of the person's own image at ``path`` (on the worker thread, on the device): read
    once by ``own``, normalised as its probe is; with no true class, the predicted one is the default."""
    from cnnviz.core.data import DataError
    from cnnviz.core.run.faults import EngineError

    try:
        image, x, predicted = own.input(session, path)
    except (DataError, EngineError) as exc:
        return _failed(key, -1, session.step_count,
                       one_line(f"Saliency and Grad-CAM cannot be computed for {image_name(path)}: {exc}"), path)
    return _attribute_input(session, key, -1, image, x, class_index, layer, predicted, path)


def _failed(key: tuple, index: int, step: int, error: str, path: str = "") -> Attributed:
    return Attributed(key, index, step, -1, -1, 0.0, np.zeros((1, 1, 1), np.float32), np.zeros((1, 1), np.float32),
                      None, None, error=error, path=path)


def _attribute_input(session, key: tuple, index: int, image: np.ndarray, x, class_index: int | None,
                     layer: int | None, predicted: int | None = None, path: str = "") -> Attributed:
    """Saliency and Grad-CAM of the normalised input ``x`` (1, C, H, W) whose pixels are ``image``."""
    from cnnviz.core.run import attribution
    from cnnviz.core.run.faults import EngineError

    note = ""
    try:
        try:
            sal, cam = attribution.attribute(session.model, x, class_index, layer)
        except attribution.AttributionError as exc:
            if "Grad-CAM" not in str(exc) and "feature map" not in str(exc):
                raise
            sal, cam, note = attribution.saliency(session.model, x, class_index), None, str(exc)
        if predicted is None:
            predicted = sal.class_index if class_index is None else _predicted(session, x)
    except EngineError as exc:
        return Attributed(key, index, session.step_count, -1, -1, 0.0, image, np.zeros((1, 1), np.float32), None,
                          None, error=one_line(f"Saliency and Grad-CAM cannot be computed: {exc}"), path=path)
    return Attributed(key, index, session.step_count, sal.class_index, predicted, sal.score, image, sal.map,
                      None if cam is None else cam.map, None if cam is None else cam.layer, note, path=path)


def _predicted(session, x) -> int:
    """The predicted class of one normalised input (eval mode, no gradients; a trailing Softmax keeps argmax)."""
    import torch

    from cnnviz.core.run.hygiene import model_mode

    with model_mode(session.model, False), torch.no_grad():
        return int(session.model(x).reshape(-1).argmax())
