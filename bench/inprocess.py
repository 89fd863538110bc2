"""In-process costs: no server, no network; ASGI calls and functions timed with perf_counter.

    python -m bench.inprocess [--requests 20000] [--admits 20000] [--rounds 3] [--profile [--top 25]]

- one V1 verification of 10 parameters (`gateway.signing.verify_v1`), each request of the pool with
  its own nonce, timestamp and values, so the encoding memo only helps with what really recurs;
- a V1 request driven straight into the bench app, bare and behind the chain on the memory store;
- each step of the chain on its own: every step over all the requests before the next (so warm: the
  steps add up to less than the whole request, where each runs cold between the others): the request
  context, every layer in chain order, the Responder rendering the JSON answer, the observers;
- the Redis client's CPU (process time) per admit, auto-pipelining off and on, 1 and 32 in flight;
- ``--profile``: the chain's functions by own time under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import os
import pstats
import statistics
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse

from bench.apps import REGIONS, bare, gated
from bench.signed import scopes
from gateway.signing import sign_request_v1, verify_v1

SECRET = "bench-secret-0123456789abcdef"


def _verify_pool(count: int) -> list[tuple[dict[str, str], str]]:
    pool = []
    for serial in range(count):
        params = {"Action": "DescribeInstances", "Version": "2014-05-26", "Format": "JSON", "RegionId": "cn-hangzhou",
                  "InstanceName": f"web server {serial}"}
        signed = sign_request_v1(params, access_key_id="LTAI5tBenchKey0001", secret=SECRET, nonce=uuid.uuid4().hex,
                                 timestamp=f"2024-01-{1 + serial // 86400 % 28:02d}T{serial // 3600 % 24:02d}:"
                                 f"{serial // 60 % 60:02d}:{serial % 60:02d}Z")
        pool.append((signed, signed.pop("Signature")))
    return pool


def verification_us(repeat: int = 7) -> float:
    """µs per `verify_v1` of a 10-parameter request (median of ``repeat`` passes over 4,000)."""
    pool = _verify_pool(4000)

    def verify() -> None:
        for params, signature in pool:
            if not verify_v1([SECRET], "GET", params, signature, "HMAC-SHA1"):
                raise AssertionError("gateway.signing rejected a valid request")

    return statistics.median(timeit.repeat(verify, number=1, repeat=repeat)) / len(pool) * 1e6


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def drive(app: Any, batch: list[dict[str, Any]]) -> float:
    """µs per request of ``batch`` sent through ``app``, one after another; every one must be admitted."""
    statuses = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for scope in batch:
        await app(dict(scope), _receive, send)
    elapsed = time.perf_counter() - started
    if any(status != 200 for status in statuses):
        raise SystemExit(f"refused requests in an in-process run: {set(statuses)}")
    return elapsed / len(batch) * 1e6


def _memory_store() -> Callable[[], None]:
    """Drop GATEWAY_REDIS_URL (the gated app then uses the memory store); returns the undo."""
    saved = os.environ.pop("GATEWAY_REDIS_URL", None)
    return lambda: None if saved is None else os.environ.__setitem__("GATEWAY_REDIS_URL", saved)


async def _chain(requests: int) -> dict[str, float]:
    plain, chained = bare(), gated()
    await drive(chained, scopes(200))  # the middleware stack is built on the first call
    await drive(plain, scopes(200))
    bare_runs, gated_runs = [], []
    for _ in range(3):
        bare_runs.append(await drive(plain, scopes(requests)))
        gated_runs.append(await drive(chained, scopes(requests)))
    return {"bare_us": statistics.median(bare_runs), "gated_us": statistics.median(gated_runs)}


def chain_us(requests: int) -> dict[str, float]:
    """µs per V1 request into the bench app, bare and behind the chain on the memory store."""
    undo = _memory_store()
    try:
        return asyncio.run(_chain(requests))
    finally:
        undo()


async def _each(items: list[Any], step: Callable[[Any], Awaitable[Any] | Any]) -> float:
    started = time.perf_counter()
    for item in items:
        pending = step(item)
        if inspect.isawaitable(pending):  # a check that waits; the others return None or a Call
            await pending
    return (time.perf_counter() - started) / len(items) * 1e6


async def steps(requests: int) -> list[tuple[str, float]]:
    """µs of each step of the chain, warm (gateway internals: the request head, the parse, each check of
    gateway/chain.py in order, the admission, the Responder and the observers)."""
    from gateway.call import Exchange
    from gateway.middleware import GatewayMiddleware
    from gateway.respond import Responder

    app = gated()
    await drive(app, scopes(200))  # the middleware stack is built on the first call
    gateway: Any = app.middleware_stack
    while not isinstance(gateway, GatewayMiddleware):
        gateway = gateway.app
    batch = scopes(requests)
    started = time.perf_counter()
    exchanges = [Exchange.start(scope, _receive, "XML", None) for scope in batch]
    out = [("request head (Exchange.start)", (time.perf_counter() - started) / requests * 1e6)]
    chain = gateway.chain
    started = time.perf_counter()
    calls = [chain.parse(exchange) for exchange in exchanges]
    out.append(("parse (Parser)", (time.perf_counter() - started) / requests * 1e6))
    for check in chain.checks:
        out.append((getattr(check, "__name__", type(check).__name__), await _each(calls, check)))
    pairs = list(zip(calls, exchanges, strict=True))
    out.append(("admit (Admission)", await _each(pairs, lambda pair: chain.admit(*pair))))
    for call, exchange in pairs:
        exchange.format = call.format
    answer = JSONResponse(REGIONS)
    start = {"type": "http.response.start", "status": 200, "headers": answer.raw_headers}
    body = {"type": "http.response.body", "body": answer.body}

    async def discard(message: Any) -> None:
        return None

    async def respond(exchange: Any) -> None:
        responder = Responder(exchange, "DescribeRegions", discard)
        await responder(start)
        await responder(body)

    out.append(("Responder (JSON answer, RequestId spliced in)", await _each(exchanges, respond)))

    def observe(exchange: Any) -> None:
        for observer in gateway.observers:
            observer(exchange)

    out.append(("observers (metrics)", await _each(exchanges, observe)))
    return out


def steps_us(requests: int) -> list[tuple[str, float]]:
    undo = _memory_store()
    try:
        return asyncio.run(steps(requests))
    finally:
        undo()


def admit_cpu(admits: int, rounds: int) -> dict[str, float]:
    """Client CPU (process time) µs per admit on Redis, pipelined or not, with 1 and 32 in flight; the
    ticket takes a quota and a flow, like the bench policy."""
    import uvloop

    from gateway.rates import Rate
    from gateway.stores import RedisStore, Take, Ticket
    from tests.support.redis import running_redis

    takes = (Take("quota", "key", Rate(10**9, 86_400_000)), Take("flow", "api", Rate(10**9, 1_000)))

    def ticket() -> Ticket:
        return Ticket("4242", f"AK:{uuid.uuid4().hex}", 60_000, takes, timestamp_ms=int(time.time() * 1000))

    async def one(url: str, pipelined: bool, in_flight: int) -> float:
        store = RedisStore.from_url(url, timeout=2.0, pipelined=pipelined)
        await store.admit(ticket())
        tickets = iter([ticket() for _ in range(admits)])

        async def worker() -> None:
            for each in tickets:
                await store.admit(each)

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        used = time.process_time() - started
        await store.aclose()
        return used / admits * 1e6

    out: dict[str, list[float]] = {}
    with running_redis() as redis:
        for _ in range(rounds):
            for in_flight in (1, 32):
                for pipelined in (False, True):
                    out.setdefault(f"{'pipelined' if pipelined else 'unpipelined'} x{in_flight}", []).append(
                        uvloop.run(one(redis.url, pipelined, in_flight)))
    return {name: statistics.median(values) for name, values in out.items()}


async def _profile(requests: int, top: int) -> None:
    chained = gated()
    await drive(chained, scopes(200))
    batch = scopes(requests)
    profiler = cProfile.Profile()
    profiler.enable()
    gated_us = await drive(chained, batch)
    profiler.disable()
    print(f"under cProfile: {gated_us:.1f} µs/request")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--admits", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="only cProfile the chain")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.profile:
        undo = _memory_store()
        asyncio.run(_profile(args.requests, args.top))
        undo()
        return
    print(f"one V1 verification (10 parameters): {verification_us():.1f} µs")
    chain = chain_us(args.requests)
    print(f"a V1 request in-process: bare {chain['bare_us']:.1f} µs, behind the chain {chain['gated_us']:.1f} µs")
    for name, us in (rows := steps_us(args.requests)):
        print(f"  {name:<48} {us:6.2f} µs")
    print(f"  {'sum':<48} {sum(us for _, us in rows):6.2f} µs")
    for name, us in admit_cpu(args.admits, args.rounds).items():
        print(f"Redis client CPU per admit, {name}: {us:.1f} µs")


if __name__ == "__main__":
    main()
