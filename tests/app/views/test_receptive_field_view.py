"""The receptive-field view: the heat map shown is the array given, the outlines are the fields, the caption
reads the numbers, the growth plot has one point per layer, and the boxes ask for a pixel."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QRectF

from cnnviz.app.views.receptive_field_view import ReceptiveFieldView, field_caption
from cnnviz.core.lab import receptive
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.shapes import infer
from tests.app.qt_helpers import move_to


@pytest.fixture
def rfv(qtbot):
    view = ReceptiveFieldView()
    qtbot.addWidget(view)
    view.resize(900, 520)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_the_heat_map_and_the_outlines_are_what_was_given(rfv):
    rng = np.random.default_rng(0)
    image = rng.random((3, 20, 24)).astype(np.float32)
    heat = (rng.random((20, 24)) ** 3).astype(np.float32)
    rfv.set_result(image, heat, theoretical=(2, 5, 13, 13), theoretical_size=(13, 13), effective=7,
                   square=receptive.Rect(5, 8, 7, 7))
    rfv.flush()
    assert not rfv.is_empty
    shown = rfv.shown_heat()
    assert shown.shape == (20, 24) and np.array_equal(shown, heat)
    assert rfv.shown_levels() == (0.0, pytest.approx(float(heat.max())))
    assert rfv.theoretical_outline() == QRectF(5, 2, 13, 13)   # x = left, y = top
    assert rfv.effective_outline() == QRectF(8, 5, 7, 7)
    assert rfv.caption.text().startswith("theoretical 13×13, effective (95 % of the gradient) 7×7.")
    assert "edge" not in rfv.caption.text()
    # The input is drawn full size (one image pixel per data unit, the whole image in range), not a thumbnail.
    (x0, x1), (y0, y1) = rfv.input_vb.viewRange()
    assert x0 <= 0 and x1 >= 24 and y0 <= 0 and y1 >= 20
    assert rfv.input_vb.width() > 0.4 * rfv.width()


def test_the_view_draws_the_cores_field_and_agrees_with_the_hover_outline(rfv, fmv):
    torch = pytest.importorskip("torch")
    from cnnviz.core.run import build

    stack = Stack(input=InputSpec(1, 16, 16), layers=(Layer("Conv2d", {"out_channels": 2, "kernel_size": 3}),
                                                      Layer("Conv2d", {"out_channels": 2, "kernel_size": 3,
                                                                       "stride": 2, "padding": 1}),
                                                      Layer("Conv2d", {"out_channels": 2, "kernel_size": 3,
                                                                       "dilation": 2})))
    report = infer(stack)
    model = build.build_model(stack, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.abs_().add_(0.05)
    image = torch.rand((1, 1, 16, 16)) + 0.1
    f = receptive.effective_field(model, image, 2, 1, 0, 2, report=report)
    rfv.set_layer("layer 2 · Conv2d", report.layers[2].output_shape)
    rfv.set_result(image[0].numpy(), f.map, theoretical=f.theoretical, theoretical_size=f.theoretical_size,
                   effective=f.extent, square=f.square, share=f.share)
    rfv.flush()
    assert np.array_equal(rfv.shown_heat(), f.map)
    fmv.set_input(np.zeros((1, 16, 16), np.float32))
    fmv.set_maps(np.zeros(report.layers[2].output_shape, np.float32))
    fmv.set_receptive_field(report.layers[2].receptive_field)
    assert rfv.theoretical_outline() == fmv.receptive_rect(0, 2)
    th, tw = report.layers[2].receptive_field.size
    assert (th, tw) == (13, 13) and (f.theoretical.height, f.theoretical.width) == (12, 13)
    assert f"theoretical {th}×{tw}, effective (95 % of the gradient) {f.extent}×{f.extent}." in rfv.caption.text()
    t = f.theoretical
    assert f"leaves {t.height}×{t.width} of the theoretical field inside it" in rfv.caption.text()
    assert 0 < f.extent <= 13


def test_the_caption_says_when_no_gradient_reaches_the_input():
    assert field_caption((5, 3), 0, 0.9) == ("theoretical 5×3, effective: no gradient reaches the input (this "
                                             "output does not depend on it for this sample).")
    assert field_caption(None, 4, 0.5).startswith("theoretical: unknown, effective (50 % of the gradient) 4×4.")


def test_a_heat_map_of_another_size_is_refused(rfv):
    with pytest.raises(ValueError, match="heat map"):
        rfv.set_result(np.zeros((1, 8, 8)), np.zeros((8, 9)))


def test_growth_has_one_point_per_layer(rfv):
    rfv.set_result(np.zeros((1, 8, 8)), np.zeros((8, 8)))
    rfv.set_growth(["conv", "relu", "pool", "flatten"], [(3, 3), (3, 3), (4, 4), None], [3, 3, None, None],
                   selected=2)
    rfv.flush()
    curves = rfv.growth_curves()
    xs, ys = curves["height"]
    assert list(xs) == [0, 1, 2, 3] and list(ys[:3]) == [3, 3, 4] and np.isnan(ys[3])
    assert "width" not in curves
    ex, ey = curves["effective"]
    assert list(ex) == [0, 1] and list(ey) == [3, 3]
    assert rfv._selected_line.isVisible() and rfv._selected_line.value() == 2
    assert rfv.growth_reading(0) == "conv: theoretical 3×3, effective 3×3"
    assert rfv.growth_reading(3) == "flatten: theoretical none"
    move_to(rfv.growth_graphics, rfv.plot.getViewBox(), 2.1, 2.0)
    assert rfv.plot.titleLabel.text == "pool: theoretical 4×4"
    rfv.set_growth(["a", "b"], [(3, 5), (5, 9)], [2, 4])
    rfv.flush()
    curves = rfv.growth_curves()
    assert list(curves["height"][1]) == [3, 5] and list(curves["width"][1]) == [5, 9]
    with pytest.raises(ValueError):
        rfv.set_growth(["a"], [(1, 1), (2, 2)])


def test_the_boxes_ask_for_the_pixel(rfv, qtbot):
    with qtbot.assertNotEmitted(rfv.requested):
        rfv.set_layer("layer 3", (4, 9, 7))
    assert rfv.pixel == (0, 4, 3)
    assert [rfv.boxes[n].maximum() for n in ("channel", "row", "column")] == [3, 8, 6]
    with qtbot.waitSignal(rfv.requested) as sig:
        rfv.boxes["row"].setValue(6)
    assert sig.args == [0, 6, 3]
    with qtbot.waitSignal(rfv.requested) as sig:
        rfv.choose(2, 1, 5)
    assert sig.args == [2, 1, 5]
    with qtbot.assertNotEmitted(rfv.requested):
        rfv.set_layer("layer 3 again", (4, 9, 7))   # the same shape keeps the pixel
    assert rfv.pixel == (2, 1, 5)


def test_clear_shows_the_message(rfv):
    rfv.set_result(np.zeros((1, 8, 8)), np.ones((8, 8)), theoretical=(0, 0, 3, 3), theoretical_size=(3, 3),
                   effective=3)
    rfv.flush()
    rfv.clear("Layer 5 (Flatten) has no maps")
    assert rfv.is_empty and rfv.hint_text == "Layer 5 (Flatten) has no maps"
    assert rfv.shown_heat() is None and rfv.theoretical_outline() is None
