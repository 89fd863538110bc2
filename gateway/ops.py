"""Operator endpoints under a reserved prefix: liveness, readiness (the store answers), metrics.

`GatewayMiddleware` routes ``{prefix}/...`` here before the chain, so these paths are never API
calls: no parameter on them is read, and nothing reaches the wrapped service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.stores import Store, StoreUnavailable

TEXT = b"text/plain; charset=utf-8"
NO_METRICS = "metrics need prometheus-client: pip install 'acs-gateway[metrics]'\n"


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = TEXT) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _health(store: Store, send: Send) -> None:
    await _answer(send, 200, b"ok\n")


async def _ready(store: Store, send: Send) -> None:
    try:
        await store.ping()
    except StoreUnavailable as exc:
        await _answer(send, 503, f"store unavailable: {exc}\n".encode())
        return
    await _answer(send, 200, b"ready\n")


async def _metrics(store: Store, send: Send) -> None:
    exposed = metrics.exposition()
    if exposed is None:
        await _answer(send, 404, NO_METRICS.encode())
        return
    body, content_type = exposed
    await _answer(send, 200, body, content_type.encode("latin-1"))


Endpoint = Callable[[Store, Send], Awaitable[None]]

#: Path under the prefix -> what answers it.
ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType({
    "/health": _health,  # liveness: the process answers
    "/ready": _ready,  # readiness: and its store does (503 while it cannot be reached)
    "/metrics": _metrics,  # Prometheus text format
})


class OpsApp:
    """``{prefix}/health``, ``{prefix}/ready`` and ``{prefix}/metrics``; anything else is 404."""

    def __init__(self, prefix: str, store: Store) -> None:
        self.prefix = prefix
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS.get(scope["path"][len(self.prefix):])
        if endpoint is None:
            await _answer(send, 404, b"not found\n")
            return
        await endpoint(self.store, send)
