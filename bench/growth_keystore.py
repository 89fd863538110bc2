"""bench/growth.py's keystore case: N keys in Redis (GATEWAY_KEYSTORE=redis), one child process.

* start-up: building the gateway with N keys in Redis against an empty keystore (nothing is loaded:
  entries are read on first use);
* per request: the same signed GETs (10 parameters) by keys spread over the whole keyspace, once their
  entries are cached, against the same keys written in the policy file (A/B, in the same process);
* a miss: the first request of a key, which reads its entry from Redis (one single-flight read).

The keys are written straight into a private redis-server, sealed as ``gateway keys`` seals them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import replace
from itertools import count
from types import MappingProxyType
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette

from bench.apps import ROUTES
from bench.growth_requests import (
    ACCOUNT,
    PARAMS,
    QUOTA,
    gateway_app,
    get_request,
    key_id,
    measure_pair,
    median_us,
    policy_text,
    secret,
)
from gateway import GatewayMiddleware, Settings
from gateway.keystore import entries
from gateway.keystore.codec import Codec, parse_secret_key
from gateway.policy import AccessKey, parse_policy
from gateway.rates import parse_rate
from gateway.stores import MemoryStore
from tests.support.redis import running_redis

PREFIX = "bench"
_BATCH = 10_000


async def _fill(url: str, n: int, codec: Codec) -> float:
    started = time.perf_counter()
    client = Redis.from_url(url)
    await client.hset(f"{PREFIX}:ks:a:{ACCOUNT}", mapping=entries.encode({"id": ACCOUNT, "name": "growth"}))
    for start in range(0, n, _BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + _BATCH)):
            pipe.hset(f"{PREFIX}:ks:k:{key_id(i)}", mapping=entries.encode({
                "id": key_id(i), "account": ACCOUNT, "quota": QUOTA, "secrets": [codec.seal(secret(i), key_id(i))]}))
        await pipe.execute()
    await client.aclose()
    return time.perf_counter() - started


def _keystore_app(url: str, key: str) -> tuple[Any, float]:
    settings = Settings(access_log=False, max_body_bytes=4 << 20, max_repeated=max(PARAMS), keystore="redis",
                        redis_url=url, redis_prefix=PREFIX, secret_key=parse_secret_key(key))
    started = time.perf_counter()
    app = GatewayMiddleware(Starlette(routes=ROUTES), settings=settings, policy=parse_policy(policy_text(0), "g", {}),
                            store=MemoryStore())
    return app, time.perf_counter() - started


async def keystore_child(n: int) -> dict[str, Any]:
    key = base64.b64encode(os.urandom(32)).decode()
    secret_key = parse_secret_key(key)
    assert secret_key is not None
    spread = [i * n // 200 for i in range(200)]
    with running_redis() as redis:
        _keystore_app(redis.url, key)  # the first build pays for first-time work (imports, compiled patterns)
        _, empty_build = _keystore_app(redis.url, key)
        filled = await _fill(redis.url, n, Codec(secret_key))
        app, build = _keystore_app(redis.url, key)
        keystore = app.gateway.keystore
        keystore.start()  # subscribed first: subscribing empties the cache, which would spoil the cached case
        while not keystore.cache.listening:
            await asyncio.sleep(0.01)
        miss_us = await median_us(app, [get_request(10, key=i) for i in spread[::2]], 200)  # first use: a read
        cached = count()
        admitted, rejected = await measure_pair(
            app, lambda bad: get_request(10, key=spread[::2][next(cached) % 100], bad=bad), 1000)
        # The same 100 keys in the policy file, keystore off: the A/B of a cached keystore key.
        base = parse_policy(policy_text(1), "growth", {})
        quota = parse_rate(QUOTA)
        file_keys = {key_id(i): AccessKey(key_id(i), (secret(i),), base.accounts[ACCOUNT], quota=quota)
                     for i in spread[::2]}
        file_app = gateway_app(replace(base, access_keys=MappingProxyType(file_keys)))
        picks = count()
        file_admitted, file_rejected = await measure_pair(
            file_app, lambda bad: get_request(10, key=spread[::2][next(picks) % 100], bad=bad), 1000)
        await keystore.aclose()
    return {"keys": n, "fill_s": filled, "build_empty_s": empty_build, "build_s": build, "miss_us": miss_us,
            "admitted_us": admitted, "rejected_us": rejected, "file_admitted_us": file_admitted,
            "file_rejected_us": file_rejected}


def describe(row: dict[str, Any]) -> str:
    return (f"  {row['keys']:>9,} keys in Redis (written in {row['fill_s']:.1f} s): gateway built in "
            f"{row['build_s'] * 1000:.1f} ms (empty keystore {row['build_empty_s'] * 1000:.1f} ms); first use "
            f"(Redis read) {row['miss_us']:.1f} µs; cached: admitted {row['admitted_us']:.1f} µs, rejected "
            f"{row['rejected_us']:.1f} µs; same keys in the file: admitted {row['file_admitted_us']:.1f} µs, "
            f"rejected {row['file_rejected_us']:.1f} µs")


def run(n: int) -> dict[str, Any]:
    return asyncio.run(keystore_child(n))

