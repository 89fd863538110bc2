"""The soak (``make soak``): minutes of mixed load against ``gateway serve --workers 2`` on Redis. Marked
slow, and skipped unless SOAK_MINUTES gives its length (``make soak`` does): ``make test`` runs the tests
marked slow (concurrency, faults), not this one.

    SOAK_MINUTES=10 SOAK_RATE=400 SOAK_CONNECTIONS=16 SOAK_RECYCLE=200 SOAK_SAMPLE=15 [SOAK_SEED=N] \\
        .venv/bin/pytest -s tests/test_soak.py

Starts a private redis-server and ``gateway serve --workers 2`` in front of the bundled demo service,
with a policy of its own (written to a temporary file): a key without limits, a throttled key
(quota 20/second), and the demo's three APIs, CreateOrder idempotent. Then, over keep-alive
connections renewed every SOAK_RECYCLE requests (so that both workers get some), at a steady rate,
a mix of:

    valid       fresh signed calls, V1 and V3 (DescribeRegions, DescribeInstances)    -> 200
    replay      a call admitted before, sent again verbatim                           -> SignatureNonceUsed
    bad-sig     signed with the wrong secret                                          -> IncompleteSignature
    throttled   the throttled key, faster than its quota                              -> 200 or Throttling
    token-new   CreateOrder with a fresh ClientToken                                  -> 200
    token-retry CreateOrder again with a token answered before (new nonce)            -> the first answer,
                                                                                         or LastTokenProcessing

Every SOAK_SAMPLE seconds it reads each worker's RSS, CPU time and open descriptors (/proc: its own,
its Redis connections, its callers' connections), Redis's memory and key count, and the window's rate
and latencies; the sample line prints descriptors as (own, redis, callers) per worker. The first
minute (or tenth of the run, whichever is shorter) is warm-up; growth is measured from its end to the
last sample. Pass: no unexpected 5xx, no unexpected answer, no worker restarted, each worker's RSS
grown by less than 10 %, no growth of a worker's own descriptors (callers' connections move between
workers, the Redis pool follows the peak concurrency up to its bound).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.support.redis import running_redis
from tests.support.serve import gateway_serve, serve_env
from tests.support.servers import wait_until
from tests.support.soak.mix import POLICY, Plan
from tests.support.soak.report import report
from tests.support.soak.watch import load, worker_pids

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("SOAK_MINUTES"),
                                                   reason="the soak: make soak (SOAK_MINUTES)")]

PLAN = Plan(minutes=float(os.environ.get("SOAK_MINUTES") or "10"), rate=float(os.environ.get("SOAK_RATE", "400")),
            connections=int(os.environ.get("SOAK_CONNECTIONS", "16")),
            recycle=int(os.environ.get("SOAK_RECYCLE", "200")), sample=float(os.environ.get("SOAK_SAMPLE", "15")),
            seed=int(os.environ["SOAK_SEED"]) if os.environ.get("SOAK_SEED") else None)


def test_mixed_load_leaves_no_growth_and_no_unexpected_answer(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with running_redis() as redis:
        env = serve_env(GATEWAY_CONFIG=str(policy), GATEWAY_REDIS_URL=redis.url, GATEWAY_ACCESS_LOG="false",
                        GATEWAY_REDIS_PREFIX="soak")
        with gateway_serve(env, ["--workers", "2", "--log-level", "warning"]) as served:
            wait_until(lambda: len(worker_pids(served)) >= 2, timeout=20, what="two workers")
            print(f"soak: {PLAN.minutes:g} min at {PLAN.rate:g} req/s against {served.url} "
                  f"(workers {worker_pids(served)}, redis :{redis.port})", flush=True)
            tally, samples, first_pids = asyncio.run(load(served, PLAN, redis))
            last_pids = worker_pids(served)
            log = served.output()
    assert report(tally, samples, first_pids, last_pids, PLAN, log), "the soak failed a check: see its report"
