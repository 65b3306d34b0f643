"""The network overview's pointer: what is under it, the hover's reading and frame, clicks, the focus.

:class:`OverviewPointer` is a part of :class:`~.overview.OverviewView` (its first base class): it reads the
view's columns placed (``_placed``, ``_by_key``), the probe shown (``_probe``, ``_true_class``), the
expanded columns, the hover and focus frames (``_frame``, ``_focus_frame``), the status line and the
canvas, and says what was clicked through the view's ``thumbnailClicked`` and ``pathClicked``. The canvas
(:class:`~.overview_items._Canvas`) hands it its pointer events.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from cnnviz.app.plain_text import tooltip as plain_tooltip
from cnnviz.app.views.overview_read import describe, hit_at


class OverviewPointer:
    """Hover, click and focus for the overview (see the module's docstring)."""

    def tooltip_at(self, scene_pos: QtCore.QPointF) -> str:
        """What the tooltip reads at a scene point ("" over nothing)."""
        hit = self._hit(scene_pos)
        return self._describe(hit) if hit is not None else ""

    def _draw_focus(self) -> None:
        f = self._focused
        if f is None:
            self._focus_frame.hide()
            return
        key = "input" if f[0] == -1 else f"layer {f[0]}"
        rect = self.thumbnail_rect(key, f[1]) if f[1] >= 0 else None
        if rect is None:
            self._focus_frame.hide()
            return
        self._focus_frame.setRect(rect.adjusted(-1, -1, 1, 1))
        self._focus_frame.show()

    # ------------------------------------------------------------ pointer
    def _hit(self, pos: QtCore.QPointF | None) -> tuple | None:
        """What is under a scene point (:func:`~.overview_read.hit_at`)."""
        return hit_at(self._placed, pos)

    def _describe(self, hit: tuple) -> str:
        return describe(hit, self._probe, self._true_class)

    def _hover_at(self, pos: QtCore.QPointF | None, global_pos: QtCore.QPoint | None) -> None:
        hit = self._hit(pos)
        key = None if hit is None else (hit[0].key, hit[1], hit[2])
        if key == self._hover:
            return
        self._hover = key
        if hit is None:
            self._hide_hover()
            return
        text = self._describe(hit)
        self.status.setText(text)
        self.canvas.setToolTip(plain_tooltip(text))
        if global_pos is not None:
            QtWidgets.QToolTip.showText(global_pos, plain_tooltip(text), self.canvas)
        self._show_frame(key)

    def _show_frame(self, key: tuple) -> None:
        q = self._by_key.get(key[0])
        rect = None
        if q is not None and key[1] == "tile":
            rect = self.thumbnail_rect(key[0], key[2])
        elif q is not None and key[1] == "more" and q.more_rect is not None:
            rect = QtCore.QRectF(*q.more_rect)
        if rect is None:
            self._frame.hide()
        else:
            self._frame.setRect(rect.adjusted(-1, -1, 1, 1))
            self._frame.show()

    def _hide_hover(self) -> None:
        self._hover = None
        self._frame.hide()
        self.canvas.setToolTip("")

    def _click_at(self, pos: QtCore.QPointF) -> None:
        hit = self._hit(pos)
        if hit is None:
            return
        q, what, i = hit
        if what == "more":
            if q.key in self._expanded:
                self._expanded.discard(q.key)
            else:
                self._expanded.add(q.key)
            self._render()
            return
        c = q.column
        if c.index < 0:
            return
        channel = i if what in ("tile", "strip") and c.kind in ("maps", "flat", "units") else -1
        if what == "strip" and c.kind == "flat" and c.origin is not None:
            channel = i // max(1, c.origin[1] * c.origin[2])   # the channel the value was flattened from
        if c.path:
            self._focused = (c.path, channel) if channel >= 0 else None
            self.pathClicked.emit(c.path, channel)
            self._draw_focus()
            return
        self._focused = (c.index, channel) if channel >= 0 else None
        self.thumbnailClicked.emit(c.index, channel)
        self._draw_focus()
