"""Real servers for integration tests: uvicorn on a free port, started and stopped by the test."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: object, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true: readiness is observed, never assumed after a sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise TimeoutError(f"{what} not reached within {timeout} s")


@contextmanager
def serve_in_thread(app: ASGIApp, port: int | None = None, *,
                    http: type[asyncio.Protocol] | str = "auto", proxy_headers: bool = True) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn in a background thread; yields its base URL. ``http`` is
    uvicorn's: `gateway.serving.protocol` runs ``app`` behind the protocol `gateway serve` runs.
    ``proxy_headers=False`` is how `gateway serve` runs uvicorn: ``scope["client"]`` is then the peer,
    not what a loopback client's X-Forwarded-For claims (uvicorn trusts 127.0.0.1 by default)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning",
                            access_log=False, lifespan="auto", http=http, proxy_headers=proxy_headers)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn start")
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
