"""The request context: everything a layer needs, parsed once and carried in ``scope["gateway"]``.

Layers read it and fill in what they learn (the API, the access key, the state ticket); none of
them re-parses the request.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope

if TYPE_CHECKING:
    from gateway.policy import AccessKey, ApiSpec
    from gateway.signing import V3Authorization
    from gateway.stores import IdempotencyClaim, StoredAnswer, Take


@dataclass(slots=True, eq=False)
class RequestContext:
    request_id: str
    method: str
    path: str
    headers: dict[str, str]
    host_id: str
    format: str
    receive: Receive
    started: float = field(default_factory=time.perf_counter)
    query_string: bytes = b""
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # query and form body merged

    # The common parameters, from the query/body (version 1.0) or the x-acs-* headers (V3).
    signature_version: str | None = None
    action: str | None = None
    version: str | None = None
    access_key_id: str | None = None
    signature: str | None = None
    signature_method: str | None = None
    nonce: str | None = None
    timestamp: str | None = None
    v3: V3Authorization | None = None
    format_known: bool = False  # Format (or Accept) has been read: refusals may use ctx.format

    # What the layers learn.
    api: ApiSpec | None = None
    key: AccessKey | None = None
    nonce_ttl_ms: int = 0
    timestamp_ms: int = 0  # the Timestamp, once the timestamp layer has read it
    takes: tuple[Take, ...] = ()
    idempotency: IdempotencyClaim | None = None
    replay: StoredAnswer | None = None
    quota_remaining: int | None = None
    code: str = "OK"
    status: int = 0
    store_error: bool = False  # the store could not be reached for this request
    head_too_large: bool = False  # headers over GATEWAY_MAX_HEADER_BYTES: left unread, to be refused

    @classmethod
    def start(cls, scope: Scope, receive: Receive, default_format: str, host_id: str | None,
              max_header_bytes: int | None = None) -> RequestContext:
        """The context of one request. Headers over ``max_header_bytes`` (names, values and 4 bytes a
        line, as on the wire) are not read: the context is marked ``head_too_large`` for refusal."""
        raw = scope["headers"]
        too_large = len(raw) > FEW_HEADERS and max_header_bytes is not None and _head_size(raw) > max_header_bytes
        if too_large:
            raw = []
        headers = {name.lower().decode("latin-1"): value.decode("latin-1") for name, value in raw}
        if len(headers) != len(raw):
            headers = _folded(raw)
        host = headers.get("host", "")
        return cls(
            request_id=new_request_id(),
            method=scope["method"],
            path=scope.get("path", "/"),
            headers=headers,
            host_id=host_id or _hostname(host),
            format=default_format,
            receive=receive,
            query_string=scope.get("query_string", b""),
            head_too_large=too_large,
        )

    @property
    def identity(self) -> dict[str, Any] | None:
        """Who is calling, once the access key is known: what the wrapped service may trust."""
        if self.key is None:
            return None
        return {
            "AccountId": self.key.account.id,
            "AccountName": self.key.account.name,
            "SubUser": self.key.user.name if self.key.user else None,
            "AccessKeyId": self.key.id,
            "RequestId": self.request_id,
        }


def new_request_id() -> str:
    """An upper-case version-4 UUID, as Aliyun's RequestIds look.

    Random bytes are read a batch at a time: one getrandom() system call per request was most of the
    cost. The batch is dropped in a forked child, so that two processes never hand out the same ids.
    """
    try:
        return _UNUSED_IDS.pop()
    except IndexError:
        h = os.urandom(16 * _BATCH).hex().upper()
        _UNUSED_IDS.extend([f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}"
                            f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * _BATCH, 32)])
        return _UNUSED_IDS.pop()


_BATCH = 256
_UNUSED_IDS: list[str] = []
_VARIANT = {digit: "89AB"[int(digit, 16) & 3] for digit in "0123456789ABCDEF"}
os.register_at_fork(after_in_child=_UNUSED_IDS.clear)


#: Up to this many headers a request's head is not measured: folding them costs little whatever their
#: size, and summing sizes on every request would cost more than the rest of `RequestContext.start`.
#: Past it (a head of thousands of small headers) it is measured before anything else reads it.
FEW_HEADERS = 64


def _head_size(raw: list[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) + 4 for name, value in raw)  # "name: value\r\n"


def _folded(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    # Repeated headers fold into one, as RFC 9110 allows; a signed header is compared folded. Joined
    # once per name: joining as they come copies the growing value each time (quadratic).
    values: dict[str, list[str]] = {}
    for raw_name, raw_value in raw:
        values.setdefault(raw_name.lower().decode("latin-1"), []).append(raw_value.decode("latin-1"))
    return {name: ",".join(parts) for name, parts in values.items()}


@functools.lru_cache(maxsize=256)
def _hostname(host: str) -> str:
    if host.endswith("]") or host.count(":") != 1:
        return host or "gateway"  # no port, or a bare IPv6 address
    return host.rsplit(":", 1)[0]
