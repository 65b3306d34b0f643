"""Drawing one column of the network overview into its scene items (and the blocks' frames).

:class:`ColumnDrawer` holds what drawing needs: the scene, the fonts and their
metrics (each label's width measured once and remembered), the palettes and
the colour bars, the background and text colours. It fills a column's
:class:`~.overview_items._ColumnItems` from its
:class:`~.overview_layout.Placed` and its values: the thumbnails' image (one
gather, the colours looked up by :meth:`~.overview_layout.Raster.draw_indices`),
the labels, a Flatten's segment ticks, the softmax bars, an error's text. The
:class:`~.overview.OverviewView` owns one and says what to draw where.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from cnnviz.app.views._common import BLUE, DIVERGING, GREEN, GREY, SEQUENTIAL, VERMILION, lut
from cnnviz.app.views.mosaic import as_maps
from cnnviz.app.views.overview_items import _ColumnItems, _text
from cnnviz.app.views.overview_layout import (
    Flow,
    Grid,
    Placed,
    Raster,
    block_regions,
    fmt,
    pack_rgb,
    palette32,
    quantize,
)

GREYS = "CET-L1"
SPACING_HALF = 8
PAD_TEXT = 6


class ColumnDrawer:
    """Draws a column's contents into its :class:`~.overview_items._ColumnItems`, in ``scene``.

    ``font``: the view's font (the labels are one point smaller, the titles bold); ``bg``, ``fg``: the
    background and text colours. :meth:`draw_column` draws one placed column, :meth:`draw_regions` the
    blocks' frames; :meth:`text_width` is the width of a small label, remembered.
    """

    def __init__(self, scene: QtWidgets.QGraphicsScene, font: QtGui.QFont, bg: QtGui.QColor,
                 fg: QtGui.QColor) -> None:
        self.scene = scene
        self._bg, self._fg = bg, fg
        self._small = QtGui.QFont(font)
        size = self._small.pointSizeF()
        if size > 0:
            self._small.setPointSizeF(max(7.0, size - 1))
        self._font = QtGui.QFont(self._small)
        self._font.setBold(True)
        self._fm = QtGui.QFontMetricsF(self._font)
        self._fm_small = QtGui.QFontMetricsF(self._small)
        self._widths: dict[tuple, float | str] = {}   # measured and elided label texts
        self.line = self._fm.height()   # a title's line height
        self._palettes = {name: palette32(lut(name)) for name in (SEQUENTIAL, DIVERGING, GREYS)}
        self._bars = {name: self._colour_bar(name) for name in (SEQUENTIAL, DIVERGING)}
        self._region_items: list[QtWidgets.QGraphicsItem] = []

    def new_items(self) -> _ColumnItems:
        """A new column's scene items, in the scene."""
        return _ColumnItems(self.scene, self._font, self._fg, self._small)

    def palette(self, name: str) -> np.ndarray:
        """The uint32 colour table of palette ``name`` (:func:`~.overview_layout.palette32`)."""
        return self._palettes[name]

    # ------------------------------------------------------------ text
    def text_width(self, text: str) -> float:
        return self._advance(self._fm_small, text)

    def _elided(self, fm: QtGui.QFontMetricsF, text: str, width: float) -> str:
        """``text`` elided on the right to ``width``, remembered as :meth:`_advance` is."""
        key = (id(fm), text, width)
        out = self._widths.get(key)
        if out is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            out = self._widths[key] = fm.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width)
        return out

    def _advance(self, fm: QtGui.QFontMetricsF, text: str) -> float:
        """``fm.horizontalAdvance(text)``, remembered (the same labels are measured at every redraw)."""
        key = (id(fm), text)
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            width = self._widths[key] = fm.horizontalAdvance(text)
        return width

    def outline(self, colour: str, z: float) -> QtWidgets.QGraphicsRectItem:
        """A hidden rectangle outline of ``colour`` at depth ``z``, in the scene (the hover and focus frames)."""
        item = QtWidgets.QGraphicsRectItem()
        pen = QtGui.QPen(QtGui.QColor(colour))
        pen.setWidth(2)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(z)
        item.hide()
        self.scene.addItem(item)
        return item

    @staticmethod
    def _colour_bar(name: str) -> QtGui.QPixmap:
        table = np.ascontiguousarray(np.repeat(lut(name)[None], 2, axis=0))
        h, w = table.shape[:2]
        image = QtGui.QImage(table.data, w, h, w * 3, QtGui.QImage.Format.Format_RGB888)
        return QtGui.QPixmap.fromImage(image.copy())

    # ------------------------------------------------------------ drawing
    def draw_regions(self, flow: Flow, placed: list[Placed]) -> None:
        """A frame around each block's columns; the identity shortcut as a line along its bottom."""
        for item in self._region_items:
            self.scene.removeItem(item)
        self._region_items = []
        colour = QtGui.QColor(self._fg)
        colour.setAlpha(110)
        pen = QtGui.QPen(colour, 1, QtCore.Qt.PenStyle.DashLine)
        for region in block_regions(flow, placed):
            frame = QtWidgets.QGraphicsRectItem(region.x, region.y + 1, region.width, region.height - 2)
            frame.setPen(pen)
            frame.setZValue(-5)
            frame.setToolTip(f"block {region.block}")
            self.scene.addItem(frame)
            self._region_items.append(frame)
            if region.identity:
                line = QtWidgets.QGraphicsLineItem(region.x + 4, region.line_y, region.x + region.width - 4,
                                                   region.line_y)
                line.setPen(QtGui.QPen(colour, 2))
                line.setToolTip("the identity shortcut: the block's input is added to its body's output")
                self.scene.addItem(line)
                self._region_items.append(line)

    def draw_column(self, q: Placed, items: _ColumnItems, v: np.ndarray | None, range_text: str,
                    true_class: int | None) -> None:
        """Column ``q`` into ``items``: its labels and its values ``v`` (None: the shape only); ``true_class``
        is the class a softmax column marks."""
        c = q.column
        fm = self._fm
        title = self._elided(fm, c.title, max(q.width + SPACING_HALF, 40.0))
        items.set_text(items.title, "title", title)
        items.title.setPos(q.x + (q.width - self._advance(fm, title)) / 2, q.y)
        shape_text = fmt(c.shape) if c.kind != "error" else ""
        items.set_text(items.shape, "shape", shape_text)
        items.set_text(items.range, "range", range_text)
        extra_key = (q, true_class if c.kind == "bars" else None)
        rebuild = extra_key != items.extra_key
        if rebuild:
            items.clear_extra()
            items.extra_key = extra_key
            items.dynamic = []
        bottom = q.body_y
        kind = c.kind
        if kind in ("maps", "image", "flat", "units") and v is not None:
            bottom = self._draw_values(q, items, v, rebuild)
        elif kind == "bars" and v is not None:
            bottom = self._draw_bars(q, items, v, rebuild, true_class)
        elif not rebuild:
            bottom = items.bottom
        elif kind == "error":
            text = QtWidgets.QGraphicsTextItem()
            text.setPlainText(c.text)
            text.setDefaultTextColor(QtGui.QColor(VERMILION))
            text.setTextWidth(q.width)
            text.setPos(q.x, q.body_y)
            self.scene.addItem(text)
            items.extra.append(text)
            items.texts["error"] = c.text
            items.image.hide()
            bottom = q.body_y + text.boundingRect().height()
        else:   # pending: the shape's box, no values
            g = q.grid
            if g is not None:
                box = QtWidgets.QGraphicsRectItem(g.x, g.y, g.tw, g.th)
                box.setBrush(QtGui.QColor(GREY).lighter(130))
                box.setPen(QtGui.QPen(QtGui.QColor(GREY)))
                self.scene.addItem(box)
                items.extra.append(box)
                bottom = g.y + g.th
            items.image.hide()
        items.bottom = bottom
        if kind not in ("maps", "flat", "units", "image") or v is None:
            items.bar.hide()
            items.set_text(items.range, "range", "")
        line = self._fm_small.height()
        y = min(max(bottom + 4, q.body_y), q.y + q.height - 2 * line - 14)
        for item, text in ((items.shape, shape_text), (items.range, items.texts.get("range", ""))):
            item.setPos(q.x + (q.width - self._advance(self._fm_small, text)) / 2, y)
            y += line
            if item is items.shape and items.bar.isVisible():
                items.bar.setPos(q.x + PAD_TEXT, y + 1)
                y += 6

    def _draw_values(self, q: Placed, items: _ColumnItems, v: np.ndarray, rebuild: bool) -> float:
        c = q.column
        if c.kind == "image" and v.ndim == 3 and v.shape[0] == 3:
            maps = pack_rgb(v)[None]
            tile = maps.shape[1:]
            symmetric = palette = None
        else:
            if c.kind == "flat" and c.origin is not None and (q.large or q.strip is None):
                maps = v.reshape(c.origin)
            elif q.strip is not None:
                maps = v.reshape(1, -1, 1)
            elif c.kind == "image":
                maps = as_maps(v)[:1]
            else:
                maps = as_maps(v)
            levels, symmetric = items.levels.levels, items.levels.symmetric
            n_draw = q.grid.n if q.grid is not None and q.strip is None else maps.shape[0]
            shown = maps[:n_draw]
            if items.u8 is None or items.u8.shape != shown.shape:
                items.u8 = np.empty(shown.shape, np.uint8)
                items.scratch = np.empty(shown.shape, np.float32)
            u8 = quantize(shown, levels, out=items.u8, scratch=items.scratch)
            name = GREYS if c.kind == "image" else (DIVERGING if symmetric else SEQUENTIAL)
            palette = self._palettes[name]
            maps = u8
            tile = maps.shape[1:]
        if q.strip is not None:
            x, y, w, h = q.strip
            grid = Grid(x, y, 1, 1, int(h), int(w), 0, 1)
        else:
            grid = q.grid
        key = (grid.rows, grid.cols, grid.th, grid.tw, grid.gap, grid.n, tuple(tile))
        if items.raster_key != key:
            items.raster_key = key
            items.raster = Raster(grid, tuple(tile))
        pixels = items.raster.draw(maps) if palette is None else items.raster.draw_indices(maps, palette)
        items.image.set_pixels(pixels)
        items.image.setPos(grid.x, grid.y)
        items.image.show()
        bottom = grid.y + grid.height
        if symmetric is not None:
            name = DIVERGING if symmetric else SEQUENTIAL
            width = max(10.0, q.width - 2 * PAD_TEXT)
            if items.bar_key != (name, width):
                items.bar_key = (name, width)
                bar = self._bars[name]
                items.bar.setPixmap(bar)
                items.bar.setTransform(QtGui.QTransform.fromScale(width / bar.width(), 3.0))
            items.bar.show()
        else:
            items.bar.hide()
        if q.more_rect is not None:
            x, y, w, h = q.more_rect
            bottom = y + h
        if c.kind == "flat" and q.strip is not None and c.origin is not None:
            bottom = q.strip[1] + q.strip[3]
        if not rebuild:
            return bottom
        if q.more_rect is not None:
            x, y, w, h = q.more_rect
            label = f"+{q.more} more" if q.more else "show fewer"
            box = QtWidgets.QGraphicsRectItem(x, y, w, h)
            box.setPen(QtGui.QPen(QtGui.QColor(GREY)))
            box.setBrush(QtGui.QColor(GREY).lighter(150) if self._bg.lightness() > 128 else
                         QtGui.QColor(GREY).darker(200))
            text = _text(label, self._small, self._fg)
            text.setPos(x + (w - self._fm_small.horizontalAdvance(label)) / 2, y + (h - self._fm_small.height()) / 2)
            for item in (box, text):
                self.scene.addItem(item)
                items.extra.append(item)
            items.texts["more"] = label
        if c.kind == "flat" and q.strip is not None and c.origin is not None:
            self._draw_segments(q, items)
        if c.kind == "units" and c.classes and q.label_width and q.grid is not None:
            g = q.grid
            for i, name in enumerate(c.classes):
                text = _text(name, self._small, self._fg)
                x, y, w, h = g.rect(i)
                text.setPos(x + w + 4, y + (h - self._fm_small.height()) / 2)
                self.scene.addItem(text)
                items.extra.append(text)
        return bottom

    def _draw_segments(self, q: Placed, items: _ColumnItems) -> float:
        """A Flatten's strip: a tick between its C segments (one per channel it was flattened from)."""
        x, y, w, h = q.strip
        c = q.column.origin[0]
        path = QtGui.QPainterPath()
        for k in range(1, c):   # outside the strip, so the ticks hide no value
            yy = y + k * h / c
            path.moveTo(x - 4, yy)
            path.lineTo(x - 1, yy)
            path.moveTo(x + w + 1, yy)
            path.lineTo(x + w + 4, yy)
        item = QtWidgets.QGraphicsPathItem(path)
        pen = QtGui.QPen(self._fg)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(2)
        self.scene.addItem(item)
        items.extra.append(item)
        return y + h

    def _draw_bars(self, q: Placed, items: _ColumnItems, probs: np.ndarray, rebuild: bool,
                   true_class: int | None) -> float:
        g = q.grid
        c = q.column
        items.image.hide()
        probs = np.nan_to_num(np.asarray(probs, dtype=np.float64).reshape(-1), nan=0.0)
        pred = int(np.argmax(probs)) if probs.size else -1
        true = true_class
        line = self._fm_small.height()
        n = min(g.n, probs.size)
        if rebuild:
            show_names = g.th >= 0.75 * line
            back_brush = QtGui.QColor(GREY).lighter(160) if self._bg.lightness() > 128 else QtGui.QColor("#333")
            for i in range(n):
                x, y, w, h = g.rect(i)
                back = QtWidgets.QGraphicsRectItem(x, y, w, h)
                back.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
                back.setBrush(back_brush)
                bar = QtWidgets.QGraphicsRectItem(x, y, 1, h)
                bar.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
                new = [back, bar]
                value = None
                if i == true:
                    mark = QtWidgets.QGraphicsRectItem(x - 1, y - 1, w + 2, h + 2)
                    pen = QtGui.QPen(QtGui.QColor(GREEN))
                    pen.setWidth(2)
                    pen.setCosmetic(True)
                    mark.setPen(pen)
                    new.append(mark)
                if show_names:
                    name = c.classes[i] if c.classes and i < len(c.classes) else str(i)
                    label = ("✓ " if i == true else "") + name
                    text = _text(label, self._small, QtGui.QColor(GREEN) if i == true else self._fg)
                    text.setPos(x - 6 - self._fm_small.horizontalAdvance(label), y + (h - line) / 2)
                    value = _text("", self._small, self._fg)
                    value.setPos(x + w + 4, y + (h - line) / 2)
                    new += [text, value]
                for item in new:
                    self.scene.addItem(item)
                    items.extra.append(item)
                items.dynamic.append((bar, value, [None, None]))
        blue, grey = QtGui.QColor(BLUE), QtGui.QColor(GREY)
        for i, (bar, value, last) in enumerate(items.dynamic[:n]):
            x, y, w, h = g.rect(i)
            p = float(min(max(probs[i], 0.0), 1.0))
            width = max(1.0, round(w * p))
            if last[0] != (width, i == pred):
                last[0] = (width, i == pred)
                bar.setRect(x, y, width, h)
                bar.setBrush(blue if i == pred else grey)
            text = f"{p:.3f}"
            if value is not None and last[1] != text:
                last[1] = text
                value.setText(text)
        return g.y + g.height
