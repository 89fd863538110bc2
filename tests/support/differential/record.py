"""What each mode hands the service, recorded: the ASGI wrappers between the gateway and the service.

Proxy mode: `Recorder` sits between `GatewayMiddleware` and `ProxyApp` and snapshots ``scope["gateway"]``
(what the gateway checked) before the request is forwarded; the capture upstream has the bytes.
Middleware mode: `ServiceRecorder` is the wrapped app: it snapshots ``ctx``, the downstream scope and
the body it receives, reads the real scope with Starlette, and the scope is serialized back to HTTP/1.1
bytes (`scope_bytes`) for the byte-based parsers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.support.asgi import read_body
from tests.support.differential.compare import Expected, Reading
from tests.support.differential.parsers import starlette_reading


@dataclass
class Admitted:
    expected: Expected
    scope: Scope | None = None
    body: bytes = b""
    readings: list[Reading] = field(default_factory=list)  # read in-process, from the scope itself


class Recorder:
    """Proxy mode: records what the gateway checked, then lets ``app`` (ProxyApp) forward it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.admitted: list[Admitted] = []
        self.websockets: list[Scope] = []  # websocket scopes the gateway let through: none, ever

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.websockets.append(scope)
        if scope["type"] == "http" and "gateway" in scope:
            self.admitted.append(Admitted(Expected.from_ctx(scope["gateway"])))
        await self.app(scope, receive, send)


class ServiceRecorder:
    """Middleware mode: the wrapped service; records what it was handed and answers ``{}``."""

    def __init__(self) -> None:
        self.admitted: list[Admitted] = []
        self.websockets: list[Scope] = []  # websocket scopes the gateway let through: none, ever

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":  # a websocket the middleware let through: record it as admitted
            self.websockets.append(scope)
            self.admitted.append(Admitted(Expected((), scope.get("path", ""), {}), scope))
            await send({"type": "websocket.close", "code": 1000})
            return
        record = Admitted(Expected.from_ctx(scope["gateway"]), scope)
        self.admitted.append(record)
        record.body = await read_body(receive)
        record.readings.append(await starlette_reading(scope, _once(record.body), "starlette-scope"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


def _once(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


#: Framing is re-written for the body the app was handed (de-chunked, whole).
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def scope_bytes(scope: Scope, body: bytes) -> bytes:
    """The request a service in middleware mode was handed, as HTTP/1.1 bytes: method, raw path and
    query, headers in order (names as the ASGI server gave them), the body with its length."""
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    lines = [scope["method"].encode() + b" " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in scope["headers"] if name.lower() not in _FRAMING]
    lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
