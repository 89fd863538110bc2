"""Strict decoding of query strings and form bodies into one flat parameter mapping.

Decode first, then the signature layers re-encode canonically: the SDKs send one value as ``%20``,
``+`` or unescaped, so the raw wire string is never what gets signed. Anything ambiguous (a bad
escape, bytes that are not UTF-8, a name given twice, a nameless pair) is refused rather than
guessed at, because a lenient parser here is how parameters get smuggled past the signature.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from gateway.errors import Err, GatewayError

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class BadInput(GatewayError):
    """Input the gateway refuses to interpret; rendered as the generic InvalidParameter row."""

    def __init__(self, reason: str) -> None:
        super().__init__(Err.INVALID_PARAMETER)
        self.reason = reason


def _decode(part: bytes) -> str:
    if b"%" in part:
        if _BAD_ESCAPE.search(part):
            raise BadInput("invalid percent-encoding")
        part = unquote_to_bytes(part.replace(b"+", b" "))
    elif b"+" in part:
        part = part.replace(b"+", b" ")
    try:
        return part.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("parameter is not valid UTF-8") from None


def parse_into(raw: bytes, into: dict[str, str]) -> None:
    """Add the ``name=value`` pairs of ``raw`` to ``into``; a name already there is refused."""
    if not raw:
        return
    for pair in raw.split(b"&"):
        if not pair:
            continue  # "a=1&&b=2" and a trailing "&" are what clients send; they mean nothing
        name_raw, _, value_raw = pair.partition(b"=")
        name = _decode(name_raw)
        if not name:
            raise BadInput("parameter without a name")
        if name in into:
            raise BadInput(f"parameter {name!r} given twice")
        into[name] = _decode(value_raw)
