"""Temporary credentials' cost: an STS-signed V1 request against a plain one, in-process (no server).

    python -m bench.sts [--requests 2000] [--rounds 15]

Three cases, each the bench app behind the full chain on the memory store: the bench policy (no [sts])
with plain V1 requests, and bench/sts_policy.toml (the same plus [sts] and a role) with plain V1
requests and with V1 requests signed by temporary credentials (SecurityToken among the parameters). The
credentials are minted once, as a client reuses them until they near expiry: the token is verified on
its first use and then found in the gateway's cache (its expiry still checked on every request).

Time is the thread's CPU time (`time.thread_time`), not the wall clock: on a shared machine a batch's
wall time mostly measures the other tenants. Each round runs a batch of every case, in a rotating
order; reported are the median µs per request of each case and the median of the per-round ratios
(a paired comparison: both batches of a round ran under the same conditions). A token's first
verification (a cache miss: MAC, JSON, policy lookups) is measured on its own, on fresh tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from bench.apps import KEY, POLICY, ROUTES
from bench.inprocess import _memory_store, drive
from bench.signed import DESCRIBE_REGIONS, scope, scopes
from gateway import GatewayMiddleware, Settings
from gateway.policy import load_policy
from gateway.signing import percent_encode, sign_request_v1
from gateway.sts import token as tokens
from gateway.sts.keys import TemporaryKeys

STS_POLICY = Path(__file__).resolve().parent / "sts_policy.toml"
SIGNING_KEY = "42" * 32


def _app(policy: Path) -> Starlette:
    settings = Settings.from_env(config=str(policy), access_log=False)
    return Starlette(routes=ROUTES, middleware=[Middleware(GatewayMiddleware, settings=settings)])


def _temporary_credentials() -> tuple[str, str, str]:
    keys = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))
    key_id = tokens.new_access_key_id()
    claims = tokens.Claims(key_id, 4242, "bench-role", "bench", KEY, int(time.time()) + 3600, None)
    return key_id, keys.secret_of(key_id), keys.mint(claims)


def sts_scopes(count: int, credentials: tuple[str, str, str]) -> list[dict[str, Any]]:
    key_id, secret, token = credentials
    out = []
    for _ in range(count):
        signed = sign_request_v1({**DESCRIBE_REGIONS, "SecurityToken": token}, access_key_id=key_id, secret=secret)
        out.append(scope(query="&".join(f"{percent_encode(k)}={percent_encode(v)}"
                                        for k, v in signed.items()).encode()))
    return out


async def _cpu_us(app: Any, batch: list[dict[str, Any]]) -> float:
    """CPU µs per request of ``batch`` through ``app`` (`drive`'s wall-clock figure is discarded)."""
    started = time.thread_time()
    await drive(app, batch)
    return (time.thread_time() - started) / len(batch) * 1e6


async def _requests(requests: int, rounds: int) -> dict[str, float]:
    plain, with_sts = _app(POLICY), _app(STS_POLICY)
    credentials = _temporary_credentials()
    await drive(plain, scopes(200))  # the middleware stacks are built on the first call
    await drive(with_sts, scopes(200))
    await drive(with_sts, sts_scopes(200, credentials))
    cases = {"plain": (plain, lambda: scopes(requests)),
             "plain, [sts] configured": (with_sts, lambda: scopes(requests)),
             "STS-signed": (with_sts, lambda: sts_scopes(requests, credentials))}
    runs: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(rounds):
        batches = {name: make() for name, (_, make) in cases.items()}  # signed before timing
        for name in names[round_ % 3:] + names[:round_ % 3]:
            runs[name].append(await _cpu_us(cases[name][0], batches[name]))
    out = {name: statistics.median(values) for name, values in runs.items()}
    out["STS-signed / plain"] = statistics.median(s / p for s, p in zip(runs["STS-signed"], runs["plain"], strict=True))
    out["[sts] configured / plain"] = statistics.median(
        s / p for s, p in zip(runs["plain, [sts] configured"], runs["plain"], strict=True))
    return out


def first_verification_us(count: int = 5000) -> float:
    """CPU µs of one cache miss: a token seen for the first time (MAC, claims, role and key lookups)."""
    policy = load_policy(STS_POLICY)
    assert policy.sts is not None
    temporary = TemporaryKeys(policy, policy.sts, cache_size=count)
    minted = [_temporary_credentials() for _ in range(count)]
    started = time.thread_time()
    for key_id, _, token in minted:
        key, refusal = temporary.resolve(key_id, None, token)
        if key is None:
            raise AssertionError(f"a fresh token was refused: {refusal}")
    return (time.thread_time() - started) / count * 1e6


def measure(requests: int = 2_000, rounds: int = 15) -> dict[str, float]:
    os.environ.setdefault("BENCH_STS_KEY", SIGNING_KEY)
    undo = _memory_store()
    try:
        out = asyncio.run(_requests(requests, rounds))
    finally:
        undo()
    out["first verification of a token"] = first_verification_us()
    return out


def lines(results: dict[str, float]) -> list[str]:
    ratio, configured = results["STS-signed / plain"], results["[sts] configured / plain"]
    return [
        f"- a plain V1 request behind the chain (bench policy): {results['plain']:.1f} µs CPU",
        f"- the same with [sts] configured (bench/sts_policy.toml): {results['plain, [sts] configured']:.1f} µs "
        f"({(configured - 1) * 100:+.1f} %, median of the rounds' ratios)",
        f"- an STS-signed V1 request (SecurityToken, token cached): {results['STS-signed']:.1f} µs "
        f"({(ratio - 1) * 100:+.1f} % against plain; the target is at most +10 %)",
        f"- a token's first verification (cache miss), on its own: {results['first verification of a token']:.1f} µs",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print("\n".join(lines(measure(args.requests, args.rounds))))


if __name__ == "__main__":
    main()
