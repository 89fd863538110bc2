"""The ASGI application `gateway serve` runs: the chain in front of the upstream or the demo."""

from __future__ import annotations

import logging

from starlette.middleware import Middleware
from starlette.types import ASGIApp

from gateway import metrics
from gateway.cli import LOG_FORMAT
from gateway.demo import create_demo_app
from gateway.middleware import GatewayMiddleware
from gateway.settings import Settings


def create_app(settings: Settings | None = None) -> ASGIApp:
    """Build from ``GATEWAY_*`` variables (uvicorn calls this once per worker with ``--factory``)."""
    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:
        # A worker spawned by `gateway serve --workers N` starts with no logging configured: as its
        # supervisor, or the gateway's INFO lines (reloads, the access log) would go nowhere.
        logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    metrics.available()  # a bad PROMETHEUS_MULTIPROC_DIR stops the worker now, not each request later
    if settings.upstream_url:
        from gateway.proxy import ProxyApp  # the proxy's HTTP client is only needed in proxy mode

        return GatewayMiddleware(ProxyApp(settings), settings=settings, live=True)
    return create_demo_app([Middleware(GatewayMiddleware, settings=settings, live=True)])
