"""The bench app rate-limited by slowapi instead of the gateway: the comparison rows of bench/run.py.

Rate limiting only (no signature, nonce, quota or authorization): one limit per client address,
high enough never to refuse, counted in Redis (``SLOWAPI_REDIS_URL``) by slowapi's storage, which is
`limits`' synchronous redis-py client, so each check blocks the event loop for its round trip.
Two factories, one per slowapi middleware: `middleware` (`SlowAPIMiddleware`, a
`BaseHTTPMiddleware`) and `asgi` (`SlowAPIASGIMiddleware`, pure ASGI).
"""

from __future__ import annotations

import os

from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware, SlowAPIMiddleware
from slowapi.util import get_remote_address
from starlette.applications import Starlette
from starlette.middleware import Middleware

from bench.apps import ROUTES

LIMIT = "1000000000/day"


def _limited(middleware: type) -> Starlette:
    limiter = Limiter(key_func=get_remote_address, default_limits=[LIMIT],
                      storage_uri=os.environ["SLOWAPI_REDIS_URL"], key_prefix="slowapi")
    app = Starlette(routes=ROUTES, middleware=[Middleware(middleware)])
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    return app


def middleware() -> Starlette:
    return _limited(SlowAPIMiddleware)


def asgi() -> Starlette:
    return _limited(SlowAPIASGIMiddleware)
