"""Faults under load that tests/test_concurrency.py does not cover (it stops and stalls Redis): the
upstream killed and hung in proxy mode, and a worker of ``gateway serve --workers 2`` killed.

Load is a few asyncio callers, each sending fresh signed requests on connections of their own
(tests/support/processes.py `fetch`), so every answer is counted: what callers saw is printed, by the
phase in which each request *started* (a /slow call started before the kill ends after it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import DATA
from tests.support.client import query, signed_params
from tests.support.fuzzing import ANY, RawAnswer, RawRequest, judge
from tests.support.processes import Reply, fetch
from tests.support.redis import RedisServer
from tests.support.serve import ROOT, Served, gateway_serve, serve_env
from tests.support.servers import free_port, wait_until

pytestmark = pytest.mark.slow

POLICY = str(DATA / "policy.toml")
CALLERS = 6
READ_TIMEOUT = 1.5  # GATEWAY_UPSTREAM_READ_TIMEOUT here
CONNECT_TIMEOUT = 1.0
SLOW = 1.0  # the upstream's /slow answers after this long: in flight when it dies


@dataclass(frozen=True)
class Seen:
    phase: str
    path: str
    reply: Reply | None  # None: the connection failed
    error: str
    began: float  # time.monotonic()
    seconds: float


class Load:
    """``CALLERS`` tasks calling ``url`` until stopped; ``phase`` labels what they see."""

    def __init__(self, url: str, paths: tuple[str, ...] = ("/",)) -> None:
        self.url, self.paths, self.phase = url, paths, "before"
        self.seen: list[Seen] = []
        self.resend: list[dict[str, str]] = []  # requests whose answer was lost
        self._running = True
        self._tasks = [asyncio.create_task(self._caller(i)) for i in range(CALLERS)]

    async def _caller(self, index: int) -> None:
        turn = 0
        while self._running:
            path = self.paths[(index + turn) % len(self.paths)]
            turn += 1
            params = signed_params("DescribeRegions")
            phase, began = self.phase, time.monotonic()
            try:
                reply: Reply | None = await fetch(self.url, f"{path}?{query(params)}")
                error = ""
                if reply is not None and len(reply.body) < int(reply.headers["content-length"]):
                    # `fetch` reads to the end of the stream: a worker killed between writing an
                    # answer's head and its body leaves the head alone. The caller got no answer.
                    reply, error = None, "IncompleteAnswer"
                    self.resend.append(params)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                reply, error = None, type(exc).__name__
                self.resend.append(params)
            self.seen.append(Seen(phase, path, reply, error, began, time.monotonic() - began))

    def count(self, phase: str) -> Counter[str]:
        return Counter((f"{s.reply.status} {code(s.reply) or 'OK'}" if s.reply else f"error {s.error}")
                       for s in self.seen if s.phase == phase)

    async def run(self, phase: str, seconds: float) -> None:
        self.phase = phase
        await asyncio.sleep(seconds)

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)


def code(reply: Reply) -> str | None:
    return str(reply.json()["Code"]) if reply.status >= 400 else None


def check_answer(reply: Reply) -> None:
    """A success, or a catalogued refusal in the contract's shape (tests/support/fuzzing/oracle.py `judge`)."""
    verdict = judge(RawRequest(b"GET", b"/"), RawAnswer(reply.status, reply.headers, reply.body, 0.0), ANY)
    assert not verdict.violations, (verdict.violations, reply.status, reply.body[:200])


# --- the upstream killed, and hung, under load (proxy mode) ------------------------------------------


class UpstreamProcess:
    """The tests' upstream (tests/support/upstream.py) in a uvicorn process of its own, on a fixed port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = serve_env(PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"import uvicorn; from tests.support.upstream import Upstream; "
             f"uvicorn.run(Upstream(delay={SLOW}), host='127.0.0.1', port={self.port}, log_level='critical')"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, timeout=15, what="the upstream")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def upstream() -> Iterator[UpstreamProcess]:
    process = UpstreamProcess()
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_upstream_killed_and_hung_under_load(upstream: UpstreamProcess) -> None:
    env = serve_env(GATEWAY_CONFIG=POLICY, GATEWAY_UPSTREAM_URL=upstream.url, GATEWAY_ACCESS_LOG="false",
                    GATEWAY_UPSTREAM_READ_TIMEOUT=str(READ_TIMEOUT),
                    GATEWAY_UPSTREAM_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
    with gateway_serve(env, ["--log-level", "warning"]) as gw:
        load = Load(gw.url, paths=("/", "/", "/slow"))
        try:
            await load.run("before", 1.5)
            upstream.signal(signal.SIGKILL)  # /slow calls are in flight: their upstream dies under them
            await load.run("killed", 1.5)
            load.phase = "restarting"
            await asyncio.to_thread(upstream.start)  # back on the same port
            await load.run("restarted", 2.0)
            upstream.signal(signal.SIGSTOP)  # alive, connected, answering nothing
            await load.run("hung", READ_TIMEOUT + 1.0)
            upstream.signal(signal.SIGCONT)
            await load.run("resumed", 1.5)
        finally:
            await load.stop()
        output = gw.output()

    seen = load.seen
    phases = ("before", "killed", "restarting", "restarted", "hung", "resumed")
    figures = {phase: dict(load.count(phase)) for phase in phases}
    print(f"\nupstream faults, answers by phase: {figures}; slowest {max(s.seconds for s in seen):.2f} s")
    # Every caller got an answer, and every answer is a success or ServiceUnavailable with its body.
    assert all(s.reply is not None for s in seen), Counter(s.error for s in seen if s.reply is None)
    for s in seen:
        assert s.reply is not None
        check_answer(s.reply)
        assert (s.reply.status, code(s.reply)) in {(200, None), (500, "ServiceUnavailable")}, s.reply.body
    # None waited past the read timeout (plus the connect timeout, and a margin for two busy cores).
    assert max(s.seconds for s in seen) < READ_TIMEOUT + CONNECT_TIMEOUT + 1.0
    for phase in ("before", "restarted", "resumed"):
        assert figures[phase].get("200 OK", 0) > 0, (phase, figures)
    assert set(figures["killed"]) == {"500 ServiceUnavailable"}, figures
    assert figures["hung"].get("500 ServiceUnavailable", 0) > 0, figures
    assert "Traceback" not in output, output


# --- a worker killed under --workers 2 ----------------------------------------------------------------


def _pids(gw: Served) -> set[int]:
    return set(gw.children())


async def test_a_killed_worker_costs_only_its_in_flight_requests(redis_server: RedisServer) -> None:
    redis_server.start()
    env = serve_env(GATEWAY_CONFIG=POLICY, GATEWAY_REDIS_URL=redis_server.url, GATEWAY_ACCESS_LOG="false",
                    GATEWAY_REDIS_PREFIX=f"faults{free_port()}", GATEWAY_REDIS_TIMEOUT="1")
    with gateway_serve(env, ["--workers", "2", "--log-level", "info"]) as gw:
        wait_until(lambda: len(_pids(gw)) == 2, timeout=20, what="two workers")
        first = _pids(gw)
        load = Load(gw.url)
        try:
            await load.run("before", 1.5)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            await load.run("killed", 2.0)
            restarted = await asyncio.to_thread(_wait_for_replacement, gw, first, victim)
            restart_seconds = time.monotonic() - killed_at
            await load.run("restarted", 1.5)
        finally:
            await load.stop()
        # An answer lost with the worker may or may not have been admitted: sent again, the same
        # signed request is admitted once, or refused as a used nonce; never anything else.
        again: Counter[str] = Counter()
        for params in load.resend:
            reply = await fetch(gw.url, f"/?{query(params)}")
            check_answer(reply)
            again[code(reply) or "OK"] += 1
        output = gw.output()

    errors = [s for s in load.seen if s.reply is None]
    figures = {phase: dict(load.count(phase)) for phase in ("before", "killed", "restarted")}
    print(f"\nworker {victim} killed: answers by phase {figures}; connection errors {len(errors)} "
          f"({Counter(s.error for s in errors)}); those requests sent again: {dict(again)}; "
          f"uvicorn restarted it as {restarted} after {restart_seconds:.1f} s")
    # Only requests in flight on the killed worker can fail: at most one per caller, all sent just
    # before the kill (or while the dying worker still held its share of the listening socket).
    assert len(errors) <= CALLERS, errors
    assert all(killed_at - 1.0 < s.began < killed_at + 0.5 for s in errors), [(s.began - killed_at) for s in errors]
    for s in load.seen:
        if s.reply is not None:
            check_answer(s.reply)
            assert s.reply.status == 200, s.reply.body
    assert figures["killed"].get("200 OK", 0) > 0, "the remaining worker kept serving"
    assert set(again) <= {"OK", "SignatureNonceUsed"}, again
    # uvicorn 0.54's supervisor notices the dead worker (it checks every 0.5 s) and starts another.
    assert restarted not in first
    assert f"Child process [{victim}] died" in output, output


def _wait_for_replacement(gw: Served, first: set[int], victim: int) -> int:
    wait_until(lambda: len(_pids(gw)) == 2 and victim not in _pids(gw), timeout=20, what="a replacement worker")
    (new,) = _pids(gw) - first
    return new
