"""The data drives the input: what the chosen data set's images are turned into, and the one-click fit.

:class:`DataFit` knows each data set's own image shape and classes (a folder is surveyed once, from its
image headers), states in the Run toolbar what is still done to its images to fit the stack's input
(resized, RGB → grey), and offers one undoable edit: for a newly chosen data set, the input and the last
Linear's class count that fit it; at any time, the class count alone when the last Linear scores
another number of classes than the data set has (the engine refuses to run that). GUI thread; no torch.
"""
from __future__ import annotations

import logging

from cnnviz.app.document.undo import History
from cnnviz.core.model.layers import MAX_INPUT_CHANNELS, MAX_INPUT_SIZE
from cnnviz.core.model.stack import Batch, InputSpec, SetInput, Stack, TrainingConfig, set_param

log = logging.getLogger("cnnviz.runner")


class DataFit:
    """The toolbar's conversion label and fit offer for the document's stack and data set."""

    def __init__(self, toolbar, history: History) -> None:
        self.toolbar = toolbar
        self.history = history
        self._offer_for: str | None = None    # the newly chosen data set the stack is offered to fit
        self._natives: dict[str, tuple] = {}  # data set -> (its own image shape or None, its classes)

    def chosen(self, name: str) -> None:
        """The person picked ``name``: offer the input and classes that fit it."""
        self._offer_for = name

    def dismiss(self) -> None:
        self._offer_for = None

    def native(self, name: str) -> tuple:
        """(the data set's own image shape or None, its classes); a folder is surveyed once, from its headers."""
        if name not in self._natives:
            from cnnviz.core import data

            try:
                self._natives[name] = data.native(name)
            except (data.DataError, OSError) as exc:
                log.info("cannot survey %s: %s", name, exc)
                self._natives[name] = (None, ())
        return self._natives[name]

    def edits(self, stack: Stack, config: TrainingConfig, classes_only: bool = False) -> tuple[list, str]:
        """The edits that fit the input and the last Linear to the data set, and what they do in words
        (``classes_only``: only the last Linear's class count)."""
        shape, classes = self.native(config.data)
        edits, words = [], []
        if (not classes_only and shape is not None and tuple(shape) != stack.input.shape
                and 1 <= shape[0] <= MAX_INPUT_CHANNELS and 1 <= shape[1] <= MAX_INPUT_SIZE
                and 1 <= shape[2] <= MAX_INPUT_SIZE):
            edits.append(SetInput(InputSpec(*shape)))
            words.append(f"{shape[0]}×{shape[1]}×{shape[2]} input")
        last = next((i for i in range(len(stack.layers) - 1, -1, -1) if stack.layers[i].type == "Linear"), None)
        if classes and last is not None and stack.layers[last].params.get("out_features") != len(classes):
            edits.append(set_param(stack, last, "out_features", len(classes)))
            words.append(f"{len(classes)} classes")
        return edits, " and ".join(words)

    def offer(self, stack: Stack, config: TrainingConfig) -> tuple[list, str]:
        """What the offer proposes now: everything for a newly chosen data set, else the class count alone."""
        return self.edits(stack, config, classes_only=self._offer_for != config.data)

    def show(self, stack: Stack, config: TrainingConfig) -> None:
        """State what is done to the data set's images to fit the input, and show the offer (if any)."""
        from cnnviz.app.runner.toolbar import data_label

        shape, _classes = self.native(config.data)
        parts = []
        if shape is not None:
            (c0, h0, w0), (c, h, w) = shape, stack.input.shape
            if (h0, w0) != (h, w):
                parts.append(f"resized from {h0}×{w0} to {h}×{w}")
            if c0 != c:
                parts.append({(3, 1): "RGB → grey", (1, 3): "grey → RGB"}.get((c0, c), f"{c0} → {c} channels"))
        self.toolbar.set_conversion(", ".join(parts))
        edits, words = self.offer(stack, config)
        text = f"Use {words} for {data_label(config.data)}" if edits else ""
        self.toolbar.show_offer(text, f"{text}: one edit, undone with Ctrl+Z" if text else "")

    def apply(self, stack: Stack) -> None:
        """Apply the offer to ``stack`` (the document's): one undoable edit."""
        edits, words = self.offer(stack, stack.training or TrainingConfig())
        if edits:
            self.history.push_edit(Batch(tuple(edits), f"Use {words}"))
