"""The apps the benches serve: a bare Starlette app, and the same app behind the gateway."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import GatewayMiddleware, Settings

POLICY = Path(__file__).resolve().parent / "policy.toml"
KEY, SECRET = "LTAIbench", "bench-secret"
REGIONS = {"Regions": {"Region": [{"RegionId": "cn-hangzhou"}, {"RegionId": "cn-shanghai"}]}}


async def describe_regions(request: Request) -> JSONResponse:
    return JSONResponse(REGIONS)


ROUTES = [Route("/", describe_regions)]


def bare() -> Starlette:
    return Starlette(routes=ROUTES)


def gated() -> Starlette:
    """The same app behind the full chain; the store comes from GATEWAY_REDIS_URL (unset: memory)."""
    settings = Settings.from_env(config=str(POLICY), access_log=False)
    return Starlette(routes=ROUTES, middleware=[Middleware(GatewayMiddleware, settings=settings)])
