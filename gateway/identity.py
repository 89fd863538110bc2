"""Who is calling, told to the service behind the gateway: in ``scope["gateway"]`` and in headers.

Headers of this family arriving from the client are dropped before anything else reads them, so
nobody can claim an identity the gateway did not establish.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from gateway.context import RequestContext
from gateway.memo import PerObjects

PREFIX = b"x-gateway-"
REQUEST_ID = b"x-acs-request-id"

#: Header -> how to read it off a verified request.
HEADERS: MappingProxyType[bytes, Callable[[RequestContext], str | None]] = MappingProxyType({
    b"x-gateway-account-id": lambda ctx: str(ctx.key.account.id) if ctx.key else None,
    b"x-gateway-account-name": lambda ctx: ctx.key.account.name if ctx.key else None,
    b"x-gateway-sub-user": lambda ctx: ctx.key.user.name if ctx.key and ctx.key.user else None,
    b"x-gateway-access-key-id": lambda ctx: ctx.key.id if ctx.key else None,
    REQUEST_ID: lambda ctx: ctx.request_id,
})


def is_spoofable(name: bytes) -> bool:
    # ASGI servers give header names lower-cased already; lower() again only for hand-made scopes.
    return name[:10].lower() == PREFIX or name.lower() == REQUEST_ID


# The identity headers of one access key never change: built once per key.
_BY_KEY: PerObjects[list[tuple[bytes, bytes]]] = PerObjects()


def _identity(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    key = ctx.key
    cached = _BY_KEY.get(key)
    if cached is not None:
        return cached
    headers = []
    for name, read in HEADERS.items():
        if name == REQUEST_ID:
            continue
        value = read(ctx)
        if value is not None:
            # Header values are latin-1 on the wire; a non-latin-1 account name is sent UTF-8 encoded.
            headers.append((name, value.encode("utf-8")))
    return headers if key is None else _BY_KEY.put(headers, key)


def downstream_headers(ctx: RequestContext, raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers minus any identity claim, plus the identity the gateway established."""
    headers = [(name, value) for name, value in raw if not is_spoofable(name)]
    headers.extend(_identity(ctx))
    headers.append((REQUEST_ID, ctx.request_id.encode()))
    return headers
