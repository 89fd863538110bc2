"""The benchmarks: drivers run from the repository root as ``python -m bench.<driver>``.

Drivers (each one's docstring tells its method):

* ``run``          `make bench`: all of them, written to bench/results/latest.md with its charts;
* ``throughput``   wrk against one uvicorn worker per case: requests/s, latency, CPU and Redis round trips
                   per request, ratios to the bare app of the same run;
* ``placement``    one connection with two CPU placements: how much of the Redis store's latency is wake-ups;
* ``profile_load`` py-spy samples of a saturated worker, by package;
* ``inprocess``    no server: one verification, a whole request, each step of the chain, Redis client CPU;
* ``growth``       cost against request size and the number of access keys, start-up against the policy;
* ``memory``       bytes per nonce in the memory store, and that it stays bounded;
* ``redis_clients`` Redis clients side by side on the admit call: CPU per call, p50/p99, 1 and 32 in flight.
* ``sts``          an STS-signed V1 request against a plain one, and a token's first verification.

Shared parts: ``apps`` (the served apps), ``signed`` (pre-signed requests), ``load`` (uvicorn processes,
wrk, medians), ``report`` (the markdown tables), ``chart`` (matplotlib). Ports, readiness polls, redis-server
and /proc readings come from tests/support (servers, redis, procfs), as the tests use them.

BENCH_USE_INSTALLED=1 serves the `gateway` installed in the interpreter (e.g. the compiled wheel of `make
compiled`) instead of the checkout's; run the driver itself with PYTHONSAFEPATH=1 too, so that ``-m`` does
not put the checkout's sources first (.venv-compiled's .pth file appends the checkout for `bench` and
`tests`). `make bench` needs neither: it serves the compiled rows with .venv-compiled's interpreter.
"""
