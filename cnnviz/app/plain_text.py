"""Text from a file shown by Qt as what it is: never markup.

Qt takes a label's or tooltip's text for HTML when its first line holds
something that looks like a tag (``Qt::mightBeRichText``), so a layer named
``<img src=…>`` or an image folder's class ``<b>cat</b>`` would be rendered,
not shown. Labels that hold such text are set to plain text; where a view
builds rich text (bold class names in a caption) or Qt decides (tooltips),
the text is escaped here first.
"""
from __future__ import annotations

import html


def escaped(text: str) -> str:
    """``text`` for the inside of rich text: ``<``, ``>``, ``&`` and quotes as entities."""
    return html.escape(text, quote=True)


def tooltip(text: str) -> str:
    """A tooltip that Qt shows exactly as ``text`` (line breaks kept), whatever the text holds."""
    if not text:
        return ""
    return "<qt>" + escaped(text).replace("\n", "<br>") + "</qt>"
