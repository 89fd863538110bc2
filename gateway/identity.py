"""Who is calling, told to the service behind the gateway: in ``scope["gateway"]`` and in headers.

Headers of this family arriving from the client are dropped before anything else reads them, so
nobody can claim an identity the gateway did not establish.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from gateway.context import RequestContext

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
    lowered = name.lower()
    return lowered.startswith(PREFIX) or lowered == REQUEST_ID


def downstream_headers(ctx: RequestContext, raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers minus any identity claim, plus the identity the gateway established."""
    headers = [(name, value) for name, value in raw if not is_spoofable(name)]
    for name, read in HEADERS.items():
        value = read(ctx)
        if value is not None:
            # Header values are latin-1 on the wire; a non-latin-1 account name is sent UTF-8 encoded.
            headers.append((name, value.encode("utf-8")))
    return headers
