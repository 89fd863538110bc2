"""Which HTTP client should gateway.proxy use? httpx.AsyncClient against aiohttp, measured.

    .venv/bin/python bench/proxy_client.py [--rounds 3] [--seconds 5]

One upstream (bench/apps.py's bare Starlette app) and two gateway-less minimal proxies in front of it, one per
client, each a pure ASGI app doing what ProxyApp does (pooled client made once per process, the
request forwarded with its headers and body, the answer relayed chunk by chunk). Each server is its
own uvicorn process (1 worker, ``--loop uvloop --http httptools``); wrk ``-t1 -c32`` loads one proxy at
a time, the two alternating round after round. Prints requests/s and p99 per client and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.types import ASGIApp, Receive, Scope, Send

from bench.common import alternate, median_load, uvicorn_server
from tests.support.asgi import read_body

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"host", b"content-length", b"transfer-encoding",
                        b"te", b"trailer", b"upgrade", b"proxy-authorization", b"proxy-connection"})
POOL = 100  # connections per client, the same for both


def _target(scope: Scope) -> str:
    path: bytes = scope["raw_path"]
    query: bytes = scope["query_string"]
    return (path + b"?" + query if query else path).decode("latin-1")


async def _lifespan(receive: Receive, send: Send, close: Callable[[], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_httpx_proxy() -> ASGIApp:
    import httpx

    upstream = os.environ["BENCH_UPSTREAM"]
    client = httpx.AsyncClient(base_url=upstream, limits=httpx.Limits(max_connections=POOL,
                                                                      max_keepalive_connections=POOL))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, client.aclose)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        request = client.build_request(scope["method"], _target(scope), headers=headers,
                                       content=await read_body(receive))
        response = await client.send(request, stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def create_aiohttp_proxy() -> ASGIApp:
    import aiohttp
    from yarl import URL

    upstream = os.environ["BENCH_UPSTREAM"]
    sessions: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:
        # aiohttp wants its session made inside the running loop: the first request makes it.
        if not sessions:
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL),
                                                  auto_decompress=False))
        return sessions[0]

    async def close() -> None:
        if sessions:
            await sessions.pop().close()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, close)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1"))
                   for k, v in scope["headers"] if k not in HOP_BY_HOP]
        url = URL(upstream + _target(scope), encoded=True)
        async with session().request(scope["method"], url, headers=headers, data=await read_body(receive),
                                     allow_redirects=False) as response:
            await send({"type": "http.response.start", "status": response.status,
                        "headers": [(k, v) for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP]})
            chunks: AsyncIterator[bytes] = response.content.iter_any()
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with uvicorn_server("bench.apps:bare") as upstream:
        env = {"BENCH_UPSTREAM": upstream}
        with uvicorn_server("bench.proxy_client:create_httpx_proxy", env) as via_httpx, \
                uvicorn_server("bench.proxy_client:create_aiohttp_proxy", env) as via_aiohttp:
            # The warm-up of `alternate` warms both pools and code paths.
            runs = alternate({"httpx": via_httpx, "aiohttp": via_aiohttp}, seconds=args.seconds, rounds=args.rounds)
    medians = {name: median_load(loads) for name, loads in runs.items()}
    for name, load in medians.items():
        print(f"{name:>8}: median {load.rps:9.0f} req/s  p99 {load.p99_ms:7.2f} ms  non-2xx {load.non_2xx}")
    print(f"aiohttp / httpx requests/s: {medians['aiohttp'].rps / medians['httpx'].rps:.2f}x")


if __name__ == "__main__":
    main()
