"""The Receptive field tab's glue: requests go to the worker (one in flight), answers come back as a signal
and are drawn; a layer without maps gets a sentence. The worker here is a stand-in that runs the function on
a real model when told to (the thread and the training loop are the worker's own tests)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import concurrent.futures
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal

from cnnviz.app.runner import receptive as glue
from cnnviz.app.runner.messages import RunState
from cnnviz.core.lab import receptive
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import infer

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STACK = Stack(input=InputSpec(1, 12, 12), layers=(
    Layer("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
    Layer("Conv2d", {"out_channels": 2, "kernel_size": 3, "stride": 2}), Layer("Flatten"),
    Layer("Linear", {"out_features": 4})))


class Worker(QObject):
    refused = Signal(int, str, str)

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.pending: list[tuple] = []
        self.calls = 0

    def call_at_boundary(self, fn):
        self.calls += 1
        future = concurrent.futures.Future()
        self.pending.append((fn, future))
        return future

    def run_pending(self):
        while self.pending:
            fn, future = self.pending.pop(0)
            future.set_result(fn(self.session))


class Runner(QObject):
    def __init__(self, session):
        super().__init__()
        self.worker = Worker(session)
        self.generation = 1
        self.built = object()
        self.state = RunState.PAUSED
        self.target = SimpleNamespace(index=1, image=None)
        self.document = SimpleNamespace(stack=STACK, report=infer(STACK))
        self.hub = SimpleNamespace(snapshot=SimpleNamespace(generation=1,
                                                            probe=SimpleNamespace(step=7, activations=())))


def make_session():
    from cnnviz.core.run import build

    model = build.build_model(STACK, seed=0)
    images = np.random.default_rng(0).random((3, 1, 12, 12)).astype(np.float32)
    normalised = torch.from_numpy((images - 0.5) / 0.25)

    class Split:
        n = 3

        def rows(self, a, b):
            return normalised[a:b], torch.zeros(b - a, dtype=torch.long)

    session = SimpleNamespace(stack=STACK, model=model, report=infer(STACK), test_split=Split(), step_count=7,
                              data=SimpleNamespace(test=SimpleNamespace(images=images)))
    return session, normalised


@pytest.fixture
def tab(qtbot):
    session, normalised = make_session()
    runner = Runner(session)
    views = []
    places = SimpleNamespace(add_view=lambda view, area, title: views.append((view, area, title)))
    fields = glue.ReceptiveFields(runner, places)
    assert [(a, t) for _, a, t in views] == [("center", "Receptive field")]
    qtbot.addWidget(fields.view)
    fields.view.resize(900, 500)
    fields.view.show()
    qtbot.waitExposed(fields.view)
    return fields, runner, session, normalised


def test_a_new_layer_starts_at_its_strongest_pixel_on_the_sample(tab):
    """Not the centre pixel, which a ReLU may have zeroed (no gradient reaches the input from it)."""
    fields, runner, session, normalised = tab
    report = runner.document.report
    acts = [np.zeros(r.output_shape, np.float32) for r in report.layers]
    acts[2][0, 1, 3] = -4.0    # the largest |value|
    acts[2][0, 2, 2] = 1.0
    runner.hub.snapshot.probe.activations = tuple(acts)
    fields.select("layer", 2)
    runner.worker.run_pending()
    fields.flush()
    assert fields.shown_key[-3:] == (0, 1, 3)
    assert glue.strongest_pixel(tuple(acts), 2) == (0, 1, 3)
    assert glue.strongest_pixel(tuple(acts), 99) is None
    assert glue.strongest_pixel((np.zeros(5, np.float32),), 0) is None   # a vector has no pixel


def test_the_selected_layers_centre_pixel_is_measured_on_the_worker_and_drawn(tab):
    fields, runner, session, normalised = tab
    fields.select("layer", 2)
    assert runner.worker.calls == 1 and fields.shown_key is None   # asked, not yet answered
    runner.worker.run_pending()
    fields.flush()
    assert fields.shown_key == (1, 1, 7, 2, 0, 2, 2)             # 5×5 maps: the centre pixel
    want = receptive.effective_field(session.model, normalised[1:2], 2, 0, 2, 2, report=session.report)
    assert np.array_equal(fields.view.shown_heat(), want.map)
    assert fields.view.caption.text().startswith(f"theoretical 5×5, effective (95 % of the gradient) "
                                                 f"{want.extent}×{want.extent}.")
    curves = fields.view.growth_curves()
    assert list(curves["height"][1][:3]) == [3, 3, 5] and np.isnan(curves["height"][1][3:]).all()
    assert list(curves["effective"][0]) == [0, 1, 2]              # one point per layer with maps

    fields.view.boxes["column"].setValue(4)                       # the person picks another pixel
    assert runner.worker.calls == 2
    runner.worker.run_pending()
    fields.flush()
    assert fields.shown_key == (1, 1, 7, 2, 0, 2, 4)
    want = receptive.effective_field(session.model, normalised[1:2], 2, 0, 2, 4, report=session.report)
    assert np.array_equal(fields.view.shown_heat(), want.map)


def test_one_request_in_flight_and_the_latest_wins(tab, monkeypatch):
    fields, runner, _, _ = tab
    grown = []
    real = receptive.effective_growth
    monkeypatch.setattr(receptive, "effective_growth", lambda *a, **k: grown.append(1) or real(*a, **k))
    fields.select("layer", 0)
    fields.view.choose(1, 3, 3)
    fields.view.choose(2, 5, 6)
    assert runner.worker.calls == 1                               # the first is still on the worker
    runner.worker.run_pending()                                   # its answer asks for the latest, once
    assert runner.worker.calls == 2
    runner.worker.run_pending()
    assert fields.shown_key == (1, 1, 7, 0, 2, 5, 6) and runner.worker.calls == 2
    assert len(grown) == 1                                        # the growth: once for this sample and step


def test_a_layer_without_maps_gets_a_sentence_and_no_request(tab):
    fields, runner, _, _ = tab
    fields.select("layer", 3)
    assert fields.view.is_empty and "Layer 3 (Flatten) outputs 50, not C×H×W maps" in fields.view.hint_text
    fields.select("input", -1)
    assert fields.view.is_empty and "Select a layer" in fields.view.hint_text
    assert runner.worker.calls == 0


def test_in_the_live_window_the_field_is_the_cores_on_the_sessions_weights(make_window, examples, qtbot):
    """The real worker thread and session, as the window attaches it: the tab shows the core's field of the
    selected layer for the current held-out sample."""
    from tests.app.run_helpers import TIMEOUT_MS, digits_stack

    window = make_window(stack=digits_stack(examples), live=True)
    runner = window.runner
    qtbot.waitUntil(lambda: runner.hub.snapshot is not None and runner.hub.snapshot.generation == runner.generation,
                    timeout=60_000)   # torch and the data set load first, on a busy machine
    fields = runner.workbench.receptive
    tabs = window.center_tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Receptive field"))
    window.select_layer(2)
    qtbot.waitUntil(lambda: fields.measurements >= 1 and fields.shown_key[3] == 2, timeout=TIMEOUT_MS)
    _, index, step, layer, c, y, x = fields.shown_key

    def core(session):
        xb, _ = session.test_split.rows(index, index + 1)
        return (receptive.effective_field(session.model, xb, layer, c, y, x, report=session.report),
                session.step_count)

    future = runner.worker.call_at_boundary(core)
    qtbot.waitUntil(future.done, timeout=TIMEOUT_MS)
    want, at = future.result()
    assert at == step
    fields.flush()
    np.testing.assert_allclose(fields.view.shown_heat(), want.map, rtol=1e-6, atol=1e-9)
    th, tw = runner.document.report.layers[2].receptive_field.size
    assert f"theoretical {th}×{tw}, effective (95 % of the gradient) {want.extent}×{want.extent}" in \
        fields.view.caption.text()
    assert len(fields.view.growth_curves()["height"][0]) == len(runner.document.report.layers)
