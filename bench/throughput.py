"""Throughput and latency under wrk: the bare app, the gateway's cases, slowapi, the proxy.

    python -m bench.throughput [--seconds 5] [--rounds 3] [--cases "bare Starlette;V1 chain (Redis)"]

Every case is one uvicorn worker (uvloop, httptools), all serving at once, each warmed up, loaded by
wrk -t1 -c32: the bare Starlette app; the same app behind the V1 chain on the memory store, on Redis,
and on Redis with auto-pipelining off; the V3 chain on Redis; slowapi limiting the same app with Redis
storage (SlowAPIMiddleware and SlowAPIASGIMiddleware); `gateway serve` in proxy mode in front of the
bare app (whose own row is the upstream served directly); and, where `make compiled` built it, the V1
chain (memory, Redis) of the mypyc build. Rounds alternate the order of the cases; each figure is the
median of the rounds and every ratio is to the bare app of the same run. Every gateway request is
distinct (signed ahead, its own nonce); a non-2xx count other than 0 means a figure is not of
admitted requests. Then the same servers at one connection: latency without queueing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.apps import POLICY
from bench.load import COMPILED_PYTHON, Load, is_compiled, redis_reads, server_pid, uvicorn_server, write_paths, wrk
from bench.report import BARE, FLOOR, PROXY, latency_table, redis_over_memory, results_table
from bench.signed import v1_path, v3_line
from tests.support.procfs import cpu_seconds
from tests.support.redis import command, running_redis
from tests.support.servers import GATEWAY_HTTP

# Signed requests per second of a round: above what any gateway case answers, so none is reused.
PER_SECOND = 25_000


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


def _memory(redis: str, bare: str) -> dict[str, str]:
    return {"GATEWAY_REDIS_URL": ""}


def _slowapi(redis: str, bare: str) -> dict[str, str]:
    return {"SLOWAPI_REDIS_URL": redis}


MEMORY_COMPILED = "V1 chain (memory store), compiled build"
REDIS_COMPILED = "V1 chain (Redis), compiled build"
CASES = (
    Case(BARE, "bench.apps:bare", lambda redis, bare: {}, ready="/", redis=False),
    Case(FLOOR, "bench.apps:bare_round_trip", lambda redis, bare: {"BENCH_REDIS_URL": redis}, ready="/"),
    Case("V1 chain (memory store)", "bench.apps:gated", _memory, redis=False),
    Case("V1 chain (Redis)", "bench.apps:gated", _gateway()),
    Case("V1 chain (Redis, auto-pipelining off)", "bench.apps:gated_unpipelined", _gateway("gwu")),
    Case("V3 chain (Redis)", "bench.apps:gated", _gateway(), signed="v3"),
    Case(MEMORY_COMPILED, "bench.apps:gated", _memory, redis=False, compiled=True),
    Case(REDIS_COMPILED, "bench.apps:gated", _gateway("gwc"), compiled=True),
    Case("slowapi SlowAPIMiddleware (Redis)", "bench.apps:slowapi_middleware", _slowapi, ready="/"),
    Case("slowapi SlowAPIASGIMiddleware (Redis)", "bench.apps:slowapi_asgi", _slowapi, ready="/"),
    Case(PROXY, "gateway.app:create_app", lambda redis, bare: {
        "GATEWAY_UPSTREAM_URL": bare, "GATEWAY_CONFIG": str(POLICY), "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_REDIS_URL": ""}, ready="/_gateway/ready", redis=False, http=GATEWAY_HTTP),
)


@dataclass
class Measured:
    """A case's loads, and per request: Redis round trips, and CPU µs of each process that served it."""

    loads: list[Load]
    trips: list[float]
    cpu_us: dict[str, list[float]]  # "server", and "upstream" or "redis-server" where one took part
    alone: list[Load] = field(default_factory=list)  # one connection: latency without queueing
    alone_cpu_us: list[float] = field(default_factory=list)  # the server's CPU per request, one connection


def chosen(names: list[str] | None = None) -> tuple[Case, ...]:
    """The cases named (all by default), those of the compiled build only where it was built; the
    proxy's upstream, the bare app, always comes first."""
    compiled = COMPILED_PYTHON.exists() and is_compiled(str(COMPILED_PYTHON))
    if not compiled:
        print(f"no compiled build at {COMPILED_PYTHON} (make compiled): its cases are left out", flush=True)
    wanted = set(names or [case.name for case in CASES]) | ({BARE} if names and PROXY in names else set())
    return tuple(case for case in CASES if case.name in wanted and (compiled or not case.compiled))


def _redis_pid(port: int) -> int:
    return int(command(port, "INFO", "server").split(b"process_id:", 1)[1].split()[0])


def throughput(seconds: int, rounds: int, cases: tuple[Case, ...] = ()) -> dict[str, Measured]:
    """Each case's loads, round by round, with the CPU its processes spent and its Redis round trips."""
    cases = cases or chosen()
    runs = {case.name: Measured([], [], {}) for case in cases}
    with running_redis() as redis, ExitStack() as servers:
        urls: dict[str, str] = {}
        for case in cases:  # the bare app first: the proxy's upstream
            python = str(COMPILED_PYTHON) if case.compiled else None
            urls[case.name] = servers.enter_context(uvicorn_server(
                case.target, case.env(redis.url, urls.get(BARE, "")), ready_path=case.ready, http=case.http,
                python=python))
        pids = {name: server_pid(url) for name, url in urls.items()}
        redis_pid = _redis_pid(redis.port)

        def paths(case: Case, count: int, v1: Path) -> Path:
            return write_paths(v3_line(urls[case.name].split("://")[1]), count) if case.signed == "v3" else v1

        def each_round(connections: int, measure: Callable[[Case, Path], Load]) -> None:
            for round_no in range(rounds):
                v1 = write_paths(v1_path, PER_SECOND * seconds)
                for case in cases if round_no % 2 == 0 else cases[::-1]:
                    lines = paths(case, PER_SECOND * seconds, v1)
                    load = measure(case, lines)
                    if lines != v1:
                        lines.unlink()
                    print(f"  round {round_no + 1} -c{connections} {case.name:<40} {load.rps:9,.0f} req/s  "
                          f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  non-2xx {load.non_2xx}", flush=True)
                v1.unlink()

        def loaded(case: Case, lines: Path) -> Load:
            # The other servers are idle: what each process spends meanwhile is this case's.
            watched = {"server": pids[case.name]}
            if case.name == PROXY:
                watched["upstream"] = pids[BARE]
            if case.redis:
                watched["redis-server"] = redis_pid
            cpu = {what: cpu_seconds(pid) for what, pid in watched.items()}
            reads = redis_reads(redis.port)
            load = wrk(urls[case.name] + "/", seconds=seconds, paths=lines)
            measured = runs[case.name]
            for what, pid in watched.items():
                used = (cpu_seconds(pid) - cpu[what]) / max(load.requests, 1) * 1e6
                measured.cpu_us.setdefault(what, []).append(used)
            if case.redis:
                measured.trips.append((redis_reads(redis.port) - reads) / max(load.requests, 1))
            measured.loads.append(load)
            return load

        def alone(case: Case, lines: Path) -> Load:
            # CPU, unlike latency, does not count the waits for a CPU that other processes hold.
            cpu = cpu_seconds(pids[case.name])
            load = wrk(urls[case.name] + "/", seconds=seconds, connections=1, paths=lines)
            runs[case.name].alone.append(load)
            runs[case.name].alone_cpu_us.append((cpu_seconds(pids[case.name]) - cpu) / max(load.requests, 1) * 1e6)
            return load

        print(f"throughput: wrk -t1 -c32 -d{seconds}s, {rounds} rounds, {len(cases)} servers up; warming up",
              flush=True)
        warm = write_paths(v1_path, PER_SECOND)
        for case in cases:
            lines = paths(case, PER_SECOND, warm)
            wrk(urls[case.name] + "/", seconds=1, paths=lines)
            if lines != warm:
                lines.unlink()
        warm.unlink()
        each_round(32, loaded)
        print(f"latency: wrk -t1 -c1 -d{seconds}s, {rounds} rounds", flush=True)
        each_round(1, alone)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="", help="case names separated by ';' (default: all)")
    args = parser.parse_args()
    runs = throughput(args.seconds, args.rounds, chosen(list(filter(None, args.cases.split(";"))) or None))
    print()
    print(results_table(runs))
    print()
    print(latency_table(runs))
    print()
    print(redis_over_memory(runs))


if __name__ == "__main__":
    main()
