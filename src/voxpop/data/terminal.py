"""Text from files (a header, a label, a text, a bundle's names) made safe to show on a terminal.

A control character in a file is data, but written raw to a terminal it is an instruction: an ESC
sequence can recolour, retitle or clear the screen, move the cursor over earlier output, or (on
some terminals) write to the clipboard; a bidirectional override reorders what is shown. Wherever
voxpop shows such text to a person (error lines, `voxpop info`, the leaderboard, CSV on a
terminal) it goes through `printable`, which writes each of those characters as a visible escape
(`\\x1b`, `\\u202e`). Data written to a file or a pipe is left as it is.
"""

from __future__ import annotations

import re

STDOUT = "<stdout>"  # how messages name standard output (as the table reader names "<stdin>")

# C0 controls, DEL and the C1 controls (0x80-0x9f, read as controls by many terminals), and the
# Unicode bidirectional marks, embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, keep: str = "") -> str:
    """`text` with every control character written as a visible escape, except those in `keep`
    (e.g. "\\n\\t"): `printable("a\\x1b[2Jb")` is `"a\\\\x1b[2Jb"`."""

    def escape(match: re.Match) -> str:
        char = match.group()
        if char in keep:
            return char
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _CONTROL.sub(escape, text)
