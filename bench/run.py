"""`make bench`: the whole suite, written to bench/results/latest.md with its charts.

    .venv/bin/python bench/run.py [--seconds 5] [--rounds 3] [--quick | --full] [--skip PARTS]

1. Throughput (wrk -t1 -c32, one uvicorn worker with uvloop and httptools per case, all serving at
   once, each warmed up): the bare Starlette app; the same app behind the V1 chain on the memory store,
   on Redis, and on Redis with auto-pipelining off; the V3 chain on Redis; slowapi limiting the same
   app with Redis storage (SlowAPIMiddleware and SlowAPIASGIMiddleware); `gateway serve` in proxy mode
   in front of the bare app (whose own row is the upstream served directly, as bench/proxy.py
   compares); and, where `make compiled` built it, the V1 chain (memory, Redis) of the mypyc build.
   Rounds alternate the order of the cases; each figure is the median of the rounds and
   every ratio is to the bare app of the same run. Every gateway request is distinct (signed ahead,
   its own nonce); a non-2xx count other than 0 means a figure is not of admitted requests.
   Then the same servers at one connection (latency without queueing), and py-spy profiles of the
   bare app and the V1 chain under load (bench/profile_load.py).
2. In-process: one V1 verification (bench/sign_micro.py's requests, 10 parameters), µs per request
   of the chain (bench/profile_chain.py's driver), and the Redis client's CPU per admit with and
   without auto-pipelining (gateway.stores.pipeline), 1 and 32 admits in flight.
3. Growth (bench/growth.py) and 4. memory (bench/memory.py, in a process of its own).

Default: 5 s x 3 rounds, about five minutes on two cores. --seconds/--rounds for longer runs, --quick
for a smoke run, --full to also try 100,000 and 1,000,000 keys from TOML.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette
from starlette.middleware import Middleware

from bench.apps import POLICY, ROUTES
from bench.chain import v1_path, v3_line
from bench.common import (
    COMPILED_PYTHON,
    GATEWAY_HTTP,
    HERE,
    PYTHON,
    Load,
    cpu_seconds,
    describe_run,
    is_compiled,
    median_load,
    redis_reads,
    redis_server,
    server_pid,
    uvicorn_server,
    write_paths,
    wrk,
)
from gateway import GatewayMiddleware, Settings
from gateway.stores import RedisStore

RESULTS = HERE / "results"
# Signed requests per second of a round: above what any gateway case answers, so none is reused.
PER_SECOND = 25_000


def gated_unpipelined() -> Starlette:
    """bench.apps:gated on Redis with auto-pipelining off: each script call its own round trip."""
    settings = Settings.from_env(config=str(POLICY), access_log=False)
    store = RedisStore.from_url(settings.redis_url or "", prefix=settings.redis_prefix,
                                timeout=settings.redis_timeout, pipelined=False)
    return Starlette(routes=ROUTES, middleware=[Middleware(GatewayMiddleware, settings=settings, store=store)])


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # a uvicorn factory
    env: Callable[[str, str], dict[str, str]]  # given the Redis URL and the bare app's URL
    signed: str = "v1"  # the requests it needs: "v1", or "v3" (signed for its own host)
    ready: str = "/_gateway/health"
    redis: bool = True  # talks to Redis: count its round trips
    http: str = "httptools"  # uvicorn's --http; GATEWAY_HTTP for what `gateway serve` runs
    compiled: bool = False  # served by .venv-compiled's interpreter: the mypyc build (make compiled)


def _gateway(prefix: str = "gw") -> Callable[[str, str], dict[str, str]]:
    return lambda redis, bare: {"GATEWAY_REDIS_URL": redis, "GATEWAY_REDIS_PREFIX": prefix}


BARE = "bare Starlette"
PROXY = "proxy: gateway serve -> bare app"
MEMORY_COMPILED = "V1 chain (memory store), compiled build"
REDIS_COMPILED = "V1 chain (Redis), compiled build"
CASES = (
    Case(BARE, "bench.apps:bare", lambda redis, bare: {}, ready="/", redis=False),
    Case("V1 chain (memory store)", "bench.apps:gated", lambda redis, bare: {"GATEWAY_REDIS_URL": ""}, redis=False),
    Case("V1 chain (Redis)", "bench.apps:gated", _gateway()),
    Case("V1 chain (Redis, auto-pipelining off)", "bench.run:gated_unpipelined", _gateway("gwu")),
    Case("V3 chain (Redis)", "bench.apps:gated", _gateway(), signed="v3"),
    Case(MEMORY_COMPILED, "bench.apps:gated", lambda redis, bare: {"GATEWAY_REDIS_URL": ""}, redis=False,
         compiled=True),
    Case(REDIS_COMPILED, "bench.apps:gated", _gateway("gwc"), compiled=True),
    Case("slowapi SlowAPIMiddleware (Redis)", "bench.slowapi_app:middleware",
         lambda redis, bare: {"SLOWAPI_REDIS_URL": redis}, ready="/"),
    Case("slowapi SlowAPIASGIMiddleware (Redis)", "bench.slowapi_app:asgi",
         lambda redis, bare: {"SLOWAPI_REDIS_URL": redis}, ready="/"),
    Case(PROXY, "gateway.app:create_app", lambda redis, bare: {
        "GATEWAY_UPSTREAM_URL": bare, "GATEWAY_CONFIG": str(POLICY), "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_REDIS_URL": ""}, ready="/_gateway/ready", redis=False, http=GATEWAY_HTTP),
)


def _paths(case: Case, urls: dict[str, str], count: int, v1: Path | None = None) -> Path:
    if case.signed == "v3":
        return write_paths(v3_line(urls[case.name].split("://")[1]), count)
    return v1 if v1 is not None else write_paths(v1_path, count)


@dataclass
class Measured:
    """A case's loads, and per request: Redis round trips, and CPU µs of each process that served it."""

    loads: list[Load]
    trips: list[float]
    cpu_us: dict[str, list[float]]  # "server", and "upstream" or "redis-server" where one took part
    alone: list[Load] = field(default_factory=list)  # one connection: latency without queueing


def _pid_of_redis(url: str) -> int:
    port = url.rsplit(":", 1)[1].split("/")[0]
    info = subprocess.run(["redis-cli", "-p", port, "INFO", "server"], capture_output=True, text=True,
                          check=True).stdout
    return int(info.split("process_id:", 1)[1].split()[0])


def throughput(seconds: int, rounds: int) -> dict[str, Measured]:
    """Each case's loads, round by round, with the CPU its processes spent and its Redis round trips."""
    compiled = COMPILED_PYTHON.exists() and is_compiled(str(COMPILED_PYTHON))
    if not compiled:
        print(f"no compiled build at {COMPILED_PYTHON} (make compiled): its cases are left out", flush=True)
    cases = tuple(case for case in CASES if compiled or not case.compiled)
    runs = {case.name: Measured([], [], {}) for case in cases}
    with redis_server() as redis_url, ExitStack() as servers:
        urls: dict[str, str] = {}
        for case in cases:  # the bare app first: the proxy's upstream
            env = case.env(redis_url, urls.get(BARE, ""))
            python = str(COMPILED_PYTHON) if case.compiled else None
            urls[case.name] = servers.enter_context(uvicorn_server(case.target, env, ready_path=case.ready,
                                                                   http=case.http, python=python))
        pids = {name: server_pid(url) for name, url in urls.items()}
        redis_pid = _pid_of_redis(redis_url)
        print(f"throughput: wrk -t1 -c32 -d{seconds}s, {rounds} rounds, {len(cases)} servers up; warming up",
              flush=True)
        warm = write_paths(v1_path, PER_SECOND)
        for case in cases:
            paths = _paths(case, urls, PER_SECOND, warm)
            wrk(urls[case.name] + "/", seconds=1, paths=paths)
            if paths != warm:
                paths.unlink()
        warm.unlink()
        for round_no in range(rounds):
            v1 = write_paths(v1_path, PER_SECOND * seconds)
            for case in cases if round_no % 2 == 0 else cases[::-1]:
                paths = _paths(case, urls, PER_SECOND * seconds, v1)
                # The other servers are idle: what each process spends meanwhile is this case's.
                watched = {"server": pids[case.name]}
                if case.name == PROXY:
                    watched["upstream"] = pids[BARE]
                if case.redis:
                    watched["redis-server"] = redis_pid
                cpu = {what: cpu_seconds(pid) for what, pid in watched.items()}
                reads = redis_reads(redis_url)
                load = wrk(urls[case.name] + "/", seconds=seconds, paths=paths)
                measured = runs[case.name]
                for what, pid in watched.items():
                    used = (cpu_seconds(pid) - cpu[what]) / max(load.requests, 1) * 1e6
                    measured.cpu_us.setdefault(what, []).append(used)
                if case.redis:
                    measured.trips.append((redis_reads(redis_url) - reads) / max(load.requests, 1))
                if paths != v1:
                    paths.unlink()
                measured.loads.append(load)
                print(f"  round {round_no + 1} {case.name:<40} {load.rps:9,.0f} req/s  p50 {load.p50_ms:6.2f} ms"
                      f"  p99 {load.p99_ms:6.2f} ms  non-2xx {load.non_2xx}", flush=True)
            v1.unlink()
        print(f"latency: wrk -t1 -c1 -d{seconds}s, {rounds} rounds", flush=True)
        for round_no in range(rounds):
            v1 = write_paths(v1_path, PER_SECOND * seconds)
            for case in cases if round_no % 2 == 0 else cases[::-1]:
                paths = _paths(case, urls, PER_SECOND * seconds, v1)
                load = wrk(urls[case.name] + "/", seconds=seconds, connections=1, paths=paths)
                runs[case.name].alone.append(load)
                if paths != v1:
                    paths.unlink()
                print(f"  round {round_no + 1} {case.name:<40} p50 {load.p50_ms:6.3f} ms  p99 {load.p99_ms:6.3f} ms"
                      f"  non-2xx {load.non_2xx}", flush=True)
            v1.unlink()
    return runs


# -- in-process figures -----------------------------------------------------------------------------


def verification_us(repeat: int = 7) -> float:
    from bench.sign_micro import make_request, verify_gateway

    pool = [make_request(10, serial) for serial in range(4000)]
    runs = timeit.repeat(lambda: verify_gateway(pool), number=1, repeat=repeat)
    return statistics.median(runs) / len(pool) * 1e6


def chain_us(requests: int) -> dict[str, float]:
    from bench.apps import bare, gated
    from bench.profile_chain import drive, scopes

    async def measure() -> dict[str, float]:
        plain, chained = bare(), gated()
        await drive(chained, scopes(200))
        await drive(plain, scopes(200))
        bare_runs, gated_runs = [], []
        for _ in range(3):
            bare_runs.append(await drive(plain, scopes(requests)))
            gated_runs.append(await drive(chained, scopes(requests)))
        return {"bare_us": statistics.median(bare_runs), "gated_us": statistics.median(gated_runs)}

    saved = os.environ.pop("GATEWAY_REDIS_URL", None)  # the memory store
    try:
        return asyncio.run(measure())
    finally:
        if saved is not None:
            os.environ["GATEWAY_REDIS_URL"] = saved


def admit_cpu(admits: int, rounds: int) -> dict[str, float]:
    """Client CPU (process time) per admit on Redis, pipelined or not, with 1 and 32 in flight."""
    import uvloop

    from gateway.rates import Rate
    from gateway.stores import Take, Ticket

    takes = (Take("quota", "key", Rate(10**9, 86_400_000)), Take("flow", "api", Rate(10**9, 1_000)))

    async def one(url: str, pipelined: bool, in_flight: int) -> float:
        store = RedisStore.from_url(url, timeout=2.0, pipelined=pipelined)
        await store.admit(Ticket("4242", f"AK:{uuid.uuid4().hex}", 60_000, takes, timestamp_ms=int(time.time() * 1000)))
        nonces = iter([f"AK:{uuid.uuid4().hex}" for _ in range(admits)])

        async def worker() -> None:
            for nonce in nonces:
                await store.admit(Ticket("4242", nonce, 60_000, takes, timestamp_ms=int(time.time() * 1000)))

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        used = time.process_time() - started
        await store.aclose()
        return used / admits * 1e6

    out: dict[str, list[float]] = {}
    with redis_server() as url:
        for _ in range(rounds):
            for in_flight in (1, 32):
                for pipelined in (False, True):
                    out.setdefault(f"{'pipelined' if pipelined else 'unpipelined'} x{in_flight}", []).append(
                        uvloop.run(one(url, pipelined, in_flight)))
    return {name: statistics.median(values) for name, values in out.items()}


def memory_figures(nonces: int) -> dict[str, Any]:
    out = RESULTS / ".memory.json"
    subprocess.run([PYTHON, str(HERE / "memory.py"), "--nonces", str(nonces), "--json", str(out)], check=True)
    results: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return results


# -- the report ---------------------------------------------------------------------------------------


def results_table(rows: list[tuple[str, Load]], bare: Load, runs: dict[str, Measured]) -> str:
    lines = ["| case | requests/s | p50 ms | p99 ms | req/s × bare | p50 × bare | Redis round trips/request "
             "| CPU µs/request | non-2xx |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, load in rows:
        measured = runs[name]
        trip = f"{statistics.median(measured.trips):.3f}" if measured.trips else "–"
        cpu = " + ".join(f"{statistics.median(values):.0f}" + ("" if what == "server" else f" ({what})")
                         for what, values in measured.cpu_us.items())
        lines.append(f"| {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                     f"{load.rps / bare.rps:.2f} | {load.p50_ms / bare.p50_ms:.2f} | {trip} | {cpu} | "
                     f"{load.non_2xx} |")
    return "\n".join(lines)


def latency_table(alone: dict[str, Load]) -> str:
    bare = alone[BARE]
    lines = ["| case | p50 ms | p99 ms | p50 × bare | p50 − bare p50 | non-2xx |", "|---|--:|--:|--:|--:|--:|"]
    for name, load in alone.items():
        lines.append(f"| {name} | {load.p50_ms:.3f} | {load.p99_ms:.3f} | {load.p50_ms / bare.p50_ms:.2f} | "
                     f"{(load.p50_ms - bare.p50_ms) * 1000:+.0f} µs | {load.non_2xx} |")
    return "\n".join(lines)


def targets(medians: dict[str, Load], verify: float | None,
            alone: dict[str, Load] | None = None) -> list[tuple[str, str, str, bool]]:
    bare = medians[BARE]
    rows: list[tuple[str, str, str, bool]] = []

    def ratio(name: str, what: str, floor: float, aim: float | None) -> None:
        value = medians[name].rps / bare.rps
        wanted = f"≥ {floor:.2f}×" + (f" (aim {aim:.2f}×)" if aim else "")
        rows.append((what, wanted, f"{value:.2f}×", value >= floor))

    ratio("V1 chain (Redis)", "V1 chain on Redis, req/s vs bare", 0.35, 0.50)
    if REDIS_COMPILED in medians:
        ratio(REDIS_COMPILED, "the same, compiled build (make compiled)", 0.35, 0.50)
    ratio("V1 chain (memory store)", "V1 chain on the memory store, req/s vs bare", 0.50, 0.60)
    if MEMORY_COMPILED in medians:
        ratio(MEMORY_COMPILED, "the same, compiled build (make compiled)", 0.50, 0.60)
    ratio(PROXY, "proxy vs the upstream served directly, req/s", 0.45, None)
    for name in ("V1 chain (memory store)", "V1 chain (Redis)"):
        value = medians[name].p50_ms / bare.p50_ms
        rows.append((f"p50 of the {name} vs bare p50 (32 connections)", "≤ 2.00×", f"{value:.2f}×", value <= 2.0))
        if alone:
            value = alone[name].p50_ms / alone[BARE].p50_ms
            rows.append((f"p50 of the {name} vs bare p50 (one connection)", "≤ 2.00×", f"{value:.2f}×",
                         value <= 2.0))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s x 1 round, small growth and memory")
    parser.add_argument("--full", action="store_true", help="growth: also 100,000 and 1,000,000 keys from TOML")
    parser.add_argument("--skip", default="", help="comma-separated: throughput,profile,inprocess,growth,memory")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2, 1
    skip = set(filter(None, args.skip.split(",")))
    from bench import chart, growth, layers  # matplotlib is only needed here, not by the uvicorn factories

    began = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    run = describe_run()
    md = [f"# Benchmarks: {run['date']}", "",
          f"Commit {run['commit']}, {run['cpus']} CPUs (shared; load average {run['load']} at the start), "
          f"Python {run['python']}. Written by `make bench` (`bench/run.py`); the method is in each script's "
          "docstring. Ratios are to the bare app measured in the same run: on a shared machine the absolute "
          "figures move from run to run, the ratios much less.", ""]
    medians: dict[str, Load] = {}
    alone: dict[str, Load] = {}
    verify = None
    if "throughput" not in skip:
        runs = throughput(args.seconds, args.rounds)
        medians = {name: median_load(measured.loads) for name, measured in runs.items()}
        rows = list(medians.items())
        chart.throughput_chart(rows, medians[BARE], RESULTS / "throughput.png",
                               f"wrk -t1 -c32, {args.seconds} s x {args.rounds} rounds (medians), one uvicorn "
                               "worker each, uvloop + httptools")
        md += ["## Throughput", "",
               f"wrk -t1 -c32 -d{args.seconds}s against one uvicorn worker (uvloop, httptools) per case, "
               f"{args.rounds} alternating rounds, medians. The bare app's row is also the proxy's upstream "
               "served directly. Redis round trips: read events redis-server processed during the case's run "
               "(INFO stats total_reads_processed) per request; pipelined calls share one. CPU µs/request: user "
               "plus system time (/proc) of the server process during the run, per request answered, and of "
               "redis-server or the upstream where they served it too: with one worker saturated, requests/s is "
               "about 10⁶ / (the server's CPU µs/request).", "",
               results_table(rows, medians[BARE], runs), "", "![throughput](throughput.png)", ""]
        alone = {name: median_load(measured.alone) for name, measured in runs.items()}
        md += ["### Latency without queueing", "",
               f"The same servers, one connection (wrk -t1 -c1 -d{args.seconds}s, {args.rounds} alternating "
               "rounds, medians): each request waits for none other, so its latency is the path's own.", "",
               latency_table(alone), ""]
        pipelined, unpipelined = medians["V1 chain (Redis)"], medians["V1 chain (Redis, auto-pipelining off)"]
        md += [f"Auto-pipelining: V1 on Redis {pipelined.rps / medians[BARE].rps:.2f}× bare with it, "
               f"{unpipelined.rps / medians[BARE].rps:.2f}× without ({pipelined.rps / unpipelined.rps:.2f}× "
               "the requests/s).", ""]
    if "profile" not in skip:
        from bench import profile_load

        print("profiles under load (py-spy)", flush=True)
        md += ["## Where the time goes", "",
               "bench/profile_load.py: py-spy samples of the one uvicorn worker under wrk -c32, each charged to "
               "its innermost Python frame's package (C called from Python counts for the caller: uvicorn's "
               "`transport.write` lines are the socket writes). Shares of the worker's CPU; times its CPU "
               "µs/request above, they give µs per request.", "",
               profile_load.measure([BARE, "V1 chain (memory store)", "V1 chain (Redis)"], 3 if args.quick else 6,
                                    12), ""]
    if "inprocess" not in skip:
        print("in-process figures", flush=True)
        verify = verification_us()
        chain = chain_us(2_000 if args.quick else 20_000)
        cpu = admit_cpu(5_000 if args.quick else 20_000, 1 if args.quick else 3)
        steps = asyncio.run(layers.measure(2_000 if args.quick else 20_000))
        md += ["## In-process", "",
               f"- one V1 verification, 10 parameters (gateway.signing.verify_v1): {verify:.1f} µs",
               f"- a V1 request driven straight into the app (bench/profile_chain.py): bare {chain['bare_us']:.1f} µs,"
               f" behind the chain on the memory store {chain['gated_us']:.1f} µs "
               f"(+{chain['gated_us'] - chain['bare_us']:.1f} µs)",
               "- Redis client CPU per admit (process time; a quota and a flow take, like the bench policy):",
               "", "| admits in flight | auto-pipelining off | on |", "|--:|--:|--:|"]
        for in_flight in (1, 32):
            md.append(f"| {in_flight} | {cpu[f'unpipelined x{in_flight}']:.1f} µs | "
                      f"{cpu[f'pipelined x{in_flight}']:.1f} µs |")
        md += ["", "Each step of the chain on its own (bench/layers.py: every step over all the requests before "
               "the next, so warm; the whole request above costs more, each step running cold between the "
               "others):", "", "| step | µs |", "|---|--:|",
               *(f"| {name} | {us:.2f} |" for name, us in steps), f"| sum | {sum(us for _, us in steps):.2f} |", ""]
    if medians:
        md += ["## Targets", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
        md += [f"| {what} | {wanted} | {got} | {'yes' if ok else '**no**'} |"
               for what, wanted, got, ok in targets(medians, verify, alone)]
        md += ["", "wrk keeps 32 requests in flight, so a saturated server's p50 is about 32 / (req/s) "
               "(Little's law): the p50 ratio is close to the inverse of the req/s ratio, and meets 2× only "
               "where the req/s ratio nears 0.5×.", ""]
    if "growth" not in skip:
        results = growth.measure(quick=args.quick, full=args.full)
        chart.growth_chart(results, RESULTS / "growth.png")
        md += ["## How the cost grows", "",
               "In-process (bench/growth.py: ASGI calls straight into the chain on the memory store, no server, "
               "no network), median µs per request; rejected = a wrong Signature, refused after the whole "
               "request was parsed and its string-to-sign computed.", "", growth_markdown(results), "",
               "![growth](growth.png)", ""]
    if "memory" not in skip:
        from bench.memory import report

        print("memory", flush=True)
        md += ["## Memory store", "", "bench/memory.py, in a process of its own:", "",
               *(f"- {line}" for line in report(memory_figures(100_000 if args.quick else 1_000_000)).splitlines()),
               ""]
    md.append(f"_{time.monotonic() - began:.0f} s in all._")
    args.out.write_text("\n".join(md) + "\n")
    print(f"\nwrote {args.out} ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
