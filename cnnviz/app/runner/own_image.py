"""The person's own image (the toolbar's *open image*) as the tabs that explain it take it, on the worker.

A tab that computes on the worker (:meth:`~.worker.RunWorker.call_at_boundary`) holds one :class:`OwnImage`:
the file is read once per path and input shape, as the live probe reads it
(:class:`~cnnviz.core.run.live.LiveProbe`), and normalised by the session's own
:meth:`~cnnviz.core.run.engine.Session.image_split`, the code path of the probe of that image, so the map drawn
is of the input the network got. Used on the worker thread only; no Qt, no torch on import.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz.core.model.text import one_line

__all__ = ["OwnImage", "image_name", "one_line"]


def image_name(path: str) -> str:
    return Path(path).name or str(path)


class OwnImage:
    """The pixels of the last own image asked for (float32 C×H×W in [0, 1]), read once per (path, shape)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._pixels: np.ndarray | None = None

    def pixels(self, path: str, shape) -> np.ndarray:
        """The image at ``path`` as ``data.load_image`` gives it for ``shape``; raises ``data.DataError``."""
        key = (str(path), tuple(shape))
        if key != self._key or self._pixels is None:
            from cnnviz.core import data

            self._pixels, self._key = None, None
            self._pixels = data.load_image(path, tuple(shape))
            self._key = key
        return self._pixels

    def input(self, session, path: str):
        """``(pixels, x, predicted)``: the pixels, the normalised ``(1, C, H, W)`` tensor on the session's device
        and the class the model predicts for it (the probe's own label for an image without one)."""
        pixels = self.pixels(path, session.stack.input.shape)
        one = session.image_split(pixels)
        x, _ = one.rows(0, 1)
        return pixels.copy(), x, int(np.asarray(one.labels_np).reshape(-1)[0])
