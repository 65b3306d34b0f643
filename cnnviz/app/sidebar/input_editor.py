"""Editing the stack's input (channels, height, width), its name and description."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QSpinBox, QVBoxLayout, QWidget

from cnnviz.app.document.undo import History, is_history_key, new_session
from cnnviz.core.model.layers import MAX_INPUT_CHANNELS, MAX_INPUT_SIZE
from cnnviz.core.model.stack import InputSpec, SetInput, SetStack, Stack

PRESETS = (
    ("1×28×28  MNIST, Fashion-MNIST", (1, 28, 28)),
    ("1×8×8  digits", (1, 8, 8)),
    ("3×32×32  CIFAR-10", (3, 32, 32)),
    ("3×64×64  Tiny ImageNet", (3, 64, 64)),
    ("3×224×224  ImageNet", (3, 224, 224)),
)


class InputEditor(QWidget):
    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        title = QLabel("<span style='font-size:large'><b>Input</b></span>", self)
        doc = QLabel("The images fed to the network, one sample at a time (the batch dimension is left out).", self)
        doc.setWordWrap(True)
        doc.setStyleSheet("color: palette(placeholder-text);")
        layout.addWidget(title)
        layout.addWidget(doc)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.spins: dict[str, QSpinBox] = {}
        self.sessions: dict[str, int] = {}
        tips = {"channels": "Colour channels: 1 for greyscale, 3 for RGB.",
                "height": "Image height in pixels.", "width": "Image width in pixels."}
        for name, top in (("channels", MAX_INPUT_CHANNELS), ("height", MAX_INPUT_SIZE), ("width", MAX_INPUT_SIZE)):
            spin = QSpinBox(self)
            spin.setRange(1, top)
            spin.setKeyboardTracking(True)
            spin.setAccelerated(True)
            spin.setToolTip(f"{tips[name]} 1…{top}.")
            spin.setObjectName(f"input_{name}")
            spin.valueChanged.connect(lambda _v, key=name: self._input_edited(key))
            spin.installEventFilter(self)
            form.addRow(name, spin)
            self.spins[name] = spin
            self.sessions[name] = new_session()
        self.preset = QComboBox(self)
        self.preset.addItem("Use a common size…")
        for text, _shape in PRESETS:
            self.preset.addItem(text)
        self.preset.setToolTip("Set channels, height and width at once")
        self.preset.activated.connect(self._preset_chosen)
        form.addRow("", self.preset)
        self.name = QLineEdit(self)
        self.name.setObjectName("stack_name")
        self.name.setToolTip("The stack's name: shown in the title bar and saved in the file")
        self.name.editingFinished.connect(self._renamed)
        form.addRow("name", self.name)
        self.description = QPlainTextEdit(self)
        self.description.setObjectName("stack_description")
        self.description.setPlaceholderText("What this stack is for (saved in the file)")
        self.description.setMaximumHeight(90)
        self.description.setTabChangesFocus(True)
        self.description.installEventFilter(self)
        form.addRow("description", self.description)
        layout.addLayout(form)
        layout.addStretch(1)
        self._stack: Stack | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(watched, QSpinBox) and is_history_key(event):
            return True  # Ctrl+Z in a number field undoes the stack's last edit, not the field's text
        if event.type() == QEvent.Type.FocusOut:
            if watched is self.description:
                self._describe()
            for key, spin in self.spins.items():
                if watched is spin:
                    self.sessions[key] = new_session()
        return False

    def show_stack(self, stack: Stack) -> None:
        self._stack = stack
        for key, spin in self.spins.items():
            value = getattr(stack.input, key)
            if spin.value() != value:
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        if not self.name.hasFocus() and self.name.text() != stack.name:
            self.name.setText(stack.name)
        if not self.description.hasFocus() and self.description.toPlainText() != stack.description:
            self.description.setPlainText(stack.description)

    def _input_edited(self, key: str) -> None:
        spec = InputSpec(*(self.spins[k].value() for k in ("channels", "height", "width")))
        self.history.push_edit(SetInput(spec), self.sessions[key])

    def _preset_chosen(self, i: int) -> None:
        if i <= 0:
            return
        self.preset.setCurrentIndex(0)
        self.history.push_edit(SetInput(InputSpec(*PRESETS[i - 1][1])), new_session())

    def _renamed(self) -> None:
        stack = self.history.document.stack
        text = self.name.text().strip()
        if not text:
            self.name.setText(stack.name)
            return
        if text != stack.name:
            self.history.push_edit(SetStack(replace(stack, name=text), "Rename stack"), new_session())

    def _describe(self) -> None:
        stack = self.history.document.stack
        text = self.description.toPlainText().strip()
        if text != stack.description:
            self.history.push_edit(SetStack(replace(stack, description=text), "Change description"), new_session())
