"""Prometheus metrics, served at ``{GATEWAY_OPS_PREFIX}/metrics`` (CONTRACT §5).

prometheus-client is the optional extra ``metrics``: it is imported on first use, and without it
every function here is a no-op and `exposition` returns None (the endpoint answers 404 saying so).

What is counted::

    gateway_requests_total{code, action}          every finished request, by its answer's Code
    gateway_request_duration_seconds{action}      from the first byte of the request to the answer
    gateway_store_errors_total                    requests whose store call failed
    gateway_fail_open_total{layer}                checks admitted because the store was down
    gateway_policy_reloads_total{result}          policy reloads: ok, error (old policy kept), unchanged

``action`` is the declared API's name, or ``-`` while none is known: a caller cannot mint new time
series by inventing Action names. ``observe`` is a `GatewayMiddleware` observer; fail-open code calls
`count_fail_open`.

With several uvicorn workers each process counts for itself. Set ``PROMETHEUS_MULTIPROC_DIR`` (an
empty directory, the same for every worker, emptied before each start) in the environment of
``gateway serve`` and the endpoint reports the sum over all workers instead (prometheus-client's
multiprocess mode); process_* metrics are then left out, as that mode cannot aggregate them.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.call import Exchange

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable, read at its import
NO_ACTION = "-"
RELOAD_RESULTS = ("ok", "error", "unchanged")
#: Seconds; an API gateway answers most refusals in well under a millisecond.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class _Instruments:
    registry: CollectorRegistry
    multiproc_dir: str | None
    requests: Counter
    latency: Histogram
    store_errors: Counter
    fail_open: Counter
    reloads: Counter
    # (code, action) -> the labelled children: labels() takes a lock and builds a key on every
    # call, the children never change. Codes and actions are few; the bound is for odd upstreams.
    series: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)


@functools.cache
def _instruments() -> _Instruments | None:
    try:
        import prometheus_client as prom
    except ImportError:
        return None
    # A registry of our own: an application that also uses the default one cannot collide with us.
    registry = prom.CollectorRegistry()
    multiproc_dir = os.environ.get(MULTIPROC_ENV) or None
    if multiproc_dir is not None and not os.path.isdir(multiproc_dir):
        # Found now, at start-up, rather than as a failure of every request's observer.
        raise RuntimeError(f"{MULTIPROC_ENV}={multiproc_dir!r} is not a directory")
    if multiproc_dir is None:
        prom.ProcessCollector(registry=registry)
        prom.PlatformCollector(registry=registry)
        prom.GCCollector(registry=registry)
    return _Instruments(
        registry=registry,
        multiproc_dir=multiproc_dir,
        requests=prom.Counter("gateway_requests", "Finished requests, by answer Code and Action.",
                              ("code", "action"), registry=registry),
        latency=prom.Histogram("gateway_request_duration_seconds", "Time to answer a request.",
                               ("action",), buckets=BUCKETS, registry=registry),
        store_errors=prom.Counter("gateway_store_errors", "Requests whose store call failed.",
                                  registry=registry),
        fail_open=prom.Counter("gateway_fail_open", "Checks admitted while the store was unreachable.",
                               ("layer",), registry=registry),
        reloads=_reloads(prom.Counter("gateway_policy_reloads", "Policy reloads, by result.", ("result",),
                                      registry=registry)),
    )


def _reloads(counter: Counter) -> Counter:
    # Every result from 0: an alert on errors should not wait for the first one to see the series.
    for result in RELOAD_RESULTS:
        counter.labels(result)
    return counter


def available() -> bool:
    """Whether prometheus-client is installed (the ``metrics`` extra); sets the metrics up if so."""
    return _instruments() is not None


def observe(ctx: Exchange) -> None:
    """Count one finished request: a `GatewayMiddleware` observer."""
    instruments = _instruments()
    if instruments is None:
        return
    call = ctx.call
    action = call.api.action if call is not None and call.api is not None else NO_ACTION
    count, latency = _series(instruments, ctx.code, action)
    count.inc()
    latency.observe(time.perf_counter() - ctx.started)
    if ctx.store_error:
        instruments.store_errors.inc()


def _series(instruments: _Instruments, code: str, action: str) -> tuple[Any, Any]:
    cache = instruments.series
    series = cache.get((code, action))
    if series is None:
        if len(cache) >= 4096:
            cache.clear()
        series = cache[(code, action)] = (instruments.requests.labels(code, action),
                                          instruments.latency.labels(action))
    return series


def count_fail_open(layer: str) -> None:
    """Count one check admitted because the store was unreachable (``layer``: quota, flow)."""
    instruments = _instruments()
    if instruments is not None:
        instruments.fail_open.labels(layer).inc()


def count_reload(result: str) -> None:
    """Count one policy reload (``result``: one of `RELOAD_RESULTS`)."""
    instruments = _instruments()
    if instruments is not None:
        instruments.reloads.labels(result).inc()


def exposition() -> tuple[bytes, str] | None:
    """The metrics in Prometheus text format and their content type; None without prometheus-client."""
    instruments = _instruments()
    if instruments is None:
        return None
    import prometheus_client as prom

    registry: Any = instruments.registry
    if instruments.multiproc_dir is not None:
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=instruments.multiproc_dir)  # type: ignore[no-untyped-call]
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
