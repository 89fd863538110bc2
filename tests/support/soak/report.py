"""The soak's verdict: the answers by kind, growth from the end of the warm-up to the last sample, and
the checks that pass or fail the run."""

from __future__ import annotations

import statistics

from tests.support.soak.mix import RSS_LIMIT, Plan, Tally
from tests.support.soak.watch import Sample


def report(tally: Tally, samples: list[Sample], first_pids: list[int], last_pids: list[int], args: Plan,
           log: str) -> bool:
    warm = min(60.0, args.minutes * 6)  # the first minute, or a tenth of the run
    start = samples[0].at - args.sample
    baseline = next((s for s in samples if s.at - start >= warm), samples[0])
    final = samples[-1]
    print(f"\n{tally.requests:,} requests in {args.minutes:g} min over {args.connections} keep-alive connections "
          f"(target {args.rate}/s, mean {tally.requests / (args.minutes * 60):,.0f}/s)")
    print("| kind | status | code | count |\n|---|---|---|---|")
    for (kind, status, code), count in sorted(tally.by_kind.items()):
        print(f"| {kind} | {status} | {code or ''} | {count:,} |")
    growth = {pid: (final.rss.get(pid, 0) - baseline.rss.get(pid, 0)) / max(baseline.rss.get(pid, 1), 1)
              for pid in baseline.rss}
    fd_growth = {pid: final.fds[pid].own - baseline.fds[pid].own for pid in baseline.fds if pid in final.fds}
    restarted = first_pids != last_pids
    tracebacks = log.count("Traceback")
    print(f"\nafter warm-up ({baseline.at - start:.0f} s) -> end ({final.at - start:.0f} s):")
    for pid in baseline.rss:
        peak = max(s.rss.get(pid, 0) for s in samples)
        print(f"  worker {pid}: RSS {baseline.rss[pid]:,} -> {final.rss.get(pid, 0):,} KiB ({growth[pid]:+.1%}), "
              f"max {peak:,} KiB; own fds {baseline.fds[pid].own} -> {final.fds[pid].own}, Redis connections "
              f"{baseline.fds[pid].redis} -> {final.fds[pid].redis} (pool bound 64), callers' connections "
              f"{baseline.fds[pid].clients} -> {final.fds[pid].clients}; CPU {final.cpu.get(pid, 0):.0f} s")
    print(f"  parent: RSS {baseline.parent_rss:,} -> {final.parent_rss:,} KiB")
    print(f"  redis: {baseline.redis_memory / 1e6:.1f} -> {final.redis_memory / 1e6:.1f} MB, "
          f"{baseline.redis_keys:,} -> {final.redis_keys:,} keys (nonces live until their Timestamp leaves the skew)")
    print(f"  latency p50/p99 over the samples: {statistics.median(s.p50 for s in samples):.1f} / "
          f"{max(s.p99 for s in samples):.1f} ms (worst window)")
    print(f"  unexpected answers: {dict(tally.unexpected)}; unexpected 5xx: {tally.unexpected_5xx}; "
          f"token retries answered differently: {tally.token_mismatch}; connection errors: {tally.connection_errors}")
    print(f"  workers {first_pids} -> {last_pids}{' (RESTARTED)' if restarted else ''}; tracebacks in the log: "
          f"{tracebacks}")
    checks = {
        "no unexpected 5xx": tally.unexpected_5xx == 0,
        "no unexpected answer": not tally.unexpected and tally.token_mismatch == 0,
        "no connection error": tally.connection_errors == 0,
        "no worker restarted": not restarted,
        f"RSS growth under {RSS_LIMIT:.0%}": all(g < RSS_LIMIT for g in growth.values()),
        "no fd growth (the Redis pool within its bound)": all(g <= 0 for g in fd_growth.values())
        and all(d.redis <= 64 for d in final.fds.values()),
        "no traceback": tracebacks == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return all(checks.values())
