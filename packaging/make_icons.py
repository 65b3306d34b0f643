#!/usr/bin/env python3
"""Render resources/icons/cnnviz.svg into the PNG, .ico and .icns files beside it.

    python packaging/make_icons.py [--check]

Qt's QSvgRenderer (PySide6-Essentials ships QtSvg) draws the SVG at each size;
Pillow writes the Windows .ico and the macOS .icns from those renders, so every
size is drawn from the vector source rather than scaled from a bitmap. The
renders are committed (they are small); run this after changing the SVG.
``--check`` renders into memory and exits 1 if a committed file is missing or
has the wrong pixel size (the test suite checks the same).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SVG = ICONS / "cnnviz.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
"""The hicolor sizes installed on Linux (apps/ folders) and shipped in the wheel."""
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def png_name(size: int) -> str:
    return f"cnnviz-{size}.png"


def render(size: int):
    """The SVG drawn at ``size`` × ``size`` as a Pillow RGBA image."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {SVG} is not a valid SVG for Qt")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return Image.open(io.BytesIO(bytes(data))).convert("RGBA")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--check", action="store_true", help="only check the committed renders")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841  (QImage text/SVG need one)
    from PIL import Image

    if args.check:
        bad = []
        for size in PNG_SIZES:
            path = ICONS / png_name(size)
            if not path.exists() or Image.open(path).size != (size, size):
                bad.append(path.name)
        for name in ("cnnviz.ico", "cnnviz.icns"):
            if not (ICONS / name).exists():
                bad.append(name)
        if bad:
            print("make_icons: missing or wrong size:", ", ".join(bad), file=sys.stderr)
            return 1
        return 0

    renders = {size: render(size) for size in sorted(set(PNG_SIZES + ICO_SIZES + ICNS_SIZES))}
    for size in PNG_SIZES:
        renders[size].save(ICONS / png_name(size), optimize=True)
    ico = [renders[s] for s in ICO_SIZES]
    ico[-1].save(ICONS / "cnnviz.ico", sizes=[(s, s) for s in ICO_SIZES], append_images=ico[:-1])
    icns = [renders[s] for s in ICNS_SIZES]
    icns[-1].save(ICONS / "cnnviz.icns", append_images=icns[:-1])
    for path in sorted(ICONS.iterdir()):
        print(f"{path.stat().st_size:>8}  {path.relative_to(ICONS.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
