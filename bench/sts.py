"""Temporary credentials' cost: an STS-signed V1 request against a plain one, in-process (no server).

    python -m bench.sts [--requests 20000] [--rounds 5]

Three apps, each the bench app behind the full chain on the memory store: the bench policy (no [sts]),
and bench/sts_policy.toml (the same plus [sts] and a role) driven with plain V1 requests and with V1
requests signed by temporary credentials (SecurityToken among the parameters). The credentials are
minted once, as a client reuses them until they near expiry: the token is verified on its first use and
then found in the gateway's cache (its expiry still checked on every request). Rounds alternate the
three, medians are reported. The cost of a token's first verification (a cache miss: MAC, JSON, policy
lookups) is measured on its own: `gateway.sts.keys.TemporaryKeys.resolve` on fresh tokens.
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


async def _requests(requests: int, rounds: int) -> dict[str, float]:
    plain, with_sts = _app(POLICY), _app(STS_POLICY)
    credentials = _temporary_credentials()
    await drive(plain, scopes(200))  # the middleware stacks are built on the first call
    await drive(with_sts, scopes(200))
    await drive(with_sts, sts_scopes(200, credentials))
    runs: dict[str, list[float]] = {"plain": [], "plain, [sts] configured": [], "STS-signed": []}
    for _ in range(rounds):
        runs["plain"].append(await drive(plain, scopes(requests)))
        runs["plain, [sts] configured"].append(await drive(with_sts, scopes(requests)))
        runs["STS-signed"].append(await drive(with_sts, sts_scopes(requests, credentials)))
    return {name: statistics.median(values) for name, values in runs.items()}


def first_verification_us(count: int = 5000) -> float:
    """µs of one cache miss: a token seen for the first time (MAC, claims, role and key lookups)."""
    policy = load_policy(STS_POLICY)
    assert policy.sts is not None
    temporary = TemporaryKeys(policy, policy.sts, cache_size=count)
    minted = [_temporary_credentials() for _ in range(count)]
    started = time.perf_counter()
    for key_id, _, token in minted:
        key, refusal = temporary.resolve(key_id, None, token)
        if key is None:
            raise AssertionError(f"a fresh token was refused: {refusal}")
    return (time.perf_counter() - started) / count * 1e6


def measure(requests: int = 20_000, rounds: int = 5) -> dict[str, float]:
    os.environ.setdefault("BENCH_STS_KEY", SIGNING_KEY)
    undo = _memory_store()
    try:
        out = asyncio.run(_requests(requests, rounds))
    finally:
        undo()
    out["first verification of a token"] = first_verification_us()
    return out


def lines(results: dict[str, float]) -> list[str]:
    plain, sts = results["plain"], results["STS-signed"]
    return [
        f"- a plain V1 request behind the chain (bench policy): {plain:.1f} µs",
        f"- the same with [sts] configured (bench/sts_policy.toml): {results['plain, [sts] configured']:.1f} µs",
        f"- an STS-signed V1 request (SecurityToken, token cached): {sts:.1f} µs "
        f"({(sts / plain - 1) * 100:+.1f} % against plain; the target is at most +10 %)",
        f"- a token's first verification (cache miss), on its own: {results['first verification of a token']:.1f} µs",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("\n".join(lines(measure(args.requests, args.rounds))))


if __name__ == "__main__":
    main()
