"""One connection, two CPU placements: where the Redis store's extra latency comes from.

    python -m bench.placement [--seconds 5] [--rounds 3]

At one connection a request on the Redis store waits for two more wake-ups than on the memory store:
redis-server woken by the admit, the worker woken by its reply. Between two CPUs of a virtual machine a
wake-up costs tens of microseconds (an inter-processor interrupt through the hypervisor); on one CPU, a
context switch. The same four servers as bench/throughput.py (bare, bare + one raw EVALSHA of admit.lua,
the V1 chain on the memory store and on Redis; one uvicorn worker each, wrk -t1 -c1) are measured

* as the kernel places them (what bench/throughput.py measures), and
* with every server and redis-server on CPU 0 and wrk on CPU 1 (``sched_setaffinity``): the worker
  and redis-server hand each other the CPU instead of waking another one.

Rounds alternate the cases and the placements; each figure is the median of the rounds. Where
``perf`` is installed, ``perf bench sched pipe`` gives the cost of a wake-up round trip between two
processes on two CPUs and on one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
from contextlib import ExitStack

from bench.load import Load, server_pid, uvicorn_server, write_paths, wrk
from bench.report import BARE, FLOOR
from bench.signed import v1_path
from bench.throughput import CASES, PER_SECOND, _redis_pid
from tests.support.redis import running_redis

MEMORY, REDIS = "V1 chain (memory store)", "V1 chain (Redis)"
NAMES = (BARE, FLOOR, MEMORY, REDIS)
PLACEMENTS = ("as the kernel places them", "servers and redis-server on CPU 0, wrk on CPU 1")


def pipe_round_trip_us() -> dict[str, float]:
    """``perf bench sched pipe``: µs per round trip of two processes waking each other through pipes."""
    if shutil.which("perf") is None:
        return {}
    out: dict[str, float] = {}
    for where, prefix in (("two CPUs", []), ("one CPU", ["taskset", "-c", "0"])):
        text = subprocess.run([*prefix, "perf", "bench", "sched", "pipe", "-l", "20000"], capture_output=True,
                              text=True, check=False).stdout
        match = re.search(r"([\d.]+)\s+usecs/op", text)
        if match:
            out[where] = float(match[1])
    return out


def measure(seconds: int, rounds: int) -> dict[str, dict[str, Load]]:
    """p50 and p99 at one connection of each case, per placement (medians of the rounds)."""
    cases = [case for case in CASES if case.name in NAMES]
    everywhere = os.sched_getaffinity(0)
    runs: dict[str, dict[str, list[Load]]] = {p: {c.name: [] for c in cases} for p in PLACEMENTS}
    with running_redis() as redis, ExitStack() as servers:
        urls = {case.name: servers.enter_context(uvicorn_server(case.target, case.env(redis.url, ""),
                                                                ready_path=case.ready)) for case in cases}
        pids = [server_pid(url) for url in urls.values()] + [_redis_pid(redis.port)]
        try:
            for round_no in range(rounds):
                for placement in PLACEMENTS if round_no % 2 == 0 else PLACEMENTS[::-1]:
                    # Fresh requests for each placement: a replayed nonce is refused, and cheaper.
                    lines = write_paths(v1_path, PER_SECOND * seconds)
                    pinned = placement == PLACEMENTS[1]
                    for pid in pids:
                        os.sched_setaffinity(pid, {0} if pinned else everywhere)
                    os.sched_setaffinity(0, {1} if pinned else everywhere)  # wrk inherits it
                    wrk(urls[BARE] + "/", seconds=1, connections=1, paths=lines)  # settle where they now run
                    for case in cases if round_no % 2 == 0 else cases[::-1]:
                        load = wrk(urls[case.name] + "/", seconds=seconds, connections=1, paths=lines)
                        runs[placement][case.name].append(load)
                        print(f"  round {round_no + 1} {placement[:26]:<26} {case.name:<40} p50 "
                              f"{load.p50_ms * 1000:5.0f} µs  non-2xx {load.non_2xx}", flush=True)
                    lines.unlink()
        finally:
            os.sched_setaffinity(0, everywhere)
    return {p: {name: _median(loads) for name, loads in by_case.items()} for p, by_case in runs.items()}


def _median(loads: list[Load]) -> Load:
    return Load(rps=statistics.median(x.rps for x in loads), p50_ms=statistics.median(x.p50_ms for x in loads),
                p99_ms=statistics.median(x.p99_ms for x in loads), non_2xx=sum(x.non_2xx for x in loads),
                requests=sum(x.requests for x in loads))


def markdown(results: dict[str, dict[str, Load]], pipes: dict[str, float]) -> list[str]:
    lines = ["| case | " + " | ".join(f"p50 µs, {p}" for p in PLACEMENTS) + " |",
             "|---|" + "--:|" * len(PLACEMENTS)]
    for name in NAMES:
        lines.append(f"| {name} | " + " | ".join(f"{results[p][name].p50_ms * 1000:.0f}" for p in PLACEMENTS) + " |")
    refused = {f"{name} ({p})": results[p][name].non_2xx for p in PLACEMENTS for name in NAMES
               if results[p][name].non_2xx}
    if refused:  # the figures are then not all of admitted requests
        lines += ["", f"Non-2xx answers: {refused}"]
    lines.append("")
    for placement in PLACEMENTS:
        loads = results[placement]
        bare, floor = loads[BARE].p50_ms * 1000, loads[FLOOR].p50_ms * 1000
        extra = (loads[REDIS].p50_ms - loads[MEMORY].p50_ms) * 1000
        lines.append(f"- {placement}: Redis p50 − memory p50 = {extra:+.0f} µs against bare's p50 of {bare:.0f} µs "
                     f"({'within' if extra <= bare else 'above'} it); one raw round trip adds {floor - bare:+.0f} µs "
                     "to bare.")
    if pipes:
        lines.append("- `perf bench sched pipe` (a wake-up round trip between two processes): "
                     + ", ".join(f"{us:.1f} µs on {where}" for where, us in pipes.items()) + ".")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench.placement needs two CPUs")
    print("\n".join(markdown(measure(args.seconds, args.rounds), pipe_round_trip_us())))


if __name__ == "__main__":
    main()
