"""What the overview's tests share: probes of the bundled examples, a shown view, its points on screen."""
from __future__ import annotations

from PySide6.QtCore import QPointF

from cnnviz.core.model import assets, files
from cnnviz.core.shapes import infer

_PROBES: dict[str, tuple] = {}


def probe_of(name: str, index: int = 0):
    """(stack, report, probe of held-out sample ``index``) of a bundled example, untrained (cached)."""
    key = f"{name}:{index}"
    if key not in _PROBES:
        from cnnviz.core.run import engine
        from cnnviz.core.run.training import ProbeRequest, take_probe

        stack = files.load(assets.path("examples", f"{name}.cnnviz"))
        session = engine.Session(stack, engine.config_with(stack.training, device="cpu"))
        _PROBES[key] = (stack, infer(stack), take_probe(session, ProbeRequest(index=index)))
    return _PROBES[key]


def show(view, name: str, selected: int | None = None, index: int = 0):
    _stack, report, probe = probe_of(name, index)
    view.set_report(report)
    view.set_probe(probe)
    view.set_selected(selected)
    view.flush()
    return report, probe


def scene_center(view, rect) -> QPointF:
    return rect.center()


def viewport_point(view, scene_point: QPointF):
    view.canvas.ensureVisible(scene_point.x() - 2, scene_point.y() - 2, 4, 4, 2, 2)
    return view.canvas.mapFromScene(scene_point)
