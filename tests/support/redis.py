"""Real redis-server processes for tests, and the pytest fixtures that share them.

`RedisServer` runs a private ``redis-server`` on a free port in its own temporary directory, is ready
once it answers PING (polled, never a fixed sleep), and can be stopped and started again on the same
port for failure tests (tests/support/servers.py's `free_port` and `wait_until`; the benches start
theirs with `running_redis` too). `RedisClusterNodes` builds a three-master Redis Cluster with ``redis-cli``.

Fixtures: ``redis_server`` (session), ``redis_url`` (function: the server running and flushed),
``inspect`` (a plain client on it), ``redis_cluster`` (session; skipped when ``redis-cli`` is
absent). tests/conftest.py registers them as a plugin.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager

import pytest
from redis.asyncio import Redis

from tests.support.servers import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
_CLUSTER_NODE_ARGS = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")


def command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command in RESP and return the raw reply (enough for PING, FLUSHALL, CLUSTER INFO)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(payload.encode())
        reply = conn.recv(65_536)
        if reply.startswith(b"$"):  # a bulk string may arrive in several segments
            size = int(reply[1 : reply.index(b"\r\n")])
            while len(reply) < size + len(str(size)) + 5:
                reply += conn.recv(65_536)
        return reply


async def wait_window(period_ms: int, need_ms: int) -> None:
    """Wait, if needed, for a fresh window of ``period_ms`` (epoch-aligned, as quota windows are) with
    at least ``need_ms`` left in it, so that a test's takes all fall in one window."""
    left = period_ms - time.time() * 1000 % period_ms
    if left < need_ms:
        await asyncio.sleep(left / 1000 + 0.003)


def _answers_ping(port: int) -> bool:
    try:
        return command(port, "PING", timeout=0.2).startswith(b"+PONG")
    except OSError:
        return False


def _cluster_ok(port: int) -> bool:
    return b"cluster_state:ok" in command(port, "CLUSTER", "INFO")


class RedisServer:
    """One private redis-server; ``stop()`` then ``start()`` brings it back on the same port."""

    def __init__(self, port: int | None = None, *, cluster: bool = False, extra: Sequence[str] = ()) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or free_port(cluster_bus=cluster)
        self._dir = tempfile.TemporaryDirectory(prefix=f"redis-{self.port}-")
        self._argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._argv += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        if cluster:
            self._argv += [*_CLUSTER_NODE_ARGS]
        self._argv += extra  # e.g. a unix socket or a TLS port besides the plain one
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self._process = process = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {process.returncode}")
            return _answers_ping(self.port)

        wait_until(ready, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def flush(self) -> None:
        command(self.port, "FLUSHALL")

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


@contextmanager
def running_redis(port: int | None = None) -> Iterator[RedisServer]:
    server = RedisServer(port)
    try:
        server.start()
        yield server
    finally:
        server.close()


class RedisClusterNodes:
    """Three masters, no replicas, every slot assigned; ``url`` is the store's cluster spelling."""

    def __init__(self, size: int = 3) -> None:
        if REDIS_CLI is None:
            raise RuntimeError("redis-cli is not installed")
        self.nodes = [RedisServer(cluster=True) for _ in range(size)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = [REDIS_CLI or "redis-cli", "--cluster", "create", *addresses]
        done = subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r} {done.stderr!r}")
        for node in self.nodes:
            ok = functools.partial(_cluster_ok, node.port)
            wait_until(ok, timeout=15, what=f"cluster node {node.port}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.start()  # a failure test may have left it stopped
    redis_server.flush()
    return redis_server.url


@pytest.fixture
async def inspect(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client on ``redis_url``, to look at (or pause) the server behind the store under test."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    if REDIS_CLI is None or REDIS_SERVER is None:
        pytest.skip("redis-cli is not installed: cannot build a Redis Cluster")
    cluster = RedisClusterNodes()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
