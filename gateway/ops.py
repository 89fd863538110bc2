"""Operator endpoints under a reserved prefix: liveness, readiness (the store answers)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.stores import Store, StoreUnavailable


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class OpsApp:
    """``{prefix}/health`` (the process answers), ``{prefix}/ready`` (and its store does)."""

    def __init__(self, prefix: str, store: Store) -> None:
        self.prefix = prefix
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["path"][len(self.prefix):]
        if endpoint == "/health":
            await _plain(send, 200, "ok\n")
        elif endpoint == "/ready":
            try:
                await self.store.ping()
            except StoreUnavailable as exc:
                await _plain(send, 503, f"store unavailable: {exc}\n")
                return
            await _plain(send, 200, "ready\n")
        else:
            await _plain(send, 404, "not found\n")
