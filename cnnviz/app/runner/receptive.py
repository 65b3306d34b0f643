"""The *Receptive field* tab, wired to the run: the selected layer's map pixel, measured on the worker.

:class:`ReceptiveFields` owns a :class:`~cnnviz.app.views.receptive_field_view.ReceptiveFieldView` and puts it
in the window's centre. It is handed the :class:`~.controller.RunController` and reads what it already knows
(the document's report, the snapshot shown, the current sample, the worker); the controller tells it the
selected row (:meth:`select`) and each snapshot it shows (:meth:`snapshot_shown`).

* The theoretical growth comes from the report on the GUI thread (no torch), at once.
* The effective field of the chosen pixel (the view's channel, row and column boxes; the centre pixel of a new
  layer) and the effective growth are computed on the worker at a step boundary
  (:meth:`~.worker.RunWorker.call_at_boundary`) for the current held-out sample or the person's own image (read
  once per path on the worker and normalised as its probe is: :class:`~.own_image.OwnImage`; one that cannot
  be read any more gets a sentence), while the tab is shown: for each new layer, pixel, sample, image or step
  shown (at most :data:`RECEPTIVE_HZ` a second while training, one
  request in flight; the growth, one backward per layer, only when the sample, the step or the network
  changed). Results come back with a queued signal; nothing here waits on the worker.
* A selected row without C×H×W maps (the input, Flatten, Linear) gets a sentence instead.

GUI thread only; no torch (the worker's function imports it there).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer, Signal

from cnnviz.app.runner.hub import network_key
from cnnviz.app.runner.messages import RunState
from cnnviz.app.runner.own_image import OwnImage, image_name, one_line
from cnnviz.app.views.receptive_field_view import ReceptiveFieldView
from cnnviz.core.lab import receptive
from cnnviz.core.shapes import fmt_shape

log = logging.getLogger("cnnviz.runner")

RECEPTIVE_HZ = 2.0
"""While training, the receptive field is measured again at most this often."""


@dataclass(frozen=True)
class Measured:
    """What the worker measured for one request (plain arrays, copied off the device)."""

    key: tuple
    step: int
    index: int
    image: np.ndarray | None = None
    field: receptive.EffectiveField | None = None
    growth: tuple[receptive.GrowthPoint, ...] | None = None
    error: str = ""
    path: str = ""
    """The person's own image measured on ("" for held-out sample ``index``)."""


class ReceptiveFields(QObject):
    """The *Receptive field* tab of the running network; see the module docstring."""

    _measured = Signal(object)   # a Measured, an exception or None (from the worker thread)

    def __init__(self, runner, places, parent: QObject | None = None) -> None:
        super().__init__(parent or runner)
        self.runner = runner
        self.view = ReceptiveFieldView()
        self.view.setObjectName("view_receptive_field")
        places.add_view(self.view, "center", "Receptive field")
        self._selection: tuple[str, int] = ("", -1)
        self._wanted: tuple | None = None        # (key, with growth)
        self._in_flight: tuple | None = None
        self._shown_key: tuple | None = None
        self._growth: tuple[receptive.GrowthPoint, ...] | None = None
        self._growth_key: tuple | None = None
        self._asked_at = 0.0
        self.measurements = 0
        """Fields shown (read by tests)."""
        self._own_image = OwnImage()  # used on the worker thread only
        self._pace = QTimer(self)
        self._pace.setSingleShot(True)
        self._pace.timeout.connect(self._measure)
        self.view.requested.connect(lambda *_: self.refresh())
        self._measured.connect(self._show)
        runner.worker.refused.connect(self._refused)
        self.view.installEventFilter(self)

    # ================================================================ what the controller tells
    def select(self, kind: str, index: int) -> None:
        """The selected row of the stack (``("layer", i)``, ``("input", -1)``, ...)."""
        self._selection = (kind, index)
        self.refresh()

    def snapshot_shown(self, snap) -> None:
        """The controller showed ``snap``: the sample or its weights may have changed."""
        if snap.probe is not None and self.view.isVisible():
            self.refresh()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.view and event.type() == QEvent.Type.Show:
            QTimer.singleShot(0, self, self.refresh)
        return False

    def _refused(self, generation: int, kind: str, message: str) -> None:
        if generation == self.runner.generation:
            self._growth = self._growth_key = self._shown_key = None
            self.view.clear(message)

    # ================================================================ asking
    def refresh(self) -> None:
        runner = self.runner
        if not self.view.isVisible() or runner.built is None:
            return
        snap = runner.hub.snapshot
        report = runner.document.report
        if snap is None or snap.probe is None or snap.generation != runner.generation or report is None:
            return
        kind, index = self._selection
        if kind != "layer" or not 0 <= index < len(report.layers):
            self._shown_key = None
            self.view.clear("Select a layer with feature maps (C×H×W) to see which input pixels one of its "
                            "pixels sees")
            return
        r = report.layers[index]
        if r.output_shape is None or len(r.output_shape) != 3:
            self._shown_key = None
            self.view.clear(f"Layer {index} ({r.label}) outputs {fmt_shape(r.output_shape)}, not C×H×W maps: a "
                            f"receptive field is of a map pixel. Select a layer before Flatten.")
            return
        self.view.set_layer(f"layer {index} · {r.label} · {fmt_shape(r.output_shape)}", r.output_shape,
                            start=strongest_pixel(snap.probe.activations, index))
        key = (runner.generation, runner.target.image or runner.target.index, snap.probe.step, index,
               *self.view.pixel)
        self._show_growth(index)
        if key == self._shown_key:
            return
        self._wanted = (key, self._growth_key != key[:3])
        if self._in_flight is not None:
            return  # asked again when the answer comes
        wait = 1.0 / RECEPTIVE_HZ - (time.monotonic() - self._asked_at)
        if runner.state is RunState.RUNNING and wait > 0:
            if not self._pace.isActive():
                self._pace.start(int(1000 * wait) + 1)
            return
        self._measure()

    def _measure(self) -> None:
        if self._wanted is None or self._in_flight is not None:
            return
        key, growth = self._in_flight = self._wanted
        self._asked_at = time.monotonic()
        stack_key = network_key(self.runner.document.stack)
        _, sample, _, layer, channel, y, x = key
        own = self._own_image

        def work(session):
            if session is None or network_key(session.stack) != stack_key:
                return None
            if isinstance(sample, str):
                return measure_image_on_worker(session, key, sample, layer, channel, y, x, growth, own)
            return measure_on_worker(session, key, sample, layer, channel, y, x, growth)

        future = self.runner.worker.call_at_boundary(work)

        def done(f) -> None:
            if f.cancelled():
                self._measured.emit(None)
                return
            error = f.exception()
            self._measured.emit(error if error is not None else f.result())

        future.add_done_callback(done)

    # ================================================================ showing
    def _show(self, result) -> None:
        asked, self._in_flight = self._in_flight, None
        asked_key = asked[0] if asked is not None else None
        if isinstance(result, BaseException):
            log.error("measuring the receptive field failed", exc_info=result)
            self.view.clear(f"The receptive field could not be measured: {result}")
            self._shown_key = asked_key
        elif isinstance(result, Measured) and result.key[0] == self.runner.generation:
            self._shown_key = result.key
            if result.growth is not None:
                self._growth, self._growth_key = result.growth, result.key[:3]
            if result.error:
                self.view.clear(result.error)
            else:
                self._draw(result)
        else:
            self._shown_key = asked_key   # no session, or another network's: asked again at the next snapshot
        if self._wanted is not None and self._wanted[0] != self._shown_key:
            self.refresh()

    def _draw(self, m: Measured) -> None:
        f = m.field
        self.measurements += 1
        layer = m.key[3]
        what = f"Your image {image_name(m.path)}" if m.path else f"Sample {m.index}"
        note = (f"{what} at step {m.step:,}: channel {f.channel}, row {f.y}, column {f.x} of layer {layer} "
                f"= {f.value:.4g}.")
        self.view.set_result(m.image, f.map, theoretical=f.theoretical, theoretical_size=f.theoretical_size,
                             effective=f.extent, square=f.square, share=f.share, note=note)
        self._show_growth(layer)

    def _show_growth(self, selected: int) -> None:
        """The theoretical growth from the report; the effective points of the last growth measured for this
        network (of an earlier step until the next one comes)."""
        report = self.runner.document.report
        if report is None:
            return
        points = receptive.field_growth(report)
        effective = [None] * len(points)
        if self._growth is not None and self._growth_key is not None \
                and self._growth_key[0] == self.runner.generation and len(self._growth) == len(points):
            effective = [p.effective for p in self._growth]
        self.view.set_growth([f"{p.index} {p.label}" for p in points], [p.theoretical for p in points], effective,
                             selected=selected)

    @property
    def shown_key(self) -> tuple | None:
        """What the tab shows: (generation, sample, step, layer, channel, y, x), or None; the sample is a
        held-out index, or the path of the person's own image."""
        return self._shown_key

    def flush(self) -> None:
        self.view.flush()


def strongest_pixel(activations, index: int) -> tuple[int, int, int] | None:
    """A new layer starts at its strongest output on this sample ((channel, row, column) of max |value|):
    a pixel the sample drives, where the centre pixel may be one a ReLU zeroed, whose field is empty."""
    if not 0 <= index < len(activations):
        return None
    act = np.asarray(activations[index])
    if act.ndim != 3 or act.size == 0 or not np.isfinite(act).any():
        return None
    flat = int(np.nanargmax(np.abs(np.where(np.isfinite(act), act, 0.0))))
    return tuple(int(v) for v in np.unravel_index(flat, act.shape))


def measure_on_worker(session, key: tuple, index: int, layer: int, channel: int, y: int, x: int,
                      growth: bool) -> Measured:
    """The effective field of held-out sample ``index`` (and, with ``growth``, the effective growth) on the
    worker thread, on the session's device."""
    data = session.test_split
    if not 0 <= index < data.n:
        return Measured(key, session.step_count, index, error=f"There is no held-out sample {index} "
                                                             f"(the split has {data.n}).")
    image = np.asarray(session.data.test.images[index], dtype=np.float32).copy()
    xb, _ = data.rows(index, index + 1)
    return _measure_input(session, key, index, image, xb, layer, channel, y, x, growth)


def measure_image_on_worker(session, key: tuple, path: str, layer: int, channel: int, y: int, x: int,
                            growth: bool, own: OwnImage) -> Measured:
    """The effective field (and growth) of the person's own image at ``path``, read once by ``own`` and
    normalised as its probe is, on the worker thread."""
    from cnnviz.core.data import DataError
    from cnnviz.core.run.faults import EngineError

    try:
        image, xb, _ = own.input(session, path)
    except (DataError, EngineError) as exc:
        return Measured(key, session.step_count, -1, path=path,
                        error=one_line(f"The receptive field cannot be measured on {image_name(path)}: {exc}"))
    return _measure_input(session, key, -1, image, xb, layer, channel, y, x, growth, path)


def _measure_input(session, key: tuple, index: int, image: np.ndarray, xb, layer: int, channel: int, y: int,
                   x: int, growth: bool, path: str = "") -> Measured:
    from cnnviz.core.run.faults import EngineError

    try:
        field = receptive.effective_field(session.model, xb, layer, channel, y, x, report=session.report)
        points = receptive.effective_growth(session.model, xb, session.report) if growth else None
    except EngineError as exc:
        return Measured(key, session.step_count, index, path=path,
                        error=one_line(f"The receptive field cannot be measured: {exc}"))
    return Measured(key, session.step_count, index, image, field, points, path=path)
