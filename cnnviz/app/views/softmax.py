"""The network's class probabilities for one sample: a bar per class, the true class marked."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PySide6 import QtWidgets

from cnnviz.app.views._common import BLUE, GREEN, GREY, VERMILION, ViewPanel, make_throttler, title_label
from cnnviz.app.views.caption_line import SEPARATOR, CaptionLine, Segment
from cnnviz.app.views.class_bars import ClassBars
from cnnviz.app.views.levels import fmt_value

LOG_FLOOR = -100.0   # where log-probabilities of exactly 0 are drawn
LOG_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)   # the log axis's lower ends, times a power of ten


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

    The chart is a :class:`ClassBars` (``graphics``) and the caption a :class:`CaptionLine`, both painted
    by hand: a probe while training costs the GUI thread (and, through the GIL, the training thread) a
    fraction of a millisecond, and never lays out the window.
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
        self._probs: np.ndarray | None = None
        self._log_probs: np.ndarray | None = None
        self._true: int | None = None
        self._classes: list[str] = []
        self._log = False
        self._hover: int | None = None

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
        self.graphics = ClassBars(content, self.PRED_BRUSH, self.OTHER_BRUSH, self.TRUE_PEN)
        self.graphics.setMinimumSize(160, 120)
        self.graphics.hovered.connect(self._on_hover)
        outer.addWidget(self.graphics, 1)
        self.caption = CaptionLine(content)
        outer.addWidget(self.caption)
        self._set_content(content)

        self._throttle = make_throttler(self, self._render)

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
        """The class with the largest probability (None before data or when none is finite)."""
        p = self._probs
        if p is None:
            return None
        i = int(p.argmax())
        if math.isfinite(p[i]):
            return i   # (argmax stops at the first NaN: there is none, and no infinity either)
        return int(np.nanargmax(p)) if np.isfinite(p).any() else None

    @property
    def true_class(self) -> int | None:
        return self._true

    def bar_heights(self) -> np.ndarray:
        """The bars' lengths as drawn (probabilities, or log-probabilities in log mode)."""
        return self.graphics.values

    def bar_positions(self) -> np.ndarray:
        """Where the bars stand on the class axis: class i at i."""
        return np.arange(self.graphics.values.size)

    def bar_colours(self) -> list[str]:
        """Each bar's fill colour as drawn, by name ("#0072b2" for the predicted class)."""
        return self.graphics.bar_colours()

    def outlined_class(self) -> int | None:
        """The class whose bar is outlined (the true class, as drawn)."""
        return self.graphics.outlined

    def marker_at(self) -> tuple[int, float] | None:
        """(class, value) where the true class's triangle sits: above every bar, or right of it when they lie."""
        return self.graphics.marker

    def tick_labels(self) -> list[tuple[int, str]]:
        """The class axis's labels as (class index, text)."""
        return self.graphics.tick_labels()

    def value_range(self) -> tuple[float, float]:
        """(lo, hi) of the value axis as drawn."""
        return self.graphics.value_range

    @property
    def horizontal(self) -> bool:
        """True when the bars lie down, names on the left (a narrow view), False when they stand up."""
        return self.graphics.horizontal

    # ------------------------------------------------------------ drawing
    def _values(self) -> np.ndarray:
        assert self._probs is not None and self._log_probs is not None
        if not self._log:
            return self._probs
        return np.where(np.isneginf(self._log_probs), LOG_FLOOR, self._log_probs).astype(np.float32)

    def _value_range(self, values: np.ndarray) -> tuple[tuple[float, float], float]:
        """The value axis's span and where the true class's marker sits on it.

        Probabilities span 0..1.12, the marker at 1.06 above every bar (p ≤ 1): it moves only with the class.
        Log-probabilities span from a bit below the smallest, rounded down to -1, -1.5, -2, -3, -5 or -7
        times a power of ten (the axis is painted again only when the smallest crosses one of those, not at
        every probe), to a little above 0.
        """
        if not self._log:
            return (0.0, 1.12), 1.06
        finite = values[np.isfinite(values)]
        lo = -min(float(finite.min()) if finite.size else -1.0, -1.0) * 1.04
        power = 10.0 ** math.floor(math.log10(lo))
        lo = -next(m * power for m in LOG_STEPS if m * power >= lo * (1 - 1e-9))
        return (lo, -lo * 0.12), -lo * 0.06

    def _render(self) -> None:
        if self._probs is None:
            return
        values = self._values()
        value_range, marker_at = self._value_range(values)
        pred = self.predicted
        self.graphics.set_bars(values, self._classes, pred, self._true, value_range, marker_at,
                               self._horizontal(value_range))
        self._update_caption(pred)

    def _horizontal(self, value_range: tuple[float, float]) -> bool:
        """Bars lie down (names on the left) when the names would not fit under vertical bars."""
        if self.orientation != "auto":
            return self.orientation == "horizontal"
        room = self.graphics.class_room(self._classes, value_range)
        widest, enough = self.graphics.name_room(self._classes)
        return room < min(widest, enough) and len(self._classes) <= 40

    def _name(self, i: int) -> str:
        """Class ``i``'s name (the caption escapes it in its rich text: a folder's name is not markup)."""
        return self._classes[i] if i < len(self._classes) else str(i)

    def _update_caption(self, pred: int | None) -> None:
        """The class under the pointer with this probe's p and log p while it hovers over one; else the
        predicted class ``pred`` and the true one, ✓ when they agree."""
        assert self._probs is not None and self._log_probs is not None
        hover = self._hover if self._hover is not None and self._hover < self._probs.size else None
        if hover is not None:
            self.caption.set_segments([
                (self._name(hover), True, None),
                (f": p = {fmt_value(float(self._probs[hover]))}, log p = {fmt_value(float(self._log_probs[hover]))}",
                 False, None)])
            return
        parts: list[Segment] = []
        if pred is not None:
            parts += [("predicted ", False, None), (self._name(pred), True, None),
                      (f" ({self._probs[pred] * 100:.1f} %)", False, None)]
        if self._true is not None:
            if parts:
                parts.append((SEPARATOR, False, None))
            ok = pred == self._true
            parts += [("◀" if self.graphics.horizontal else "▼", False, GREEN), (" true ", False, None),
                      (self._name(self._true), True, None), (f" ({self._probs[self._true] * 100:.1f} %) ", False, None),
                      ("✓", False, GREEN) if ok else ("✗", False, VERMILION)]
        self.caption.set_segments(parts)

    def _on_hover(self, hover: int | None) -> None:
        if hover != self._hover:
            self._hover = hover
            if self._probs is not None:
                self._update_caption(self.predicted)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._probs is not None and self.orientation == "auto":
            self._throttle.throttle()   # the bars may lie down, or stand up again
