"""How a request's cost grows: with the request (parameters, body size) and with the policy (keys).

    python -m bench.growth [--quick | --full] [--load-timeout 60] [--json PATH] [--chart PATH]

Measured in-process, as bench/inprocess.py does: ASGI scopes built ahead and driven straight into
the gateway (memory store) in front of the bare bench app, no server and no network; each call is
timed with perf_counter. A figure is the median over a pool of distinct requests (each with its own
nonce), then the median of three rounds. Two requests per size:

* admitted: a valid V1 request, through the whole chain and the app;
* rejected: the same request with a wrong Signature, refused (SignatureDoesNotMatch) once it has been
  read, parsed and its string-to-sign computed: the most expensive refusal there is.

Request growth: GET with 10, 50 and 200 parameters (``Tag.N`` values), and POST form bodies of 1 KiB
to 1 MiB (one large base64 ``UserData`` value, the body delivered in 64 KiB chunks as uvicorn does).

Policy growth, each size in a process of its own so that its RSS is its own:

* keys in memory: a Policy of N access keys built directly (not parsed from TOML), 10 to 1,000,000;
  requests signed by keys spread over the whole table; latency, build time, RSS;
* keys from TOML: `load_policy` of a generated file, start-up time and RSS, until one size takes
  longer than ``--load-timeout`` (the larger ones are then reported as not measured);
* keys in Redis (GATEWAY_KEYSTORE=redis, bench/growth_keystore.py): 1,000,000 keys (100,000 with
  ``--quick``), start-up time, a first use, and a cached key against the same key in the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import replace
from itertools import count, pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bench import growth_keystore
from bench.growth_requests import (
    ACCOUNT,
    PARAMS,
    QUOTA,
    ROUNDS,
    Request,
    gateway_app,
    get_request,
    key_id,
    measure_pair,
    median_us,
    policy_text,
    post_request,
    secret,
)
from gateway.policy import AccessKey, load_policy, parse_policy
from gateway.rates import parse_rate
from tests.support.procfs import rss_bytes
from tests.support.servers import ROOT

BODIES = (1 << 10, 8 << 10, 64 << 10, 256 << 10, 1 << 20)
KEYS = (10, 1_000, 10_000, 100_000, 1_000_000)
LOAD_KEYS = (10, 100, 1_000, 3_000, 10_000)
LOAD_KEYS_FULL = (*LOAD_KEYS, 100_000, 1_000_000)
KEYSTORE_KEYS = {False: 1_000_000, True: 100_000}  # by --quick


def _pool_size(size_bytes: int, quick: bool) -> int:
    count = max(20, min(1000, (4 << 20) // max(size_bytes, 1)))
    return max(10, count // 4) if quick else count


async def request_growth(quick: bool) -> list[dict[str, Any]]:
    """Every size, round after round (not all rounds of one size in a row): a burst of load from
    elsewhere on a shared machine then spoils one round of several sizes, which the median drops."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="growth-", delete=False) as handle:
        handle.write(policy_text(1))
    app = gateway_app(load_policy(handle.name))
    Path(handle.name).unlink()
    cases: list[tuple[dict[str, Any], Callable[[bool], Request], int]] = []
    for size in PARAMS:
        sample = get_request(size)
        cases.append(({"kind": "params", "size": size, "bytes": sample.size},
                      lambda bad, s=size: get_request(s, bad=bad), _pool_size(sample.size, quick)))
    for target in BODIES:
        sample = post_request(target)
        cases.append(({"kind": "body", "size": target, "bytes": sample.size},
                      lambda bad, t=target: post_request(t, bad=bad), _pool_size(target, quick)))
    runs: list[tuple[list[float], list[float]]] = [([], []) for _ in cases]
    for _, make, pool in cases:
        await median_us(app, [make(False) for _ in range(min(pool, 20))], 200)  # warm-up
    for _ in range(ROUNDS):
        for (_, make, pool), (admitted, rejected) in zip(cases, runs, strict=True):
            admitted.append(await median_us(app, [make(False) for _ in range(pool)], 200))
            rejected.append(await median_us(app, [make(True) for _ in range(pool)], 400))
    rows = []
    for (row, _, _), (admitted, rejected) in zip(cases, runs, strict=True):
        row.update(admitted_us=statistics.median(admitted), rejected_us=statistics.median(rejected))
        rows.append(row)
        what = f"GET {row['size']:>4} parameters" if row["kind"] == "params" else "POST form body"
        print(f"  {what} ({row['bytes']:>8} B): admitted {row['admitted_us']:9.1f} µs, "
              f"rejected {row['rejected_us']:9.1f} µs", flush=True)
    return rows


# -- policy growth: one child process per size -------------------------------------------------------


async def _keys_child(n: int) -> dict[str, Any]:
    before = rss_bytes()
    started = time.perf_counter()
    base = parse_policy(policy_text(1), "growth", {})
    account, quota = base.accounts[ACCOUNT], parse_rate(QUOTA)
    keys = {key_id(i): AccessKey(key_id(i), (secret(i),), account, quota=quota) for i in range(n)}
    policy = replace(base, access_keys=MappingProxyType(keys))
    built = time.perf_counter() - started
    rss = rss_bytes() - before
    app = gateway_app(policy)
    spread = [i * n // 200 for i in range(200)]  # keys from the whole table, not one warm entry
    picks = count()
    admitted, rejected = await measure_pair(
        app, lambda bad: get_request(10, key=spread[next(picks) % len(spread)], bad=bad), 1000)
    return {"keys": n, "build_s": built, "rss_bytes": rss, "admitted_us": admitted, "rejected_us": rejected}


def _load_child(n: int, path: str) -> dict[str, Any]:
    before = rss_bytes()
    started = time.perf_counter()
    policy = load_policy(path)
    loaded = time.perf_counter() - started
    rss = rss_bytes() - before
    if len(policy.access_keys) != n:
        raise AssertionError(len(policy.access_keys))
    started = time.perf_counter()
    tomllib.loads(Path(path).read_text(encoding="utf-8"))
    return {"keys": n, "load_s": loaded, "toml_s": time.perf_counter() - started, "rss_bytes": rss,
            "file_bytes": Path(path).stat().st_size}


def _child(args: list[str], timeout: float) -> dict[str, Any] | None:
    try:
        done = subprocess.run([sys.executable, "-m", "bench.growth", "--child", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def key_growth(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for n in KEYS[:3] if quick else KEYS:
        row = _child(["keys", str(n)], timeout=600)
        if row is None:
            raise SystemExit(f"growth: {n} keys in memory took over 600 s")
        rows.append(row)
        print(f"  {n:>9,} keys in memory: admitted {row['admitted_us']:7.1f} µs, rejected "
              f"{row['rejected_us']:7.1f} µs, built in {row['build_s']:6.2f} s, "
              f"RSS +{row['rss_bytes'] / 2**20:7.1f} MiB", flush=True)
    return rows


def load_growth(sizes: tuple[int, ...], timeout: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in sizes:
        if rows and rows[-1].get("load_s") is None:
            rows.append({"keys": n, "load_s": None, "skipped": True})
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="growth-keys-", delete=False) as handle:
            handle.write(policy_text(n))
        try:
            row = _child(["load", str(n), handle.name], timeout=timeout)
        finally:
            Path(handle.name).unlink()
        if row is None:
            rows.append({"keys": n, "load_s": None, "timeout_s": timeout})
            print(f"  {n:>9,} keys from TOML: did not load within {timeout:.0f} s", flush=True)
            continue
        rows.append(row)
        print(f"  {n:>9,} keys from TOML ({row['file_bytes'] / 2**20:6.1f} MiB): start-up "
              f"{row['load_s']:8.2f} s (TOML parse {row['toml_s']:6.2f} s), RSS +{row['rss_bytes'] / 2**20:7.1f} MiB",
              flush=True)
    return rows


def slopes(points: list[tuple[float, float]]) -> list[float]:
    """Cost per unit between consecutive (size, µs) points: constant when the growth is linear."""
    return [(b[1] - a[1]) / (b[0] - a[0]) for a, b in pairwise(points)]


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """One line per axis: is it linear in the request, flat in the number of keys?"""
    out = {}
    for kind, unit, scale in (("params", "parameter", 1), ("body", "KiB", 1024)):
        rows = [r for r in results["request"] if r["kind"] == kind]
        for which in ("admitted_us", "rejected_us"):
            per = slopes([(r["bytes"] / scale if kind == "body" else r["size"], r[which]) for r in rows])
            shape = "worse than linear" if per[-1] > 1.5 * max(per[0], 1e-9) and per[-1] > 0.05 else "linear"
            out[f"{kind} {which[:-3]}"] = (f"{shape}: " + ", ".join(f"{p:.2f}" for p in per)
                                           + f" µs per {unit} between sizes")
    keys = results["keys"]
    for which in ("admitted_us", "rejected_us"):
        values = [r[which] for r in keys]
        spread = max(values) / min(values)
        out[f"keys {which[:-3]}"] = (f"{'flat' if spread <= 1.3 else 'NOT flat'}: max/min {spread:.2f} over "
                                     f"{keys[0]['keys']:,} to {keys[-1]['keys']:,} keys")
    loads = [r for r in results["load"] if r.get("load_s")]
    if len(loads) >= 2:
        a, b = loads[-2], loads[-1]
        factor = (b["load_s"] / a["load_s"]) / (b["keys"] / a["keys"])
        out["TOML start-up"] = (f"{'worse than linear' if factor > 1.5 else 'linear'}: {a['keys']:,} -> "
                                f"{b['keys']:,} keys multiplies the time by {b['load_s'] / a['load_s']:.1f} "
                                f"({factor:.1f}x the key ratio)")
    return out


def measure(*, quick: bool = False, full: bool = False, load_timeout: float = 60.0) -> dict[str, Any]:
    print("request growth (in-process, memory store):", flush=True)
    request = asyncio.run(request_growth(quick))
    print("policy growth, keys in memory (one process per size):", flush=True)
    keys = key_growth(quick)
    print("policy growth, keys from TOML (one process per size):", flush=True)
    load = load_growth(LOAD_KEYS[:4] if quick else LOAD_KEYS_FULL if full else LOAD_KEYS, load_timeout)
    print("keys in Redis (GATEWAY_KEYSTORE=redis, one process):", flush=True)
    keystore = _child(["keystore", str(KEYSTORE_KEYS[quick])], timeout=1200)
    print(growth_keystore.describe(keystore) if keystore else "  did not finish within 1200 s", flush=True)
    results: dict[str, Any] = {"request": request, "keys": keys, "load": load, "keystore": keystore}
    results["verdicts"] = verdicts(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller pools, keys up to 10,000")
    parser.add_argument("--full", action="store_true", help="also try 100,000 and 1,000,000 keys from TOML")
    parser.add_argument("--load-timeout", type=float, default=60.0, help="seconds per TOML size")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--chart", type=Path, help="write the growth chart (PNG) here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n, *rest = args.child
        row = (asyncio.run(_keys_child(int(n))) if kind == "keys" else growth_keystore.run(int(n))
               if kind == "keystore" else _load_child(int(n), rest[0]))
        print(json.dumps(row))
        return
    results = measure(quick=args.quick, full=args.full, load_timeout=args.load_timeout)
    print()
    for name, verdict in results["verdicts"].items():
        print(f"{name:>18}: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.chart:
        from bench.chart import growth_chart

        growth_chart(results, args.chart)


if __name__ == "__main__":
    main()
