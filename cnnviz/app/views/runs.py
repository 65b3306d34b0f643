"""The Runs panel: every recorded training run, and two of them compared.

The table lists the records of the runs folder (:func:`~cnnviz.core.run.run_store.list_runs`: newest
first; a file that cannot be used is listed with the reason). Selecting one shows its curves and
confusion matrix; selecting two overlays their loss and accuracy curves (each run its colour, a
legend), puts their confusion matrices side by side with the cells whose counts differ framed, and
says what differs between their stacks and training settings. *Open* asks the window to load the
run's stack and settings as a new document (:attr:`RunsView.reopenRequested`, and
:attr:`RunsView.openRequested` with the record's path); *Delete* removes the selected records once
``ask`` says yes; *Refresh* reads the folder again (only the records that changed are read).

Everything read from a record is data: table cells and the difference are plain text, the legend's
and tooltips' text is escaped. GUI thread; no torch.
"""
from __future__ import annotations

import datetime
import html
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.plain_text import tooltip
from cnnviz.app.views._common import (
    BLUE,
    ORANGE,
    VERMILION,
    ViewPanel,
    graphics_widget,
    label_style,
    make_throttler,
    status_label,
    style_axes,
)
from cnnviz.app.views.confusion import ConfusionView
from cnnviz.core.run import records, run_store

log = logging.getLogger("cnnviz.views")

COLOURS = (BLUE, ORANGE)
COLUMNS = ("Started", "Stack", "Steps", "Accuracy", "Size", "Status", "File")
REFRESH_MS = 2000
"""After a record is written, the list is read again at most this often, and only while the panel is shown."""
RECORDS_KEPT = 4
"""The records last selected are kept read (the list itself holds only summaries)."""

Ask = Callable[[str, str], bool]


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _started(entry: run_store.RunEntry) -> str:
    text = entry.started
    try:
        when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    if entry.modified:
        return datetime.datetime.fromtimestamp(entry.modified).strftime("%Y-%m-%d %H:%M:%S")
    return "—"


def _one_line(text: str, limit: int = 120) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _status(entry: run_store.RunEntry) -> str:
    if entry.problem is not None:
        return f"unreadable: {_one_line(entry.problem, 200)}"
    if entry.error:
        return f"failed: {_one_line(entry.error)}"
    return "finished" if entry.finished else "unfinished"


def changed_cells(a, b) -> list[tuple[int, int]] | None:
    """The (true, predicted) cells whose counts differ; None when the matrices are not of the same classes."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        return None
    return [(int(t), int(p)) for t, p in zip(*np.nonzero(a != b))]


class RunsView(ViewPanel):
    """See the module docstring. ``folder`` is the runs folder; ``ask(title, question)`` answers Delete's
    question (the window's dialogs; a test's script)."""

    EMPTY_HINT = "No training run recorded yet: press Train, and each run appears here"
    openRequested = QtCore.Signal(object)           # the record's path
    reopenRequested = QtCore.Signal(object, object)  # the record's Stack (with its settings) and TrainingConfig
    message = QtCore.Signal(str)                     # one sentence for the status bar (a delete that failed)
    listed = QtCore.Signal()                         # the table shows the folder as just read
    _found = QtCore.Signal(object)                   # from the listing thread: the entries

    def __init__(self, folder: str | Path, ask: Ask, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self._ask = ask
        self._cache: dict = {}   # the listing thread's alone (one listing at a time)
        self._records: OrderedDict = OrderedDict()
        self.entries: list[run_store.RunEntry] = []
        self._shown: list[tuple[run_store.RunEntry, records.RunRecord]] = []
        self._listing = False
        self._again = False
        self._lock = threading.Lock()
        self._found.connect(self._listed_there)

        content = QtWidgets.QWidget(self)
        outer = QtWidgets.QVBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 2)
        outer.setSpacing(4)
        buttons = QtWidgets.QHBoxLayout()
        self.refresh_button = QtWidgets.QPushButton("Refresh", content)
        self.refresh_button.setToolTip("Read the runs folder again")
        self.refresh_button.clicked.connect(lambda _=False: self.refresh())
        self.open_button = QtWidgets.QPushButton("Open", content)
        self.open_button.setToolTip("Open the selected run's stack and training settings as a new document")
        self.open_button.clicked.connect(lambda _=False: self.open_selected())
        self.delete_button = QtWidgets.QPushButton("Delete", content)
        self.delete_button.setToolTip("Delete the selected run records")
        self.delete_button.clicked.connect(lambda _=False: self.delete_selected())
        self.folder_label = QtWidgets.QLabel(content)
        self.folder_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.folder_label.setForegroundRole(QtGui.QPalette.ColorRole.PlaceholderText)
        buttons.addWidget(self.folder_label, 1)
        for b in (self.refresh_button, self.open_button, self.delete_button):
            buttons.addWidget(b)
        outer.addLayout(buttons)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, content)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS), split)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        split.addWidget(self.table)

        compare = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, split)
        self.graphics = graphics_widget(compare)
        self.graphics.setMinimumSize(200, 160)
        style = label_style(self)
        self.loss_plot = self.graphics.addPlot(row=0, col=0)
        self.acc_plot = self.graphics.addPlot(row=1, col=0)
        for plot, name in ((self.loss_plot, "loss"), (self.acc_plot, "accuracy")):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            style_axes(plot, self)
            plot.getAxis("left").setLabel(name, **style)
        self.acc_plot.getAxis("bottom").setLabel("step", **style)
        self.acc_plot.setXLink(self.loss_plot)
        self.acc_plot.setYRange(0, 1, padding=0.02)
        self.legend = self.loss_plot.addLegend(offset=(-10, 10))
        compare.addWidget(self.graphics)
        matrices = QtWidgets.QWidget(compare)
        row = QtWidgets.QHBoxLayout(matrices)
        row.setContentsMargins(0, 0, 0, 0)
        self.confusions = (ConfusionView(matrices), ConfusionView(matrices))
        for view in self.confusions:
            view.evaluate_button.hide()
            view.empty_button.hide()
            view.clear("No confusion matrix: the run ended before a held-out evaluation")
            row.addWidget(view)
        self._marks = tuple(self._mark_item(view) for view in self.confusions)
        self.confusions[1].hide()
        compare.addWidget(matrices)
        self.diff_text = QtWidgets.QPlainTextEdit(compare)
        self.diff_text.setReadOnly(True)
        self.diff_text.setPlaceholderText("Select two runs to see what differs between them")
        compare.addWidget(self.diff_text)
        compare.setSizes([400, 400, 250])
        split.addWidget(compare)
        split.setSizes([180, 420])
        outer.addWidget(split, 1)
        self.caption = status_label(content)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        outer.addWidget(self.caption)
        self._set_content(content)
        self._show_content()

        self.loss_curves: list[pg.PlotDataItem] = []
        self.acc_curves: list[pg.PlotDataItem] = []
        self.eval_curves: list[pg.PlotDataItem] = []
        self._changed: list[tuple[int, int]] | None = []
        self._refresh = make_throttler(self, self.refresh, REFRESH_MS)
        self._refresh.throttle()   # the folder is first read when the panel is first shown

    # ------------------------------------------------------------ the list
    def refresh_soon(self, *_) -> None:
        """A record was written: read the folder again soon (at most every REFRESH_MS, only when shown)."""
        self._refresh.throttle()

    def refresh(self, sync: bool = False) -> None:
        """Read the folder again, on a thread of its own (``sync``: here, now), keeping the selection of the
        records still there; :attr:`listed` when the table shows it."""
        if sync:
            self._show_entries(self._read_folder())
            return
        if self._listing:
            self._again = True
            return
        self._listing = True
        threading.Thread(target=self._list, name="cnnviz runs list", daemon=True).start()

    def _list(self) -> None:
        try:
            entries = self._read_folder()
        except Exception:
            log.exception("listing the runs failed")
            entries = None
        try:
            self._found.emit(entries)
        except RuntimeError:
            pass   # the panel is gone

    def _read_folder(self) -> list[run_store.RunEntry]:
        with self._lock:
            return run_store.list_runs(self.folder, self._cache, keep_records=False)

    def _listed_there(self, entries) -> None:
        self._listing = False
        if self._again:
            self._again = False
            self.refresh()
        if entries is not None:
            self._show_entries(entries)

    def _show_entries(self, entries: list[run_store.RunEntry]) -> None:
        selected = {e.path for e in self.selected_entries()}
        self.entries = entries
        self.folder_label.setText(f"{len(self.entries):,} run{'s' if len(self.entries) != 1 else ''} in "
                                  f"{self.folder}")
        self.table.blockSignals(True)
        try:
            self.table.setRowCount(len(self.entries))
            for r, entry in enumerate(self.entries):
                acc = "—" if entry.accuracy is None else f"{100 * entry.accuracy:.1f}%"
                steps = "—" if entry.steps is None else f"{entry.steps:,}"
                stack = _one_line(entry.stack_name) if entry.readable else "(unreadable)"
                cells = (_started(entry), stack, steps, acc, _size(entry.size), _status(entry),
                         _one_line(entry.name, 200))
                for c, text in enumerate(cells):
                    item = QtWidgets.QTableWidgetItem(text)   # item text is never markup
                    if c in (2, 3, 4):
                        item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                    if c == 5 and entry.problem is not None:
                        item.setToolTip(tooltip(entry.problem))
                        item.setForeground(QtGui.QBrush(QtGui.QColor(VERMILION)))
                    self.table.setItem(r, c, item)
            self.table.clearSelection()
            mode = QtCore.QItemSelectionModel.SelectionFlag.Select | QtCore.QItemSelectionModel.SelectionFlag.Rows
            for r, entry in enumerate(self.entries):
                if entry.path in selected:
                    self.table.selectionModel().select(self.table.model().index(r, 0), mode)
        finally:
            self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        if not self.entries:
            self.caption.setText(self.EMPTY_HINT)
        self._selection_changed()
        self.listed.emit()

    def selected_entries(self) -> list[run_store.RunEntry]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()}) if self.table.model() else []
        return [self.entries[r] for r in rows if r < len(self.entries)]

    def select_rows(self, *rows: int) -> None:
        """Select these rows (tests, and the window after a run)."""
        self.table.clearSelection()
        mode = QtCore.QItemSelectionModel.SelectionFlag.Select | QtCore.QItemSelectionModel.SelectionFlag.Rows
        for r in rows:
            self.table.selectionModel().select(self.table.model().index(r, 0), mode)

    def row_of(self, path: str | Path) -> int:
        """The row listing ``path`` (-1 when it is not listed)."""
        p = Path(path)
        return next((r for r, e in enumerate(self.entries) if e.path == p), -1)

    def cell(self, row: int, column: str) -> str:
        """The text of a table cell (tests)."""
        return self.table.item(row, COLUMNS.index(column)).text()

    # ------------------------------------------------------------ actions
    def _read(self, entry: run_store.RunEntry) -> tuple[records.RunRecord | None, str | None]:
        """The record of a listed entry (the last few kept), or why it cannot be read now."""
        if entry.problem is not None:
            return None, entry.problem
        key = (entry.path, entry.size, entry.modified)
        if key in self._records:
            self._records.move_to_end(key)
            return self._records[key], None
        try:
            record = records.read(entry.path)
        except records.RecordError as exc:
            return None, str(exc)
        self._records[key] = record
        while len(self._records) > RECORDS_KEPT:
            self._records.popitem(last=False)
        return record, None

    def open_selected(self) -> None:
        """Open the selected run (the later of two)."""
        if not self._shown:
            return
        entry, record = self._shown[-1]
        self.openRequested.emit(entry.path)
        self.reopenRequested.emit(replace(record.stack, training=record.config), record.config)

    def delete_selected(self) -> None:
        chosen = self.selected_entries()
        if not chosen:
            return
        what = f"the run record {chosen[0].name}" if len(chosen) == 1 else f"{len(chosen)} run records"
        if not self._ask("Delete run records", f"Delete {what}? This cannot be undone."):
            return
        problems = []
        for entry in chosen:
            try:
                run_store.delete(entry.path, self.folder)
            except run_store.RunStoreError as exc:
                problems.append(str(exc))
        if problems:
            text = _one_line("; ".join(problems), 300)
            self.message.emit(text)
        self.refresh(sync=True)   # every other record is read already: cheap
        if problems:
            self.caption.setText(text)

    # ------------------------------------------------------------ what the selection shows
    def _selection_changed(self) -> None:
        chosen = self.selected_entries()
        shown, bad = [], []
        for entry in chosen:
            if len(shown) == 2:
                break
            record, problem = self._read(entry)
            if record is None:
                bad.append((entry, problem))
            else:
                shown.append((entry, record))
        shown.sort(key=lambda pair: (pair[0].started, pair[0].modified))   # A the earlier run, B the later
        self._shown = shown
        self.open_button.setEnabled(bool(shown))
        self.delete_button.setEnabled(bool(chosen))
        self._draw_curves(shown)
        self._draw_matrices(shown)
        self.diff_text.setPlainText(self._describe(chosen, shown))
        if chosen or self.entries:
            self.caption.setText(self._caption(chosen, bad))

    def _caption(self, chosen, bad) -> str:
        if not chosen:
            return "Select a run to see its curves, or two to compare them (Ctrl+click)."
        if bad:
            entry, problem = bad[0]
            prefix = f"{entry.path}: "
            problem = problem.removeprefix(prefix)
            return f"{_one_line(entry.name)} cannot be read: {_one_line(problem, 300)}"
        if len(chosen) > 2:
            return "Comparing the first two of the runs selected."
        return ""

    def _label(self, i: int, entry: run_store.RunEntry) -> str:
        return f"{'AB'[i]}: {_one_line(entry.stack_name, 40)} · {_started(entry)}"

    def _draw_curves(self, shown) -> None:
        for item in self.loss_curves:
            self.loss_plot.removeItem(item)
        for item in self.acc_curves + self.eval_curves:
            self.acc_plot.removeItem(item)
        self.legend.clear()
        self.loss_curves, self.acc_curves, self.eval_curves = [], [], []
        for i, (entry, record) in enumerate(shown):
            colour = COLOURS[i]
            steps = record.steps
            x = np.array([e["step"] for e in steps], dtype=np.float64)
            loss = np.array([np.nan if e["loss"] is None else e["loss"] for e in steps], dtype=np.float64)
            acc = np.array([np.nan if e.get("accuracy") is None else e["accuracy"] for e in steps], dtype=np.float64)
            pen = pg.mkPen(colour, width=2)
            name = html.escape(self._label(i, entry))   # the legend's label is rich text
            self.loss_curves.append(self.loss_plot.plot(x, loss, pen=pen, name=name, connect="finite"))
            self.acc_curves.append(self.acc_plot.plot(x, acc, pen=pen, connect="finite"))
            evals = [e for e in record.evals if e.get("split", "test") == "test"]
            if evals:
                ex = np.array([e["step"] for e in evals], dtype=np.float64)
                ey = np.array([np.nan if e["accuracy"] is None else e["accuracy"] for e in evals], dtype=np.float64)
                item = self.acc_plot.plot(ex, ey, pen=pg.mkPen(colour, width=1, style=QtCore.Qt.PenStyle.DashLine),
                                          symbol="o", symbolSize=6, symbolBrush=colour, symbolPen=None,
                                          connect="finite")
                self.eval_curves.append(item)
        for plot in (self.loss_plot, self.acc_plot):
            plot.enableAutoRange(x=True, y=plot is self.loss_plot)

    def _draw_matrices(self, shown) -> None:
        self._changed = []
        dones = [r.done if r.done is not None and "confusion" in r.done else None for _, r in shown]
        for i, view in enumerate(self.confusions):
            view.setVisible(i == 0 or len(shown) > 1)
            done = dones[i] if i < len(dones) else None
            if done is None:
                view.clear("No confusion matrix: the run ended before a held-out evaluation"
                           if i < len(shown) else "Select a run to see its confusion matrix")
                continue
            view.set_matrix(done["confusion"], done["classes"], done["per_class_accuracy"],
                            caption=self._label(i, shown[i][0]))
        if len(dones) == 2 and all(d is not None for d in dones):
            a, b = dones
            self._changed = changed_cells(a["confusion"], b["confusion"]) if a["classes"] == b["classes"] else None
        for view in self.confusions:
            view.flush()
        for view, mark in zip(self.confusions, self._marks):
            path = QtGui.QPainterPath()
            for t, p in (self._changed or ()) if len(shown) == 2 else ():
                path.addRect(QtCore.QRectF(p + 0.08, t + 0.08, 0.84, 0.84))
            mark.setPath(path)

    @staticmethod
    def _mark_item(view: ConfusionView) -> QtWidgets.QGraphicsPathItem:
        item = QtWidgets.QGraphicsPathItem()
        pen = pg.mkPen(VERMILION, width=2, style=QtCore.Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setBrush(QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
        item.setZValue(8)
        view.plot.addItem(item, ignoreBounds=True)
        return item

    def changed_cells(self) -> list[tuple[int, int]] | None:
        """The cells framed as changed between the two runs compared (None: not the same classes)."""
        return None if self._changed is None else list(self._changed)

    def _describe(self, chosen, shown) -> str:
        if len(shown) < 2:
            if len(shown) == 1:
                r = shown[0][1]
                shape = "×".join(map(str, r.stack.input.shape))
                summary = f"{_one_line(r.stack.name)}: {len(r.stack.layers)} layers, input {shape}, loss "
                lines = [summary + _one_line(r.stack.loss.type),
                         "settings: " + ", ".join(f"{k} {_one_line(repr(v) if isinstance(v, str) else v, 60)}"
                                                  for k, v in r.config.as_dict().items()),
                         f"device: {_one_line(r.device)}"]
                return "\n".join(lines)
            return ""
        (ea, a), (eb, b) = shown
        out = [self._label(0, ea), self._label(1, eb), ""]
        diff = run_store.stack_diff(a.stack, b.stack).lines()
        config = [f"setting {k.text()}" for k in run_store.config_diff(a.config, b.config)]
        if a.device != b.device:
            config.append(f"device: {_one_line(a.device)} → {_one_line(b.device)}")
        if not diff and not config:
            out.append("The same stack and settings.")
        else:
            out += ["Stack:"] + [f"  {_one_line(x, 300)}" for x in diff] if diff else ["The same stack."]
            out += ["Settings:"] + [f"  {_one_line(x, 300)}" for x in config] if config else ["The same settings."]
        if self._changed is None:
            out += ["", "The confusion matrices are of different classes."]
        elif len(self._changed):
            out += ["", f"{len(self._changed):,} cells of the confusion matrix changed (framed)."]
        return "\n".join(out)
