"""#16 items 1, 2, 5, 12, 16, 17 over HTTP: what reaches the service is the gateway's, in both modes.

Proxy mode is GatewayMiddleware(ProxyApp) in front of a real upstream; middleware mode is
GatewayMiddleware around the same echo app. Each test looks at what the service itself received.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gateway import GatewayMiddleware, Settings
from gateway.identity import client_headers
from gateway.parsing import BadInput
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.signing import sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.asgi import lifespan, read_body
from tests.support.client import VERSION, query, signed_params
from tests.support.keys import SECRETS
from tests.support.serve import gateway_serve, serve_env
from tests.support.servers import free_port, serve_in_thread, wait_until

MODES = ("proxy", "middleware")


class Echo:
    """The service: answers every HTTP request with what it received; accepts websockets."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(_headers(scope))})
            await send({"type": "websocket.close", "code": 1000})
            return
        await read_body(receive)
        client = scope.get("client")
        body = json.dumps({"Path": scope["raw_path"].decode("latin-1"), "Headers": _headers(scope),
                           "Client": list(client) if client else None}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("utf-8", "replace"))
    return headers


@contextmanager
def _serve_app(app: ASGIApp) -> Iterator[str]:
    """uvicorn as `gateway serve` runs it (proxy_headers off): by default uvicorn believes X-Forwarded-For
    and X-Forwarded-Proto from 127.0.0.1 and rewrites the client before any middleware sees it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False,
                            proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn start")
        assert server.started
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _settings(**settings: Any) -> Settings:
    return Settings(config=str(DATA / "policy.toml"), host_id="gateway.test", **settings)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Echo]]:
    service = Echo()
    with serve_in_thread(service) as url:
        yield url, service


def _serve(mode: str, policy: Policy, upstream: tuple[str, Echo], **settings: Any) -> Iterator[tuple[str, Echo]]:
    if mode == "proxy":
        config = _settings(upstream_url=upstream[0], **settings)
        app, service = ProxyApp(config), upstream[1]
    else:
        config = _settings(**settings)
        service = Echo()
        app = service  # type: ignore[assignment]
    with _serve_app(GatewayMiddleware(app, settings=config, policy=policy, store=open_store(None))) as url:
        yield url, service


@pytest.fixture(scope="module", params=MODES)
def gw(request: pytest.FixtureRequest, policy: Policy, upstream: tuple[str, Echo]) -> Iterator[tuple[str, Echo]]:
    yield from _serve(request.param, policy, upstream)


@pytest.fixture(scope="module", params=MODES)
def behind_proxy(request: pytest.FixtureRequest, policy: Policy,
                 upstream: tuple[str, Echo]) -> Iterator[tuple[str, Echo]]:
    yield from _serve(request.param, policy, upstream, trusted_proxies=("127.0.0.0/8",))


def _echo(base: str, params: dict[str, str], headers: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
    response = httpx.get(f"{base}/echo?{query(params)}", headers=headers)
    assert response.status_code == 200, response.content
    seen: dict[str, Any] = response.json()
    seen["RequestId"] = response.headers["x-acs-request-id"]
    return seen


def _raw(base: str, target: bytes, headers: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (httpx would normalise the target); status and body."""
    host, port = base.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                     + b"\r\nConnection: close\r\n" + headers + b"\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _code(body: bytes) -> str:
    code: str = json.loads(body)["Code"]
    return code


# Item 1 ------------------------------------------------------------------------------------------


def test_connection_cannot_drop_identity_headers(gw: tuple[str, Echo]) -> None:
    named = ("keep-alive, x-gateway-sub-user, x-gateway-account-id, x-gateway-access-key-id, "
             "x-gateway-account-name, x-acs-request-id, x-forwarded-for, x-real-ip, forwarded, content-type")
    seen = _echo(gw[0], signed_params("DescribeEcho", key="LTAIops"), {"connection": named})
    headers = seen["Headers"]
    assert headers["x-gateway-sub-user"] == ["ops"]
    assert headers["x-gateway-account-id"] == ["1111"]
    assert headers["x-gateway-access-key-id"] == ["LTAIops"]
    assert headers["x-gateway-account-name"] == ["alice@example.com"]
    assert headers["x-acs-request-id"] == [seen["RequestId"]]
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == ["127.0.0.1"]
    assert len(headers["forwarded"]) == 1
    # Nor may a proxy behind the gateway (or the wrapped app) be told to drop them.
    for value in headers.get("connection", []):
        assert {token.strip() for token in value.split(",")} <= {"keep-alive", "content-type"}, value


# Item 2 ------------------------------------------------------------------------------------------

SPOOFED = [
    ("X_Gateway_Account_Id", "2222"), ("x-gateway_sub-user", "root"), ("x.gateway.access.key.id", "LTAIbob"),
    ("X-GATEWAY-ACCOUNT-NAME", "bob@example.com"), ("x_acs_request_id", "forged"), ("X-Acs-Request-Id", "forged"),
    ("x-gateway-anything", "forged"), ("x!gateway!account!id", "2222"),
]


def _wsgi_environ(headers: dict[str, list[str]]) -> dict[str, str]:
    # What wsgiref (and CGI) make of the headers: "-" folded to "_", repeats joined with a comma.
    environ: dict[str, str] = {}
    for name, values in headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        for value in values:
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def test_identity_headers_in_other_spellings_never_reach_the_service(gw: tuple[str, Echo]) -> None:
    seen = _echo(gw[0], signed_params("DescribeEcho"), SPOOFED)
    headers = seen["Headers"]
    owned = {name for name in headers
             if name.replace("_", "-").replace(".", "-").replace("!", "-").lower().startswith("x-gateway-")
             or name.replace("_", "-").lower() == "x-acs-request-id"}
    assert owned == {"x-gateway-account-id", "x-gateway-account-name", "x-gateway-access-key-id",
                     "x-acs-request-id"}, headers
    environ = _wsgi_environ(headers)
    assert environ["HTTP_X_GATEWAY_ACCOUNT_ID"] == "1111"
    assert environ["HTTP_X_GATEWAY_ACCESS_KEY_ID"] == "LTAIalice"
    assert environ["HTTP_X_ACS_REQUEST_ID"] == seen["RequestId"]
    assert "HTTP_X_GATEWAY_SUB_USER" not in environ
    assert "forged" not in json.dumps(headers) and "2222" not in json.dumps(headers)


@pytest.mark.parametrize(("name", "value"), [
    ("X_Acs_Action", "DeleteInstance"), ("x_acs_version", "2016-01-01"), ("x.acs.signature-nonce", "n"),
    ("Content_Type", "text/plain; charset=utf-7"), ("authorization_", "x"), ("x!acs!date", "2030-01-01"),
])
def test_a_spelling_of_a_checked_header_is_refused(gw: tuple[str, Echo], name: str, value: str) -> None:
    # Found by tests/test_differential.py: a WSGI service reads X_Acs_Action as HTTP_X_ACS_ACTION, the
    # API the gateway checked (or that value joined to it), so the request is refused, nothing spent.
    params = signed_params("DescribeEcho")
    response = httpx.get(f"{gw[0]}/echo?{query(params)}", headers=[(name, value)])
    assert (response.status_code, response.json().get("Code")) == (400, "InvalidParameter"), response.text
    assert _echo(gw[0], params, {})["Headers"]  # the same nonce is still unspent


def test_a_header_folding_into_a_checked_one_is_ambiguous() -> None:
    for name in (b"X_Acs_Action", b"x_acs_anything", b"Content_Length", b"host_", b"Accept.", b"connection!"):
        with pytest.raises(BadInput):
            client_headers([(b"host", b"h"), (name, b"v")])
    kept = client_headers([(b"x-acs-action", b"A"), (b"X-Acs-Version", b"V"), (b"x-custom_name", b"v"),
                           (b"x_gateway_account_id", b"dropped, not refused"), (b"user_agent", b"kept")])
    assert [name for name, _ in kept] == [b"x-acs-action", b"X-Acs-Version", b"x-custom_name", b"user_agent"]


# Item 5 ------------------------------------------------------------------------------------------


def test_websockets_are_refused_in_middleware_mode(policy: Policy) -> None:
    service = Echo()
    app = GatewayMiddleware(service, settings=_settings(), policy=policy, store=open_store(None))
    with serve_in_thread(app) as url, pytest.raises(InvalidStatus) as refused:
        connect("ws" + url[4:] + "/ws", additional_headers={"x-gateway-account-id": "1111"}, open_timeout=5)
    assert refused.value.response.status_code == 403
    assert [s["type"] for s in service.scopes] == []


# Item 12 -----------------------------------------------------------------------------------------

FORGED_IP = {
    "x-forwarded-for": "6.6.6.6", "x-real-ip": "6.6.6.6", "forwarded": "for=6.6.6.6;proto=https",
    "X_Forwarded_For": "6.6.6.7", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https",
    "x-forwarded-port": "1", "x-forwarded-prefix": "/admin", "x-client-ip": "6.6.6.6",
    "true-client-ip": "6.6.6.6", "cf-connecting-ip": "6.6.6.6", "fastly-client-ip": "6.6.6.6",
    "x-cluster-client-ip": "6.6.6.6", "x-original-forwarded-for": "6.6.6.6", "x-forwarded-server": "evil",
}


def _client_ip_headers(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    folded = {name.replace("_", "-").lower() for name in FORGED_IP}
    return {name: values for name, values in headers.items() if name.replace("_", "-").lower() in folded}


def test_client_ip_headers_are_the_gateways(gw: tuple[str, Echo]) -> None:
    url, _ = gw
    host = url.split("://", 1)[1]
    seen = _echo(url, signed_params("DescribeEcho"), FORGED_IP)
    assert _client_ip_headers(seen["Headers"]) == {
        "x-forwarded-for": ["127.0.0.1"], "x-real-ip": ["127.0.0.1"], "x-forwarded-proto": ["http"],
        "x-forwarded-host": [host], "forwarded": [f'for=127.0.0.1;proto=http;host="{host}"'],
    }


@pytest.mark.parametrize(("chain", "client"), [
    ("198.51.100.7, 203.0.113.9, 127.0.0.5", "203.0.113.9"),  # the rightmost untrusted hop
    ("203.0.113.9", "203.0.113.9"),
    ("198.51.100.7, not-an-ip, 127.0.0.5", "127.0.0.1"),  # a chain with garbage is ignored
    ("127.0.0.9, 127.0.0.5", "127.0.0.9"),  # all trusted: the leftmost
])
def test_trusted_proxies_name_the_client(behind_proxy: tuple[str, Echo], chain: str, client: str) -> None:
    url, _ = behind_proxy
    seen = _echo(url, signed_params("DescribeEcho"), {**FORGED_IP, "x-forwarded-for": chain})
    headers = _client_ip_headers(seen["Headers"])
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == [client]
    assert headers["forwarded"][0].startswith(f"for={client};")
    assert "true-client-ip" not in headers and "X_Forwarded_For" not in headers


def test_middleware_mode_client_agrees_with_the_headers(policy: Policy) -> None:
    service = Echo()
    app = GatewayMiddleware(service, settings=_settings(trusted_proxies=("127.0.0.1",)), policy=policy,
                            store=open_store(None))
    with _serve_app(app) as url:
        direct = _echo(url, signed_params("DescribeEcho"), {})
        relayed = _echo(url, signed_params("DescribeEcho"), {"x-forwarded-for": "203.0.113.9"})
    assert direct["Client"][0] == "127.0.0.1" and direct["Client"][1] > 0
    assert relayed["Client"] == ["203.0.113.9", 0]


def test_gateway_serve_does_not_let_uvicorn_trust_forwarded_headers(upstream: tuple[str, Echo]) -> None:
    # uvicorn's proxy_headers, on by default, believes X-Forwarded-For from 127.0.0.1.
    env = serve_env(GATEWAY_CONFIG=str(DATA / "policy.toml"), GATEWAY_UPSTREAM_URL=upstream[0],
                    GATEWAY_ACCESS_LOG="false")
    with gateway_serve(env, ["--log-level", "warning"]) as served:
        seen = _echo(served.url, signed_params("DescribeEcho"), {"x-forwarded-for": "6.6.6.6",
                                                                  "x-forwarded-proto": "https"})
    headers = _client_ip_headers(seen["Headers"])
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]


# Item 16 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_request_target_cannot_aim_the_proxy_elsewhere(policy: Policy, upstream: tuple[str, Echo],
                                                        mode: str) -> None:
    other = Echo()
    with serve_in_thread(other) as other_url:
        for url, _ in _serve(mode, policy, upstream):
            params = query(signed_params("DescribeEcho"))
            other_port = other_url.rsplit(":", 1)[1]
            status, body = _raw(url, f"*@127.0.0.1:{other_port}/internal/admin?{params}".encode())
            assert (status, _code(body)) == (400, "InvalidParameter"), body
            status, body = _raw(url, f"*?{params}".encode())
            assert (status, _code(body)) == (400, "InvalidParameter"), body
            status, body = _raw(url, f"/echo?{params}".encode())  # the nonce was not spent
            assert status == 200, body
    assert other.scopes == []


def test_upstream_url_is_built_from_parts() -> None:
    app = ProxyApp(Settings(upstream_url="http://user:pw@127.0.0.1:9/base/"))
    url = app._url({"raw_path": b"/x%2Fy/@evil:1", "path": "/x/y/@evil:1", "query_string": b"a=%41&b"})
    # The operator's userinfo is not sent (as before), and nothing of the target can become one.
    assert (url.host, url.port, url.user, url.password) == ("127.0.0.1", 9, None, None)
    assert (url.raw_path, url.raw_query_string) == ("/base/x%2Fy/@evil:1", "a=%41&b")


# Item 17 -----------------------------------------------------------------------------------------

BAD_PATHS = [
    b"/echo/a%2Fb", b"/echo/a%2fb", b"/echo/a\\b", b"/echo/a%5Cb", b"/echo/a%5cb",
    b"/echo/./b", b"/echo/../b", b"/echo/..;/b",
    b"/echo/a/.", b"/echo/a/..", b"/echo/%2E%2e/b", b"/echo/%2e/b", b"/echo/.%2E/b",
    b"/echo/a%FF", b"/echo/a%FE", b"/echo/%C3", b"/echo/a%00b", b"/echo/a%0Ab", b"/echo/a%0d%0aX:1", b"/echo/a%7F",
    b"//evil.example/x",
]


@pytest.mark.parametrize("path", BAD_PATHS, ids=[p.decode("latin-1") for p in BAD_PATHS])
def test_paths_the_service_would_read_differently_are_refused(gw: tuple[str, Echo], path: bytes) -> None:
    url, service = gw
    params = query(signed_params("DescribeEcho"))
    before = len(service.scopes)
    status, body = _raw(url, path + b"?" + params.encode())
    assert (status, _code(body)) == (400, "InvalidParameter"), body
    assert len(service.scopes) == before
    status, body = _raw(url, b"/echo/ok?" + params.encode())  # the nonce was not spent
    assert status == 200, body


@pytest.mark.parametrize("path", [b"/echo/a%20b", b"/echo/%41.b/c.", b"/echo/.well-known/x", b"/echo/caf%C3%A9",
                                  b"/echo/a..b/...", b"/echo/"])
def test_harmless_paths_pass_as_sent(gw: tuple[str, Echo], path: bytes) -> None:
    status, body = _raw(gw[0], path + b"?" + query(signed_params("DescribeEcho")).encode())
    assert status == 200, body
    assert json.loads(body)["Path"].encode() == path


def test_v3_signed_for_the_decoded_path_is_refused_on_an_encoded_slash(gw: tuple[str, Echo]) -> None:
    url = gw[0]
    host = url.split("://", 1)[1]
    headers = sign_request_v3(method="GET", host=host, path="/svc/a/b", query={}, body=b"",
                              action="DescribeEcho", version=VERSION, access_key_id="LTAIalice",
                              secret=SECRETS["LTAIalice"])
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items() if k.lower() != "host")
    status, body = _raw(url, b"/svc/a%2Fb", head)
    assert (status, _code(body)) == (400, "InvalidParameter"), body
    status, body = _raw(url, b"/svc/a/b", head)  # same signature, nonce unspent
    assert status == 200, body


def test_gateway_serve_refuses_absolute_form_targets(upstream: tuple[str, Echo]) -> None:
    # uvicorn hands the app only "/echo" of "http://evil.example/echo": the protocol keeps the target.
    env = serve_env(GATEWAY_CONFIG=str(DATA / "policy.toml"), GATEWAY_UPSTREAM_URL=upstream[0],
                    GATEWAY_ACCESS_LOG="false")
    params = query(signed_params("DescribeEcho")).encode()
    with gateway_serve(env, ["--log-level", "warning"]) as served:
        status, body = _raw(served.url, b"http://evil.example/echo?" + params)
        assert (status, _code(body)) == (400, "InvalidParameter"), body
        status, body = _raw(served.url, b"*@evil.example/echo?" + params)
        assert (status, _code(body)) == (400, "InvalidParameter"), body
        status, body = _raw(served.url, b"/echo?" + params)  # the nonce was not spent
        assert status == 200, body
