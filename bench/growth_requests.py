"""bench/growth.py's requests and their timing: signed GETs of N parameters and POST bodies of N bytes,
a policy of N keys, and the gateway (memory store) they are driven into, in-process."""

from __future__ import annotations

import base64
import functools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette

from bench.apps import ROUTES
from bench.signed import scope
from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy
from gateway.signing import percent_encode, sign_request_v1

PARAMS = (10, 50, 200)
CHUNK = 64 << 10
_SERIALS = count()
ROUNDS = 3
ACCOUNT = 4242
QUOTA = "1000000000/day"

HEAD = f"""[[accounts]]
id = {ACCOUNT}
name = "growth@example.com"

[apis."2014-05-26".DescribeGrowth]
params.Tag = {{ type = "String", repeated = true }}
params.UserData = {{ type = "String" }}

[limits]
flow = "100000000/second"

"""


def key_id(i: int) -> str:
    return f"LTAIgrowth{i:07d}"


def secret(i: int) -> str:
    return f"growth-secret-{i:07d}"


def policy_text(keys: int) -> str:
    entries = (f'[[access_keys]]\nid = "{key_id(i)}"\nsecrets = ["{secret(i)}"]\naccount = {ACCOUNT}\n'
               f'quota = "{QUOTA}"\n\n' for i in range(keys))
    return HEAD + "".join(entries)


@dataclass
class Request:
    scope: dict[str, Any]
    chunks: list[bytes]
    size: int  # bytes of query string plus body


def _encoded(params: dict[str, str]) -> bytes:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items()).encode()


def _spoiled(params: dict[str, str], bad: bool) -> dict[str, str]:
    if bad:
        sig = params["Signature"]
        params["Signature"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    return params


def get_request(size: int, *, key: int = 0, bad: bool = False) -> Request:
    """A signed GET of ``size`` parameters, Signature included. Tag values never recur (a counter in
    each), so gateway.signing's memo of short recurring strings only helps with what recurs in life."""
    params = {"Action": "DescribeGrowth", "Version": "2014-05-26", "Format": "JSON", "RegionId": "cn-hangzhou"}
    serial = next(_SERIALS)
    params.update({f"Tag.{i}": f"value {serial}-{i}" for i in range(1, size - 9)})
    signed = _spoiled(sign_request_v1(params, access_key_id=key_id(key), secret=secret(key)), bad)
    if len(signed) != size:
        raise AssertionError((len(signed), size))
    query = _encoded(signed)
    return Request(scope("GET", query), [b""], len(query))


@functools.cache
def user_data(room: int) -> str:
    """Base64 of random bytes whose percent-encoded form ('+' and '/' take three bytes) fits ``room``."""
    data = base64.b64encode(os.urandom(room)).decode()[:room]
    while (excess := len(quote(data, safe="")) - room) > 0:
        data = data[: -max(1, excess // 2)]
    return data


def post_request(body_bytes: int, *, bad: bool = False) -> Request:
    """A signed POST whose form body (every parameter, UserData filling it) is about ``body_bytes``.
    UserData is the same in each (over 30 characters, it is never memoized); the nonce is not."""
    params = {"Action": "DescribeGrowth", "Version": "2014-05-26", "Format": "JSON", "RegionId": "cn-hangzhou"}
    overhead = len(_encoded(sign_request_v1({**params, "UserData": ""}, access_key_id=key_id(0),
                                            secret=secret(0), method="POST")))
    data = user_data(body_bytes - overhead)
    signed = _spoiled(sign_request_v1({**params, "UserData": data}, access_key_id=key_id(0), secret=secret(0),
                                      method="POST"), bad)
    body = _encoded(signed)
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]
    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode())]
    return Request(scope("POST", b"", headers), chunks, len(body))


async def _call(app: Any, request: Request) -> tuple[int, float]:
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(request.chunks) - 1}
                for i, chunk in enumerate(request.chunks)]
    status = 0

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    started = time.perf_counter()
    await app(dict(request.scope), receive, send)
    return status, time.perf_counter() - started


async def median_us(app: Any, pool: list[Request], expect: int) -> float:
    times = []
    for request in pool:
        status, elapsed = await _call(app, request)
        if status != expect:
            raise SystemExit(f"growth: expected {expect}, got {status} ({request.size} bytes)")
        times.append(elapsed)
    return statistics.median(times) * 1e6


def gateway_app(policy: Policy) -> Any:
    """The bench app (GET and POST, body unread) behind the chain on the memory store."""
    # The largest GET repeats Tag 190 times: above the default bound (GATEWAY_MAX_REPEATED, 100), which
    # would refuse it before the cost being measured.
    settings = Settings(access_log=False, max_body_bytes=4 << 20, redis_url=None, max_repeated=max(PARAMS))
    app = Starlette(routes=ROUTES)
    return GatewayMiddleware(app, settings=settings, policy=policy)


async def measure_pair(app: Any, make: Callable[[bool], Request], size: int) -> tuple[float, float]:
    """(admitted, rejected) µs: medians of ROUNDS rounds, each over ``size`` fresh requests."""
    admitted, rejected = [], []
    await median_us(app, [make(False) for _ in range(min(size, 20))], 200)  # warm-up
    for _ in range(ROUNDS):
        admitted.append(await median_us(app, [make(False) for _ in range(size)], 200))
        rejected.append(await median_us(app, [make(True) for _ in range(size)], 400))
    return statistics.median(admitted), statistics.median(rejected)
