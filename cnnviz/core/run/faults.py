"""The engine's user-facing errors: one family, each with a sentence a person can act on.

Everything a user can cause while running a stack (an absent device, an unknown
data set, a stack that does not fit the data, a run that diverges, a batch too
big for the card, a weights file that belongs to another stack) is an
:class:`EngineError`. ``kind`` tells the caller what happened without parsing
the message; the command line maps kinds to exit statuses. Imports nothing
heavy, so it is cheap to import from anywhere (and free of Qt).
"""
from __future__ import annotations


class EngineError(Exception):
    """A problem the user caused or can fix; ``str(error)`` is the sentence to show."""

    kind = "engine"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        return str(self)


class DeviceError(EngineError, ValueError):
    """A device that was asked for is malformed or not present."""

    kind = "device"


class StackRefused(EngineError):
    """The stack cannot be built or cannot score the data set's classes."""

    kind = "stack"


class DataUnavailable(EngineError):
    """The data set is unknown or cannot be read."""

    kind = "data"


class NonFiniteError(EngineError):
    """The loss or a gradient became NaN or infinite.

    ``step`` is the step that produced it (1-based; the weights are those from
    before it); ``phase`` is ``"input"``, ``"forward"``, ``"loss"`` or
    ``"backward"``; ``layer`` the index of the first layer where it appeared
    (None when it could not be pinned to a layer).
    """

    kind = "nonfinite"

    def __init__(self, message: str, *, step: int, phase: str, layer: int | None, label: str | None) -> None:
        super().__init__(message)
        self.step = step
        self.phase = phase
        self.layer = layer
        self.label = label


class OutOfMemory(EngineError):
    """The device ran out of memory; the memory has been handed back and a smaller batch suggested."""

    kind = "oom"

    def __init__(self, message: str, *, device: str, batch_size: int, suggested_batch: int) -> None:
        super().__init__(message)
        self.device = device
        self.batch_size = batch_size
        self.suggested_batch = suggested_batch


class NotEnoughMemory(OutOfMemory):
    """A run refused before anything was allocated: what it needs is more than the device has free.

    ``needed_bytes`` and ``free_bytes`` are the estimate and the free memory
    compared; ``suggested_batch`` is the largest batch that fits, 0 when
    none does (the model, the data or one sample is too large by itself).
    """

    def __init__(self, message: str, *, device: str, batch_size: int, suggested_batch: int, needed_bytes: int,
                 free_bytes: int) -> None:
        super().__init__(message, device=device, batch_size=batch_size, suggested_batch=suggested_batch)
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes


class LayerFailed(EngineError):
    """A layer raised while running (a torch error the shape engine did not foresee), named by index."""

    kind = "layer"

    def __init__(self, message: str, *, layer: int) -> None:
        super().__init__(message)
        self.layer = layer
