"""How an error Message repeats text a client sent: escaped, and cut short.

A Message may name the parameter that broke a rule; that name is the client's text, and it reaches
logs, headers and XML that copy the Message, so it must not carry anything that splits or hides text.
"""

from __future__ import annotations

import re

#: How much of a client's text a Message repeats: enough to recognise a parameter name.
ECHO_LIMIT = 64
# What a Message never carries raw: C0 and C1 controls and DEL (a CR/LF would split a log line or a
# header that copies the Message), Unicode line and paragraph separators, format characters (Unicode
# category Cf: bidirectional controls reorder what a reader sees, zero-width ones hide text), lone
# surrogates and the two non-characters XML cannot carry; and the backslash, so that an escape is
# never ambiguous.
_UNSAFE = re.compile(
    r"[\\\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\ud800-\udfff\ufffe\uffff]"
)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def echo(text: str) -> str:
    """Client-supplied ``text`` as a Message may repeat it: escaped as ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``,
    and cut after `ECHO_LIMIT` characters with ``...``."""
    cut = text[:ECHO_LIMIT]
    if _UNSAFE.search(cut) is not None:
        cut = _UNSAFE.sub(_escaped, cut)
    return cut + "..." if len(text) > ECHO_LIMIT else cut
