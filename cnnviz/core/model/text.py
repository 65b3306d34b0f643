"""Text from a file is data wherever it goes: helpers that make it safe for a terminal, a comment
or a docstring of generated code.

A stack's name, a layer's label, a description and a folder's class names come
from files anyone can write. Printed raw, an ESC starts a terminal control
sequence, a carriage return overwrites the line before it, a bidi override
reorders what the eye reads; put raw into generated code, a line break ends a
comment and starts a statement. Each helper turns every such character into a
visible escape (``\\x1b``, ``\\r``, ``\\u202e``), so the text still says what
the file said, and nothing in it acts. Standard library only.
"""
from __future__ import annotations

import unicodedata

# Characters a terminal acts on beyond C0/C1 controls: bidi embeddings, overrides and isolates,
# the directional marks, and the Unicode line and paragraph separators.
_BIDI_AND_BREAKS = frozenset(
    [0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF])


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0 or code in _BIDI_AND_BREAKS or unicodedata.category(ch) == "Cs"


def one_line(text: str) -> str:
    """``text`` on one line with nothing that acts: every character that is not printable (controls,
    line breaks, format characters, unassigned code points; a plain space stays) as a visible escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def for_terminal(text: str, *, json_text: bool = False) -> str:
    """Output text for a terminal: line breaks and tabs the program wrote stay; every other control
    character (C0, DEL, C1), bidi control and Unicode line separator becomes a visible escape.

    A defence in depth for whole messages; text from a file is passed through
    :func:`one_line` where it is inserted, so its own line breaks are escaped too.
    With ``json_text`` the escapes are JSON's ``\\uXXXX``, for JSON lines, whose
    encoder leaves C1 controls and bidi characters raw.
    """
    if text.isascii() and text.isprintable():
        return text
    escape = _json_escape if json_text else _escape
    return "".join(escape(ch) if ch not in "\n\t" and _unsafe(ch) else ch for ch in text)


def _json_escape(ch: str) -> str:
    """JSON's own escape (a JSON text stays valid: the characters only ever stand inside its strings)."""
    return f"\\u{ord(ch):04x}"


def for_comment(text: str) -> str:
    """Text for a ``#`` comment of generated code: one line, nothing that acts."""
    return one_line(text)


def for_docstring(text: str) -> str:
    """Text for the inside of a ``\"\"\"`` docstring of generated code: one line, with backslashes and
    quotes escaped so that no sequence in it ends the string or is read as an escape."""
    return one_line(text).replace("\\", "\\\\").replace('"', '\\"')
