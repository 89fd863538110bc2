"""Who is calling, told to the service behind the gateway: in ``scope["gateway"]`` and in headers.

The gateway owns a family of headers: its identity headers (``x-gateway-*``), the request id and the
client-IP headers (`gateway.forwarded`). A client's copy of any of them is dropped before the service
sees the request, in every spelling a server or framework could fold into the same name: WSGI and
CGI servers turn ``-`` into ``_`` (``HTTP_X_GATEWAY_ACCOUNT_ID``), some turn every other character
too, and all of them ignore case. Then the gateway writes its own, so nobody can claim an identity
or an address the gateway did not establish.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from gateway.call import Call
from gateway.errors import BadInput
from gateway.forwarded import CLIENT_IP_HEADERS, Headers
from gateway.memo import PerObjects

PREFIX = b"x-gateway-"
REQUEST_ID = b"x-acs-request-id"

#: Header -> how to read it off a verified request.
HEADERS: MappingProxyType[bytes, Callable[[Call], str | None]] = MappingProxyType({
    b"x-gateway-account-id": lambda ctx: str(ctx.key.account.id) if ctx.key else None,
    b"x-gateway-account-name": lambda ctx: ctx.key.account.name if ctx.key else None,
    b"x-gateway-sub-user": lambda ctx: ctx.key.user.name if ctx.key and ctx.key.user and not ctx.key.session else None,
    b"x-gateway-access-key-id": lambda ctx: ctx.key.id if ctx.key else None,
    # A temporary (STS) key: the role it acts as, its session name, and the key that assumed the role.
    b"x-gateway-role-arn": lambda ctx: ctx.key.session.role.arn if ctx.key and ctx.key.session else None,
    b"x-gateway-role-session-name": lambda ctx: ctx.key.session.name if ctx.key and ctx.key.session else None,
    b"x-gateway-assumed-by": lambda ctx: ctx.key.session.assumed_by if ctx.key and ctx.key.session else None,
    b"x-gateway-anonymous": lambda ctx: "true" if ctx.anonymous else None,  # and none of the above
    REQUEST_ID: lambda ctx: ctx.request_id,
})

# Lower-case letters and digits stay; every other byte folds to "-", the way the most eager servers
# fold names into variables (Apache's CGI environment turns any non-alphanumeric byte into "_").
_FOLD = bytes(
    byte + 32 if 65 <= byte <= 90 else byte if 97 <= byte <= 122 or 48 <= byte <= 57 else 45 for byte in range(256)
)
_OWNED_EXACT = CLIENT_IP_HEADERS | {REQUEST_ID}
# Headers the gateway reads to check a request (and V3 signs every x-acs-* one it is given): a client
# name that only folds into one of these (``X_Acs_Action``) is read by a WSGI service as the checked
# header itself, or joined to it, so such a request is refused rather than forwarded.
_CHECKED = frozenset({b"host", b"authorization", b"content-type", b"content-length", b"content-encoding",
                      b"transfer-encoding", b"accept", b"connection"})
_CHECKED_PREFIX = b"x-acs-"
# What to do with a client's header, by name as received: keep it, drop it (the gateway owns it),
# keep a Connection header without the tokens naming owned headers (a proxy wrapped by the gateway
# would drop those after the gateway wrote them), or refuse the request (a spelling of a checked
# header). A request's names are a handful of well-known ones, so the fold runs once per distinct
# name; bounded, because names are the client's to choose.
KEEP, OWNED, CONNECTION, AMBIGUOUS = 0, 1, 2, 3
_VERDICTS: dict[bytes, int] = {}
_VERDICTS_SIZE = 4096
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close"})


def fold(name: bytes) -> bytes:
    """``name`` as the server folding the most would read it: lower case, ``-`` for any other byte."""
    return name.translate(_FOLD).strip(b"-")


def _verdict(name: bytes) -> int:
    verdict = _VERDICTS.get(name)
    if verdict is None:
        folded, lowered = fold(name), name.lower()
        if folded.startswith(PREFIX) or folded in _OWNED_EXACT:
            verdict = OWNED
        elif folded != lowered and (folded in _CHECKED or folded.startswith(_CHECKED_PREFIX)):
            verdict = AMBIGUOUS
        else:
            verdict = CONNECTION if lowered == b"connection" else KEEP
        if len(_VERDICTS) >= _VERDICTS_SIZE:
            _VERDICTS.clear()
        _VERDICTS[name] = verdict
    return verdict


def is_owned(name: bytes) -> bool:
    """True for a header only the gateway may write (``X_Gateway_Account_Id`` as much as the real one)."""
    return _verdict(name) == OWNED


def _connection(value: bytes) -> bytes:
    if value in _PLAIN_CONNECTION:
        return value
    return b", ".join([token.strip() for token in value.split(b",") if not is_owned(token.strip())])


# The identity headers of one access key never change: built once per key.
_BY_KEY: PerObjects[Headers] = PerObjects()


def _identity(ctx: Call) -> Headers:
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


def client_headers(raw: Headers) -> Headers:
    """The client's headers minus every one the gateway owns, in any spelling.

    Raises `BadInput` for a header a server would fold into one the gateway checks: run before the
    chain, so that such a request spends nothing; its result is what the service gets of the client's.
    """
    verdicts = _VERDICTS
    kept = []
    for name, value in raw:
        verdict = verdicts.get(name)
        if verdict is None:
            verdict = _verdict(name)
        if verdict == KEEP:
            kept.append((name, value))
        elif verdict == CONNECTION:
            kept.append((name, _connection(value)))
        elif verdict == AMBIGUOUS:
            raise BadInput("a header name that folds into one the gateway checks (x-acs-*, content-type...)")
    return kept


def downstream_headers(ctx: Call, client: Headers, forwarded: Headers) -> Headers:
    """The ``client`` headers (`client_headers`, extended in place) plus the identity the gateway
    established and its ``forwarded`` client-IP headers (`gateway.forwarded.forwarded_headers`)."""
    headers = client
    headers.extend(_identity(ctx))
    headers.append((REQUEST_ID, ctx.request_id.encode()))
    headers.extend(forwarded)
    return headers
