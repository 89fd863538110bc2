"""The request target: origin-form, and a path every parser reads the same (#16 items 16, 17).

httptools hands uvicorn targets such as ``*`` or ``*@host:port/x``; joined to an upstream URL the
latter names another host. And the service receives the raw path while V3 verifies the decoded one,
so any path whose decoding is ambiguous — an encoded ``/``, a backslash, a dot segment that a
normaliser removes, an escape that is no UTF-8, a control character — could be checked as one path and
served as another. Those are refused (InvalidParameter) before any other check, so nothing is spent
on them; every remaining path decodes to exactly one text, the one the signature covers.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import Scope

from gateway.errors import BadInput

# Escapes that decode to "/" or "\": the service would see a separator the gateway did not.
_ENCODED_SEPARATOR = re.compile(rb"%(?:2[fF]|5[cC])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A path that needs no closer look: "/"-separated segments of printable ASCII without "%" or a backslash,
# none starting with ".". Linear: every repetition begins with the "/" that ends the previous one.
_PLAIN = re.compile(rb"(?:/(?:[^/.%\\\x00-\x20\x7f-\xff][^/%\\\x00-\x20\x7f-\xff]*)?)+")


def check_target(scope: Scope) -> None:
    """Refuse a request target that is not a plain origin-form path (raises `BadInput`)."""
    raw: bytes | None = scope.get("raw_path")
    if raw == b"/":  # an RPC call's path, nearly always
        return
    if raw is None:  # optional in ASGI: then the decoded path is all there is to check
        raw = scope["path"].encode("utf-8", "surrogateescape")
    if _PLAIN.fullmatch(raw) is None or raw[:2] == b"//":
        _check_path(raw)


def _check_path(raw: bytes) -> None:
    if raw[:1] != b"/" or raw[:2] == b"//":
        # "*", "*@host/x" and "//host/x" name an authority, not a path of this service.
        raise BadInput("request target is not an origin-form path")
    if b"\\" in raw or _ENCODED_SEPARATOR.search(raw):
        raise BadInput("path holds an encoded '/' or a backslash")
    try:
        path = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("path is not valid UTF-8") from None
    if _CONTROL.search(path):
        raise BadInput("path holds a control character")
    # "..;x" too: servlet containers drop a segment's ";" parameters, then see a dot segment.
    if any(segment.partition(";")[0] in (".", "..") for segment in path.split("/")):
        raise BadInput("path holds a dot segment")
