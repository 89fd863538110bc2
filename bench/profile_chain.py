"""Profile the chain in-process (no server, no network): where a gateway request spends its CPU.

    python bench/profile_chain.py [--requests 20000] [--redis URL] [--top 25]

It drives the gated bench app with pre-signed requests through plain ASGI calls and prints the
cProfile functions by own time, and the µs per request with and without the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import KEY, SECRET, bare, gated
from gateway.signing import percent_encode, sign_request_v1


def scopes(count: int) -> list[dict[str, object]]:
    out = []
    for _ in range(count):
        params = sign_request_v1({"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON",
                                  "RegionId": "cn-hangzhou"}, access_key_id=KEY, secret=SECRET)
        query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
        out.append({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                    "scheme": "http", "path": "/", "raw_path": b"/", "query_string": query.encode(),
                    "root_path": "", "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk")],
                    "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080)})
    return out


async def drive(app: object, batch: list[dict[str, object]]) -> float:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses = []

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for scope in batch:
        await app(dict(scope), receive, send)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    if any(status != 200 for status in statuses):
        raise SystemExit(f"refused requests in the profile run: {set(statuses)}")
    return elapsed / len(batch) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    batch = scopes(args.requests)
    plain, chained = bare(), gated()
    await drive(chained, scopes(200))  # warm up: the middleware stack is built on first call
    bare_us = await drive(plain, batch)
    plain_us = await drive(chained, scopes(args.requests))
    print(f"bare app: {bare_us:.1f} µs/request; behind the gateway: {plain_us:.1f} µs/request")
    profiler = cProfile.Profile()
    profiler.enable()
    gated_us = await drive(chained, batch)
    profiler.disable()
    print(f"under cProfile: {gated_us:.1f} µs/request")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    asyncio.run(main())
