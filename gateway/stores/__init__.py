"""The gateway's shared state: the `Store` protocol, its value types, and `open_store`.

Store URLs (``GATEWAY_REDIS_URL``)::

    (unset)                                  MemoryStore, one process
    memory://                                MemoryStore, spelled out
    redis://[user:pass@]host:port[/db]       RedisStore over a pooled client
    rediss://...                             the same over TLS
    unix:///path/to/redis.sock               the same over a Unix socket
    redis+cluster://host:port[,host:port]    RedisStore over Redis Cluster (seed nodes)
    rediss+cluster://...                     the same over TLS
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from gateway.errors import StoreUnavailable
from gateway.stores.base import (
    IdempotencyClaim,
    Outcome,
    Store,
    StoredAnswer,
    Take,
    Ticket,
    Verdict,
)
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore

__all__ = [
    "IdempotencyClaim",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "StoredAnswer",
    "Take",
    "Ticket",
    "Verdict",
    "open_store",
]

_Factory = Callable[[str, str, float], Store]


def _memory(url: str, prefix: str, timeout: float) -> Store:
    return MemoryStore()


def _redis(url: str, prefix: str, timeout: float) -> Store:
    return RedisStore.from_url(url, prefix=prefix, timeout=timeout)


def _cluster(url: str, prefix: str, timeout: float) -> Store:
    return RedisStore.from_cluster_url(url, prefix=prefix, timeout=timeout)


SCHEMES: Mapping[str, _Factory] = MappingProxyType(
    {
        "memory": _memory,
        "redis": _redis,
        "rediss": _redis,
        "unix": _redis,
        "redis+cluster": _cluster,
        "rediss+cluster": _cluster,
    }
)


def open_store(url: str | None, *, prefix: str = "gw", timeout: float = 0.25) -> Store:
    """The store a URL names (None or empty: in-memory).

    ``timeout`` (seconds) bounds each Redis reply, so a stopped or silent Redis fails fast as
    `StoreUnavailable`; connecting gets at least 1 s and waiting for a pooled connection at least 5 s,
    as a busy event loop stretches both (see `gateway.stores.redis`). No I/O happens here: clients
    connect on first use, so this may run before an event loop exists.
    """
    if not url:
        return MemoryStore()
    scheme, separator, _ = url.partition("://")
    factory = SCHEMES.get(scheme.lower()) if separator else None
    if factory is None:
        # The URL itself may hold a password: name only its scheme.
        named = scheme if separator else "(none)"
        raise ValueError(f"store URL scheme {named!r} is not one of {', '.join(SCHEMES)}")
    return factory(url, prefix, timeout)
