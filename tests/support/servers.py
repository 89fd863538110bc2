"""Real servers for tests and benches: a free port, a readiness poll, uvicorn in a thread or a process.

One `free_port` and one `wait_until` for everything under tests/ and bench/ (tests/support/redis.py
starts redis-server with them; bench/ imports them from here).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

ROOT = Path(__file__).resolve().parents[2]
_BUS_OFFSET = 10_000  # a Redis Cluster node also listens on port + 10000 for its bus


def free_port(*, cluster_bus: bool = False) -> int:
    """A port nothing listens on now (and, for a Redis Cluster node, whose bus port is free too)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not cluster_bus:
            return port
        if port + _BUS_OFFSET < 65_536 and _bindable(port + _BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition",
               every: float = 0.005) -> None:
    """Poll ``predicate`` every ``every`` seconds until it is true: readiness is observed, never assumed
    after a sleep."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(every)


def answers_http(url: str) -> bool:
    """Whether ``url`` gives any HTTP answer (an error status too: the server is up)."""
    try:
        urllib.request.urlopen(url, timeout=1).read()
    except OSError as exc:
        return getattr(exc, "code", None) is not None
    return True


@contextmanager
def serve_in_thread(app: ASGIApp, port: int | None = None, *, http: type[asyncio.Protocol] | str = "auto",
                    proxy_headers: bool = True, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn in a background thread; yields its base URL. ``http`` is
    uvicorn's: `gateway.serving.protocol` runs ``app`` behind the protocol `gateway serve` runs.
    ``proxy_headers=False`` is how `gateway serve` runs uvicorn: ``scope["client"]`` is then the peer,
    not what a loopback client's X-Forwarded-For claims (uvicorn trusts 127.0.0.1 by default).
    ``tls``: (certificate, key) files to serve https with."""
    ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1]), "timeout_graceful_shutdown": 1} if tls else {}
    config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning",
                            access_log=False, lifespan="auto", http=http, proxy_headers=proxy_headers,
                            **ssl)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn start")
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"{'https' if tls else 'http'}://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@functools.cache
def _gateway_protocol() -> Any:
    from gateway.serving import Limits, protocol
    from gateway.settings import Settings

    return protocol(Limits.from_settings(Settings.from_env()))


def gateway_http(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """A connection's protocol as `gateway serve` makes it (gateway/serving/: httptools with the head
    bound, header timeout and connection cap), the limits read once from the server process's GATEWAY_*
    variables as `gateway serve` reads them. For uvicorn's ``--http``, which takes no arguments."""
    made: asyncio.Protocol = _gateway_protocol()(*args, **kwargs)
    return made


#: `uvicorn_process`'s ``http`` for a server that runs the gateway's protocol, as `gateway serve` does.
GATEWAY_HTTP = "tests.support.servers:gateway_http"


@contextmanager
def uvicorn_process(target: str, env: Mapping[str, str] | None = None, *, factory: bool = True,
                    ready_path: str = "/", http: str = "httptools", log: Path | None = None,
                    python: str | None = None, app_dir: Path | None = None) -> Iterator[str]:
    """One uvicorn worker process (uvloop, ``--http http``) serving ``target``; yields its URL.

    ``http``: uvicorn's ``--http`` (`GATEWAY_HTTP`: the protocol `gateway serve` runs).
    ``log``: a file for its output (by default it goes where this process's does). ``python``: the
    interpreter. ``app_dir``: serve the `gateway` installed there (e.g. the compiled wheel's
    site-packages) rather than the checkout's: PYTHONSAFEPATH keeps ``-m uvicorn``'s cwd, the checkout,
    off the path, and uvicorn's --app-dir goes first; `bench` and `tests` must then be importable from
    the path's end, as .venv-compiled's .pth file makes them (make compiled)."""
    port = free_port()
    args = [python or sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", http, "--no-access-log", "--log-level", "warning", "--workers", "1"]
    if factory:
        args.append("--factory")
    if app_dir is not None:
        args += ["--app-dir", str(app_dir)]
    url = f"http://127.0.0.1:{port}"
    safe = {"PYTHONSAFEPATH": "1"} if app_dir is not None else {}
    with log.open("wb") if log is not None else nullcontext() as out:
        process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **safe, **(env or {})}, stdout=out,
                                   stderr=subprocess.STDOUT if out else None)
        try:
            wait_until(lambda: process.poll() is not None or answers_http(url + ready_path), timeout=20,
                       what=f"uvicorn {target} on {url}")
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn {target} exited with {process.returncode}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
