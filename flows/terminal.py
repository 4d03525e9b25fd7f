"""Text from the tables (ids, captions, errors) made safe to print on a terminal.

Ids and captions come from manifests, that is from anyone. Printed raw, an ESC sequence in a caption
recolours or clears the terminal, moves the cursor or sets the window title, a carriage return hides
what came before it, and bidi controls reorder what is shown. :func:`printable` shows such characters
as escapes instead (``\\x1b``, ``\\r``, ``\\u202e``); everything else, Unicode included, stays as it is.
"""
from __future__ import annotations

import unicodedata

# Control (C0, DEL, C1), format (bidi overrides and isolates, zero-width), surrogates, private use,
# unassigned, and the line/paragraph separators: nothing a name or caption needs, all of it hazardous.
UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``str(text)`` with every character of :data:`UNPRINTABLE` categories replaced by its escape."""
    text = str(text)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in UNPRINTABLE else ch for ch in text)
