"""A wrapped service for tests: echoes what it was given and counts what it executed."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.errors import ApiError, Err
from tests.support.asgi import lifespan, read_body


class EchoService:
    """Pure ASGI app: JSON echo of the request, plus a few actions with side effects to count."""

    def __init__(self) -> None:
        self.executed: Counter[str] = Counter()
        self.slow_started = threading.Event()
        self.slow_release = threading.Event()
        self._orders = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        body = await read_body(receive)
        ctx = scope["gateway"]
        self.executed[ctx.action] += 1
        result = await self.act(ctx.action, ctx.params)
        result["Echo"] = {
            "Params": {k: v for k, v in ctx.params.items() if k != "Signature"},
            "Caller": ctx.identity,
            "Headers": {k.decode(): v.decode() for k, v in scope["headers"] if k.startswith(b"x-gateway-")
                        or k in (b"x-acs-request-id", b"x-evil")},
            "BodyLength": len(body),
        }
        payload = json.dumps(result).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    async def act(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        if action == "Crash":
            raise RuntimeError("boom: alice-secret must never be shown")
        if action == "DescribeImages" and params.get("ImageId") == "m-gone":
            raise ApiError(Err.IMAGE_NOT_FOUND)
        if action == "CreateSlowOrder":
            self.slow_started.set()
            await asyncio.to_thread(self.slow_release.wait, 10)
        if action in ("CreateOrder", "CreateSlowOrder"):
            return {"OrderId": f"order-{next(self._orders)}"}
        if action == "DescribeRegions":
            return {"Regions": {"Region": [{"RegionId": "cn-hangzhou"}, {"RegionId": "cn-beijing"}]}}
        return {}
