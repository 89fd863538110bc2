"""The apps the benches serve (uvicorn ``--factory`` targets): a bare Starlette app, the same app behind
the gateway, and behind slowapi for comparison."""

from __future__ import annotations

import os
from pathlib import Path

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
