"""The reverse proxy: the gateway in front of a real upstream, both served by uvicorn (CONTRACT §1, §3)."""

from __future__ import annotations

import asyncio
import hashlib
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Message

from gateway import GatewayMiddleware, Settings
from gateway.errors import Err
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.settings import SettingsError
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.client import Answer, call, get, post, query, signed_params
from tests.support.servers import free_port, serve_in_thread
from tests.support.upstream import MISSING, STREAM_CHUNKS, Upstream

FORMATS = ("XML", "JSON")
BIG = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Upstream]]:
    app = Upstream()
    with serve_in_thread(app) as url:
        yield url, app


def _gateway(policy: Policy, upstream_url: str, **settings: Any) -> GatewayMiddleware:
    config = Settings(config=str(DATA / "policy.toml"), host_id="gateway.test", upstream_url=upstream_url,
                      max_body_bytes=8 * 1024 * 1024, **settings)
    return GatewayMiddleware(ProxyApp(config), settings=config, policy=policy, store=open_store(None))


@pytest.fixture(scope="module")
def gw(policy: Policy, upstream: tuple[str, Upstream]) -> Iterator[str]:
    with serve_in_thread(_gateway(policy, upstream[0])) as url:
        yield url


def _check_error(answer: Answer, code: str, status: int, fmt: str, message: str) -> None:
    assert (answer.status, answer.code()) == (status, code), answer.body
    request_id = answer.headers["x-acs-request-id"]
    if fmt == "XML":
        assert answer.headers["content-type"] == "text/xml;charset=utf-8"
        fields = {child.tag: child.text for child in answer.xml}
    else:
        assert answer.headers["content-type"] == "application/json;charset=utf-8"
        fields = answer.json
    assert list(fields) == ["RequestId", "HostId", "Code", "Message"]
    assert (fields["RequestId"], fields["HostId"], fields["Message"]) == (request_id, "gateway.test", message)
    uuid.UUID(request_id)


def test_success_in_xml(gw: str) -> None:
    answer = call(gw, "DescribeRegions", fmt="XML")
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "text/xml;charset=utf-8"
    root = answer.xml
    assert root.tag == "DescribeRegionsResponse"
    assert root.findtext("RequestId") == answer.headers["x-acs-request-id"]
    assert [r.text for r in root.iter("RegionId")] == ["cn-hangzhou", "cn-beijing"]


def test_success_in_json(gw: str) -> None:
    answer = call(gw, "DescribeRegions", fmt="JSON")
    assert answer.status == 200, answer.body
    body = answer.json
    assert body["RequestId"] == answer.headers["x-acs-request-id"]
    assert body["Regions"]["Region"][0]["RegionId"] == "cn-hangzhou"
    assert "Code" not in body
    assert answer.headers.get_list("server") == ["uvicorn"]  # the upstream's own is not relayed


@pytest.mark.parametrize("fmt", FORMATS)
def test_upstream_error_is_rendered_as_a_gateway_error(gw: str, fmt: str) -> None:
    answer = get(gw + "/missing", signed_params("DescribeRegions", fmt=fmt))
    _check_error(answer, MISSING["Code"], 404, fmt, MISSING["Message"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_upstream_down_is_service_unavailable(policy: Policy, fmt: str) -> None:
    with serve_in_thread(_gateway(policy, f"http://127.0.0.1:{free_port()}")) as url:
        answer = call(url, "DescribeRegions", fmt=fmt)
    err = Err.SERVICE_UNAVAILABLE
    _check_error(answer, err.code, err.status, fmt, err.value.message())


def test_slow_upstream_is_service_unavailable(policy: Policy, upstream: tuple[str, Upstream]) -> None:
    url, app = upstream
    assert app.delay >= 2.0
    with serve_in_thread(_gateway(policy, url, upstream_read_timeout=0.2)) as gateway:
        started = time.monotonic()
        answer = get(gateway + "/slow", signed_params("DescribeRegions"))
        elapsed = time.monotonic() - started
    _check_error(answer, "ServiceUnavailable", 500, "JSON", Err.SERVICE_UNAVAILABLE.value.message())
    assert elapsed < app.delay


def test_json_cut_short_by_the_upstream_is_service_unavailable(gw: str) -> None:
    answer = get(gw + "/truncated", signed_params("DescribeRegions"))
    assert (answer.status, answer.code()) == (500, "ServiceUnavailable")


def test_large_post_body_is_forwarded_intact(gw: str) -> None:
    text = (string.ascii_letters * (BIG // len(string.ascii_letters) + 1))[:BIG]
    params = signed_params("DescribeEcho", {"Text": text}, method="POST")
    body = query(params).encode()
    assert len(body) > BIG
    answer = post(gw + "/echo", params, client=httpx.Client(timeout=30))
    assert answer.status == 200, answer.body[:500]
    seen = answer.json
    assert (seen["Method"], seen["BodyLength"]) == ("POST", len(body))
    assert seen["BodySha256"] == hashlib.sha256(body).hexdigest()
    assert seen["Headers"]["content-length"] == [str(len(body))]


def test_non_json_answer_streams_through_unchanged(gw: str, upstream: tuple[str, Upstream]) -> None:
    app = upstream[1]
    app.stream_release.clear()
    received = b""
    url = f"{gw}/stream/?{query(signed_params('DescribeRegions'))}"
    with httpx.stream("GET", url, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=us-ascii"
        uuid.UUID(response.headers["x-acs-request-id"])
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= len(STREAM_CHUNKS[0]):
                app.stream_release.set()  # the first chunk arrived before the upstream sent the rest
    assert received == b"".join(STREAM_CHUNKS)
    assert not app.stream_waited_out, "the proxy held the answer until the upstream finished"


def test_request_is_forwarded_as_received(gw: str, upstream: tuple[str, Upstream]) -> None:
    params = signed_params("DescribeEcho", {"Text": "hello world*~"})
    raw_query = query(params).replace("%20", "+")  # an SDK's spelling: the signature still verifies
    response = httpx.get(f"{gw}/echo/a%3Bb?{raw_query}", headers={
        "connection": "keep-alive, x-hop", "x-hop": "dropped", "keep-alive": "timeout=5",
        "proxy-authorization": "Basic c2VjcmV0", "x-custom": "kept", "accept-encoding": "gzip",
    })
    assert response.status_code == 200, response.content
    seen = response.json()
    headers = seen["Headers"]
    assert (seen["Method"], seen["Path"], seen["Query"]) == ("GET", "/echo/a%3Bb", raw_query)
    assert headers["host"] == [upstream[0].split("://")[1]]
    assert headers["x-custom"] == ["kept"]
    assert headers["accept-encoding"] == ["identity"]  # JSON must come back re-renderable
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-host"] == [gw.split("://")[1]]
    for hop in ("keep-alive", "x-hop", "proxy-authorization", "transfer-encoding", "te"):
        assert hop not in headers, hop
    assert "x-hop" not in headers.get("connection", [""])[0]
    assert response.headers["x-upstream-note"] == "hello"


def test_upstream_url_path_prefixes_every_path(policy: Policy, upstream: tuple[str, Upstream]) -> None:
    with serve_in_thread(_gateway(policy, upstream[0] + "/echo/base/")) as gateway:
        answer = get(gateway + "/v1", signed_params("DescribeEcho"), headers={"expect": "100-continue"})
    assert answer.status == 200, answer.body
    assert answer.json["Path"] == "/echo/base/v1/"
    assert "expect" not in answer.json["Headers"]


def test_identity_headers_are_the_gateways_and_cookies_are_not_kept(gw: str) -> None:
    forged = {"x-gateway-account-id": "9999", "x-gateway-sub-user": "root", "x-acs-request-id": "forged-id"}
    first = get(gw + "/echo", signed_params("DescribeEcho"), headers=forged)
    assert first.status == 200, first.body
    headers = first.json["Headers"]
    assert headers["x-gateway-account-id"] == ["1111"]
    assert headers["x-gateway-access-key-id"] == ["LTAIalice"]
    assert headers["x-acs-request-id"] == [first.headers["x-acs-request-id"]]
    assert "x-gateway-sub-user" not in headers
    assert first.headers.get_list("x-acs-request-id") == [first.json["RequestId"]]
    # The upstream set a cookie for the first caller: the proxy's client must not replay it for the next.
    second = get(gw + "/echo", signed_params("DescribeEcho", key="LTAIbob"))
    assert "cookie" not in second.json["Headers"]


def test_a_bad_upstream_url_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_UPSTREAM_URL"):
        ProxyApp(Settings(upstream_url="ftp://example.com"))


async def test_lifespan_shutdown_closes_the_client() -> None:
    app = ProxyApp(Settings(upstream_url="http://127.0.0.1:9/base/"))
    session = app.session()
    assert app.session() is session  # one pool per loop
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert session.closed


async def test_websockets_are_refused() -> None:
    app = ProxyApp(Settings(upstream_url="http://127.0.0.1:9"))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app({"type": "websocket", "path": "/"}, receive, send), 1)
    assert sent == [{"type": "websocket.close", "code": 1008}]
