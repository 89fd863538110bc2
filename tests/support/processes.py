"""Separate ``gateway serve`` processes, as an operator runs them: N gateways sharing one store.

`GatewayProcesses` starts each one as ``python -m gateway serve --port P`` in front of the bundled demo
service, is ready once every one answers ``/_gateway/ready`` with 200 (its store answers too: polled,
never a fixed sleep), and stops them with SIGTERM, then SIGKILL for one that will not go.

`fetch` and `burst` are a deliberately tiny HTTP/1.1 client, one connection per request. httpx's
connection pool costs milliseconds per request once it holds hundreds of connections, which spreads
a "burst" of 800 requests over seconds; `burst` connects everything first, then writes every request
in one turn of the event loop, so they truly arrive together.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from tests.support.serve import import_env, until_ready
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_START_ATTEMPTS = 3  # a port found free may be taken by someone else before the gateway binds it


class GatewayProcesses:
    """``count`` gateway processes with the same policy and store; ``urls`` are their base URLs.

    Every ``GATEWAY_*`` variable of the test's own environment is dropped, so nothing but what is
    passed here configures them (no upstream: they front the demo service). ``env`` adds variables.
    """

    def __init__(self, count: int, *, config: str | Path, redis_url: str, prefix: str = "gw",
                 env: Mapping[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.env = {
            **base,
            **import_env(base),
            "GATEWAY_CONFIG": str(config),
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_REDIS_PREFIX": prefix,
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_ACCESS_LOG": "false",
            **(env or {}),
        }
        self.count = count
        self.urls: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        try:
            for _ in range(self.count):
                self._spawn()
            deadline = time.monotonic() + START_TIMEOUT
            with httpx.Client(timeout=1.0) as client:
                for index in range(self.count):
                    self._wait_ready(client, index, deadline)
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 (outlives this call: closed in stop())
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        self._processes.append(process)
        self._logs.append(log)
        self.urls.append(f"http://127.0.0.1:{port}")

    def _wait_ready(self, client: httpx.Client, index: int, deadline: float) -> None:
        for _ in range(_START_ATTEMPTS):
            if until_ready(client, self._processes[index], self.urls[index], deadline, lambda: self.output(index)):
                return
            if "address already in use" not in self.output(index).lower():
                break
            self._respawn(index)
        raise RuntimeError(f"gateway {self.urls[index]} exited with {self._processes[index].returncode}: "
                           f"{self.output(index)}")

    def _respawn(self, index: int) -> None:
        self._logs[index].close()
        self._spawn()
        self._processes[index] = self._processes.pop()
        self._logs[index] = self._logs.pop()
        self.urls[index] = self.urls.pop()

    def output(self, index: int, limit: int = 4000) -> str:
        """What process ``index`` printed so far (its last ``limit`` characters)."""
        log = self._logs[index]
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")[-limit:]

    def alive(self) -> list[bool]:
        return [process.poll() is None for process in self._processes]

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self._processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()
        self._processes, self._logs, self.urls = [], [], []


@contextmanager
def gateway_processes(count: int, *, config: str | Path, redis_url: str, prefix: str = "gw",
                      env: Mapping[str, str] | None = None) -> Iterator[GatewayProcesses]:
    """``count`` gateways, ready on entry, stopped on exit."""
    group = GatewayProcesses(count, config=config, redis_url=redis_url, prefix=prefix, env=env)
    group.start()
    try:
        yield group
    finally:
        group.stop()


@dataclass(frozen=True)
class Reply:
    """One answer: ``gateway`` is the index of the process that gave it; ``sent`` and ``done`` are
    ``time.monotonic()`` when the request left and when its answer was complete."""

    gateway: int
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    sent: float
    done: float

    def json(self) -> Any:
        return json.loads(self.body)


def _request(base: str, target: str) -> tuple[str, int, bytes]:
    address = urlsplit(base)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    head = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    return host, port, head.encode("ascii")


async def _read_reply(reader: asyncio.StreamReader, gateway: int, sent: float) -> Reply:
    raw = await reader.read()  # Connection: close, so the answer ends with the stream
    done = time.monotonic()
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ConnectionError(f"gateway {gateway} closed the connection without an answer: {raw[:200]!r}")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:  # every gateway answer has one: anything else is a bug here
        raise ConnectionError(f"gateway {gateway} answered without Content-Length: {head!r}")
    status = int(status_line.split()[1])
    return Reply(gateway, status, headers, body[: int(headers["content-length"])], sent, done)


async def fetch(base: str, target: str, *, gateway: int = 0) -> Reply:
    """``GET target`` from ``base`` (``http://host:port``) on a connection of its own."""
    host, port, request = _request(base, target)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        sent = time.monotonic()
        writer.write(request)
        await writer.drain()
        return await _read_reply(reader, gateway, sent)
    finally:
        writer.close()


async def burst(urls: list[str], targets: list[str]) -> list[Reply]:
    """Request ``targets[i]`` from ``urls[i % len(urls)]``, all at once; the replies in that order."""
    requests = [_request(urls[i % len(urls)], target) for i, target in enumerate(targets)]
    streams = await asyncio.gather(*(asyncio.open_connection(host, port) for host, port, _ in requests))
    try:
        sent = time.monotonic()
        for (_, writer), (_, _, request) in zip(streams, requests, strict=True):
            writer.write(request)  # no await in between: every request leaves in this loop turn
        await asyncio.gather(*(writer.drain() for _, writer in streams))
        return await asyncio.gather(
            *(_read_reply(reader, i % len(urls), sent) for i, (reader, _) in enumerate(streams))
        )
    finally:
        for _, writer in streams:
            writer.close()
