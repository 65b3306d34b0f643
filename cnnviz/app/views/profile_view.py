"""The *Profile* tab: one training step measured layer by layer (:mod:`cnnviz.core.run.profile`).

It shows a :class:`~cnnviz.core.run.profile.Profile` as ``cnnviz profile`` prints it: a header (device,
batch, the whole step and its parts, the sum of the layers' times beside it and what the difference
means, peak memory where torch counts it) over a sortable table, one row per layer at every depth
and one per block (bold; a block's layers indented under it). The *Share of step* column draws
each row's forward + backward time as a bar of the step's. Byte columns show the measured figure,
the analytic one in their tooltip. *Copy as JSON* copies what ``cnnviz profile --json`` prints.

The view measures nothing itself: *Profile* emits ``profileRequested(batch_size)`` and *Cancel*
``cancelRequested()`` (:class:`~cnnviz.app.runner.profiling.Profiling` runs it on the run's worker, at its
next step boundary: training waits while the profile runs, so nothing else shares the device);
``set_running``, ``set_progress``, ``set_profile`` and ``show_error`` tell it what happened. Clicking a row emits
``layerActivated(index)`` with the index of the stack's own layer the row is, or is inside (and
``pathActivated(path)`` with the row's own path). Text
from the stack (its name, layer names) is shown as plain text. No torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app import plain_text
from cnnviz.app.views._common import BLUE, GREEN, ORANGE, VERMILION, ViewPanel
from cnnviz.core.model.text import one_line
from cnnviz.core.model.units import format_bytes
from cnnviz.core.shapes import fmt_shape

if TYPE_CHECKING:
    from cnnviz.core.run.profile import LayerProfile, Profile

ERROR_TEXT = QtGui.QColor("#B3261E")
WARNING_TEXT = QtGui.QColor("#8A5300")

COLUMNS = ("Path", "Layer", "Output shape", "Forward ms", "Backward ms", "Share of step", "MACs", "GMAC/s",
           "Params", "Activations", "Saved", "Memory", "Flags")
PATH, LAYER, SHAPE, FORWARD, BACKWARD, SHARE, MACS, RATE, PARAMS, ACTIVATIONS, SAVED, MEMORY, FLAGS = \
    range(len(COLUMNS))
NUMERIC = frozenset({FORWARD, BACKWARD, SHARE, MACS, RATE, PARAMS, ACTIVATIONS, SAVED, MEMORY})
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
"""The value a column sorts by (numbers for numbers; the file order for the path)."""
SHARE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2
"""A row's forward + backward time over the step's, for the bar."""
SEGMENTS_ROLE = QtCore.Qt.ItemDataRole.UserRole + 3
"""A bar's parts as fractions of the cell, in order (time: forward, backward; memory: parameters,
activations, saved), for :class:`SegmentsDelegate`."""
TIME_COLOURS = (BLUE, ORANGE)                 # forward, backward
MEMORY_COLOURS = (GREEN, BLUE, VERMILION)     # parameters, activations, saved for backward
LAYER_ROLE = QtCore.Qt.ItemDataRole.UserRole
INDENT = "    "
MAX_BATCH = 1 << 16
RUNNING_TEXT = "Profiling…"
WAITS_NOTE = "Training waits while the profile runs."


def _size(n: int) -> str:
    return format_bytes(n) if n else "0"


def layer_name(layer: LayerProfile) -> str:
    """``label (Type)``, or the type alone when the layer has no name of its own; on one line."""
    return layer.type if layer.label == layer.type else f"{one_line(layer.label)} ({layer.type})"


def flags_in_words(layer: LayerProfile) -> list[str]:
    """What a row's flags say, disagreements with the analytic figures first."""
    words = list(layer.flags)
    if layer.block:
        words.append("block: its layers together, merge included")
    if not layer.input_grad and layer.backward_ms == 0:
        words.append("no backward: nothing before it trains")
    if layer.shares_input:
        words.append("output shares its input's storage")
    return words


def header_lines(p: Profile) -> list[str]:
    """The header: what was run where, the whole step, the sum of the layers beside it, memory."""
    threads = f", {p.threads} thread{'s' if p.threads != 1 else ''}" if p.device == "cpu" else ""
    parts = p.step_parts
    lines = [
        (f"{one_line(p.name)} on {p.device} ({one_line(p.device_name)}{threads}), batch {p.batch_size}, "
         f"{p.optimizer}: median of {p.repeats} runs after {p.warmup} warm-up, device synchronised"),
        (f"Training step: {p.step_ms:.3f} ms (timed part by part: forward {parts.get('forward', 0):.3f}, "
         f"loss {parts.get('loss', 0):.3f}, backward {parts.get('backward', 0):.3f}, "
         f"optimizer {parts.get('optimizer', 0):.3f} ms)"),
    ]
    ratio = p.overhead_ratio
    sum_line = f"Sum of the layers, each measured alone: {p.layers_sum_ms:.3f} ms"
    if ratio is not None:
        sum_line += f" ({ratio:.2f}× the step): "
        sum_line += ("the step does work no layer owns (the loss, the optimizer, autograd's bookkeeping)"
                     if ratio < 1 else
                     "measuring layers one by one (launches, synchronisations) costs more than they do together")
    lines.append(sum_line)
    memory = (f"Saved for backward in one step: {_size(p.saved_bytes_total)} measured, "
              f"{_size(p.analytic_saved_bytes_total)} estimated")
    if p.peak_allocated_bytes is not None:
        memory += f"  ·  peak allocated during one step: {_size(p.peak_allocated_bytes)}"
    else:
        memory += f"  ·  peak memory not measured on {p.device} (torch counts allocations on CUDA only)"
    lines.append(memory)
    return lines


class ProfileModel(QtCore.QAbstractTableModel):
    """One row per :class:`~cnnviz.core.run.profile.LayerProfile` of a Profile, in its order."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._profile: Profile | None = None

    @property
    def profile(self) -> Profile | None:
        return self._profile

    def set_profile(self, profile: Profile | None) -> None:
        self.beginResetModel()
        self._profile = profile
        self.endResetModel()

    def layer(self, row: int) -> LayerProfile | None:
        if self._profile is None or not 0 <= row < len(self._profile.layers):
            return None
        return self._profile.layers[row]

    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() or self._profile is None else len(self._profile.layers)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,  # noqa: N802
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != QtCore.Qt.Orientation.Horizontal:
            return None
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
            return int(_alignment(section))
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            return _HEADER_TIPS.get(section)
        return None

    def share(self, layer: LayerProfile) -> float | None:
        step = self._profile.step_ms if self._profile is not None else 0.0
        return (layer.forward_ms + layer.backward_ms) / step if step > 0 else None

    @staticmethod
    def memory(layer: LayerProfile) -> int:
        """What the row holds in a step: its parameters, its output and what autograd saves for its backward."""
        return layer.param_bytes + layer.activation_bytes + layer.saved_bytes

    def segments(self, layer: LayerProfile, col: int) -> tuple[float, ...] | None:
        """The bar of a Share (forward, backward over the step) or Memory cell (parameters, activations,
        saved, over the largest row's memory, so rows compare)."""
        if self._profile is None:
            return None
        if col == SHARE:
            step = self._profile.step_ms
            return (layer.forward_ms / step, layer.backward_ms / step) if step > 0 else None
        if col == MEMORY:
            most = max((self.memory(r) for r in self._profile.layers), default=0)
            if most <= 0:
                return None
            return tuple(b / most for b in (layer.param_bytes, layer.activation_bytes, layer.saved_bytes))
        return None

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        layer = self.layer(index.row()) if index.isValid() else None
        if layer is None:
            return None
        col = index.column()
        roles = QtCore.Qt.ItemDataRole
        if role == roles.DisplayRole:
            return self._text(layer, col)
        if role == SORT_ROLE:
            return self._sort_key(index.row(), layer, col)
        if role == SHARE_ROLE and col == SHARE:
            return self.share(layer)
        if role == SEGMENTS_ROLE:
            return self.segments(layer, col)
        if role == roles.ToolTipRole:
            return self._tooltip(layer, col)
        if role == roles.TextAlignmentRole:
            return int(_alignment(col))
        if role == roles.FontRole and layer.block:
            font = QtGui.QFont()
            font.setBold(True)
            return font
        if role == roles.ForegroundRole and col == FLAGS and layer.flags:
            return QtGui.QBrush(WARNING_TEXT)
        if role == LAYER_ROLE:
            return layer
        return None

    def _text(self, layer: LayerProfile, col: int) -> str:
        if col == PATH:
            return layer.path
        if col == LAYER:
            return INDENT * layer.depth + layer_name(layer)
        if col == SHAPE:
            return fmt_shape(layer.output_shape)
        if col == FORWARD:
            return f"{layer.forward_ms:.3f}"
        if col == BACKWARD:
            return f"{layer.backward_ms:.3f}" if layer.backward_ms or layer.input_grad else "—"
        if col == SHARE:
            share = self.share(layer)
            return f"{100 * share:.1f} %" if share is not None else ""
        if col == MACS:
            return f"{layer.macs:,}"
        if col == RATE:
            rate = layer.gmacs_per_s
            return f"{rate:.2f}" if rate is not None else ""
        if col == PARAMS:
            return _size(layer.param_bytes)
        if col == ACTIVATIONS:
            return _size(layer.activation_bytes)
        if col == SAVED:
            return _size(layer.saved_bytes)
        if col == MEMORY:
            return _size(self.memory(layer))
        if col == FLAGS:
            return "; ".join(flags_in_words(layer))
        return ""

    def _sort_key(self, row: int, layer: LayerProfile, col: int) -> Any:
        if col == PATH:
            return row
        if col == LAYER:
            return layer_name(layer).casefold()
        if col == SHAPE:
            return list(layer.output_shape)
        if col == FORWARD:
            return layer.forward_ms
        if col == BACKWARD:
            return layer.backward_ms
        if col == SHARE:
            return layer.forward_ms + layer.backward_ms
        if col == MACS:
            return layer.macs
        if col == RATE:
            return layer.gmacs_per_s or 0.0
        if col == PARAMS:
            return layer.param_bytes
        if col == ACTIVATIONS:
            return layer.activation_bytes
        if col == SAVED:
            return layer.saved_bytes
        if col == MEMORY:
            return self.memory(layer)
        return len(layer.flags)

    def _tooltip(self, layer: LayerProfile, col: int) -> str | None:
        if col in (PATH, LAYER):
            return plain_text.tooltip(f"layer {layer.path}: {layer_name(layer)}"
                                      + ("\nthe block run on its own: its layers and its merge" if layer.block else ""))
        if col == BACKWARD and not (layer.backward_ms or layer.input_grad):
            return "No backward: no layer before it trains, so a step needs no gradient here"
        if col == SHARE:
            return (f"forward {layer.forward_ms:.3f} ms (blue) + backward {layer.backward_ms:.3f} ms (orange) "
                    f"of this row, each measured alone, over the whole training step")
        if col == MEMORY:
            return (f"parameters {_size(layer.param_bytes)} (green) + output {_size(layer.activation_bytes)} "
                    f"(blue) + saved for backward {_size(layer.saved_bytes)} (red); the bar is over the "
                    f"largest row's")
        if col == RATE:
            return "multiply-accumulates × batch / forward time, in 10⁹ a second"
        if col == PARAMS:
            return f"measured {_size(layer.param_bytes)}\nanalytic {_size(layer.analytic_param_bytes)} (float32)"
        if col == ACTIVATIONS:
            view = "\nits output is a view of its input: no new memory" if layer.shares_input else ""
            return (f"measured {_size(layer.activation_bytes)} (the output tensor)\n"
                    f"analytic {_size(layer.analytic_activation_bytes)} (float32 output × batch){view}")
        if col == SAVED:
            return (f"measured {_size(layer.saved_bytes)} (kept by autograd for backward, each storage once, "
                    f"parameters apart)\nanalytic {_size(layer.analytic_saved_bytes)} (memory.py's model)\n"
                    f"parameters autograd also keeps: {_size(layer.saved_param_bytes)}")
        if col == FLAGS:
            text = "\n".join(flags_in_words(layer))
            return text or None
        return None


_HEADER_TIPS = {
    FORWARD: "median forward time of the layer run alone on its recorded input, device synchronised",
    BACKWARD: "median backward time of the layer run alone (— where a step has no backward there)",
    SHARE: "forward (blue) + backward (orange) over the whole step's time",
    MACS: "multiply-accumulates per sample (the summary's)",
    SAVED: "what autograd keeps for this layer's backward; a storage two layers save is in both rows",
    MEMORY: "parameters (green) + output (blue) + saved for backward (red), the bar over the largest row's",
}


def _alignment(col: int) -> QtCore.Qt.AlignmentFlag:
    horizontal = QtCore.Qt.AlignmentFlag.AlignRight if col in NUMERIC else QtCore.Qt.AlignmentFlag.AlignLeft
    return horizontal | QtCore.Qt.AlignmentFlag.AlignVCenter


class SegmentsDelegate(QtWidgets.QStyledItemDelegate):
    """A cell's text over a bar of parts (``SEGMENTS_ROLE``: fractions of the cell's width, one colour each):
    the Share of step split into forward and backward, the Memory into parameters, output and saved."""

    def __init__(self, colours: tuple[str, ...], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._colours = tuple(QtGui.QColor(c) for c in colours)
        for c in self._colours:
            c.setAlpha(120)

    def paint(self, painter: QtGui.QPainter, option: QtWidgets.QStyleOptionViewItem,
              index: QtCore.QModelIndex) -> None:
        super().paint(painter, option, index)
        parts = index.data(SEGMENTS_ROLE)
        if not parts:
            return
        rect = option.rect.adjusted(2, 3, -2, -3)
        x = float(rect.left())
        end = rect.left() + rect.width()
        painter.save()
        for fraction, colour in zip(parts, self._colours):
            width = rect.width() * min(1.0, max(0.0, float(fraction)))
            if width <= 0:
                continue
            right = min(end, x + width)
            painter.fillRect(QtCore.QRectF(x, rect.top(), right - x, rect.height()), colour)
            x = right
        painter.restore()


class ProfileView(ViewPanel):
    """The Profile tab; see the module docstring."""

    EMPTY_HINT = ("Profile times one training step of the network layer by layer on the run's device: "
                  "forward and backward milliseconds and the memory each layer takes. It can be asked for "
                  "while training: training waits while the profile runs")
    profileRequested = QtCore.Signal(int)   # the batch size
    cancelRequested = QtCore.Signal()
    layerActivated = QtCore.Signal(int)     # the index of the stack's own layer
    pathActivated = QtCore.Signal(str)      # the row's own path ("3.body.1"), for a window that selects inside blocks

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ProfileModel(self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)

        bar = QtWidgets.QHBoxLayout()
        self.profile_button = QtWidgets.QPushButton("Profile", content)
        self.profile_button.setToolTip("Time one training step layer by layer on the run's device, at this "
                                       "batch size. Training waits while the profile runs, then carries on")
        self.profile_button.clicked.connect(lambda: self.profileRequested.emit(self.batch_size))
        bar.addWidget(self.profile_button)
        batch_label = QtWidgets.QLabel("Batch", content)
        bar.addWidget(batch_label)
        self.batch = QtWidgets.QSpinBox(content)
        self.batch.setRange(1, MAX_BATCH)
        self.batch.setValue(64)
        self.batch.setAccelerated(True)
        self.batch.setToolTip("Samples in the profiled batch (the training block's by default)")
        batch_label.setBuddy(self.batch)
        bar.addWidget(self.batch)
        self.progress = QtWidgets.QProgressBar(content)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        bar.addWidget(self.progress, 1)
        self.cancel_button = QtWidgets.QPushButton("Cancel", content)
        self.cancel_button.setToolTip("Stop profiling at its next measurement; training carries on")
        self.cancel_button.clicked.connect(self.cancelRequested.emit)
        self.cancel_button.hide()
        bar.addWidget(self.cancel_button)
        bar.addStretch(0)
        self.copy_button = QtWidgets.QPushButton("Copy as JSON", content)
        self.copy_button.setToolTip("Copy what `cnnviz profile --json` prints for this profile")
        self.copy_button.clicked.connect(self.copy_json)
        self.copy_button.setEnabled(False)
        bar.addWidget(self.copy_button)
        outer.addLayout(bar)

        self.message = self._plain_label(content)
        self.message.setText(self.EMPTY_HINT)
        outer.addWidget(self.message)
        self.header = self._plain_label(content)
        self.header.hide()
        outer.addWidget(self.header)

        self.table = QtWidgets.QTableView(content)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(PATH, QtCore.Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setItemDelegateForColumn(SHARE, SegmentsDelegate(TIME_COLOURS, self.table))
        self.table.setItemDelegateForColumn(MEMORY, SegmentsDelegate(MEMORY_COLOURS, self.table))
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        self.table.clicked.connect(self._on_clicked)
        outer.addWidget(self.table, 1)
        self._set_content(content)
        self._show_content()   # the controls are there from the start; the message line holds the hint
        self.copy_action = QtGui.QAction("Copy as JSON", self)
        self.copy_action.triggered.connect(self.copy_json)
        self.copy_action.setEnabled(False)

    @staticmethod
    def _plain_label(parent: QtWidgets.QWidget) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(parent)
        label.setTextFormat(QtCore.Qt.TextFormat.PlainText)   # the stack's names are data, never markup
        label.setWordWrap(True)
        label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        return label

    # ------------------------------------------------------------ data API
    @property
    def profile(self) -> Profile | None:
        return self.model.profile

    @property
    def batch_size(self) -> int:
        return int(self.batch.value())

    def set_batch_size(self, n: int) -> None:
        """The batch the next profile asks for (the training block's, an out-of-memory suggestion)."""
        self.batch.setValue(max(1, min(MAX_BATCH, int(n))))

    @property
    def is_empty(self) -> bool:
        return self.model.profile is None

    def set_profile(self, profile: Profile | None) -> None:
        """Show ``profile`` (None: back to the hint)."""
        self.set_running(False)
        self.model.set_profile(profile)
        if profile is None:
            self.header.hide()
            self._say(self.EMPTY_HINT)
        else:
            self.header.setText("\n".join(header_lines(profile)))
            self.header.show()
            self._say("")
            for col in range(FLAGS):
                self.table.resizeColumnToContents(col)
                self.table.setColumnWidth(col, self.table.columnWidth(col) + 12)
            self.table.setColumnWidth(SHARE, max(self.table.columnWidth(SHARE), 110))
        self.copy_button.setEnabled(profile is not None)
        self.copy_action.setEnabled(profile is not None)

    def set_running(self, running: bool, *, waits: bool = False) -> None:
        """A profile is (or is no longer) being measured: progress and Cancel in place of Profile; with
        ``waits``, on the run's worker, and the line says that training waits for it."""
        self.profile_button.setEnabled(not running)
        self.batch.setEnabled(not running)
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)   # busy until the first progress says how many rows there are
            self._say(f"{RUNNING_TEXT} {WAITS_NOTE}" if waits else RUNNING_TEXT)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, int(total)))
        self.progress.setValue(max(0, min(int(done), int(total))))

    def show_message(self, text: str) -> None:
        """A plain line above the table (why profiling is refused, that it was cancelled)."""
        self.set_running(False)
        self._say(text)

    def show_error(self, message: str) -> None:
        """Profiling failed: the error's sentence, in the error colour; the last profile stays below it."""
        self.set_running(False)
        self._say(message, error=True)

    @property
    def message_text(self) -> str:
        return self.message.text()

    def clear(self, message: str | None = None) -> None:
        self.set_profile(None)
        if message:
            self._say(message)

    def profile_json(self) -> str:
        """The JSON ``cnnviz profile --json`` prints for the profile shown ("" when none)."""
        profile = self.model.profile
        return profile.json_text() if profile is not None else ""

    def copy_json(self) -> None:
        text = self.profile_json()
        if text:
            QtGui.QGuiApplication.clipboard().setText(text)

    # ------------------------------------------------------------ internals
    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        pal = self.message.palette()
        pal.setColor(QtGui.QPalette.ColorRole.WindowText,
                     ERROR_TEXT if error else self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        self.message.setPalette(pal)

    def row_layer(self, view_row: int) -> LayerProfile | None:
        """The layer shown in the table's row ``view_row`` (after sorting)."""
        source = self.proxy.mapToSource(self.proxy.index(view_row, 0))
        return self.model.layer(source.row()) if source.isValid() else None

    def _on_clicked(self, index: QtCore.QModelIndex) -> None:
        layer = self.row_layer(index.row())
        if layer is not None:
            self.layerActivated.emit(layer.top_index)
            self.pathActivated.emit(layer.path)
