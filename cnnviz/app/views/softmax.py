"""The network's class probabilities for one sample: a bar per class, the true class marked."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from cnnviz.app.plain_text import escaped
from cnnviz.app.views._common import (
    BLUE,
    GREEN,
    GREY,
    VERMILION,
    GridLines,
    ViewPanel,
    class_ticks,
    graphics_widget,
    make_throttler,
    palette_colors,
    settle,
    status_label,
    style_axes,
    title_label,
)
from cnnviz.app.views.levels import fmt_value

LOG_FLOOR = -100.0   # where log-probabilities of exactly 0 are drawn


class SoftmaxView(ViewPanel):
    """Bars of softmax(z) over the classes, or log_softmax(z) with the log switch.

    Data API (GUI thread):

    - ``set_distribution(probs, log_probs=None, true_class=None, classes=None)``:
      ``probs`` is softmax(z) for one sample (K values); ``log_probs`` is
      log_softmax(z), computed as log(probs) when not given (less exact for tiny
      probabilities); ``true_class`` is the label's index or None;
      ``classes`` are K names (class numbers when None).
    - ``set_log(on)``: show log_softmax instead of softmax (also the checkbox).
    - ``clear(message)``.

    The predicted (largest) class is filled in blue, the true class outlined in
    green with a triangle marker at its bar; the caption under the plot says both.
    Class names go under the bars; when the view is too narrow for them
    (``orientation="auto"``) the bars lie down with the names on the left.
    """

    EMPTY_HINT = "Run a forward pass to see the class probabilities"
    PRED_BRUSH = BLUE
    OTHER_BRUSH = GREY
    TRUE_PEN = GREEN

    def __init__(self, parent: QtWidgets.QWidget | None = None, orientation: str = "auto") -> None:
        super().__init__(parent)
        if orientation not in ("auto", "vertical", "horizontal"):
            raise ValueError(f"orientation must be 'auto', 'vertical' or 'horizontal', not {orientation!r}")
        self.orientation = orientation
        self._is_horizontal = False
        self._probs: np.ndarray | None = None
        self._log_probs: np.ndarray | None = None
        self._true: int | None = None
        self._classes: list[str] = []
        self._log = False
        self._ticks_key: tuple | None = None
        self._styles_key: tuple | None = None
        self._marker_at: tuple | None = None
        self._styles_made: tuple[list, list] = ([], [])

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(2)
        header = QtWidgets.QHBoxLayout()
        self._title = title_label(content)
        self._title.setText("softmax(z)")
        header.addWidget(self._title, 1)
        self.log_box = QtWidgets.QCheckBox("log (log_softmax)", content)
        self.log_box.setToolTip("Show log_softmax(z): small probabilities become readable")
        self.log_box.toggled.connect(self.set_log)
        header.addWidget(self.log_box)
        outer.addLayout(header)
        self.graphics = graphics_widget(content)
        self.graphics.setMinimumSize(160, 120)
        outer.addWidget(self.graphics, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.RichText)
        outer.addWidget(self.caption)
        self._set_content(content)

        self.plot = pg.PlotItem(enableMenu=False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        style_axes(self.plot, self)
        self._grid = GridLines(self.plot, "left")
        self.graphics.addItem(self.plot)
        self.bars = pg.BarGraphItem(x=[0], height=[0], width=0.75)
        self.plot.addItem(self.bars)
        self.true_marker = pg.ScatterPlotItem(symbol="t", size=13, brush=pg.mkBrush(GREEN), pen=pg.mkPen(None))
        self.plot.addItem(self.true_marker)
        self._zero_line = pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(palette_colors(self)[1], width=1))
        self.plot.addItem(self._zero_line)

        self._throttle = make_throttler(self, self._render)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._hover: int | None = None

    # ------------------------------------------------------------ API
    def set_distribution(self, probs: np.ndarray, log_probs: np.ndarray | None = None,
                         true_class: int | None = None, classes: Sequence[str] | None = None) -> None:
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if p.size == 0:
            raise ValueError("probs is empty")
        if log_probs is None:
            with np.errstate(divide="ignore"):
                lp = np.log(p)
        else:
            lp = np.asarray(log_probs, dtype=np.float32).reshape(-1)
            if lp.shape != p.shape:
                raise ValueError(f"log_probs has {lp.size} values but probs has {p.size}")
        if classes is not None and len(classes) != p.size:
            raise ValueError(f"{len(classes)} class names for {p.size} probabilities")
        if true_class is not None and not 0 <= int(true_class) < p.size:
            raise ValueError(f"true class {true_class} is outside 0..{p.size - 1}")
        self._probs, self._log_probs = p, lp
        self._true = None if true_class is None else int(true_class)
        self._classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(p.size)]
        self._show_content()
        self._throttle.throttle()

    def set_log(self, on: bool) -> None:
        on = bool(on)
        if self.log_box.isChecked() != on:
            self.log_box.setChecked(on)  # re-enters through toggled
            return
        self._log = on
        self._title.setText("log_softmax(z)" if on else "softmax(z)")
        if self._probs is not None:
            self._throttle.throttle()

    def flush(self) -> None:
        self._throttle.flush()

    def clear(self, message: str | None = None) -> None:
        self._probs = self._log_probs = None
        self._true = None
        super().clear(message)

    # ------------------------------------------------------------ readings
    @property
    def log_mode(self) -> bool:
        return self._log

    @property
    def predicted(self) -> int | None:
        """The class with the largest probability (None before data or when all are NaN)."""
        if self._probs is None or not np.isfinite(self._probs).any():
            return None
        return int(np.nanargmax(self._probs))

    @property
    def true_class(self) -> int | None:
        return self._true

    def bar_heights(self) -> np.ndarray:
        """The bars' lengths as drawn (probabilities, or log-probabilities in log mode)."""
        return np.asarray(self.bars.opts["width" if self._is_horizontal else "height"])

    @property
    def horizontal(self) -> bool:
        """True when the bars lie down, names on the left (a narrow view), False when they stand up."""
        return self._is_horizontal

    # ------------------------------------------------------------ drawing
    def _values(self) -> np.ndarray:
        assert self._probs is not None and self._log_probs is not None
        if not self._log:
            return self._probs
        return np.where(np.isneginf(self._log_probs), LOG_FLOOR, self._log_probs).astype(np.float32)

    def _render(self) -> None:
        if self._probs is None:
            return
        k = self._probs.size
        values = self._values()
        pred = self.predicted
        brushes, pens = self._styles(k, pred, self._true)
        pos = np.arange(k, dtype=np.float32)
        horizontal = self._horizontal()
        if horizontal != self._is_horizontal:
            self._set_orientation(horizontal)
        if horizontal:
            self.bars.setOpts(x=None, x0=0, y=pos, width=values, height=0.75, brushes=brushes, pens=pens)
        else:
            self.bars.setOpts(x=pos, x0=None, y=None, y0=0, height=values, width=0.75, brushes=brushes, pens=pens)
        finite = values[np.isfinite(values)]
        if self._log:
            lo = min(float(finite.min()) if finite.size else -1.0, -1.0)
            value_range, marker_at = (lo * 1.04, -lo * 0.12), -lo * 0.06
        else:
            value_range, marker_at = (0.0, 1.12), 1.06   # above every bar (p ≤ 1): it moves only with the class
        class_range = (-0.6, k - 0.4)
        if horizontal:
            self.plot.setRange(xRange=value_range, yRange=class_range, padding=0)
        else:
            self.plot.setRange(xRange=class_range, yRange=value_range, padding=0)
        self._zero_line.setAngle(90 if horizontal else 0)
        if self._true is not None:
            spot = ([marker_at], [self._true]) if horizontal else ([self._true], [marker_at])
            if spot != self._marker_at:   # a probe while training changes the bars, not the marker
                self._marker_at = spot
                self.true_marker.setData(*spot)
            self.true_marker.show()
        else:
            self.true_marker.hide()
        self._update_ticks()
        self._update_caption()
        settle(self.plot)   # one paint per redraw, not two

    def _styles(self, k: int, pred: int | None, true: int | None) -> tuple[list, list]:
        """The bars' brushes (the predicted class's own) and pens (the true class outlined), made once per
        (classes, predicted, true): a probe usually changes neither."""
        key = (k, pred, true)
        if self._styles_key != key:
            self._styles_key = key
            pred_brush, other = pg.mkBrush(self.PRED_BRUSH), pg.mkBrush(self.OTHER_BRUSH)
            true_pen, none = pg.mkPen(self.TRUE_PEN, width=3), pg.mkPen(None)
            self._styles_made = ([pred_brush if i == pred else other for i in range(k)],
                                 [true_pen if i == true else none for i in range(k)])
        return self._styles_made

    def _horizontal(self) -> bool:
        """Bars lie down (names on the left) when the names would not fit under vertical bars."""
        if self.orientation != "auto":
            return self.orientation == "horizontal"
        fm = self.fontMetrics()
        room = self._room_per_class()
        widest = max((fm.horizontalAdvance(c) for c in self._classes), default=0)
        return room < min(widest, fm.horizontalAdvance("Abcdef")) and len(self._classes) <= 40

    def _room_per_class(self) -> float:
        """Pixels of axis per class when the bars stand up."""
        width = 0.0 if self._is_horizontal else self.plot.getViewBox().width()
        if width < 10:  # not laid out yet, or the bars lie down: estimate from the widget
            width = self.graphics.width() - 50
        return max(width, 1) / max(len(self._classes), 1) - 3

    def _set_orientation(self, horizontal: bool) -> None:
        self._is_horizontal = horizontal
        self._ticks_key = None
        self.plot.invertY(horizontal)
        self.true_marker.setSymbol("t3" if horizontal else "t")
        self._grid.set_axis("bottom" if horizontal else "left")
        self.plot.getAxis("left" if horizontal else "bottom").setTicks(None)
        self.plot.getAxis("bottom" if horizontal else "left").setTicks(None)

    def _update_ticks(self) -> None:
        k = len(self._classes)
        horizontal = self._is_horizontal
        room = self._room_per_class()
        key = (tuple(self._classes), round(room), horizontal)
        if key == self._ticks_key:
            return
        self._ticks_key = key
        fm = self.fontMetrics()
        elide = QtCore.Qt.TextElideMode.ElideRight
        axis = self.plot.getAxis("left" if horizontal else "bottom")
        if horizontal:
            rows = max(self.graphics.height() - 40, 1) / max(fm.height(), 1)
            every = max(1, math.ceil(k / max(rows, 1)))
            ticks = [(i, fm.elidedText(self._classes[i], elide, 140)) for i in range(0, k, every)]
        else:
            ticks = class_ticks(fm, self._classes, room)
        axis.setTicks([ticks])

    def _name(self, i: int) -> str:
        """Class ``i``'s name for the rich-text caption (escaped: a folder's name is not markup)."""
        return escaped(self._classes[i]) if i < len(self._classes) else str(i)

    def _update_caption(self, hover: int | None = None) -> None:
        assert self._probs is not None and self._log_probs is not None
        pred = self.predicted
        parts = []
        if pred is not None:
            parts.append(f"predicted <b>{self._name(pred)}</b> ({self._probs[pred] * 100:.1f} %)")
        if self._true is not None:
            ok = pred == self._true
            mark = f"<span style='color:{GREEN}'>✓</span>" if ok else f"<span style='color:{VERMILION}'>✗</span>"
            arrow = "◀" if self._is_horizontal else "▼"
            parts.append(f"<span style='color:{GREEN}'>{arrow}</span> true <b>{self._name(self._true)}</b> "
                         f"({self._probs[self._true] * 100:.1f} %) {mark}")
        if hover is not None:
            parts = [f"<b>{self._name(hover)}</b>: p = {fmt_value(float(self._probs[hover]))}, "
                     f"log p = {fmt_value(float(self._log_probs[hover]))}"]
        self.caption.setText("  ·  ".join(parts))

    def _on_mouse_moved(self, pos: QtCore.QPointF) -> None:
        if self._probs is None:
            return
        vb = self.plot.getViewBox()
        hover = None
        if vb.sceneBoundingRect().contains(pos):
            p = vb.mapSceneToView(pos)
            x = p.y() if self._is_horizontal else p.x()
            i = int(round(x))
            if 0 <= i < self._probs.size and abs(x - i) <= 0.4:
                hover = i
        if hover != self._hover:
            self._hover = hover
            self._update_caption(hover)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._probs is not None:
            self._ticks_key = None
            self._throttle.throttle()
