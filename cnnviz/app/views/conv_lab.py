"""The convolution lab: a Conv2d's, MaxPool2d's or AvgPool2d's window sliding over the layer's real input.

For the selected layer, the current sample and the current weights: the input grid of one input channel
with the padding the layer puts around it, the window with its dilation gaps moving by the stride, the
output grid filling in cell by cell, and the arithmetic of the current output cell (every tap's input,
weight and product, the bias and the sum) next to the value torch's forward pass gave. The arithmetic is
:mod:`cnnviz.core.lab.taps`' (the same as ``cnnviz explain``); what is drawn around it is
:mod:`.lab_steps`'. Play, pause, step, scrub and speed; a click on an output cell jumps to it; the pointer
over an input cell marks every output cell that reads it.

A frame is cheap: the grids are cached pixmaps (rebuilt when the data, the crop or the size change) and a
frame paints them with the window's few rectangles over them. An input too big to draw cell by cell is
shown as a crop around the window with a minimap of where it is.

The grids are :mod:`.conv_lab_canvas`'s, the taps' table :mod:`.conv_lab_taps`'.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views._common import VERMILION, ViewPanel, status_label, title_label
from cnnviz.app.views.conv_lab_canvas import LabCanvas
from cnnviz.app.views.conv_lab_taps import TapRows, TapsPanel
from cnnviz.app.views.lab_steps import cell_of, fmt, padded_channel, steps_of
from cnnviz.core.lab.taps import SPATIAL, Arithmetic, LabError, Window, taps_of, window_of

SPEEDS = (1, 2, 4, 8, 15, 30, 60, 120)  # output cells per second
FRAME_MS = 33       # at most about 30 frames per second
NUMBERS_HZ = 10     # while the window moves faster, its numbers are refreshed this often
TOLERANCE = 1e-5


def _plain(label: QtWidgets.QLabel) -> QtWidgets.QLabel:
    label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    return label


class ConvLabView(ViewPanel):
    """The convolution lab for one Conv2d, MaxPool2d or AvgPool2d layer and one sample.

    Data API (GUI thread):

    - ``set_layer(layer_type, resolved, x, out, weight=None, bias=None, *, formula=(), title="")``:
      ``resolved`` the layer's keywords as shape inference resolved them, ``x`` the (C, H, W) input the layer
      receives, ``out`` its (C_out, H_out, W_out) output from torch's forward pass, ``weight``/``bias`` a
      Conv2d's (``bias`` None without one), ``formula`` the report's output-size lines. The current cell and
      channel are kept when the geometry is the same (a new probe while training).
    - ``clear(message)``.
    - Animation: ``play()``, ``pause()``, ``step_forward()``, ``set_step(n)``, ``set_speed(cells_per_s)``,
      ``set_out_channel(c)``, ``set_in_channel(c)``, ``jump_to(y, x)``.

    Read back: ``arithmetic`` (the :class:`Arithmetic` shown), ``torch_value``, ``cell``, ``step``,
    ``window``, ``canvas`` (``input_rect``/``output_rect`` give where a cell is drawn).
    """

    EMPTY_HINT = "Select a Conv2d, MaxPool2d or AvgPool2d layer to see its window slide over its input"
    stepChanged = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.window: Window | None = None
        self.arithmetic: Arithmetic | None = None
        self.torch_value: float | None = None
        self.sum_text = ""
        self.step = 0
        self.out_channel = 0
        self.in_channel = 0
        self._type = ""
        self._params: dict[str, Any] = {}
        self._x: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._key: tuple | None = None
        self._speed = 4
        self._pending: tuple | None = None
        self._frame = 0
        self._numbers_behind = False

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(3)
        head = QtWidgets.QHBoxLayout()
        head.setSpacing(4)
        self._title = title_label(content)
        head.addWidget(self._title, 1)
        outer.addLayout(head)

        bar = QtWidgets.QHBoxLayout()
        bar.setSpacing(4)
        self.play_button = QtWidgets.QPushButton("Play", content)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Slide the window over the input, one output cell after another")
        self.play_button.toggled.connect(self._play_toggled)
        self.step_button = QtWidgets.QPushButton("Step", content)
        self.step_button.setToolTip("The next output cell")
        self.step_button.clicked.connect(self.step_forward)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, content)
        self.slider.setToolTip("Scrub: the output cell shown, row by row")
        self.slider.valueChanged.connect(self.set_step)
        self.speed_box = QtWidgets.QComboBox(content)
        for s in SPEEDS:
            self.speed_box.addItem(f"{s} cells/s", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(self._speed))
        self.speed_box.setToolTip("How fast the window moves while playing")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        self.out_box = QtWidgets.QSpinBox(content)
        self.out_box.setPrefix("out channel ")
        self.out_box.valueChanged.connect(self.set_out_channel)
        self.in_box = QtWidgets.QComboBox(content)
        self.in_box.setToolTip("The input channel drawn (the taps of every input channel the output reads are listed)")
        self.in_box.currentIndexChanged.connect(self._in_chosen)
        for w in (self.play_button, self.step_button):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.speed_box)
        head.addWidget(self.out_box)   # the channels beside the title, so that neither row is wide
        head.addWidget(self.in_box)
        outer.addLayout(bar)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, content)
        left = QtWidgets.QWidget(split)
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.canvas = LabCanvas(left)
        self.canvas.cellClicked.connect(self.jump_to)
        self.canvas.hovered.connect(self._hovered)
        self.canvas.left.connect(lambda: self.hover_label.setText(self._hover_hint()))
        lv.addWidget(self.canvas, 1)
        self.hover_label = status_label(left)
        lv.addWidget(self.hover_label)
        # the output-size formula and the special cases: beside the animation, scrolling in a small window
        texts = QtWidgets.QScrollArea(left)
        texts.setWidgetResizable(True)
        texts.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        texts.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QtWidgets.QWidget(texts)
        tv = QtWidgets.QVBoxLayout(inner)
        tv.setContentsMargins(0, 0, 0, 0)
        self.formula_label = _plain(QtWidgets.QLabel(inner))
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        tv.addWidget(self.formula_label)
        self.notes_label = _plain(QtWidgets.QLabel(inner))
        self.notes_label.setWordWrap(True)
        tv.addWidget(self.notes_label)
        tv.addStretch(1)
        texts.setWidget(inner)
        texts.setMaximumHeight(self.fontMetrics().lineSpacing() * 7 + 8)
        texts.setMinimumHeight(self.fontMetrics().lineSpacing() * 2 + 4)
        lv.addWidget(texts)

        right = QtWidgets.QWidget(split)
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.cell_label = _plain(QtWidgets.QLabel(right))
        font = self.cell_label.font()
        font.setBold(True)
        self.cell_label.setFont(font)
        self.cell_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        rv.addWidget(self.cell_label)
        self.taps_panel = TapsPanel(right)
        rv.addWidget(self.taps_panel, 1)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)   # the numbers as wide as they need, the grids the rest
        split.setChildrenCollapsible(False)
        outer.addWidget(split, 1)
        self._set_content(content)

        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)

    # ================================================================ data
    def set_layer(self, layer_type: str, resolved: Mapping[str, Any], x: np.ndarray | None, out: np.ndarray | None,
                  weight: np.ndarray | None = None, bias: np.ndarray | None = None, *,
                  formula: Sequence[str] = (), title: str = "", has_bias: bool | None = None) -> None:
        """Show the layer (see the class's docstring); a clear message instead of anything that cannot work."""
        if not self.isVisible():  # drawn when the tab is shown: a probe while training costs nothing here
            self._pending = (layer_type, resolved, x, out, weight, bias, tuple(formula), title, has_bias)
            return
        self._pending = None
        self._apply(layer_type, resolved, x, out, weight, bias, tuple(formula), title, has_bias)

    def flush(self) -> None:
        """Apply a layer set while hidden."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._apply(*pending)

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self.flush()

    def clear(self, message: str | None = None) -> None:
        self.pause()
        self._pending = None
        self._key = None
        self.window = None
        self.arithmetic = None
        super().clear(message)

    def _apply(self, layer_type, resolved, x, out, weight, bias, formula, title, has_bias) -> None:
        if layer_type not in SPATIAL:
            self.clear(f"{title or layer_type} has no sliding window: select a Conv2d, MaxPool2d or AvgPool2d "
                       f"layer (a Linear's arithmetic is in the Dense lab)")
            return
        if x is None or out is None or np.ndim(x) != 3 or np.ndim(out) != 3:
            self.clear(f"{title or layer_type}: no input or output for this sample yet (run a forward pass)")
            return
        if layer_type == "Conv2d" and weight is None:
            self.clear(f"{title or layer_type}: reading the weights…")
            return
        try:
            win = window_of(layer_type, resolved, np.shape(x))
        except (LabError, KeyError, ValueError, TypeError) as exc:
            self.clear(f"{title or layer_type}: {exc}")
            return
        if tuple(win.out_shape) != tuple(np.shape(out)):
            self.clear(f"{title or layer_type}: the output torch gave ({'×'.join(map(str, np.shape(out)))}) is not "
                       f"the one the keywords give ({'×'.join(map(str, win.out_shape))}); the stack changed")
            return
        if layer_type == "Conv2d":
            want = (win.out_shape[0], win.in_shape[0] // max(1, win.groups), *win.kernel)
            if tuple(np.shape(weight)) != want:
                self.clear(f"{title or layer_type}: weights {'×'.join(map(str, np.shape(weight)))} do not fit "
                           f"(expected {'×'.join(map(str, want))})")
                return
            if bias is None and (has_bias if has_bias is not None else bool(resolved.get("bias", True))):
                self.clear(f"{title or layer_type}: reading the bias…")
                return
        if steps_of(win) == 0:
            self.clear(f"{title or layer_type}: the output has no cells")
            return
        key = (layer_type, tuple(sorted((k, str(v)) for k, v in resolved.items())), np.shape(x))
        same = key == self._key
        self._key = key
        self._type, self._params = layer_type, dict(resolved)
        self._x, self._out = np.asarray(x, dtype=np.float32), np.asarray(out, dtype=np.float32)
        self._weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        self._bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.window = win
        self._title.setText(title)
        self.taps_panel.set_columns(46 if layer_type == "Conv2d" else 36)
        if not same:
            self.step, self.out_channel = 0, 0
        n = steps_of(win)
        self.step = min(self.step, n - 1)
        self.out_channel = min(self.out_channel, win.out_shape[0] - 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(self.step)
        self.slider.blockSignals(False)
        self.out_box.blockSignals(True)
        self.out_box.setRange(0, win.out_shape[0] - 1)
        self.out_box.setValue(self.out_channel)
        self.out_box.blockSignals(False)
        self.formula_label.setText("\n".join(formula) if formula else "")
        self._fill_in_channels(keep=same)
        self._show_content()
        self._set_grids()
        self._show_cell()

    def _fill_in_channels(self, keep: bool) -> None:
        chans = list(self.window.in_channels_of(self.out_channel))
        if not keep or self.in_channel not in chans:
            self.in_channel = chans[0]
        self.in_box.blockSignals(True)
        self.in_box.clear()
        for c in chans:
            self.in_box.addItem(f"input channel {c}", c)
        self.in_box.setCurrentIndex(chans.index(self.in_channel))
        self.in_box.setVisible(self.window.type == "Conv2d" and len(chans) > 1)
        self.in_box.blockSignals(False)
        self.notes_label.setText(self._notes())

    def _set_grids(self) -> None:
        win = self.window
        grid = padded_channel(win, self._x[self.in_channel])
        _c, h, w = win.in_shape
        pad = win.padding
        padded = "" if not any(pad.values()) else (
            f", padding {pad['top']}/{pad['bottom']} rows, {pad['left']}/{pad['right']} columns"
            + ("" if win.padding_mode in ("zeros", "-inf") else f" ({win.padding_mode})"))
        self.canvas.set_data(win, grid, self._out[self.out_channel],
                             (f"input channel {self.in_channel} · {h}×{w}{padded}",
                              f"output channel {self.out_channel} · {win.out_shape[1]}×{win.out_shape[2]}"))
        self.hover_label.setText(self._hover_hint())

    def _hover_hint(self) -> str:
        return "Point at an input cell: the output cells that read it. Click an output cell: jump there."

    def _notes(self) -> str:
        win = self.window
        notes = []
        span = tuple(win.dilation[a] * (win.kernel[a] - 1) + 1 for a in range(2))
        if win.dilation != (1, 1):
            notes.append(f"dilation {win.dilation[0]}×{win.dilation[1]}: the {win.kernel[0]}×{win.kernel[1]} kernel "
                         f"covers {span[0]}×{span[1]}, with gaps between its taps")
        if win.pad_before != win.pad_after:
            notes.append(f"padding='same' with an even span: torch pads {win.pad_before[0]} row(s) on top and "
                         f"{win.pad_after[0]} below, {win.pad_before[1]} column(s) left and {win.pad_after[1]} right "
                         f"(the extra one goes after)")
        if win.ceil_mode:
            for a, name in ((0, "rows"), (1, "columns")):
                size = win.in_shape[1 + a]
                floor_n = (size + 2 * win.pad_before[a] - span[a]) // win.stride[a] + 1
                n = win.out_shape[1 + a]
                if n > floor_n:
                    start = (n - 1) * win.stride[a] - win.pad_before[a]
                    notes.append(f"ceil_mode along the {name}: {n} windows, not {floor_n}; the extra one starts at "
                                 f"{start}, inside the input or its left padding as torch requires, and is clipped "
                                 f"at the end of the padding (crossed cells are not read)")
                elif n < (size + 2 * win.pad_before[a] - span[a] + win.stride[a] - 1) // win.stride[a] + 1:
                    notes.append(f"ceil_mode along the {name}: the last window would start in the right padding, "
                                 f"so torch drops it ({n} windows)")
        unread = int(win.unread().sum())
        if unread:
            notes.append(f"{unread} input pixel(s) no window reaches (shaded): the stride does not divide")
        if win.type == "Conv2d" and win.groups > 1:
            chans = win.in_channels_of(self.out_channel)
            notes.append(f"groups={win.groups}: output channel {self.out_channel} reads input channels "
                         f"{chans.start}..{chans.stop - 1} only")
        if win.type == "MaxPool2d" and any(win.pad_before):
            notes.append("MaxPool2d pads with −∞: padding never wins")
        if win.type == "AvgPool2d":
            if win.divisor_override is not None:
                notes.append(f"divisor_override={win.divisor_override}: every window divides by it")
            elif not win.count_include_pad:
                notes.append("count_include_pad=False: a window divides by its real pixels only")
        return "\n".join(notes)

    # ================================================================ the current cell
    def _show_cell(self, full: bool = True) -> None:
        """Show the current cell. ``full=False`` (a fast animation's in-between frames): the window and the
        output grid only; the numbers, which nobody reads at 30 cells a second, follow at 10 a second and
        whenever the animation stops."""
        win = self.window
        oy, ox = cell_of(win, self.step)
        at = (self.out_channel, oy, ox)
        self._numbers_behind = not full
        if not full and self._type == "Conv2d":
            self.canvas.set_cell(self.step, None)
            self._sync_slider()
            self.stepChanged.emit(self.step)
            return
        try:
            arith = taps_of(self._type, self._params, self._x, at, weight=self._weight, bias=self._bias)
        except (LabError, ValueError, IndexError) as exc:
            self.clear(f"{self._title.text()}: {exc}")
            return
        self.arithmetic = arith
        self.torch_value = float(self._out[at])
        argmax = None
        if arith.argmax is not None:
            t = arith.taps[arith.argmax]
            argmax = (t.y, t.x) if t.channel == self.in_channel else None
        self.canvas.set_cell(self.step, argmax)
        if full:
            self.cell_label.setText(f"output [{self.out_channel}, {oy}, {ox}] · cell {self.step + 1} of {steps_of(win)}")
            self.sum_text = self._sum_text(arith)
            header, lines, marks = self._rows(arith)
            self.taps_panel.set_rows(header, lines, self.sum_text.split("\n"), marks)
        self._sync_slider()
        self.stepChanged.emit(self.step)

    def _sync_slider(self) -> None:
        if self.slider.value() != self.step:
            self.slider.blockSignals(True)
            self.slider.setValue(self.step)
            self.slider.blockSignals(False)

    @staticmethod
    def _rows(a: Arithmetic) -> tuple[str, TapRows, dict[int, str]]:
        conv = a.type == "Conv2d"
        header = f"{'ch':>3} {'y':>3} {'x':>3} {'input':>10}" + (f" {'weight':>10} {'product':>10}" if conv else "")
        marks = {a.argmax: VERMILION} if a.argmax is not None else {}
        return header, TapRows(a), marks

    def _sum_text(self, a: Arithmetic) -> str:
        lines = []
        if a.type == "Conv2d":
            lines.append(f"sum of {len(a.taps)} products".ljust(22) + fmt(a.total))
            lines.append("bias".ljust(22) + (fmt(a.bias) if a.has_bias else "(bias=False)"))
            lines.append("value = sum + bias".ljust(22) + fmt(a.value))
        elif a.type == "MaxPool2d":
            lines.append(f"max of {len(a.taps)} inputs".ljust(22) + fmt(a.value))
            if a.argmax is not None:
                t = a.taps[a.argmax]
                lines.append(f"at channel {t.channel}, y {t.y}, x {t.x}")
                lines.append("return_indices gives".ljust(22) + str(a.return_index) + f"  (= {t.y}·W + {t.x})")
            else:
                lines.append(f"every tap is padding: −∞ (return_indices gives {a.return_index})")
        else:
            lines.append(f"sum of {len(a.taps)} inputs".ljust(22) + fmt(a.total))
            lines.append("divisor".ljust(22) + f"{a.divisor}  ({self._divisor_why()})")
            lines.append(f"value = sum / {a.divisor}".ljust(22) + fmt(a.value))
        lines.append("torch's value".ljust(22) + fmt(self.torch_value))
        diff = abs(float(self.torch_value) - float(a.value)) if math.isfinite(a.value) else float("nan")
        if math.isnan(diff):
            same = (a.value == self.torch_value) or (math.isnan(a.value) and math.isnan(self.torch_value))
            lines.append("difference".ljust(22) + ("none (the same infinity)" if same else "not comparable (nan or inf)"))
        else:
            ok = diff <= TOLERANCE * max(1.0, abs(float(self.torch_value)))
            lines.append("difference".ljust(22) + f"{diff:.1e}" + (" ✓ float32" if ok else " ✗ differ"))
        return "\n".join(lines)

    def _divisor_why(self) -> str:
        win = self.window
        if win.divisor_override is not None:
            return "divisor_override"
        return "taps incl. padding" if win.count_include_pad else "real pixels only"

    # ================================================================ controls
    def set_step(self, step: int) -> None:
        if self.window is None:
            return
        step = int(min(max(step, 0), steps_of(self.window) - 1))
        if step == self.step and self.arithmetic is not None:
            return
        self.step = step
        self._show_cell()

    def step_forward(self) -> None:
        if self.window is None:
            return
        self.set_step((self.step + 1) % steps_of(self.window))

    def jump_to(self, y: int, x: int) -> None:
        if self.window is None:
            return
        self.set_step(int(y) * self.window.out_shape[2] + int(x))

    def set_out_channel(self, channel: int) -> None:
        if self.window is None or not 0 <= channel < self.window.out_shape[0]:
            return
        if channel != self.out_channel:
            self.out_channel = int(channel)
            if self.out_box.value() != channel:
                self.out_box.blockSignals(True)
                self.out_box.setValue(channel)
                self.out_box.blockSignals(False)
            self._fill_in_channels(keep=True)
            self._set_grids()
            self._show_cell()

    def set_in_channel(self, channel: int) -> None:
        if self.window is None or channel not in self.window.in_channels_of(self.out_channel):
            return
        if channel != self.in_channel:
            self.in_channel = int(channel)
            i = self.in_box.findData(channel)
            if i >= 0 and self.in_box.currentIndex() != i:
                self.in_box.blockSignals(True)
                self.in_box.setCurrentIndex(i)
                self.in_box.blockSignals(False)
            self._set_grids()
            self._show_cell()

    def _in_chosen(self, i: int) -> None:
        data = self.in_box.itemData(i)
        if data is not None:
            self.set_in_channel(int(data))

    def set_speed(self, cells_per_s: float) -> None:
        self._speed = max(0.1, float(cells_per_s))
        if self.timer.isActive():
            self.timer.start(self._interval())

    def _interval(self) -> int:
        return int(max(FRAME_MS, 1000 / self._speed))

    def _tick(self) -> None:
        if self.window is None:
            self.pause()
            return
        per_tick = max(1, round(self._speed * self._interval() / 1000))
        self._frame += 1
        self.step = (self.step + per_tick) % steps_of(self.window)
        self._show_cell(full=self._speed <= NUMBERS_HZ or self._frame % round(1000 / FRAME_MS / NUMBERS_HZ) == 0)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def play(self) -> None:
        if self.window is None:
            return
        if not self.play_button.isChecked():
            self.play_button.setChecked(True)  # → _play_toggled
        elif not self.timer.isActive():
            self.timer.start(self._interval())

    def pause(self) -> None:
        self.timer.stop()
        if self._numbers_behind and self.window is not None:
            self._show_cell()
        if self.play_button.isChecked():
            self.play_button.blockSignals(True)
            self.play_button.setChecked(False)
            self.play_button.blockSignals(False)
        self.play_button.setText("Play")

    def _play_toggled(self, on: bool) -> None:
        if on and self.window is not None:
            self.timer.start(self._interval())
            self.play_button.setText("Pause")
        else:
            self.pause()

    def hideEvent(self, event: QtGui.QHideEvent) -> None:
        super().hideEvent(event)
        self.pause()  # no frames for a tab nobody sees

    # ================================================================ hover
    def _hovered(self, y: int, x: int) -> None:
        mask = self.canvas.reader_mask
        n = int(mask.sum()) if mask is not None else 0
        h, w = self.window.in_shape[1:]
        where = f"input ({y}, {x})" if 0 <= y < h and 0 <= x < w else f"padding at ({y}, {x})"
        g = self.canvas.grid
        v = float(g.values[y - g.y0, x - g.x0])
        cells = ", ".join(f"({r}, {c})" for r, c in list(zip(*np.nonzero(mask)))[:8]) if n else ""
        more = f" and {n - 8} more" if n > 8 else ""
        self.hover_label.setText(f"{where} = {fmt(v)}: read by {n} output cell{'s' if n != 1 else ''}"
                                 + (f": {cells}{more}" if n else ""))
        self.hover_label.setToolTip(tooltip(self.hover_label.text()))
