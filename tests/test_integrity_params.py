"""#16 items 3, 4, 6, 7, 9, 13, 18 over HTTP: what the service reads is what the gateway checked.

Every test runs in both modes: the gateway as a reverse proxy (`ProxyApp`) in front of a real upstream,
and as middleware around an ASGI service; both are served by a real uvicorn.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy, Resource, parse_policy
from gateway.proxy import ProxyApp
from gateway.signing import sign_request_v1, sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import VERSION, Answer, query, signed_params
from tests.support.fuzzing.wire import address_of
from tests.support.keys import SECRETS
from tests.support.servers import serve_in_thread
from tests.support.upstream import Upstream

MODES = ("proxy", "middleware")

# The test policy, plus one API whose parameters are typed (item 9) and one whose pattern backtracks
# (item 18): 2^n steps for n letters followed by a character the pattern refuses.
EXTRA_APIS = """
[apis."2014-05-26".DescribeTyped]
params.Int = { type = "Integer" }
params.Big = { type = "Long" }
params.Ratio = { type = "Float" }
params.Flag = { type = "Boolean" }
params.Slow = { type = "String", max_length = 64, pattern = "([a-z]+)*" }
"""
BACKTRACKING = "a" * 25 + "!"


@pytest.fixture(scope="module")
def integrity_policy() -> Policy:
    text = (DATA / "policy.toml").read_text() + EXTRA_APIS
    return parse_policy(text, "policy.toml+extra", {})


class CountingResolver:
    """Matches ids case-insensitively, as a database collation would, and counts its lookups."""

    def __init__(self, policy: Policy) -> None:
        self.resources = {(kind, ident.lower()): r for (kind, ident), r in policy.resources.items()}
        self.lookups = 0

    async def lookup(self, kind: str, resource_id: str) -> Resource | None:
        self.lookups += 1
        return self.resources.get((kind, resource_id.lower()))


class Live:
    def __init__(self, url: str, resolver: CountingResolver, mode: str) -> None:
        self.url, self.resolver, self.mode = url, resolver, mode
        self.host = url.split("://", 1)[1]


@contextmanager
def serve(mode: str, policy: Policy, **settings: Any) -> Iterator[Live]:
    resolver = CountingResolver(policy)
    with serve_in_thread(Upstream()) as upstream_url:
        config = Settings(config=str(DATA / "policy.toml"), host_id="gateway.test",
                          upstream_url=upstream_url if mode == "proxy" else None, **settings)
        app = ProxyApp(config) if mode == "proxy" else EchoService()
        gateway = GatewayMiddleware(app, settings=config, policy=policy, store=open_store(None),  # type: ignore[arg-type]
                                    resolver=resolver)
        with serve_in_thread(gateway) as url:
            yield Live(url, resolver, mode)


@pytest.fixture(scope="module", params=MODES)
def gw(request: pytest.FixtureRequest, integrity_policy: Policy) -> Iterator[Live]:
    with serve(request.param, integrity_policy, max_repeated=100) as live:
        yield live


def _answer(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.headers, response.content)


def v1_get(live: Live, action: str, params: dict[str, str], *, key: str = "LTAIalice",
           headers: dict[str, str] | None = None) -> Answer:
    signed = signed_params(action, params, key=key)
    return _answer(httpx.get(f"{live.url}/?{query(signed)}", headers=headers or {}))


def v1_post(live: Live, params: dict[str, str], *, body: bytes | None = None,
            content_type: str | list[str] = "application/x-www-form-urlencoded",
            extra: list[tuple[str, str]] | None = None) -> Answer:
    """A signed V1 POST whose parameters all travel in the body (``body`` overrides their spelling)."""
    signed = sign_request_v1({"Action": "DescribeEcho", "Version": VERSION, "Format": "JSON", **params},
                             access_key_id="LTAIalice", secret=SECRETS["LTAIalice"], method="POST")
    types = [content_type] if isinstance(content_type, str) else content_type
    headers = [("content-type", t) for t in types] + (extra or [])
    raw = query(signed).encode() if body is None else query(signed).encode() + body
    return _answer(httpx.post(f"{live.url}/", content=raw, headers=headers))


def v1_post_raw_value(live: Live, name: str, value: str, wire: bytes) -> Answer:
    """Signs ``name=value`` but writes the value on the wire as the raw bytes ``wire``."""
    signed = sign_request_v1({"Action": "DescribeEcho", "Version": VERSION, "Format": "JSON", name: value},
                             access_key_id="LTAIalice", secret=SECRETS["LTAIalice"], method="POST")
    rest = {k: v for k, v in signed.items() if k != name}
    raw = query(rest).encode() + b"&" + name.encode() + b"=" + wire
    return _answer(httpx.post(f"{live.url}/", content=raw,
                              headers={"content-type": "application/x-www-form-urlencoded"}))


def v3(live: Live, action: str, params: dict[str, str] | None = None, *, method: str = "GET",
       body: bytes = b"", host: str | None = None, send_host: str | None = None) -> Answer:
    signed_host = host or live.host
    headers = sign_request_v3(method=method, host=signed_host, path="/", query=params or {}, body=body,
                              action=action, version=VERSION, access_key_id="LTAIalice",
                              secret=SECRETS["LTAIalice"])
    headers["host"] = send_host or signed_host
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    url = f"{live.url}/" + (f"?{query(params)}" if params else "")
    return _answer(httpx.request(method, url, headers=headers, content=body))


def assert_code(answer: Answer, status: int, code: str | None) -> None:
    assert (answer.status, answer.code() if status != 200 else None) == (status, code), answer.body


# -- item 3: a form body is read as the gateway reads it, or refused --------------------------------

@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded; charset=utf-7",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf8",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=utf-8; charset=utf-7",
    "application/x-www-form-urlencoded; foo=bar",
    "application/x-www-form-urlencoded, text/plain; charset=utf-7",
])
def test_a_form_body_in_another_charset_is_refused(gw: Live, content_type: str) -> None:
    assert_code(v1_post(gw, {"Text": "hello"}, content_type=content_type), 400, "InvalidParameter")


def test_a_utf7_smuggled_action_never_reaches_the_service(gw: Live) -> None:
    # To the gateway one harmless Text parameter; to a service honouring the charset, Note=x as well.
    answer = v1_post(gw, {"Text": "x+ACY-Note=x"},
                     content_type="application/x-www-form-urlencoded; charset=utf-7")
    assert_code(answer, 400, "InvalidParameter")


def test_a_repeated_content_type_is_refused(gw: Live) -> None:
    types = ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-7"]
    assert_code(v1_post(gw, {"Text": "hello"}, content_type=types), 400, "InvalidParameter")


def test_a_repeated_content_type_is_refused_without_a_body(gw: Live) -> None:
    # Found by tests/test_differential.py: services disagree on it even when there is nothing to read
    # (aiohttp refuses the request), so the gateway does not forward it.
    signed = signed_params("DescribeRegions", {})
    headers = [("content-type", "application/x-www-form-urlencoded; charset=latin-1"),
               ("content-type", "application/x-www-form-urlencoded; charset=utf-7")]
    for method in ("GET", "POST"):
        answer = _answer(httpx.request(method, f"{gw.url}/?{query(signed)}", headers=headers))
        assert_code(answer, 400, "InvalidParameter")


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded",
    "Application/X-WWW-Form-Urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded;charset=UTF-8",
    'application/x-www-form-urlencoded; charset="utf-8"',
])
def test_a_form_body_in_utf8_is_admitted(gw: Live, content_type: str) -> None:
    assert_code(v1_post(gw, {"Text": "hello"}, content_type=content_type), 200, None)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-anything", ""])
def test_a_request_content_encoding_is_refused(gw: Live, encoding: str) -> None:
    assert_code(v1_post(gw, {"Text": "hello"}, extra=[("content-encoding", encoding)]), 400, "InvalidParameter")
    get = v1_get(gw, "DescribeRegions", {}, headers={"content-encoding": encoding})
    assert_code(get, 400, "InvalidParameter")


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate,chunked", "identity, chunked"])
def test_a_transfer_coding_besides_chunked_is_refused(gw: Live, coding: str) -> None:
    # httptools de-chunks these and hands on the body as if it were plain: the service may decode it.
    signed = sign_request_v1({"Action": "DescribeEcho", "Version": VERSION, "Format": "JSON", "Text": "hi"},
                             access_key_id="LTAIalice", secret=SECRETS["LTAIalice"], method="POST")
    body = query(signed).encode()
    head = (f"POST / HTTP/1.1\r\nhost: {gw.host}\r\ncontent-type: application/x-www-form-urlencoded\r\n"
            f"transfer-encoding: {coding}\r\nconnection: close\r\n\r\n").encode()
    with socket.create_connection(address_of(gw.url), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        answer = b"".join(iter(lambda: sock.recv(65_536), b""))
    assert answer.startswith(b"HTTP/1.1 400") and b"InvalidParameter" in answer, answer[:300]


def test_content_encoding_identity_is_admitted(gw: Live) -> None:
    assert_code(v1_post(gw, {"Text": "hello"}, extra=[("content-encoding", "identity")]), 200, None)


@pytest.mark.parametrize(("value", "wire"), [
    ("cn-hangzhou\n", b"cn-hangzhou\n"),  # aiohttp strips trailing whitespace from a form body
    ("cn-hangzhou ", b"cn-hangzhou "),
    ("h\u00e9", "h\u00e9".encode()),  # Starlette reads raw bytes as latin-1: "hÃ©"
    ("a;Note=x", b"a;Note=x"),  # older form parsers split on ";"
    ("a#b", b"a#b"),
    ("a\x00b", b"a\x00b"),
])
def test_raw_bytes_a_service_parser_reads_differently_are_refused(gw: Live, value: str, wire: bytes) -> None:
    assert_code(v1_post_raw_value(gw, "Text", value, wire), 400, "InvalidParameter")


def test_the_same_values_escaped_are_admitted(gw: Live) -> None:
    for value in ("cn-hangzhou\n", "h\u00e9", "a;Note=x", "a#b"):
        assert_code(v1_post(gw, {"Text": value}), 200, None)


# -- item 4: no body on a method the gateway does not parse bodies for ------------------------------

def test_a_v3_get_body_is_refused(gw: Live) -> None:
    body = b"InstanceId.1=i-secret-1&Evil=1"
    assert_code(v3(gw, "DescribeRegions", method="GET", body=body), 400, "InvalidParameter")


def test_a_v3_get_with_an_empty_body_is_admitted(gw: Live) -> None:
    assert_code(v3(gw, "DescribeRegions", method="GET"), 200, None)


def test_a_v3_post_body_is_still_parsed_and_checked(gw: Live) -> None:
    assert_code(v3(gw, "DescribeRegions", method="POST", body=b"Evil=1"), 400, "UnsupportedParameter")
    assert_code(v3(gw, "DescribeEcho", method="POST", body=b"Text=hi"), 200, None)


# -- item 6: RAM decides on the resolver's canonical id ----------------------------------------------

def test_ram_denies_the_canonical_id_whatever_the_spelling(gw: Live) -> None:
    # The resolver matches I-SECRET-1 to i-secret-1, which a Deny on instance/i-secret-* covers.
    for spelling in ("i-secret-1", "I-SECRET-1", "I-Secret-1"):
        answer = v1_get(gw, "DescribeInstances", {"InstanceId.1": spelling}, key="LTAIops")
        assert_code(answer, 403, "Forbidden.RAM")
    assert_code(v1_get(gw, "DescribeInstances", {"InstanceId.1": "I-WEB-1"}, key="LTAIops"), 200, None)


# -- item 7: GATEWAY_HOSTS binds a request, and a V3 signature, to this deployment --------------------

@pytest.fixture(scope="module", params=MODES)
def two_gateways(request: pytest.FixtureRequest, integrity_policy: Policy) -> Iterator[tuple[Live, Live]]:
    with serve(request.param, integrity_policy, hosts=("a.example",)) as a, \
            serve(request.param, integrity_policy, hosts=("b.example", "[::1]:8080")) as b:
        yield a, b


def test_a_v3_request_signed_for_another_gateway_is_refused(two_gateways: tuple[Live, Live]) -> None:
    a, b = two_gateways
    assert_code(v3(a, "DescribeRegions", host="a.example"), 200, None)  # the same keys, the right gateway
    assert_code(v3(b, "DescribeRegions", host="a.example"), 400, "InvalidParameter")
    assert_code(v3(b, "DescribeRegions", host="b.example"), 200, None)
    assert_code(v3(b, "DescribeRegions", host="B.Example:443"), 200, None)  # a name entry: any port
    assert_code(v3(b, "DescribeRegions", host="[::1]:8080"), 200, None)
    assert_code(v3(b, "DescribeRegions", host="[::1]:8081"), 400, "InvalidParameter")


def test_a_v1_request_to_a_foreign_host_is_refused(two_gateways: tuple[Live, Live]) -> None:
    _, b = two_gateways
    assert_code(v1_get(b, "DescribeRegions", {}, headers={"host": "a.example"}), 400, "InvalidParameter")
    assert_code(v1_get(b, "DescribeRegions", {}, headers={"host": "b.example.evil"}), 400, "InvalidParameter")
    assert_code(v1_get(b, "DescribeRegions", {}, headers={"host": "b.example"}), 200, None)


def test_without_hosts_any_host_is_admitted(gw: Live) -> None:
    assert_code(v1_get(gw, "DescribeRegions", {}, headers={"host": "anything.example"}), 200, None)


# -- item 9: declared types as their names say ---------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("Int", "2147483648"), ("Int", "-2147483649"), ("Int", "1_000"), ("Int", "\u0661"), ("Int", "+1"),
    ("Big", "9223372036854775808"), ("Big", "-9223372036854775809"), ("Big", "1" * 10_000),
    ("Ratio", "1_000"), ("Ratio", " 2.5\n"), ("Ratio", "\u0662.5"), ("Ratio", "inf"), ("Ratio", "nan"),
    ("Ratio", "1e999"), ("Ratio", ".5"), ("Ratio", "5."), ("Ratio", "0x10"),
    ("Flag", "True"), ("Flag", "1"),
])
def test_a_value_looser_than_its_type_is_refused(gw: Live, name: str, value: str) -> None:
    assert_code(v1_get(gw, "DescribeTyped", {name: value}), 400, "InvalidParameter")


@pytest.mark.parametrize(("name", "value"), [
    ("Int", "2147483647"), ("Int", "-2147483648"), ("Int", "0"),
    ("Big", "9223372036854775807"), ("Big", "-9223372036854775808"),
    ("Ratio", "2.5"), ("Ratio", "-1e-3"), ("Ratio", "10"), ("Ratio", "1.5E+10"),
    ("Flag", "true"), ("Flag", "false"),
])
def test_a_value_of_its_type_is_admitted(gw: Live, name: str, value: str) -> None:
    assert_code(v1_get(gw, "DescribeTyped", {name: value}), 200, None)


# -- item 13: one lookup per distinct resource, and a bound on repeated values ----------------------------

def test_a_repeated_id_is_looked_up_once(gw: Live) -> None:
    gw.resolver.lookups = 0
    many = {f"InstanceId.{n}": "i-web-1" for n in range(1, 51)}
    assert_code(v1_get(gw, "DescribeInstances", many, key="LTAIops"), 200, None)
    assert gw.resolver.lookups == 1


def test_an_index_past_max_repeated_is_refused(gw: Live) -> None:
    gw.resolver.lookups = 0
    answer = v1_get(gw, "DescribeInstances", {"InstanceId.101": "i-web-1"}, key="LTAIops")
    assert_code(answer, 400, "InvalidParameter")
    assert gw.resolver.lookups == 0
    assert_code(v1_get(gw, "DescribeInstances", {"InstanceId.100": "i-web-1"}, key="LTAIops"), 200, None)


@pytest.mark.parametrize("mode", MODES)
def test_max_repeated_is_the_setting(integrity_policy: Policy, mode: str) -> None:
    with serve(mode, integrity_policy, max_repeated=3) as live:
        three = {f"InstanceId.{n}": "i-web-1" for n in range(1, 4)}
        assert_code(v1_get(live, "DescribeInstances", three), 200, None)
        four = {f"InstanceId.{n}": "i-web-1" for n in range(1, 5)}
        assert_code(v1_get(live, "DescribeInstances", four), 400, "InvalidParameter")


# -- item 18: nothing costly for a caller that has proven no key -----------------------------------------

def test_an_unsigned_request_never_runs_a_pattern(gw: Live) -> None:
    params = {"Action": "DescribeTyped", "Version": VERSION, "Format": "JSON", "AccessKeyId": "LTAIalice",
              "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": "n-1",
              "Timestamp": "2024-01-01T00:00:00Z", "Signature": "forged", "Slow": BACKTRACKING}
    started = time.perf_counter()
    answer = _answer(httpx.get(f"{gw.url}/?{query(params)}"))
    elapsed = time.perf_counter() - started
    assert_code(answer, 400, "IncompleteSignature")
    assert elapsed < 0.5, f"{elapsed:.2f} s: the pattern ran before the signature was checked"
    unknown = {**params, "AccessKeyId": "LTAInobody", "SignatureNonce": "n-2"}
    assert_code(_answer(httpx.get(f"{gw.url}/?{query(unknown)}")), 400, "InvalidAccessKeyId.NotFound")


def test_an_unsigned_request_with_an_undeclared_parameter_gets_the_key_error(gw: Live) -> None:
    params = signed_params("DescribeRegions", {"Evil": "1"})
    params["Signature"] = "forged"
    assert_code(_answer(httpx.get(f"{gw.url}/?{query(params)}")), 400, "IncompleteSignature")
    assert_code(v1_get(gw, "DescribeRegions", {"Evil": "1"}), 400, "UnsupportedParameter")
