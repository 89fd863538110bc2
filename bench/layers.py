"""Where a request's time goes inside the gateway: each step of the chain on its own, in-process.

    python bench/layers.py [--requests 20000]

The bench app's gateway (memory store) gets N pre-signed V1 requests. Each step runs over all N
before the next one starts (so a step's figure is its own code, warm in the caches): the request
head, parse, every check in chain order, admission, the Responder rendering the service's JSON answer, and the
observers (metrics). The steps add up to less than bench/profile_chain.py's whole request, where
every step runs once per request between the others, with colder caches and the event loop between.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.responses import JSONResponse

from bench.apps import REGIONS, gated
from bench.profile_chain import drive, scopes
from gateway.call import Call, Exchange
from gateway.middleware import GatewayMiddleware
from gateway.respond import Responder


def _gateway(app: Any) -> GatewayMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, GatewayMiddleware):
        layer = layer.app
    return layer


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Any) -> None:
    return None


async def _each(contexts: list[Any], step: Callable[[Any], Awaitable[Any] | Any]) -> float:
    started = time.perf_counter()
    for ctx in contexts:
        pending = step(ctx)
        if pending is not None and not isinstance(pending, Call):
            await pending
    return (time.perf_counter() - started) / len(contexts) * 1e6


async def measure(requests: int) -> list[tuple[str, float]]:
    app = gated()
    await drive(app, scopes(200))  # the middleware stack is built on the first call
    gateway = _gateway(app)
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
    contexts = exchanges
    answer = JSONResponse(REGIONS)
    start = {"type": "http.response.start", "status": 200, "headers": answer.raw_headers}
    body = {"type": "http.response.body", "body": answer.body}

    async def respond(ctx: Exchange) -> None:
        responder = Responder(ctx, "DescribeRegions", _discard)
        await responder(start)
        await responder(body)

    out.append(("Responder (JSON answer, RequestId spliced in)", await _each(contexts, respond)))

    def observe(ctx: Exchange) -> None:
        for observer in gateway.observers:
            observer(ctx)

    out.append(("observers (metrics)", await _each(contexts, observe)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.requests))
    for name, us in rows:
        print(f"{name:<48} {us:6.2f} µs")
    print(f"{'sum':<48} {sum(us for _, us in rows):6.2f} µs")


if __name__ == "__main__":
    main()
