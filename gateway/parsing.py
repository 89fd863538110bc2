"""Strict decoding of query strings and form bodies into one flat parameter mapping.

Decode first, then the signature layers re-encode canonically: the SDKs send one value as ``%20``,
``+`` or unescaped, so the raw wire string is never what gets signed. Anything ambiguous (a bad
escape, bytes that are not UTF-8, a name given twice, a nameless pair) is refused rather than
guessed at, because a lenient parser here is how parameters get smuggled past the signature.

The parsers behind the gateway read the same bytes differently wherever a byte is not plain printable
ASCII: Starlette decodes raw bytes as latin-1 (raw UTF-8 ``é`` reads ``Ã©``), aiohttp strips trailing
whitespace off a form body, a ``#`` ends the query of the URL the proxy builds, and older form
parsers (python-multipart before 0.0.13) split on ``;`` as well as ``&``. A well-formed encoder escapes
all of these, so such a raw byte is refused rather than read one way here and another way there.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from gateway.errors import BadInput

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Escapes of ASCII bytes, in every case spelling: "%3A", "%3a". The values a signed request escapes
# (Timestamp's colons, the Signature's "+/=") are ASCII; joining table lookups is a third of the cost
# of urllib's unquote, which is kept for the rest (UTF-8 sequences, with their strict decoding).
_ASCII_ESCAPES = {
    high + low: chr(byte)
    for byte in range(128)
    for high in {f"{byte >> 4:X}", f"{byte >> 4:x}"}
    for low in {f"{byte & 15:X}", f"{byte & 15:x}"}
}


# The raw bytes every parser reads alike: printable ASCII, less "#" and ";" (see above).
_PLAIN = bytes(byte for byte in range(0x21, 0x7F) if byte not in b"#;")



def parse_into(raw: bytes, into: dict[str, str]) -> None:
    """Add the ``name=value`` pairs of ``raw`` to ``into``; a name already there is refused."""
    if not raw:
        return
    if raw.translate(None, _PLAIN):  # what is left once the plain bytes are deleted
        raise BadInput("raw byte that is not printable ASCII, or a raw '#' or ';'")
    try:
        # One decode of the whole string, then unquote only the parts that need it: most names
        # and values of a signed request carry no escape at all.
        text = raw.decode("utf-8")
        if "%" in text and _BAD_ESCAPE.search(text):
            raise BadInput("invalid percent-encoding")
        for pair in text.split("&"):
            if not pair:
                continue  # "a=1&&b=2" and a trailing "&" are what clients send; they mean nothing
            name, _, value = pair.partition("=")
            if "%" in name or "+" in name:
                name = _unescape(name.replace("+", " "))
            if not name:
                raise BadInput("parameter without a name")
            if name in into:
                raise BadInput(f"parameter {name!r} given twice")
            if "%" in value or "+" in value:
                value = _unescape(value.replace("+", " "))
            into[name] = value
    except UnicodeDecodeError:
        raise BadInput("parameter is not valid UTF-8") from None


def _unescape(text: str) -> str:
    """Percent-decode ``text``, whose escapes are known to be well-formed (``_BAD_ESCAPE``)."""
    head, *rest = text.split("%")
    try:
        return head + "".join([_ASCII_ESCAPES[part[:2]] + part[2:] for part in rest])
    except KeyError:  # an escape of a byte >= 0x80: part of a UTF-8 sequence
        return unquote(text, errors="strict")
