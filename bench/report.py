"""The markdown of bench/results/latest.md: the throughput, latency, targets and growth tables."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from bench.load import Load, median_load

if TYPE_CHECKING:
    from bench.throughput import Measured

BARE = "bare Starlette"
PROXY = "proxy: gateway serve -> bare app"
FLOOR = "bare Starlette + one raw admit EVALSHA"  # the Redis floor: one round trip, nothing else


def medians(runs: dict[str, Measured]) -> dict[str, Load]:
    return {name: median_load(measured.loads) for name, measured in runs.items() if measured.loads}


def results_table(runs: dict[str, Measured]) -> str:
    loads = medians(runs)
    bare = loads[BARE]
    lines = ["| case | requests/s | p50 ms | p99 ms | req/s × bare | p50 × bare | Redis round trips/request "
             "| CPU µs/request | non-2xx |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, load in loads.items():
        measured = runs[name]
        trip = f"{statistics.median(measured.trips):.3f}" if measured.trips else "–"
        cpu = " + ".join(f"{statistics.median(values):.0f}" + ("" if what == "server" else f" ({what})")
                         for what, values in measured.cpu_us.items())
        lines.append(f"| {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                     f"{load.rps / bare.rps:.2f} | {load.p50_ms / bare.p50_ms:.2f} | {trip} | {cpu} | "
                     f"{load.non_2xx} |")
    return "\n".join(lines)


def latency_table(runs: dict[str, Measured]) -> str:
    alone = {name: median_load(measured.alone) for name, measured in runs.items() if measured.alone}
    bare = alone[BARE]
    lines = ["| case | p50 ms | p99 ms | p50 × bare | p50 − bare p50 | server CPU µs/request | non-2xx |",
             "|---|--:|--:|--:|--:|--:|--:|"]
    for name, load in alone.items():
        cpu = runs[name].alone_cpu_us
        lines.append(f"| {name} | {load.p50_ms:.3f} | {load.p99_ms:.3f} | {load.p50_ms / bare.p50_ms:.2f} | "
                     f"{(load.p50_ms - bare.p50_ms) * 1000:+.0f} µs | "
                     f"{statistics.median(cpu) if cpu else float('nan'):.0f} | {load.non_2xx} |")
    return "\n".join(lines)


def redis_over_memory(runs: dict[str, Measured]) -> str:
    """#14's one-connection figure: what Redis adds to the memory store's p50, against bare's own p50."""
    alone = {name: median_load(measured.alone) for name, measured in runs.items() if measured.alone}
    if BARE not in alone:
        return ""
    bare_us = alone[BARE].p50_ms * 1000
    parts = [f"One connection: bare p50 {bare_us:.0f} µs"]
    if FLOOR in alone:
        parts.append(f"one raw round trip (the floor) adds {(alone[FLOOR].p50_ms * 1000 - bare_us):+.0f} µs to it")
    for memory, redis in (("V1 chain (memory store)", "V1 chain (Redis)"),
                          ("V1 chain (memory store), compiled build", "V1 chain (Redis), compiled build")):
        if memory in alone and redis in alone:
            extra = (alone[redis].p50_ms - alone[memory].p50_ms) * 1000
            cpu = [runs[name].alone_cpu_us for name in (redis, memory)]
            more_cpu = statistics.median(cpu[0]) - statistics.median(cpu[1]) if all(cpu) else float("nan")
            parts.append(f"{redis} p50 − {memory} p50 = {extra:+.0f} µs (target ≤ 70 µs, and ≤ bare's p50), "
                         f"server CPU {more_cpu:+.0f} µs/request")
    return "; ".join(parts) + "."


def targets(runs: dict[str, Measured], verify: float | None) -> list[tuple[str, str, str, bool]]:
    loads = medians(runs)
    alone = {name: median_load(measured.alone) for name, measured in runs.items() if measured.alone}
    bare = loads[BARE]
    rows: list[tuple[str, str, str, bool]] = []

    def ratio(name: str, what: str, floor: float, aim: float | None) -> None:
        if name not in loads:
            return
        value = loads[name].rps / bare.rps
        wanted = f"≥ {floor:.2f}×" + (f" (aim {aim:.2f}×)" if aim else "")
        rows.append((what, wanted, f"{value:.2f}×", value >= floor))

    ratio("V1 chain (Redis)", "V1 chain on Redis, req/s vs bare", 0.35, 0.50)
    ratio("V1 chain (Redis), compiled build", "the same, compiled build (make compiled)", 0.35, 0.50)
    ratio("V1 chain (memory store)", "V1 chain on the memory store, req/s vs bare", 0.50, 0.60)
    ratio("V1 chain (memory store), compiled build", "the same, compiled build (make compiled)", 0.50, 0.60)
    ratio(PROXY, "proxy vs the upstream served directly, req/s", 0.45, None)
    for name in ("V1 chain (memory store)", "V1 chain (Redis)"):
        if name not in loads:
            continue
        value = loads[name].p50_ms / bare.p50_ms
        rows.append((f"p50 of the {name} vs bare p50 (32 connections)", "≤ 2.00×", f"{value:.2f}×", value <= 2.0))
        if name in alone:
            value = alone[name].p50_ms / alone[BARE].p50_ms
            rows.append((f"p50 of the {name} vs bare p50 (one connection)", "≤ 2.00×", f"{value:.2f}×",
                         value <= 2.0))
    alone_memory, alone_redis = alone.get("V1 chain (memory store)"), alone.get("V1 chain (Redis)")
    if alone_memory and alone_redis and BARE in alone:
        extra = (alone_redis.p50_ms - alone_memory.p50_ms) * 1000
        ceiling = min(70.0, alone[BARE].p50_ms * 1000)
        rows.append(("p50 of the V1 chain (Redis) − memory p50 (one connection)", f"≤ {ceiling:.0f} µs "
                     "(70 µs, or bare's p50 if less)", f"{extra:+.0f} µs", extra <= ceiling))
    if verify is not None:
        rows.append(("one V1 verification (10 parameters)", "≤ 12 µs", f"{verify:.1f} µs", verify <= 12))
    return rows


def growth_markdown(results: dict[str, Any]) -> str:
    out = ["| request | size | admitted µs | rejected µs |", "|---|--:|--:|--:|"]
    for r in results["request"]:
        what = f"GET, {r['size']} parameters" if r["kind"] == "params" else "POST form body"
        out.append(f"| {what} | {r['bytes']:,} B | {r['admitted_us']:,.1f} | {r['rejected_us']:,.1f} |")
    out += ["", "| access keys (built in memory) | admitted µs | rejected µs | build s | RSS MiB |",
            "|--:|--:|--:|--:|--:|"]
    for r in results["keys"]:
        out.append(f"| {r['keys']:,} | {r['admitted_us']:.1f} | {r['rejected_us']:.1f} | {r['build_s']:.2f} | "
                   f"{r['rss_bytes'] / 2**20:,.1f} |")
    out += ["", "| access keys (TOML via load_policy) | file MiB | start-up s | of which tomllib s | RSS MiB |",
            "|--:|--:|--:|--:|--:|"]
    for r in results["load"]:
        if r.get("load_s"):
            out.append(f"| {r['keys']:,} | {r['file_bytes'] / 2**20:.1f} | {r['load_s']:.2f} | {r['toml_s']:.2f} | "
                       f"{r['rss_bytes'] / 2**20:,.1f} |")
        elif r.get("skipped"):
            out.append(f"| {r['keys']:,} | | not tried (a smaller size did not finish) | | |")
        else:
            out.append(f"| {r['keys']:,} | | did not finish within {r['timeout_s']:.0f} s | | |")
    out += ["", *(f"- {name}: {verdict}" for name, verdict in results["verdicts"].items())]
    return "\n".join(out)
