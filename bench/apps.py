"""The apps the benches serve (uvicorn ``--factory`` targets): a bare Starlette app, the same app behind
the gateway, and behind slowapi for comparison."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import GatewayMiddleware, Settings
from gateway.stores import RedisStore

POLICY = Path(__file__).resolve().parent / "policy.toml"
KEY, SECRET = "LTAIbench", "bench-secret"
REGIONS = {"Regions": {"Region": [{"RegionId": "cn-hangzhou"}, {"RegionId": "cn-shanghai"}]}}
#: slowapi's limit: high enough never to refuse.
SLOWAPI_LIMIT = "1000000000/day"


async def describe_regions(request: Request) -> JSONResponse:
    return JSONResponse(REGIONS)


ROUTES = [Route("/", describe_regions, methods=["GET", "POST"])]


def bare() -> Starlette:
    return Starlette(routes=ROUTES)


def bare_round_trip() -> Any:
    """The bare app behind one raw Redis round trip per request, and nothing else: the EVALSHA of
    admit.lua a V1 request of the bench policy sends (a fresh nonce, a flow and a quota take), through
    the cheapest client there is (`bench.redis_clients`' floor: an asyncio Protocol with
    `hiredis.Reader`, no timeout, no recovery), then the app. Its p50 minus bare's is what one round
    trip costs on this machine: the floor of what the Redis store can add to the memory store's."""
    import itertools
    import uuid

    from bench.redis_clients import _calls, _floor

    app = bare()
    opened: list[Any] = []
    (nonce_key, *other_keys), args = _calls(1)[0]
    # A fresh nonce per request for next to nothing: this process's own prefix and a counter.
    prefix = f"{nonce_key}:{uuid.uuid4().hex}:"
    nonces = (f"{prefix}{n}" for n in itertools.count())

    async def round_trip(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if not opened:
                opened.append((await _floor(os.environ["BENCH_REDIS_URL"]))[0])
            await opened[0]([next(nonces), *other_keys], args)
        await app(scope, receive, send)

    return round_trip


def gated() -> Starlette:
    """The same app behind the full chain; the store comes from GATEWAY_REDIS_URL (unset: memory)."""
    settings = Settings.from_env(config=str(POLICY), access_log=False)
    return Starlette(routes=ROUTES, middleware=[Middleware(GatewayMiddleware, settings=settings)])


def gated_unpipelined() -> Starlette:
    """`gated` on Redis with auto-pipelining off: each script call its own round trip."""
    settings = Settings.from_env(config=str(POLICY), access_log=False)
    store = RedisStore.from_url(settings.redis_url or "", prefix=settings.redis_prefix,
                                timeout=settings.redis_timeout, pipelined=False)
    return Starlette(routes=ROUTES, middleware=[Middleware(GatewayMiddleware, settings=settings, store=store)])


def _slowapi(middleware: str) -> Starlette:
    """Rate limiting only (no signature, nonce, quota or authorization): one limit per client address,
    counted in Redis (SLOWAPI_REDIS_URL) by `limits`' synchronous redis-py client, so each check
    blocks the event loop for its round trip. slowapi is a bench extra: imported here only."""
    import slowapi.middleware
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address, default_limits=[SLOWAPI_LIMIT],
                      storage_uri=os.environ["SLOWAPI_REDIS_URL"], key_prefix="slowapi")
    app = Starlette(routes=ROUTES, middleware=[Middleware(getattr(slowapi.middleware, middleware))])
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    return app


def slowapi_middleware() -> Starlette:
    """slowapi's `SlowAPIMiddleware` (a `BaseHTTPMiddleware`)."""
    return _slowapi("SlowAPIMiddleware")


def slowapi_asgi() -> Starlette:
    """slowapi's `SlowAPIASGIMiddleware` (pure ASGI)."""
    return _slowapi("SlowAPIASGIMiddleware")
