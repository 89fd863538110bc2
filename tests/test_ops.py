"""Operations (CONTRACT §5): health, readiness, metrics, the ops prefix, and logs without secrets."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import GatewayMiddleware, Settings, metrics
from gateway.app import create_app
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.signing import percent_encode
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import call, call_v3, get, post, query, signed_params
from tests.support.keys import SECRETS
from tests.support.redis import RedisServer
from tests.support.scrape import scrape, value
from tests.support.serve import gateway_serve, serve_env
from tests.support.servers import free_port, serve_in_thread, wait_until
from tests.support.upstream import Upstream

REQUESTS = "gateway_requests_total"


class Ops:
    def __init__(self, url: str, service: EchoService) -> None:
        self.url, self.service = url, service

    def executed(self) -> int:
        return sum(self.service.executed.values())


@contextmanager
def serving(policy: Policy, redis_url: str | None = None, **settings: Any) -> Iterator[Ops]:
    """The echo service behind a gateway that feeds the metrics, as `gateway serve` wires it."""
    service = EchoService()
    config = Settings(config=str(DATA / "policy.toml"), host_id="gateway.test", **settings)
    store = open_store(redis_url, prefix=f"ops{free_port()}", timeout=0.25)
    app = GatewayMiddleware(service, settings=config, policy=policy, store=store,
                            observers=(metrics.observe,))
    with serve_in_thread(app) as url:
        yield Ops(url, service)


@pytest.fixture(scope="module")
def ops(policy: Policy) -> Iterator[Ops]:
    with serving(policy) as gw:
        yield gw


def test_health_and_ready(ops: Ops) -> None:
    health = httpx.get(ops.url + "/_gateway/health")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert httpx.get(ops.url + "/_gateway/ready").status_code == 200
    assert httpx.get(ops.url + "/_gateway/nothing").status_code == 404


def test_readiness_follows_the_store(policy: Policy, redis_server: RedisServer) -> None:
    redis_server.start()
    with serving(policy, redis_server.url) as gw:
        assert httpx.get(gw.url + "/_gateway/ready").status_code == 200
        redis_server.stop()
        try:
            ready = httpx.get(gw.url + "/_gateway/ready")
            assert ready.status_code == 503 and ready.text.startswith("store unavailable")
            assert httpx.get(gw.url + "/_gateway/health").status_code == 200  # alive, not ready
        finally:
            redis_server.start()
        wait_until(lambda: httpx.get(gw.url + "/_gateway/ready").status_code == 200, what="readiness")


def test_ops_paths_are_never_api_calls(ops: Ops) -> None:
    before = ops.executed()
    signed = query(signed_params("DescribeRegions"))
    assert httpx.get(f"{ops.url}/_gateway/health?{signed}").text == "ok\n"
    assert httpx.post(f"{ops.url}/_gateway/ready?{signed}").status_code == 200
    assert httpx.get(f"{ops.url}/_gateway/Describe?{signed}").status_code == 404
    assert ops.executed() == before
    # Only the prefix followed by "/" is reserved: these are API calls like any other.
    for path in ("/_gatewayX", "/_gateway"):
        response = httpx.get(f"{ops.url}{path}?{query(signed_params('DescribeRegions'))}")
        assert response.status_code == 200, response.text
    assert ops.executed() == before + 2


def test_ops_prefix_is_configurable(policy: Policy) -> None:
    with serving(policy, ops_prefix="/ops") as gw:
        assert httpx.get(gw.url + "/ops/health").text == "ok\n"
        refused = httpx.get(gw.url + "/_gateway/health?Format=JSON")
        assert (refused.status_code, refused.json()["Code"]) == (400, "MissingParameter")
        assert scrape(gw.url, "/ops")


def test_metrics_count_requests_by_code_and_action(ops: Ops) -> None:
    before = scrape(ops.url)
    assert call(ops.url, "DescribeRegions", secret="not-the-secret").code() == "IncompleteSignature"
    assert call(ops.url, "DescribeRegions").status == 200
    assert call(ops.url, "DescribeNothing").code() == "InvalidParameter"
    after = scrape(ops.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(REQUESTS, code="IncompleteSignature", action="DescribeRegions") == 1
    assert delta(REQUESTS, code="OK", action="DescribeRegions") == 1
    # An Action the policy does not declare is counted without its name: callers cannot add series.
    assert delta(REQUESTS, code="InvalidParameter", action="-") == 1
    assert not any(labels and ("action", "DescribeNothing") in labels for _, labels in after)
    assert delta("gateway_request_duration_seconds_count", action="DescribeRegions") == 2
    assert delta("gateway_request_duration_seconds_bucket", action="DescribeRegions", le="+Inf") == 2
    assert value(after, "process_cpu_seconds_total") > 0


def test_metrics_count_store_errors_and_fail_open(policy: Policy) -> None:
    with serving(policy, f"redis://127.0.0.1:{free_port()}/0") as gw:
        before = scrape(gw.url)
        assert call(gw.url, "DescribeRegions").code() == "ServiceUnavailable"
        metrics.count_fail_open("quota")
        after = scrape(gw.url)
        assert value(after, "gateway_store_errors_total") - value(before, "gateway_store_errors_total") == 1
        assert value(after, REQUESTS, code="ServiceUnavailable", action="DescribeRegions") >= 1
        fail_open = "gateway_fail_open_total"
        assert value(after, fail_open, layer="quota") - value(before, fail_open, layer="quota") == 1


def test_metrics_without_prometheus_client_is_404(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an absent package looks like
    metrics._instruments.cache_clear()
    try:
        response = httpx.get(ops.url + "/_gateway/metrics")
        assert response.status_code == 404
        assert "pip install 'acs-gateway[metrics]'" in response.text
        metrics.count_fail_open("quota")  # a no-op, not an error
        assert call(ops.url, "DescribeRegions").status == 200  # the observer is one too
    finally:
        monkeypatch.undo()
        metrics._instruments.cache_clear()
    assert scrape(ops.url)


def test_a_missing_multiprocess_directory_stops_start_up(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path / "absent"))
    metrics._instruments.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
            create_app(Settings(config=str(DATA / "policy.toml")))
    finally:
        monkeypatch.undo()
        metrics._instruments.cache_clear()


def test_the_served_app_feeds_the_metrics(policy: Policy) -> None:
    settings = Settings(config=str(DATA / "policy.toml"))
    with serve_in_thread(create_app(settings)) as url:  # the demo service, as `gateway serve` runs it
        before = value(scrape(url), REQUESTS, code="OK", action="DescribeRegions")
        assert call(url, "DescribeRegions").status == 200
        assert value(scrape(url), REQUESTS, code="OK", action="DescribeRegions") == before + 1
    proxied = create_app(Settings(config=str(DATA / "policy.toml"), upstream_url="http://127.0.0.1:9"))
    assert isinstance(proxied, GatewayMiddleware) and isinstance(proxied.app, ProxyApp)
    assert metrics.observe in proxied.observers


def _encodings(signature: str) -> set[str]:
    return {signature, percent_encode(signature), signature.replace("+", " ")}


def test_logs_never_carry_a_secret_or_a_signature() -> None:
    upstream = Upstream()
    with serve_in_thread(upstream) as upstream_url, gateway_serve(serve_env(
        GATEWAY_CONFIG=str(DATA / "policy.toml"), GATEWAY_UPSTREAM_URL=upstream_url,
        GATEWAY_ACCESS_LOG="true",
    ), ["--log-level", "debug"]) as gw:
        signatures: set[str] = set()
        answers = []
        for params in (signed_params("DescribeRegions"),
                       signed_params("DescribeRegions", secret="not-the-secret"),
                       signed_params("DescribeRegions", key="LTAIbob", fmt="XML")):
            signatures |= _encodings(params["Signature"])
            answers.append(get(gw.url, params))
        params = signed_params("DescribeRegions", method="POST")
        signatures |= _encodings(params["Signature"])
        answers += [post(gw.url, params), post(gw.url, params)]  # the replay is refused: still logged
        missing = signed_params("DescribeRegions", {"AcceptLanguage": "en-US"})
        signatures |= _encodings(missing["Signature"])
        answers.append(get(gw.url + "/missing", missing))
        v3 = call_v3(gw.url, "DescribeRegions")
        answers.append(v3)
        assert [a.status for a in answers] == [200, 400, 200, 200, 400, 404, 200]
        gw.stop()
        output = gw.output()
    assert "Uvicorn running on" in output  # uvicorn's own loggers were captured too (nothing logs at DEBUG)
    access = [line for line in output.splitlines() if "gateway.access" in line]
    assert len(access) == len(answers)
    for answer in answers:
        assert answer.headers["x-acs-request-id"] in output
    for secret in SECRETS.values():
        assert secret not in output
    for signature in signatures:
        assert signature not in output
    assert "Signature=" not in output
    # V3 signatures are hex in the Authorization header: no 64-hex-digit run may appear at all.
    assert re.search(r"[0-9a-f]{64}", output) is None
