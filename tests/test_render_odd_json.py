"""Units of #16 items 10, 11 and 15: odd service JSON, the answer cap, echoed client text (no server)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message

from gateway.call import Exchange
from gateway.catalog import ECHO_LIMIT, Err, echo
from gateway.errors import GatewayError
from gateway.render import NotJson, Number, json_bytes, parse_json, success_body
from gateway.respond import Responder


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-JSON token {token}")


def _integer(text: str) -> str:
    return "0" if text == "-0" else text  # the same integer: a Python int has no negative zero


def strict(body: bytes) -> Any:
    """Strict JSON, numbers as their text: what the caller's parser reads, without loss."""
    return json.loads(body, parse_constant=_reject_constant, parse_int=_integer, parse_float=str)


def _context(fmt: str) -> Exchange:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    ctx = Exchange.start(scope, receive, fmt, "gateway.test")
    ctx.format = fmt
    return ctx


async def respond(fmt: str, status: int, chunks: list[bytes], **kw: Any) -> tuple[Exchange, list[Message]]:
    ctx, sent = _context(fmt), []

    async def send(message: Message) -> None:
        sent.append(message)

    responder = Responder(ctx, "DescribeOdd", send, **kw)
    await responder({"type": "http.response.start", "status": status,
                     "headers": [(b"content-type", b"application/json; charset=utf-8")]})
    for n, chunk in enumerate(chunks):
        await responder({"type": "http.response.body", "body": chunk, "more_body": n < len(chunks) - 1})
    return ctx, sent


# Arbitrary JSON documents, written as text so that they can hold what Python would not write.
_numbers = st.one_of(
    st.integers().map(str),
    st.from_regex(r"-?[1-9][0-9]{4300,4400}", fullmatch=True),  # past int's conversion limit
    st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-1e999", "1E400", "0.1000000000000000055511151231257827", "-0", "-0.0"]),
)
_strings = st.one_of(
    st.text().map(json.dumps),
    st.text().map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\ud83d\\ude00"', '"\\ude00\\ud83d"', '"\\u0000\\u2028"']),
)
_scalars = st.one_of(st.sampled_from(["null", "true", "false"]), _numbers, _strings)
_keys = st.one_of(_strings, st.sampled_from(['"Code"', '"RequestId"', '"@id"', '"#text"', '""', '"a b"']))
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(_keys, inner), max_size=5).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"),
    ),
    max_leaves=25,
)
_spacing = st.sampled_from(["", " ", "\n", "\r\n\t "])


@settings(max_examples=300, deadline=None)
@given(document=_documents, space=_spacing, fmt=st.sampled_from(["JSON", "XML"]),
       status=st.sampled_from([200, 201, 400, 404, 503]))
async def test_any_json_document_parses_in_the_callers_format(document: str, space: str, fmt: str,
                                                              status: int) -> None:
    raw = (space + document + space).encode("utf-8", "surrogatepass")
    ctx, sent = await respond(fmt, status, [raw])
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    assert start["status"] == status  # 2xx stays 2xx, and every other status stays itself
    assert dict(start["headers"])[b"content-type"].startswith(b"text/xml" if fmt == "XML" else b"application/json")
    if fmt == "XML":
        ElementTree.fromstring(body)
        return
    seen, sent_data = strict(body), strict(raw)
    if isinstance(sent_data, dict) and 200 <= status < 300:
        sent_data.pop("Code", None)
        sent_data.setdefault("RequestId", ctx.request_id)
    if not (status >= 400 and isinstance(sent_data, dict) and "Code" in sent_data):
        assert seen == sent_data  # nothing lost or changed, numbers to the digit


async def test_nan_and_infinity_are_null_for_json_callers() -> None:
    _, sent = await respond("JSON", 200, [b'{"A":NaN,"B":[Infinity,-Infinity]}'])
    assert strict(sent[1]["body"])["B"] == [None, None]


def test_numbers_that_a_float_or_int_would_change_keep_their_text() -> None:
    data = parse_json(b'{"a":1e999,"b":1.5,"c":1.50,"d":' + b"9" * 5000 + b',"e":12}')
    assert [type(v) for v in data.values()] == [Number, float, Number, Number, int]
    assert json_bytes(data) == b'{"a":1e999,"b":1.5,"c":1.50,"d":' + b"9" * 5000 + b',"e":12}'
    xml = ElementTree.fromstring(success_body("XML", "Describe", data))
    assert [child.text for child in xml] == ["1e999", "1.5", "1.50", "9" * 5000, "12"]


@pytest.mark.parametrize("raw", [b"[1, 2", b"{'a': 1}", b"\xff{}", b"<html/>", b"{} {}"])
def test_what_is_not_json_is_refused(raw: bytes) -> None:
    with pytest.raises(NotJson):
        parse_json(raw)


@pytest.mark.parametrize("fmt", ["JSON", "XML"])
async def test_a_document_nested_past_the_renderer_is_internal_error(fmt: str) -> None:
    _, sent = await respond(fmt, 200, [b"[" * 100_000 + b"]" * 100_000])
    assert sent[0]["status"] == 500
    assert b"InternalError" in sent[1]["body"]


@pytest.mark.parametrize("fmt", ["JSON", "XML"])
async def test_an_answer_within_the_cap_is_rendered_in_chunks(fmt: str) -> None:
    raw = b'{"A":"' + b"x" * 2000 + b'"}'
    _, sent = await respond(fmt, 200, [raw[:1000], raw[1000:]], max_answer=len(raw))
    assert sent[0]["status"] == 200


async def test_the_send_that_crosses_the_cap_raises_and_nothing_is_sent() -> None:
    ctx, sent = _context("XML"), []

    async def send(message: Message) -> None:
        sent.append(message)

    responder = Responder(ctx, "DescribeOdd", send, max_answer=1024)
    await responder({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await responder({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
    with pytest.raises(GatewayError) as raised:
        await responder({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
    assert raised.value.err is Err.INTERNAL_ERROR
    assert (responder.refused, responder.started, sent) == (True, False, [])
    with pytest.raises(GatewayError):  # an app that carries on is refused again, and never answers
        await responder({"type": "http.response.start", "status": 200, "headers": []})


async def test_a_compressed_json_answer_is_relayed_as_it_came() -> None:
    ctx, sent = _context("XML"), []

    async def send(message: Message) -> None:
        sent.append(message)

    responder = Responder(ctx, "DescribeOdd", send)
    await responder({"type": "http.response.start", "status": 200,
                     "headers": [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]})
    await responder({"type": "http.response.body", "body": b"\x1f\x8b..."})
    assert [m.get("body") for m in sent] == [None, b"\x1f\x8b..."]


@pytest.mark.parametrize(("text", "shown"), [
    ("InstanceId", "InstanceId"),
    ("a\r\nb", "a\\x0d\\x0ab"),
    ("\x00\x0b\x0c\x1c\x1d\x1e\x7f\x85\x9f", "\\x00\\x0b\\x0c\\x1c\\x1d\\x1e\\x7f\\x85\\x9f"),
    ("\u2028\u2029\u200b\u202e\u2066\ufeff", "\\u2028\\u2029\\u200b\\u202e\\u2066\\ufeff"),
    ("\ud800\ufffe\uffff", "\\ud800\\ufffe\\uffff"),
    ("back\\slash", "back\\\\slash"),
    ("名前", "名前"),
    ("x" * ECHO_LIMIT, "x" * ECHO_LIMIT),
    ("x" * (ECHO_LIMIT + 1), "x" * ECHO_LIMIT + "..."),
])
def test_echo_escapes_and_cuts_client_text(text: str, shown: str) -> None:
    assert echo(text) == shown


@given(st.text(st.characters(codec=None)) | st.text())
def test_echoed_text_is_short_and_one_line_without_controls(text: str) -> None:
    shown = echo(text)
    assert len(shown.splitlines()) <= 1 and len(shown) <= ECHO_LIMIT * 10 + 3
    assert not [c for c in shown if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
