"""Labels a person can read (issue 10 item 9): class names on the logits and the loss head's axes,
a flattened vector shown as the C×H×W maps it came from, the difference in its own units, layer
indices on the norm bars."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from cnnviz.app.views import GradientView, SoftmaxView  # noqa: E402
from tests.app.qt_helpers import move_to as _move  # noqa: E402

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _widget(qtbot, cls, size, **kwargs):
    view = cls(**kwargs)
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    return view


def _ticks(plot, axis="bottom"):
    return dict(plot.getAxis(axis)._tickLevels[0])


# ------------------------------------------------------------------ feature maps
def test_logits_hover_with_their_class_names(fmv):
    logits = np.linspace(-1, 0.12, 10).astype(np.float32)
    fmv.set_maps(logits, "layer 11 · Linear · 10", classes=FASHION)
    fmv.flush()
    r = fmv.tile_rect(9)
    _move(fmv.graphics, fmv.maps_vb, r.x() + 0.5, r.y() + 0.5)
    assert fmv.hover_info == ("unit", 9, pytest.approx(0.12))
    assert fmv.status.text().startswith("Ankle boot  ·  0.12")
    assert fmv._channel_tag.toPlainText() == "Ankle boot"
    fmv.set_maps(np.zeros(120, np.float32), classes=FASHION)   # names for other sizes are not used
    assert fmv.classes is None


def test_a_flattened_vector_is_shown_as_the_maps_it_came_from(fmv):
    maps = np.random.default_rng(0).standard_normal((16, 5, 5)).astype(np.float32)
    fmv.set_maps(maps.reshape(-1), "layer 6 · Flatten · 400", origin_shape=(16, 5, 5))
    fmv.flush()
    assert fmv.maps.shape == (16, 5, 5) and fmv.origin_shape == (16, 5, 5)
    np.testing.assert_array_equal(fmv.maps, maps)
    assert fmv.gap == 1
    r = fmv.tile_rect(3)
    _move(fmv.graphics, fmv.maps_vb, r.x() + 4.5, r.y() + 2.5)
    assert fmv.hover_info == ("map", 3, 2, 4, pytest.approx(float(maps[3, 2, 4])))
    text = fmv.status.text()
    assert f"value {3 * 25 + 2 * 5 + 4} of the flattened vector" in text and "from (3, 2, 4)" in text
    fmv.set_maps(maps.reshape(-1)[:399], origin_shape=(16, 5, 5))   # a shape that does not fit is ignored
    assert fmv.maps.shape == (399, 1, 1) and fmv.origin_shape is None


# ------------------------------------------------------------------ loss head
def _identity(seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(10).astype(np.float32)
    e = np.exp(z - z.max())
    formula = (e / e.sum()).astype(np.float32)
    formula[6] -= 1
    formula /= 64
    return (formula + rng.standard_normal(10).astype(np.float32) * 3e-9).astype(np.float32), formula


@pytest.mark.parametrize("width", [1600, 600, 360, 220])
def test_loss_head_axis_reads_class_names_at_every_width(qtbot, width):
    view = _widget(qtbot, GradientView, (width, 420))
    a, b = _identity()
    view.set_identity(a, b, FASHION)
    view.flush()
    ticks = _ticks(view.diff_plot)
    assert ticks, "no class ticks"
    for i, text in ticks.items():
        assert not text.isdigit(), f"class {i} is labelled {text!r}, a number, at width {width}"
        assert FASHION[i].startswith(text.rstrip("…")), (i, text)
    if width >= 600:
        assert sorted(ticks) == list(range(10))


def test_softmax_standing_bars_read_class_names_when_narrow(qtbot):
    view = _widget(qtbot, SoftmaxView, (240, 300), orientation="vertical")
    view.set_distribution(np.full(10, 0.1, np.float32), classes=FASHION)
    view.flush()
    ticks = dict(view.tick_labels())
    assert ticks and all(FASHION[i].startswith(t.rstrip("…")) and not t.isdigit() for i, t in ticks.items())


def test_the_difference_axis_reads_in_its_own_units(qtbot):
    view = _widget(qtbot, GradientView, (800, 500))
    a, b = _identity()
    view.set_identity(a, b, FASHION)
    view.flush()
    QtWidgets.QApplication.processEvents()
    axis = view.diff_plot.getAxis("left")
    assert axis.autoSIPrefixScale == 1.0 and "×" not in axis.labelString() and "x0" not in axis.labelString()
    m = view.max_difference
    strings = axis.tickStrings([-m, 0.0, m], axis.autoSIPrefixScale, m)
    assert strings[1] == "0"
    for s, v in ((strings[0], -m), (strings[2], m)):
        assert float(s) == pytest.approx(v, rel=1e-2), (s, v)


def test_a_layer_name_is_not_markup_in_the_norms_reading(qtbot):
    view = _widget(qtbot, GradientView, (600, 420))
    view.set_norms(["0 <i>x", "1 ReLU"], [2.0, None], [0.1, None])
    view.tabs.setCurrentIndex(1)
    view.flush()
    assert _ticks(view.norms_plot) == {0: "0 <i>x"}
    _move(view.norms_graphics, view.norms_plot.getViewBox(), 0.0, 0.0)
    assert "0 &lt;i&gt;x" in view.norms_label.text()


# ------------------------------------------------------------------ the hub
class _Places:
    def add_view(self, widget, area="center", title=""):
        return QtWidgets.QWidget()

    def resizeDocks(self, docks, sizes, orientation):  # noqa: N802 - Qt's name
        pass


@pytest.fixture
def hub(qtbot):
    from cnnviz.app.runner.hub import ViewsHub
    from cnnviz.core.model import assets, files
    from cnnviz.core.shapes.inference import infer

    stack = files.load(next(p for p in assets.examples() if p.stem == "lenet5"))
    report = infer(stack)
    h = ViewsHub(SimpleNamespace(stack=stack), _Places())
    for view in (h.maps, h.grad_maps, h.gradient):
        qtbot.addWidget(view)
    h.set_report(stack, report)
    rng = np.random.default_rng(1)
    acts = tuple(rng.standard_normal(r.output_shape).astype(np.float32) for r in report.layers)
    norms = tuple(1.0 if r.type in ("Conv2d", "Linear") else None for r in report.layers)
    probe = SimpleNamespace(
        image=rng.random((1, 28, 28), np.float32), input_grad=rng.standard_normal((1, 28, 28)).astype(np.float32),
        activations=acts, activation_grads=acts, layer_labels=tuple(r.label for r in report.layers),
        softmax=np.full(10, 0.1, np.float32), log_softmax=np.full(10, np.log(0.1), np.float32),
        logits=np.zeros(10, np.float32), prediction=9, step=0, loss=2.3026,
        label=9, classes=tuple(FASHION), identities=None, weight_norms=norms, grad_norms=norms,
        index=0, label_name="Ankle boot", grad_layers=None, param_grads=True, inner_activations={},
        inner_grads={})
    h.show_snapshot(SimpleNamespace(error=None, probe=probe, target=SimpleNamespace(image=None), weights={},
                                    biases={}, normalization=None, health=None))
    return h, report


def test_hub_passes_class_names_flatten_shape_and_layer_indices(hub):
    h, _ = hub
    h.select("layer", 11)
    assert h.maps.classes == FASHION and h.grad_maps.classes == FASHION
    h.select("layer", 6)     # Flatten
    assert h.maps.origin_shape == (16, 5, 5) and h.maps.maps.shape == (16, 5, 5)
    assert h.grad_maps.origin_shape == (16, 5, 5)
    assert h.maps.classes is None
    h.select("layer", 7)     # a Linear's 120 outputs: neither
    assert h.maps.origin_shape is None and h.maps.classes is None
    assert h.gradient._norm_labels == ["0 Conv2d", "3 Conv2d", "7 Linear", "9 Linear", "11 Linear"]
