"""Unit tests, no server: the gateway-owned header family, client-IP headers, request-target rules."""

from __future__ import annotations

import pytest

from gateway.forwarded import ClientAddress, forwarded_headers
from gateway.identity import client_headers, fold, is_owned
from gateway.parsing import BadInput
from gateway.proxy import _request_dropped
from gateway.target import check_target


@pytest.mark.parametrize("name", [
    b"x-gateway-account-id", b"X_Gateway_Account_Id", b"x.gateway.sub.user", b"x!gateway~anything", b"X-ACS-REQUEST-ID",
    b"x_acs_request_id", b"forwarded", b"X_Forwarded_For", b"x-real-ip", b"True-Client-IP", b"cf_connecting_ip",
    b"x-forwarded-host", b"x-original-forwarded-for", b"-x-real-ip-",
])
def test_every_spelling_of_a_gateway_header_is_owned(name: bytes) -> None:
    assert is_owned(name)
    assert client_headers([(name, b"forged"), (b"accept", b"*/*")]) == [(b"accept", b"*/*")]


@pytest.mark.parametrize("name", [b"host", b"x-acs-action", b"x-acs-signature-nonce", b"authorization",
                                  b"x-gateways", b"x-forwarded", b"content-type"])
def test_other_headers_are_the_clients(name: bytes) -> None:
    assert not is_owned(name)


def test_connection_loses_the_tokens_naming_owned_headers() -> None:
    raw = [(b"connection", b"keep-alive, X_Gateway_Sub_User,x-real-ip , x-hop")]
    assert client_headers(raw) == [(b"connection", b"keep-alive, x-hop")]
    assert client_headers([(b"connection", b"close")]) == [(b"connection", b"close")]


def test_fold_is_what_the_most_eager_server_reads() -> None:
    assert fold(b"X_Gateway.Account!Id") == b"x-gateway-account-id"


@pytest.mark.parametrize(("client", "scheme", "host", "expected"), [
    ("192.0.2.1", "http", b"api.example:8080", b'for=192.0.2.1;proto=http;host="api.example:8080"'),
    ("2001:db8::1", "https", b"api.example", b'for="[2001:db8::1]";proto=https;host=api.example'),
    (None, "http", None, b"proto=http"),
    ("192.0.2.1", "http", b'a"b\\c', b'for=192.0.2.1;proto=http;host="a\\"b\\\\c"'),
])
def test_forwarded_follows_rfc_7239(client: str | None, scheme: str, host: bytes | None, expected: bytes) -> None:
    headers = dict(forwarded_headers(client, scheme, host))
    assert headers[b"forwarded"] == expected
    assert headers.get(b"x-forwarded-for") == headers.get(b"x-real-ip") == (client.encode() if client else None)
    assert headers[b"x-forwarded-proto"] == scheme.encode()
    assert headers.get(b"x-forwarded-host") == host


def _scope(peer: str, chain: bytes | None) -> dict[str, object]:
    return {"client": (peer, 1234), "headers": [(b"x-forwarded-for", chain)] if chain is not None else []}


@pytest.mark.parametrize(("trusted", "peer", "chain", "client"), [
    ((), "127.0.0.1", b"6.6.6.6", "127.0.0.1"),
    (("10.0.0.0/8",), "127.0.0.1", b"6.6.6.6", "127.0.0.1"),  # the peer is not a trusted proxy
    (("10.0.0.0/8",), "10.1.2.3", b"6.6.6.6, 10.0.0.7", "6.6.6.6"),
    (("10.0.0.0/8",), "10.1.2.3", b"1.1.1.1, 6.6.6.6", "6.6.6.6"),  # the client's own prefix is not believed
    (("10.0.0.0/8",), "10.1.2.3", b"6.6.6.6, bogus", "10.1.2.3"),
    (("10.0.0.0/8",), "10.1.2.3", None, "10.1.2.3"),
    (("10.0.0.0/8",), "10.1.2.3", b"10.0.0.9, 10.0.0.7", "10.0.0.9"),
    (("::1",), "::1", b"2001:db8::5", "2001:db8::5"),
])
def test_client_address(trusted: tuple[str, ...], peer: str, chain: bytes | None, client: str) -> None:
    assert ClientAddress(trusted).of(_scope(peer, chain)) == client


def test_connection_never_drops_what_the_gateway_checked_or_wrote() -> None:
    raw = [(b"connection", b"keep-alive, x-gateway-sub-user, X_Forwarded_For, content-type, x-acs-date, x-hop")]
    dropped = _request_dropped(raw)
    assert b"x-hop" in dropped and b"keep-alive" in dropped
    for kept in (b"x-gateway-sub-user", b"x_forwarded_for", b"content-type", b"x-acs-date"):
        assert kept not in dropped


@pytest.mark.parametrize("raw", [
    b"*", b"*@127.0.0.1:9/x", b"//evil/x", b"a/b", b"", b"/a%2Fb", b"/a%2fb", b"/a\\b", b"/a%5cb", b"/./a", b"/a/..",
    b"/a/%2E%2E/b", b"/a/.%2e", b"/a/..;/b", b"/a/.;x", b"/a/..%3B/b",
    b"/a%FF", b"/%C3", b"/a%00", b"/a%0d%0a", b"/a%7f", b"/a\x00b",
])
def test_refused_targets(raw: bytes) -> None:
    with pytest.raises(BadInput):
        check_target({"raw_path": raw, "path": raw.decode("latin-1")})


@pytest.mark.parametrize("raw", [b"/", b"/a/b", b"/a%20b", b"/caf%C3%A9", b"/.well-known/x", b"/a..b/...", b"/a./b",
                                 b"/a;x/b"])
def test_accepted_targets(raw: bytes) -> None:
    check_target({"raw_path": raw, "path": raw.decode("latin-1")})
