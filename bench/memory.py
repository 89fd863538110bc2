"""What the memory store costs in memory: bytes per remembered nonce, the RSS of a process holding a
million of them, and proof that it stays bounded.

    python -m bench.memory [--nonces 1000000] [--json PATH]

A nonce is remembered until its Timestamp + GATEWAY_TIMESTAMP_SKEW (AdmitLayer passes that as the
ticket's TTL), so a gateway holds about (request rate) x (skew + the timestamps' age) of them. This
script, a fresh process of its own:

1. admits ``--nonces`` tickets of distinct nonces, shaped as the gateway makes them (an SDK's UUID4
   nonce after a 24-character access key id) into `gateway.stores.MemoryStore`, and reports the RSS
   of the process before and after, and the bytes per nonce it implies (allocator slack included);
2. counts the same with tracemalloc over a tenth as many (the Python objects alone);
3. moves the store's clock past the TTL and keeps writing: each write sweeps up to 8 expired entries,
   so the old ones go while new ones come (the store's ``len()`` gives entries, expired ones not yet
   swept included);
4. simulates a steady load (a fixed rate for several TTLs) and reports the most entries ever held
   against rate x TTL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from gateway.stores import MemoryStore, Outcome, Ticket
from tests.support.procfs import rss_bytes

KEY_ID = "LTAI5tBenchKeyMemory0001"  # 24 characters, as Aliyun's are
SCOPE = "1234567890123456"  # an account id
TTL_MS = 3_600_000  # the default skew: a nonce with a fresh Timestamp is kept an hour


class Clock:
    """The store's clock, in µs, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1000

    def __call__(self) -> int:
        return self.now


async def fill(store: MemoryStore, count: int, ttl_ms: int = TTL_MS) -> None:
    for _ in range(count):
        signed = time.time_ns() // 1_000_000
        verdict = await store.admit(Ticket(SCOPE, f"{KEY_ID}:{uuid.uuid4()}", ttl_ms, timestamp_ms=signed))
        if verdict.outcome is not Outcome.ADMITTED:
            raise SystemExit(f"memory: a fresh nonce was refused: {verdict}")


async def held(count: int) -> dict[str, Any]:
    gc.collect()
    before = rss_bytes()
    store = MemoryStore(clock=Clock())
    started = time.perf_counter()
    await fill(store, count)
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    return {"nonces": len(store), "rss_before": before, "rss_after": after,
            "bytes_per_nonce_rss": (after - before) / count, "admit_us": elapsed / count * 1e6}


async def traced(count: int) -> float:
    store = MemoryStore(clock=Clock())
    tracemalloc.start()
    start = tracemalloc.take_snapshot()
    await fill(store, count)
    end = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    return grown / count


async def expiry(count: int) -> dict[str, int]:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await fill(store, count)
    full = len(store)
    clock.now += (TTL_MS + 1) * 1000
    await fill(store, count // 8)  # 8 expired entries swept per write: every old one is gone
    return {"before": full, "after_ttl_and_writes": len(store), "writes": count // 8}


async def steady(rate: int, ttl_s: int, duration_s: int) -> dict[str, int]:
    """``rate`` new nonces per simulated second, each kept ``ttl_s``: the most entries ever held."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    most = 0
    for _ in range(duration_s * 10):  # tenths of a second
        await fill(store, rate // 10, ttl_s * 1000)
        clock.now += 100_000
        most = max(most, len(store))
    return {"rate": rate, "ttl_s": ttl_s, "duration_s": duration_s, "max_entries": most,
            "rate_x_ttl": rate * ttl_s}


def measure(nonces: int) -> dict[str, Any]:
    results: dict[str, Any] = {"held": asyncio.run(held(nonces))}
    results["bytes_per_nonce_traced"] = asyncio.run(traced(max(nonces // 10, 1000)))
    results["expiry"] = asyncio.run(expiry(max(nonces // 10, 1000)))
    results["steady"] = asyncio.run(steady(rate=2_000, ttl_s=60, duration_s=300))
    return results


def report(results: dict[str, Any]) -> str:
    held, exp, st = results["held"], results["expiry"], results["steady"]
    per = held["bytes_per_nonce_rss"]
    lines = [
        f"{held['nonces']:,} nonces held: process RSS {held['rss_after'] / 2**20:,.0f} MiB "
        f"(from {held['rss_before'] / 2**20:,.0f} MiB): {per:,.0f} bytes per nonce by RSS, "
        f"{results['bytes_per_nonce_traced']:,.0f} by tracemalloc; {held['admit_us']:.1f} µs per admit",
        f"expiry: {exp['before']:,} entries; past their TTL, {exp['writes']:,} new writes leave "
        f"{exp['after_ttl_and_writes']:,} (the new ones): expired entries are swept as writes come",
        f"steady load: {st['rate']:,}/s for {st['duration_s']} s with a {st['ttl_s']} s TTL held at most "
        f"{st['max_entries']:,} entries (rate x TTL = {st['rate_x_ttl']:,})",
        f"so at the default skew (3600 s) a gateway admitting 1,000 req/s holds ~3.6 M nonces, "
        f"~{3.6e6 * per / 2**30:.1f} GiB; 10,000 req/s, ~{36e6 * per / 2**30:.0f} GiB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nonces", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = measure(args.nonces)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
