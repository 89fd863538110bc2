"""An upstream service for proxy tests: a pure ASGI app whose behaviour is chosen by the path.

The gateway forwards any path (RPC calls are told apart by their parameters), so a test picks what
the upstream does by the path it calls through the gateway::

    /           DescribeRegions' answer, JSON
    /echo       JSON: the method, path, raw query, headers and body (sha256, length) it received
    /missing    404 {"Code": "Forbidden.InstanceNotFound", ...}, as a service refusing a call
    /slow       sets ``slow_started``, sleeps ``delay`` seconds, then answers as /
    /stream     text/plain in chunks: the first, then (once ``stream_release`` is set) the rest
    /truncated  JSON that stops half-way (the connection drops)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.support.asgi import read_body

REGIONS = {"Regions": {"Region": [{"RegionId": "cn-hangzhou"}, {"RegionId": "cn-beijing"}]}}
MISSING = {"Code": "Forbidden.InstanceNotFound", "Message": "The specified instance is not found."}
STREAM_CHUNKS = [bytes([65 + i % 26]) * 16_384 for i in range(32)]  # 512 KiB, each chunk different


class Upstream:
    def __init__(self, *, delay: float = 2.0) -> None:
        self.delay = delay
        self.slow_started = threading.Event()
        self.stream_release = threading.Event()
        self.stream_waited_out = False  # the stream's rest went out without the test asking for it
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        body = await read_body(receive)
        route = "/" + scope["path"].strip("/").split("/", 1)[0]  # /echo/anything is /echo
        if route == "/echo":
            await _json(send, 200, _echo(scope, body), [(b"x-upstream-note", b"hello"),
                                                        (b"set-cookie", b"session=upstream-cookie")])
        elif route == "/missing":
            await _json(send, 404, MISSING)
        elif route == "/slow":
            self.slow_started.set()
            await asyncio.sleep(self.delay)
            await _json(send, 200, REGIONS)
        elif route == "/stream":
            await self._stream(send)
        elif route == "/truncated":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")]})
            await send({"type": "http.response.body", "body": b'{"Regions": ', "more_body": True})
        else:
            await _json(send, 200, REGIONS)

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=us-ascii")]})
        await send({"type": "http.response.body", "body": STREAM_CHUNKS[0], "more_body": True})
        deadline = time.monotonic() + 5
        while not self.stream_release.is_set():
            if time.monotonic() > deadline:
                self.stream_waited_out = True
                break
            await asyncio.sleep(0.005)
        for chunk in STREAM_CHUNKS[1:]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _echo(scope: Scope, body: bytes) -> dict[str, Any]:
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("utf-8", "replace"))
    return {
        "Method": scope["method"],
        "Path": scope["raw_path"].decode("latin-1"),
        "Query": scope["query_string"].decode("latin-1"),
        "Headers": headers,
        "BodySha256": hashlib.sha256(body).hexdigest(),
        "BodyLength": len(body),
    }


async def _json(send: Send, status: int, data: dict[str, Any],
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
