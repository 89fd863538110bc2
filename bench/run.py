"""`make bench`: every driver, written to bench/results/latest.md with its charts.

    python -m bench.run [--seconds 5] [--rounds 3] [--quick | --full] [--skip PARTS] [--out PATH]

1. Throughput and latency (bench/throughput.py: wrk against one uvicorn worker per case, ratios to the
   bare app of the same run), one connection under two CPU placements (bench/placement.py), then py-spy
   profiles of the bare app and the V1 chain under load (bench/profile_load.py).
2. In-process (bench/inprocess.py): one V1 verification, µs per request of the chain, each step of the
   chain, the Redis client's CPU per admit with and without auto-pipelining.
3. Growth (bench/growth.py) and 4. memory (bench/memory.py, in a process of its own).

Default: 5 s x 3 rounds, about ten minutes on two cores. --seconds/--rounds for longer runs, --quick
for a smoke run, --full to also try 100,000 and 1,000,000 keys from TOML.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import inprocess
from bench.load import HERE, describe_run
from bench.report import BARE, growth_markdown, latency_table, medians, redis_over_memory, results_table, targets
from tests.support.servers import ROOT

RESULTS = HERE / "results"
PARTS = ("throughput", "placement", "profile", "inprocess", "growth", "memory")


def memory_figures(nonces: int) -> dict[str, Any]:
    out = RESULTS / ".memory.json"
    subprocess.run([sys.executable, "-m", "bench.memory", "--nonces", str(nonces), "--json", str(out)], cwd=ROOT,
                   check=True)
    results: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return results


def throughput_section(seconds: int, rounds: int) -> tuple[list[str], Any]:
    from bench import chart
    from bench.throughput import throughput

    runs = throughput(seconds, rounds)
    loads = medians(runs)
    chart.throughput_chart(list(loads.items()), loads[BARE], RESULTS / "throughput.png",
                           f"wrk -t1 -c32, {seconds} s x {rounds} rounds (medians), one uvicorn worker each, "
                           "uvloop + httptools")
    pipelined, unpipelined = loads["V1 chain (Redis)"], loads["V1 chain (Redis, auto-pipelining off)"]
    md = ["## Throughput", "",
          f"wrk -t1 -c32 -d{seconds}s against one uvicorn worker (uvloop, httptools) per case, {rounds} "
          "alternating rounds, medians (bench/throughput.py). The bare app's row is also the proxy's upstream "
          "served directly. Redis round trips: read events redis-server processed during the case's run "
          "(INFO stats total_reads_processed) per request; pipelined calls share one. CPU µs/request: user "
          "plus system time (/proc) of the server process during the run, per request answered, and of "
          "redis-server or the upstream where they served it too: with one worker saturated, requests/s is "
          "about 10⁶ / (the server's CPU µs/request).", "",
          results_table(runs), "", "![throughput](throughput.png)", "",
          "### Latency without queueing", "",
          f"The same servers, one connection (wrk -t1 -c1 -d{seconds}s, {rounds} alternating rounds, medians): "
          "each request waits for none other, so its latency is the path's own.", "",
          latency_table(runs), "", redis_over_memory(runs), "",
          f"Auto-pipelining: V1 on Redis {pipelined.rps / loads[BARE].rps:.2f}× bare with it, "
          f"{unpipelined.rps / loads[BARE].rps:.2f}× without ({pipelined.rps / unpipelined.rps:.2f}× "
          "the requests/s).", ""]
    return md, runs


def inprocess_section(quick: bool) -> tuple[list[str], float]:
    verify = inprocess.verification_us()
    chain = inprocess.chain_us(2_000 if quick else 20_000)
    cpu = inprocess.admit_cpu(5_000 if quick else 20_000, 1 if quick else 3)
    steps = inprocess.steps_us(2_000 if quick else 20_000)
    md = ["## In-process", "", "bench/inprocess.py:", "",
          f"- one V1 verification, 10 parameters (gateway.signing.verify_v1): {verify:.1f} µs",
          f"- a V1 request driven straight into the app: bare {chain['bare_us']:.1f} µs, behind the chain on "
          f"the memory store {chain['gated_us']:.1f} µs (+{chain['gated_us'] - chain['bare_us']:.1f} µs)",
          "- Redis client CPU per admit (process time; a quota and a flow take, like the bench policy):",
          "", "| admits in flight | auto-pipelining off | on |", "|--:|--:|--:|"]
    for in_flight in (1, 32):
        off, on = cpu[f"unpipelined x{in_flight}"], cpu[f"pipelined x{in_flight}"]
        md.append(f"| {in_flight} | {off:.1f} µs | {on:.1f} µs |")
    md += ["", "Each step of the chain on its own (every step over all the requests before the next, so warm; "
           "the whole request above costs more, each step running cold between the others):", "",
           "| step | µs |", "|---|--:|", *(f"| {name} | {us:.2f} |" for name, us in steps),
           f"| sum | {sum(us for _, us in steps):.2f} |", ""]
    from bench import sts  # temporary credentials (#17): an STS-signed V1 request against a plain one

    md += ["### Temporary credentials", "", "bench/sts.py (CPU time; medians of rotating rounds):", "",
           *sts.lines(sts.measure(1_000 if quick else 2_000, 3 if quick else 15)), ""]
    return md, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s x 1 round, small growth and memory")
    parser.add_argument("--full", action="store_true", help="growth: also 100,000 and 1,000,000 keys from TOML")
    parser.add_argument("--skip", default="", help="comma-separated: " + ",".join(PARTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2, 1
    skip = set(filter(None, args.skip.split(",")))
    began = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    run = describe_run()
    md = [f"# Benchmarks: {run['date']}", "",
          f"Commit {run['commit']}, {run['cpus']} CPUs (shared; load average {run['load']} at the start), "
          f"Python {run['python']}. Written by `make bench` (`python -m bench.run`); the method is in each "
          "driver's docstring. Ratios are to the bare app measured in the same run: on a shared machine the "
          "absolute figures move from run to run, the ratios much less.", ""]
    runs, verify = None, None
    if "throughput" not in skip:
        section, runs = throughput_section(args.seconds, args.rounds)
        md += section
    if "placement" not in skip:
        from bench import placement

        print("one connection, two CPU placements", flush=True)
        md += ["### Latency and CPU placement", "",
               f"bench/placement.py: the bare app, the raw round trip, and the V1 chain on memory and on Redis at "
               f"one connection (wrk -t1 -c1 -d{args.seconds}s, {args.rounds} alternating rounds, medians), as the "
               "kernel places the processes and with the worker sharing a CPU with redis-server. The Redis "
               "store's extra latency at one connection is mostly two wake-ups across CPUs.", "",
               *placement.markdown(placement.measure(args.seconds, args.rounds), placement.pipe_round_trip_us()),
               ""]
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
        section, verify = inprocess_section(args.quick)
        md += section
    if runs:
        md += ["## Targets", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
        md += [f"| {what} | {wanted} | {got} | {'yes' if ok else '**no**'} |"
               for what, wanted, got, ok in targets(runs, verify)]
        md += ["", "wrk keeps 32 requests in flight, so a saturated server's p50 is about 32 / (req/s) "
               "(Little's law): the p50 ratio is close to the inverse of the req/s ratio, and meets 2× only "
               "where the req/s ratio nears 0.5×.", ""]
    if "growth" not in skip:
        from bench import chart, growth

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
