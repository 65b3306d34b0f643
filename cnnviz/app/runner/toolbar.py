"""The run controls: device, data set, sample, training settings, and Forward / Train / Pause / Step / Reset.

Widgets and actions only: the toolbar shows what it is told (``show_config``,
``set_devices``, ``set_session``, ``set_state``) and says what the person
asked for through signals; the controller decides what happens. It is handed
the window's places for toolbars and actions
(:class:`~cnnviz.app.runner.services.Places`), not the window. No torch.

Shortcuts: F5 forward pass, F6 train / pause, F10 one step, Ctrl+R reset,
Alt+Left / Alt+Right the previous / next sample. Space is left to the widget
with the focus (it presses buttons and ticks boxes in the sidebar).
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QDoubleValidator, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QStyle, QToolBar, QToolButton, QWidget

from cnnviz.app.plain_text import tooltip
from cnnviz.app.runner.messages import RunState
from cnnviz.app.runner.services import Places
from cnnviz.core import data
from cnnviz.core.model.files import TRAINING_PARAMS
from cnnviz.core.model.stack import OPTIMIZERS, SCHEDULES, TrainingConfig

OPEN_IMAGE = "\x00image"
OPEN_FOLDER = "\x00folder"
SHOW_DATA = "\x00show"
LR_PRESETS = ("0.0001", "0.0003", "0.001", "0.003", "0.01", "0.03", "0.1")

FORWARD_KEY = "F5"
TRAIN_KEY = "F6"
STEP_KEY = "F10"
RESET_KEY = "Ctrl+R"


def data_label(name: str) -> str:
    if name.startswith(data.FOLDER_PREFIX):
        path = name[len(data.FOLDER_PREFIX):].rstrip("/\\")
        return f"folder: {path.replace(chr(92), '/').rsplit('/', 1)[-1] or path}"
    return name


def format_lr(lr: float) -> str:
    return f"{lr:g}"


def schedule_tip(steps: int) -> str:
    """The schedule picker's tooltip, with the training block's ``steps`` (the cosine's horizon)."""
    return (f"constant: the learning rate stays at lr; cosine: the learning rate falls along a half cosine from "
            f"lr to 0 over the training block's steps ({steps:,}), and training pauses there")


class RunToolbar(QObject):
    """The Run menu's actions and the run toolbars, placed in ``places``; see the module docstring."""

    trainingEdited = Signal(str, object)   # TrainingConfig field, new value
    sampleChanged = Signal(int)
    modeChanged = Signal(str)              # "eval" or "train"
    imageRequested = Signal()
    folderRequested = Signal()
    imageCleared = Signal()
    adaptRequested = Signal()              # the offer to fit the input and classes to the data set
    adaptDismissed = Signal()
    previewRequested = Signal()            # show the images as the network gets them (cnnviz.app.window.data_preview)

    def __init__(self, places: Places, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = TrainingConfig()
        self._labels: np.ndarray | None = None
        self._classes: tuple[str, ...] = ()
        self._devices: list = []
        self._image_name = ""
        self._conversion = ""
        bar = places.run_toolbar

        self.device_box = QComboBox(bar)
        self.device_box.setObjectName("run_device")
        # As wide as "auto (cpu)", not as the longest device name (the list shows those in full):
        # the data picker beside it keeps its whole name at 1024 px.
        self.device_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_box.setMinimumContentsLength(11)
        self.device_box.setToolTip("Where the network runs: the devices this machine really has")
        self.device_box.activated.connect(self._device_chosen)
        bar.addWidget(self.device_box)

        self.data_box = QComboBox(bar)
        self.data_box.setObjectName("run_data")
        self.data_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.data_box.activated.connect(self._data_chosen)
        bar.addWidget(self.data_box)

        sample = QWidget(bar)
        row = QHBoxLayout(sample)
        row.setContentsMargins(6, 0, 6, 0)
        row.setSpacing(2)
        self.prev_button = QToolButton(sample)
        self.prev_button.setText("◂")
        self.prev_button.setAutoRaise(True)
        self.sample_spin = QSpinBox(sample)
        self.sample_spin.setObjectName("run_sample")
        self.sample_spin.setPrefix("sample ")
        self.sample_spin.setKeyboardTracking(False)
        self.sample_spin.setRange(0, 0)
        self.sample_spin.setToolTip("Which held-out sample runs through the network (Alt+Left, Alt+Right)")
        self.next_button = QToolButton(sample)
        self.next_button.setText("▸")
        self.next_button.setAutoRaise(True)
        self.sample_label = QLabel(sample)
        self.sample_label.setTextFormat(Qt.TextFormat.PlainText)  # a folder's class names are not markup
        self.sample_label.setObjectName("run_sample_label")
        self.sample_label.setMinimumWidth(90)
        self.clear_image_button = QToolButton(sample)
        self.clear_image_button.setText("✕")
        self.clear_image_button.setAutoRaise(True)
        self.clear_image_button.setToolTip("Back to the data set's samples")
        self.clear_image_button.hide()
        # What is done to the data set's images to fit the input (resize, RGB → grey): stated beside the sample.
        self.conversion_label = QLabel(sample)
        self.conversion_label.setTextFormat(Qt.TextFormat.PlainText)
        self.conversion_label.setObjectName("run_conversion")
        self.conversion_label.hide()
        # The one-click offer to fit the input and the last Linear to a newly chosen data set (not modal).
        self.adapt_button = QToolButton(sample)
        self.adapt_button.setObjectName("run_adapt")
        self.adapt_button.hide()
        self.adapt_button.clicked.connect(self.adaptRequested.emit)
        self.dismiss_adapt_button = QToolButton(sample)
        self.dismiss_adapt_button.setText("✕")
        self.dismiss_adapt_button.setAutoRaise(True)
        self.dismiss_adapt_button.setToolTip("Keep the stack's input and classes as they are")
        self.dismiss_adapt_button.hide()
        self.dismiss_adapt_button.clicked.connect(lambda: (self.show_offer(""), self.adaptDismissed.emit()))
        for w in (self.prev_button, self.sample_spin, self.next_button, self.sample_label, self.clear_image_button,
                  self.conversion_label, self.adapt_button, self.dismiss_adapt_button):
            row.addWidget(w)
        self.sample_spin.valueChanged.connect(self._sample_changed)
        self.prev_button.clicked.connect(lambda: self.sample_spin.stepBy(-1))
        self.next_button.clicked.connect(lambda: self.sample_spin.stepBy(1))
        self.clear_image_button.clicked.connect(self.imageCleared.emit)

        style = bar.style()

        def action(text: str, key: str | None, tip: str, slot=None, checkable: bool = False,
                   icon: QStyle.StandardPixmap | None = None) -> QAction:
            a = QAction(text, bar)
            if icon is not None:
                a.setIcon(style.standardIcon(icon))
            if key:
                a.setShortcut(QKeySequence(key))
                tip = f"{tip} ({key})"
            a.setToolTip(tip)
            a.setStatusTip(tip)
            a.setCheckable(checkable)
            if slot is not None:
                a.triggered.connect(slot)
            return a

        self.train_mode_action = action("Train mode", None, "Run the forward pass with Dropout and BatchNorm as in "
                                        "training (a batch of one) instead of as in inference", checkable=True)
        self.train_mode_action.toggled.connect(lambda on: self.modeChanged.emit("train" if on else "eval"))
        SP = QStyle.StandardPixmap
        self.forward_action = action("Forward", FORWARD_KEY, "Run the sample through the network again",
                                     icon=SP.SP_MediaPlay)
        self.train_action = action("Train", TRAIN_KEY, "Train on the data set until paused",
                                   icon=SP.SP_MediaSeekForward)
        self.pause_action = action("Pause", None, "Stop training after the current step", icon=SP.SP_MediaPause)
        self.step_action = action("Step", STEP_KEY, "One training step, then show the sample again",
                                  icon=SP.SP_MediaSkipForward)
        self.reset_action = action("Reset", RESET_KEY, "Weights back to the seed's, a fresh optimizer, step 0",
                                   icon=SP.SP_BrowserReload)
        self.prev_action = action("Previous Sample", "Alt+Left", "The previous sample",
                                  lambda: self.sample_spin.stepBy(-1))
        self.next_action = action("Next Sample", "Alt+Right", "The next sample", lambda: self.sample_spin.stepBy(1))
        self.show_data_action = action("Show the &Data…", None, "The images as the network gets them (resized, "
                                       "RGB → grey), each class's count and the held-out split",
                                       lambda: self.previewRequested.emit())
        bar.addSeparator()
        for a in (self.train_mode_action, self.forward_action, self.train_action, self.pause_action,
                  self.step_action, self.reset_action):
            places.add_run_action(a)
        places.run_menu.addSeparator()
        for a in (self.prev_action, self.next_action):
            places.add_run_action(a, toolbar=False)
        places.run_menu.addSeparator()
        places.add_run_action(self.show_data_action, toolbar=False)

        self.settings_toolbar = QToolBar("Training settings")
        self.settings_toolbar.setObjectName("training_toolbar")
        self.settings_toolbar.setMovable(False)
        tb = self.settings_toolbar
        # The sample picker opens the second row, so the first keeps the device, the data and every Run
        # action on screen from 1024 px on.
        tb.addWidget(sample)
        tb.addSeparator()
        tb.addWidget(_caption("optimizer", tb))
        self.optimizer_box = QComboBox(tb)
        self.optimizer_box.setObjectName("run_optimizer")
        self.optimizer_box.addItems(list(OPTIMIZERS))
        self.optimizer_box.setToolTip("adam: Adam; sgd: SGD with momentum")
        self.optimizer_box.activated.connect(lambda i: self.trainingEdited.emit("optimizer",
                                                                                self.optimizer_box.itemText(i)))
        tb.addWidget(self.optimizer_box)
        tb.addWidget(_caption("learning rate", tb))
        self.lr_box = QComboBox(tb)
        self.lr_box.setObjectName("run_lr")
        self.lr_box.setEditable(True)
        self.lr_box.addItems(list(LR_PRESETS))
        self.lr_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        validator = QDoubleValidator(1e-12, 1e12, 12, self.lr_box)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr_box.setValidator(validator)
        self.lr_box.setToolTip("The learning rate; a change applies from the next step, even while training")
        self.lr_box.lineEdit().editingFinished.connect(self._lr_edited)
        self.lr_box.activated.connect(lambda _i: self._lr_edited())
        tb.addWidget(self.lr_box)
        tb.addWidget(_caption("schedule", tb))
        self.schedule_box = QComboBox(tb)
        self.schedule_box.setObjectName("run_schedule")
        self.schedule_box.addItems(list(SCHEDULES))
        self.schedule_box.setToolTip(schedule_tip(self._config.steps))
        self.schedule_box.activated.connect(lambda i: self.trainingEdited.emit("schedule",
                                                                               self.schedule_box.itemText(i)))
        tb.addWidget(self.schedule_box)
        tb.addWidget(_caption("batch", tb))
        self.batch_spin = QSpinBox(tb)
        self.batch_spin.setObjectName("run_batch")
        self.batch_spin.setRange(1, int(TRAINING_PARAMS["batch_size"].max))  # the file format's range
        self.batch_spin.setKeyboardTracking(False)
        self.batch_spin.setToolTip("Images per training step; a change applies from the next step")
        self.batch_spin.valueChanged.connect(lambda v: self.trainingEdited.emit("batch_size", int(v)))
        tb.addWidget(self.batch_spin)
        tb.addWidget(_caption("seed", tb))
        self.seed_spin = QSpinBox(tb)
        self.seed_spin.setObjectName("run_seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setKeyboardTracking(False)
        self.seed_spin.setToolTip("Seeds the initial weights, the batch order and dropout: the same seed, "
                                  "the same run")
        self.seed_spin.valueChanged.connect(lambda v: self.trainingEdited.emit("seed", int(v)))
        tb.addWidget(self.seed_spin)
        places.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        places.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        places.view_menu.addAction(tb.toggleViewAction())

        self._fill_devices()
        self._fill_data()
        self.show_config(self._config)
        self.set_state(RunState.LOADING)

    # ================================================================ shown state
    def show_config(self, config: TrainingConfig) -> None:
        """Show the stack's training settings (after an edit, an undo, or opening a file)."""
        self._config = config
        with QSignalBlocker(self.optimizer_box):
            self.optimizer_box.setCurrentText(config.optimizer)
        with QSignalBlocker(self.lr_box):
            self.lr_box.setEditText(format_lr(config.lr))
        with QSignalBlocker(self.schedule_box):
            self.schedule_box.setCurrentText(config.schedule)
        self.schedule_box.setToolTip(schedule_tip(config.steps))
        with QSignalBlocker(self.batch_spin):
            self.batch_spin.setValue(int(config.batch_size))
        with QSignalBlocker(self.seed_spin):
            self.seed_spin.setValue(int(config.seed))
        self._fill_devices()
        self._fill_data()

    def set_devices(self, devices: list) -> None:
        self._devices = list(devices)
        self._fill_devices()

    def set_session(self, classes: tuple[str, ...], test_labels: np.ndarray) -> None:
        """A session is ready: the samples it has, and their labels for the sample picker."""
        self._classes = tuple(classes)
        self._labels = test_labels
        with QSignalBlocker(self.sample_spin):
            self.sample_spin.setRange(0, max(0, len(test_labels) - 1))
        self._show_sample_label()

    def clear_session(self) -> None:
        """The samples and their labels are gone (the data set changed, or the session was dropped)."""
        self.set_session((), np.zeros(0, dtype=np.int64))

    def show_offer(self, text: str, tip: str = "") -> None:
        """Offer (``text``, the button's) to fit the stack to the data set; "" hides the offer."""
        self.adapt_button.setText(text)
        self.adapt_button.setToolTip(tooltip(tip or text))
        self.adapt_button.setVisible(bool(text))
        self.dismiss_adapt_button.setVisible(bool(text))

    @property
    def conversion(self) -> str:
        """What is done to the data set's images to fit the input, in words ("" when nothing is)."""
        return self._conversion

    @property
    def offer(self) -> str:
        return self.adapt_button.text() if not self.adapt_button.isHidden() else ""

    def set_conversion(self, text: str, tip: str = "") -> None:
        """What is done to the data set's images to fit the input ("" when nothing is)."""
        self.conversion_label.setText(f"({text})" if text else "")
        self.conversion_label.setToolTip(tooltip(tip or text))
        self.conversion_label.setVisible(bool(text))
        self._conversion = text
        self._show_sample_label()

    def show_image(self, name: str) -> None:
        """The person's own image is running instead of a sample ("" back to samples)."""
        self._image_name = name
        for w in (self.prev_button, self.sample_spin, self.next_button):
            w.setEnabled(not name)
        self.clear_image_button.setVisible(bool(name))
        self._show_sample_label()

    def set_state(self, state: RunState) -> None:
        """Which actions the run's state allows (see :class:`~cnnviz.app.runner.messages.RunState`)."""
        has_session = state.has_session
        running = state is RunState.RUNNING
        self.forward_action.setEnabled(has_session)
        self.train_action.setEnabled(has_session and not running)
        self.pause_action.setEnabled(running)
        self.step_action.setEnabled(has_session)
        self.reset_action.setEnabled(has_session)
        self._move_train_key()

    @property
    def sample(self) -> int:
        return self.sample_spin.value()

    def set_sample(self, index: int) -> None:
        self.sample_spin.setValue(index)

    # ================================================================ filling
    def _fill_devices(self) -> None:
        box = self.device_box
        chosen = self._config.device
        with QSignalBlocker(box):
            box.clear()
            auto = self._devices[0] if self._devices else None
            box.addItem(f"auto ({auto.id})" if auto else "auto", "auto")
            box.setItemData(0, f"The best device present: {auto.label}" if auto else
                            "The best device present (CUDA, then MPS, then the CPU)", Qt.ItemDataRole.ToolTipRole)
            for info in self._devices:
                box.addItem(info.label, info.id)
                box.setItemData(box.count() - 1, info.label, Qt.ItemDataRole.ToolTipRole)
            index = box.findData(chosen)
            if index < 0:  # the file asks for a device not listed (yet): show it; the session will say why
                box.addItem(f"{chosen} (not found)" if self._devices else chosen, chosen)
                index = box.count() - 1
            box.setCurrentIndex(index)
        box.setToolTip(box.itemData(index, Qt.ItemDataRole.ToolTipRole) or "Where the network runs")

    def _fill_data(self) -> None:
        box = self.data_box
        chosen = self._config.data
        with QSignalBlocker(box):
            box.clear()
            for name in data.NAMES:
                box.addItem(name, name)
                box.setItemData(box.count() - 1, data.describe(name), Qt.ItemDataRole.ToolTipRole)
            if chosen not in data.NAMES:
                box.addItem(data_label(chosen), chosen)
                box.setItemData(box.count() - 1, data.describe(chosen) if chosen.startswith(data.FOLDER_PREFIX)
                                else chosen, Qt.ItemDataRole.ToolTipRole)
            box.insertSeparator(box.count())
            box.addItem("Image folder…", OPEN_FOLDER)
            box.setItemData(box.count() - 1, "Train on a folder of your images, one subfolder per class",
                            Qt.ItemDataRole.ToolTipRole)
            box.addItem("Open image…", OPEN_IMAGE)
            box.setItemData(box.count() - 1, "Run one image of yours through the network",
                            Qt.ItemDataRole.ToolTipRole)
            box.insertSeparator(box.count())
            box.addItem("Show the images…", SHOW_DATA)
            box.setItemData(box.count() - 1, "The images as the network gets them (resized, RGB → grey), each "
                            "class's count and the held-out split", Qt.ItemDataRole.ToolTipRole)
            box.setCurrentIndex(box.findData(chosen))
        box.setToolTip(f"What the network trains on: {data.describe(chosen)}" if chosen in data.NAMES or
                       chosen.startswith(data.FOLDER_PREFIX) else chosen)

    def _show_sample_label(self) -> None:
        if self._image_name:
            self.sample_label.setText(f"your image: {self._image_name}")
            self.sample_label.setToolTip("Its class is unknown: the gradients are taken for the predicted class")
            return
        i = self.sample_spin.value()
        if self._labels is not None and 0 <= i < len(self._labels):
            label = int(self._labels[i])
            name = self._classes[label] if 0 <= label < len(self._classes) else str(label)
            self.sample_label.setText(f"true: {name}")
            conversion = f"\nThe images are {self._conversion} to fit the input." if self._conversion else ""
            self.sample_label.setToolTip(tooltip(f"Held-out sample {i} of {len(self._labels):,}; "
                                                 f"its true class is {name}{conversion}"))
        else:
            self.sample_label.setText("")
            self.sample_label.setToolTip("")

    # ================================================================ edits
    def _device_chosen(self, index: int) -> None:
        value = self.device_box.itemData(index)
        if value and value != self._config.device:
            self.trainingEdited.emit("device", value)

    def _data_chosen(self, index: int) -> None:
        value = self.data_box.itemData(index)
        with QSignalBlocker(self.data_box):
            self.data_box.setCurrentIndex(self.data_box.findData(self._config.data))
        if value == OPEN_IMAGE:
            self.imageRequested.emit()
        elif value == OPEN_FOLDER:
            self.folderRequested.emit()
        elif value == SHOW_DATA:
            self.previewRequested.emit()
        elif value and value != self._config.data:
            self.trainingEdited.emit("data", value)

    def _lr_edited(self) -> None:
        text = self.lr_box.currentText().strip()
        try:
            lr = float(text)
        except ValueError:
            lr = math.nan
        if not (0 < lr < math.inf):
            with QSignalBlocker(self.lr_box):
                self.lr_box.setEditText(format_lr(self._config.lr))
            return
        if lr != self._config.lr:
            self.trainingEdited.emit("lr", lr)

    def _sample_changed(self, index: int) -> None:
        self._show_sample_label()
        self.sampleChanged.emit(int(index))

    def _move_train_key(self) -> None:
        """F6 toggles: it belongs to Pause while training runs, to Train otherwise."""
        running = self.pause_action.isEnabled()
        key = QKeySequence(TRAIN_KEY)
        if running and self.train_action.shortcut() == key:
            self.train_action.setShortcut(QKeySequence())
            self.pause_action.setShortcut(key)
        elif not running and self.pause_action.shortcut() == key:
            self.pause_action.setShortcut(QKeySequence())
            self.train_action.setShortcut(key)


def _caption(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setContentsMargins(8, 0, 4, 0)
    return label
