"""`gateway serve` as processes: two workers sharing Redis, the refusal without it, graceful shutdown."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import DATA
from tests.support.client import Answer, get, query, signed_params
from tests.support.scrape import scrape, value
from tests.support.serve import ROOT, gateway_serve, serve_env
from tests.support.servers import free_port, serve_in_thread, wait_until
from tests.support.upstream import REGIONS, Upstream

POLICY = str(DATA / "policy.toml")
BURST = 20


def _burst(url: str) -> Counter[str]:
    """The same request ``BURST`` times at once, each on its own new connection."""
    start = threading.Barrier(BURST)

    def one(_: int) -> str:
        with httpx.Client(timeout=10) as client:
            start.wait()
            response = client.get(url)
        return "OK" if response.status_code == 200 else str(response.json()["Code"])

    with ThreadPoolExecutor(BURST) as pool:
        return Counter(pool.map(one, range(BURST)))


def _per_worker(metrics_dir: Path) -> dict[int, float]:
    """Requests each worker counted, from its own file in prometheus-client's multiprocess directory."""
    counted = {}
    for file in metrics_dir.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(file, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
            counted[int(file.stem.split("_")[1])] = sum(
                sample.value for family in registry.collect() for sample in family.samples
                if sample.name == "gateway_requests_total")
    return counted


def test_two_workers_accept_a_nonce_once(redis_url: str, tmp_path: Path) -> None:
    env = serve_env(GATEWAY_CONFIG=POLICY, GATEWAY_REDIS_URL=redis_url, GATEWAY_ACCESS_LOG="false",
                    GATEWAY_REDIS_PREFIX=f"w{free_port()}", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    with gateway_serve(env, ["--workers", "2", "--log-level", "warning"]) as gw:
        wait_until(lambda: len(gw.children()) == 2, what="two uvicorn workers")
        workers = set(gw.children())
        answered: set[int] = set()
        total = 0
        # Until both workers have answered within one burst (the kernel spreads new connections).
        for _ in range(10):
            before = _per_worker(tmp_path)
            outcome = _burst(f"{gw.url}/?{query(signed_params('DescribeRegions'))}")
            assert outcome == Counter({"OK": 1, "SignatureNonceUsed": BURST - 1}), outcome
            total += BURST
            wait_until(lambda expected=total: sum(_per_worker(tmp_path).values()) == expected,
                       what="metrics of the burst")
            after = _per_worker(tmp_path)
            answered = {pid for pid, n in after.items() if n > before.get(pid, 0)}
            if len(answered) == 2:
                break
        assert answered == workers, f"one worker answered every burst: {answered} of {workers}"
        # Multiprocess mode: any worker's /metrics reports the sum over both.
        samples = scrape(gw.url)
        assert value(samples, "gateway_requests_total", code="OK", action="DescribeRegions") == total / BURST
        assert value(samples, "gateway_requests_total", code="SignatureNonceUsed",
                     action="DescribeRegions") == total - total / BURST
        assert gw.stop() in (0, -signal.SIGTERM)
    assert not gw.children()


def test_workers_without_redis_is_refused_in_one_line() -> None:
    argv = [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", str(free_port())]
    done = subprocess.run(argv, cwd=ROOT, env=serve_env(GATEWAY_CONFIG=POLICY), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gateway: --workers 2 needs GATEWAY_REDIS_URL"), done.stderr


def test_sigterm_lets_an_in_flight_request_finish(redis_url: str) -> None:
    upstream = Upstream(delay=1.5)
    with serve_in_thread(upstream) as upstream_url, gateway_serve(serve_env(
        GATEWAY_CONFIG=POLICY, GATEWAY_REDIS_URL=redis_url, GATEWAY_UPSTREAM_URL=upstream_url,
        GATEWAY_REDIS_PREFIX=f"g{free_port()}",
    )) as gw:
        answers: list[Answer] = []
        slow = threading.Thread(target=lambda: answers.append(
            get(gw.url + "/slow", signed_params("DescribeRegions"), client=httpx.Client(timeout=10))))
        slow.start()
        assert upstream.slow_started.wait(10), "the slow request never reached the upstream"
        gw.process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(gw.url + "/_gateway/health", timeout=0.5)
            except httpx.TransportError:
                return True
            return False

        wait_until(refused, timeout=5, what="new connections refused")
        assert slow.is_alive(), "the slow request ended before the server stopped listening"
        slow.join(10)
        # uvicorn re-raises the signal once its graceful shutdown is done: killed by SIGTERM, on purpose.
        assert gw.process.wait(15) in (0, -signal.SIGTERM)
        output = gw.output()
    assert answers and answers[0].status == 200, answers
    assert answers[0].json["Regions"] == REGIONS["Regions"]
    # The lifespan shutdown ran to its end: GatewayMiddleware closed the Redis store, ProxyApp its pool.
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
