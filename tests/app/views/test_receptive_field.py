"""Journey 3: the receptive field and the kernel's footprint, shown for the selected layer."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cnnviz.app.sidebar.details import _wrapped_formula, kernel_footprint, layer_html  # noqa: E402
from cnnviz.app.views.mosaic import tile_origin  # noqa: E402
from cnnviz.core import shapes  # noqa: E402
from cnnviz.core.model import assets, files
from cnnviz.core.run import build
from tests.app.qt_helpers import move_to as _move  # noqa: E402  (moves the pointer to a point of a view's data)

DILATION = files.load(assets.path("examples", "dilation-demo.cnnviz"))


def test_footprint_grid_shows_the_dilated_taps():
    report = shapes.infer(DILATION)
    title, grid = kernel_footprint(report.layers[4])
    assert "3×3 taps spanning 9×9 pixels" in title
    rows = grid.splitlines()
    assert len(rows) == 9 and all(len(r.split()) == 9 for r in rows)
    taps = [(y, x) for y, r in enumerate(rows) for x, c in enumerate(r.split()) if c == "■"]
    assert taps == [(y, x) for y in (0, 4, 8) for x in (0, 4, 8)]
    assert kernel_footprint(report.layers[1]) is None  # ReLU has no kernel
    assert "footprint" in layer_html(DILATION, report, 4)


def test_formula_is_split_into_the_rule_and_its_numbers():
    line = shapes.infer(DILATION).layers[4].formula[0]
    rule, numbers = _wrapped_formula(line).splitlines()
    assert rule == "H_out = ⌊(H + 2p − d·(k−1) − 1) / s⌋ + 1"
    assert numbers.strip().startswith("= ⌊(32 + 2·4") and numbers.rstrip().endswith("4 after)")


def _empirical_field(stack, layer, y, x):
    """The input rows and columns whose gradient reaches output pixel (y, x) of ``layer`` (torch)."""
    model = build.build_model(stack, seed=0).eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
    image = torch.ones(1, *stack.input.shape, requires_grad=True)
    out = image
    for m in list(model)[:layer + 1]:
        out = m(out)
    out[0, 0, y, x].backward()
    hit = image.grad[0].abs().sum(0) > 0
    rows, cols = np.nonzero(hit.numpy())
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("layer, y, x", [(4, 16, 16), (4, 0, 5), (6, 10, 3)])
def test_hovering_a_map_pixel_outlines_the_input_pixels_it_sees(fmv, layer, y, x):
    report = shapes.infer(DILATION)
    maps = np.zeros(report.layers[layer].output_shape, np.float32)
    fmv.set_input(np.zeros(DILATION.input.shape, np.float32))
    fmv.set_maps(maps)
    fmv.flush()
    fmv.set_receptive_field(report.layers[layer].receptive_field)
    rect = fmv.receptive_rect(y, x)
    top, bottom, left, right = _empirical_field(DILATION, layer, y, x)
    assert (int(rect.top()), int(rect.bottom()) - 1, int(rect.left()), int(rect.right()) - 1) == (
        top, bottom, left, right)
    ox, oy = tile_origin(0, maps.shape[1:], fmv.grid[1], fmv.gap)
    _move(fmv.graphics, fmv.maps_vb, ox + x + 0.5, oy + y + 0.5)
    assert fmv._rf_item.isVisible() and fmv._rf_item.rect() == rect
    assert f"sees input rows {top}–{bottom}, columns {left}–{right}" in fmv.status.text()


def test_no_outline_without_a_receptive_field(fmv):
    fmv.set_input(np.zeros((1, 8, 8), np.float32))
    fmv.set_maps(np.zeros((2, 8, 8), np.float32))
    fmv.flush()
    fmv.set_receptive_field(None)
    assert fmv.receptive_rect(3, 3) is None
