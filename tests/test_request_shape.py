"""Units for #16 items 3, 4, 7: what the gateway parses is what a service's parser reads, or refused."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import pytest
from starlette.types import Message

from gateway.call import Call, Exchange
from gateway.checks.host import Host, split_host
from gateway.errors import BadInput
from gateway.parse import Parser
from gateway.parsing import parse_into
from gateway.policy import load_policy
from tests.conftest import DATA
from tests.support.calls import a_call


def _ctx(method: str = "GET", headers: dict[str, str] | None = None, query: bytes = b"",
         body: bytes = b"") -> Exchange:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Exchange(request_id="r", method=method, path="/", headers=headers or {}, host_id="h",
                    format="XML", receive=receive, query_string=query)


PARSER = Parser(load_policy(DATA / "policy.toml"), max_body_bytes=1 << 20)


def _parse(exchange: Exchange) -> Call:
    parsed = PARSER(exchange)
    return parsed if isinstance(parsed, Call) else asyncio.run(parsed)  # type: ignore[arg-type]


# -- parse_into: raw bytes that some parser reads otherwise ----------------------------------------------

@pytest.mark.parametrize("raw", [
    b"a=1;b=2", b"a=1#b=2", b"a=1 ", b"a=1\n", b"a=1\r\n", b"a=1\t", b"a=1\x0b", b"a=1\x0c", b" a=1",
    b"a=\xc3\xa9", b"\xef\xbb\xbfa=1", b"a=\x00", b"a=\x7f", b"a=1\x85", b"a=1&b=\x1c",
])
def test_raw_bytes_outside_plain_ascii_are_refused(raw: bytes) -> None:
    with pytest.raises(BadInput):
        parse_into(raw, {})


@pytest.mark.parametrize("raw", [
    b"a=%3B&b=%23", b"a=%20", b"a=%0A", b"a=%C3%A9", b"a+b=c+d", b"a", b"a&b=", b"a=b=c", b"a=1&&b=2",
    b"a=%00", b"x=!$'()*,/:?@[]{}|~^`\\\"<>",
])
def test_plain_ascii_reads_as_urllib_reads_it(raw: bytes) -> None:
    parsed: dict[str, str] = {}
    parse_into(raw, parsed)
    assert list(parsed.items()) == parse_qsl(raw.decode(), keep_blank_values=True)


# -- the form body's Content-Type and Content-Encoding ----------------------------------------------------

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("content_type", [
    FORM, FORM.upper(), f"{FORM};", f"{FORM}; charset=utf-8", f"{FORM};charset=UTF-8", f'{FORM}; charset="UTF-8"',
    f"  {FORM} ; Charset=Utf-8 ",
])
def test_a_utf8_form_is_parsed(content_type: str) -> None:
    ctx = _parse(_ctx("POST", {"content-type": content_type}, body=b"Action=A&Version=1"))
    assert ctx.params == {"Action": "A", "Version": "1"}


@pytest.mark.parametrize("content_type", [
    "", "text/plain", "multipart/form-data; boundary=x", f"{FORM}; charset=utf-7", f"{FORM}; charset=utf8",
    f"{FORM}; charset=iso-8859-1", f"{FORM}; charset='utf-8'", f"{FORM}; charset=utf-8; charset=utf-8",
    f"{FORM}; charset=utf-8; x=y", f"{FORM}; x=y", f"{FORM}; charset = utf-8", f"{FORM},{FORM}",
    f"{FORM}; charset=utf-8,{FORM}; charset=utf-7",
])
def test_any_other_content_type_is_refused(content_type: str) -> None:
    with pytest.raises(BadInput):
        _parse(_ctx("POST", {"content-type": content_type}, body=b"Action=A"))


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "deflate", "br", "zstd", "", "identity, gzip"])
def test_a_content_encoding_is_refused_on_any_method(method: str, encoding: str) -> None:
    with pytest.raises(BadInput):
        _parse(_ctx(method, {"content-type": FORM, "content-encoding": encoding}))


def test_content_encoding_identity_is_nothing() -> None:
    ctx = _parse(_ctx("POST", {"content-type": FORM, "content-encoding": " Identity "}, body=b"Action=A"))
    assert ctx.params == {"Action": "A"}


# -- item 4: a body on any method but POST ----------------------------------------------------------------

@pytest.mark.parametrize("authorization", ["", "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature=s"])
def test_a_get_body_is_refused_for_v1_and_v3(authorization: str) -> None:
    headers = {"content-length": "3", "authorization": authorization}
    with pytest.raises(BadInput):
        _parse(_ctx("GET", headers, body=b"a=1"))


@pytest.mark.parametrize("headers", [{"content-length": "0"}, {"transfer-encoding": "chunked"}])
def test_an_empty_get_body_is_fine(headers: dict[str, str]) -> None:
    ctx = _parse(_ctx("GET", headers, query=b"Action=A"))
    assert ctx.params == {"Action": "A"}


# -- item 7: the Host against GATEWAY_HOSTS --------------------------------------------------------------

@pytest.mark.parametrize(("host", "split"), [
    ("api.example", ("api.example", None)),
    ("API.Example:8080", ("api.example", "8080")),
    ("[::1]", ("[::1]", None)),
    ("[::1]:8080", ("[::1]", "8080")),
    ("::1", ("[::1]", None)),
    ("api.example:http", ("api.example:http", None)),
    ("[::1]x", ("[::1]x", None)),
    ("", ("", None)),
])
def test_split_host(host: str, split: tuple[str, str | None]) -> None:
    assert split_host(host) == split


LAYER = Host(("api.example", "alt.example:8443", "[::1]:8080", "::2"))


@pytest.mark.parametrize("host", [
    "api.example", "API.EXAMPLE", "api.example:80", "api.example:8443", "alt.example:8443", "[::1]:8080",
    "[::2]", "[::2]:1",
])
def test_a_listed_host_is_admitted(host: str) -> None:
    LAYER(a_call(headers={"host": host}))


@pytest.mark.parametrize("host", [
    None, "", "other.example", "api.example.evil", "evil.api.example", "alt.example", "alt.example:443",
    "[::1]", "[::1]:8081", "api.example,other.example", "api.example:x", "api.example.",
])
def test_any_other_host_is_refused(host: str | None) -> None:
    with pytest.raises(BadInput):
        LAYER(a_call(headers={} if host is None else {"host": host}))
