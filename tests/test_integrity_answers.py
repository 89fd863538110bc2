"""#16 items 10, 11, 15 and 23 over HTTP: what the caller gets back, in proxy and in middleware mode.

The same ASGI app (`Answers`) is the upstream behind `ProxyApp` and the app `GatewayMiddleware`
wraps; the path picks its answer, so one test runs unchanged against both modes.
"""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway import GatewayMiddleware, Settings
from gateway.errors import Err
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.asgi import lifespan, read_body
from tests.support.client import Answer, get, signed_params
from tests.support.servers import serve_in_thread, wait_until

FORMATS = ("XML", "JSON")
MODES = ("proxy", "middleware")
CAP = 1024 * 1024  # GATEWAY_MAX_ANSWER_BYTES of these gateways
BIG = 64 * 1024 * 1024  # the 64 MB answer
_CHUNK = 64 * 1024

#: name -> (status, body): odd but valid JSON a service may send (item 10).
ODD: dict[str, tuple[int, bytes]] = {
    "nested": (200, b'{"A":[[1,2],[3],[]]}'),
    "nested-pretty": (200, b'{\n "A": [[1, 2], [3], []]\n}'),
    "big-float": (200, b'{"A":1e999,"B":-1e999,"C":0.1000000000000000055511151231257827}'),
    "big-float-pretty": (200, b'{\n "A": 1e999\n}'),
    "surrogate": (200, b'{"A":"x\\ud800y"}'),
    "surrogate-pretty": (200, b'{\n "A": "x\\ud800y"\n}'),
    "huge-int": (200, b'{"A":' + b"7" * 5000 + b"}"),
    "huge-int-pretty": (200, b'{\n "A": ' + b"7" * 5000 + b"\n}"),
    "nan": (200, b'{"A":NaN,"B":Infinity,"C":-Infinity}'),  # what Python's json.dumps writes by default
    "list": (200, b"[1,[2,3],{\"B\":4}]"),
    "string": (200, b'"just text"'),
    "number": (200, b"12345678901234567890123"),
    "error-without-code": (400, b'{"error":[["bad"]]}'),
    "error-with-odd-code": (404, b'{"Code":"Nope.NotFound","Message":"gone \\ud800","HostId":1e999}'),
}
NOT_JSON = {"truncated": (200, b"[1, 2"), "html": (502, b"<html>bad gateway</html>")}


class Answers:
    """``/<name>``: the ``ODD``/``NOT_JSON`` body; ``/big/<n>``: n bytes of JSON in 64 KiB chunks."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await read_body(receive)
        name = scope["path"].strip("/")
        if name.startswith("big/"):
            await _stream_json(send, int(name[4:]))
            return
        status, body = {**ODD, **NOT_JSON}[name]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


async def _stream_json(send: Send, size: int) -> None:
    """``{"Data":"xxx…"}`` of exactly ``size`` bytes, sent a chunk at a time without holding it."""
    head, tail = b'{"Data":"', b'"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % size)]})
    await send({"type": "http.response.body", "body": head, "more_body": True})
    left, chunk = size - len(head) - len(tail), b"x" * _CHUNK
    while left > 0:
        piece = chunk if left >= _CHUNK else chunk[:left]
        left -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": tail})


def _settings(**extra: Any) -> Settings:
    return Settings(config=str(DATA / "policy.toml"), host_id="gateway.test", max_answer_bytes=CAP, **extra)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(Answers()) as url:
        yield url


@pytest.fixture(scope="module", params=MODES)
def gw(request: pytest.FixtureRequest, policy: Policy) -> Iterator[str]:
    """The gateway in front of `Answers`: as `gateway serve` runs it (proxy), or as middleware."""
    if request.param == "proxy":
        config = _settings(upstream_url=request.getfixturevalue("upstream"))
        app = GatewayMiddleware(ProxyApp(config), settings=config, policy=policy, store=open_store(None))
    else:
        app = GatewayMiddleware(Answers(), settings=_settings(), policy=policy, store=open_store(None))
    with serve_in_thread(app) as url:
        yield url


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-JSON token {token}")


def strict_json(body: bytes) -> Any:
    """A strict JSON reading that loses nothing: numbers as their text, NaN/Infinity refused."""
    return json.loads(body, parse_constant=_reject_constant, parse_int=str, parse_float=str)


def parsed(answer: Answer, fmt: str) -> Any:
    """The answer read in the caller's format; fails the test if it does not parse."""
    if fmt == "XML":
        assert answer.headers["content-type"] == "text/xml;charset=utf-8", answer.body[:200]
        return ElementTree.fromstring(answer.body)
    assert answer.headers["content-type"] == "application/json;charset=utf-8", answer.body[:200]
    return strict_json(answer.body)


def ask(gw: str, name: str, fmt: str, **kw: Any) -> Answer:
    return get(f"{gw}/{name}", signed_params("DescribeRegions", fmt=fmt), client=httpx.Client(timeout=60), **kw)


# Item 10: odd service JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(ODD))
def test_odd_service_json_keeps_its_status_and_parses_in_the_callers_format(gw: str, name: str, fmt: str) -> None:
    answer = ask(gw, name, fmt)
    assert answer.status == ODD[name][0], answer.body[:300]
    parsed(answer, fmt)


@pytest.mark.parametrize("name", ["nested", "nested-pretty"])
def test_nested_arrays_become_item_elements(gw: str, name: str) -> None:
    root = parsed(ask(gw, name, "XML"), "XML")
    a = root.find("A")
    assert a is not None
    assert [[x.text for x in inner] for inner in a.findall("item")] == [["1", "2"], ["3"], []]
    assert parsed(ask(gw, name, "JSON"), "JSON")["A"] == [["1", "2"], ["3"], []]


def test_numbers_keep_their_decimal_text(gw: str) -> None:
    data = parsed(ask(gw, "big-float", "JSON"), "JSON")
    assert (data["A"], data["B"], data["C"]) == ("1e999", "-1e999", "0.1000000000000000055511151231257827")
    assert parsed(ask(gw, "big-float-pretty", "JSON"), "JSON")["A"] == "1e999"
    root = parsed(ask(gw, "big-float", "XML"), "XML")
    assert (root.findtext("A"), root.findtext("B")) == ("1e999", "-1e999")
    for name in ("huge-int", "huge-int-pretty"):
        assert parsed(ask(gw, name, "JSON"), "JSON")["A"] == "7" * 5000
        assert parsed(ask(gw, name, "XML"), "XML").findtext("A") == "7" * 5000


@pytest.mark.parametrize("name", ["surrogate", "surrogate-pretty"])
def test_a_lone_surrogate_is_escaped_in_json_and_replaced_in_xml(gw: str, name: str) -> None:
    answer = ask(gw, name, "JSON")
    assert b'"x\\ud800y"' in answer.body
    assert parsed(answer, "JSON")["A"] == "x\ud800y"
    assert parsed(ask(gw, name, "XML"), "XML").findtext("A") == "x\ufffdy"


def test_nan_and_infinity_are_null_in_json_and_kept_as_text_in_xml(gw: str) -> None:
    assert {k: v for k, v in parsed(ask(gw, "nan", "JSON"), "JSON").items() if k != "RequestId"} == {
        "A": None, "B": None, "C": None}
    root = parsed(ask(gw, "nan", "XML"), "XML")
    assert [root.findtext(k) for k in "ABC"] == ["NaN", "Infinity", "-Infinity"]


def test_a_top_level_value_that_is_no_object(gw: str) -> None:
    # JSON callers get the service's document itself; XML callers get it as <Result>, beside the RequestId.
    assert parsed(ask(gw, "list", "JSON"), "JSON") == ["1", ["2", "3"], {"B": "4"}]
    answer = ask(gw, "list", "XML")
    root = parsed(answer, "XML")
    assert root.tag == "DescribeRegionsResponse"
    assert root.findtext("RequestId") == answer.headers["x-acs-request-id"]
    items = root.findall("Result/item")
    assert (items[0].text, [x.text for x in items[1]], items[2].findtext("B")) == ("1", ["2", "3"], "4")
    assert parsed(ask(gw, "string", "XML"), "XML").findtext("Result") == "just text"
    assert parsed(ask(gw, "number", "XML"), "XML").findtext("Result") == "12345678901234567890123"


def test_a_service_error_keeps_its_code_and_status(gw: str) -> None:
    for fmt in FORMATS:
        answer = ask(gw, "error-with-odd-code", fmt)
        assert (answer.status, answer.code()) == (404, "Nope.NotFound")
        message = parsed(answer, fmt)
        text = message.findtext("Message") if fmt == "XML" else message["Message"]
        assert text == {"XML": "gone \ufffd", "JSON": "gone \ud800"}[fmt]
    root = parsed(ask(gw, "error-without-code", "XML"), "XML")
    assert [x.text for x in root.findall("error/item/item")] == ["bad"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(NOT_JSON))
def test_a_body_labelled_json_that_is_not_json_is_internal_error(gw: str, name: str, fmt: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway"):
        answer = ask(gw, name, fmt)
    assert (answer.status, answer.code()) == (500, "InternalError"), answer.body
    parsed(answer, fmt)
    request_id = answer.headers["x-acs-request-id"]
    assert any(request_id in r.getMessage() and "not JSON" in r.getMessage() for r in caplog.records)


# Item 11: the answer cap ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_answer_of_exactly_the_cap_is_rendered(gw: str, fmt: str) -> None:
    answer = ask(gw, f"big/{CAP}", fmt)
    assert answer.status == 200, answer.body[:300]
    data = parsed(answer, fmt)
    text = data.findtext("Data") if fmt == "XML" else data["Data"]
    assert text == "x" * (CAP - 11)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_answer_over_the_cap_is_internal_error_and_logged(gw: str, fmt: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway"):
        answer = ask(gw, f"big/{CAP + 1}", fmt)
    err = Err.INTERNAL_ERROR
    assert (answer.status, answer.code()) == (err.status, err.code), answer.body[:300]
    parsed(answer, fmt)
    request_id = answer.headers["x-acs-request-id"]
    assert any(request_id in r.getMessage() and str(CAP) in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_a_64_mb_answer_is_not_buffered(gw: str) -> None:
    # Gateway, upstream and client all run in this process: tracemalloc sees every byte they hold.
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        answer = ask(gw, f"big/{BIG}", "XML")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert (answer.status, answer.code()) == (500, "InternalError")
    assert peak < 4 * CAP + 2 * 1024 * 1024, f"{peak / 2**20:.1f} MiB held for a {BIG >> 20} MiB answer"


# Item 15: client text echoed in a Message ------------------------------------------------------------

ECHOED = {
    "crlf": ("Bad\r\nX-Injected: 1", "Bad\\x0d\\x0aX-Injected: 1"),
    "nul": ("a\x00b", "a\\x00b"),
    "line-separators": ("a\u2028b\u2029c\x85d", "a\\u2028b\\u2029c\\x85d"),
    "c0-c1-del": ("\x1b[31m\x7f\x9b", "\\x1b[31m\\x7f\\x9b"),
    "bidi": ("a\u202eb", "a\\u202eb"),
    "backslash": ("a\\x0d", "a\\\\x0d"),
    "long": ("N" * 10_000, "N" * 64 + "..."),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(ECHOED))
def test_a_parameter_name_is_echoed_escaped_and_truncated(gw: str, case: str, fmt: str) -> None:
    name, shown = ECHOED[case]
    answer = get(gw + "/nested", signed_params("DescribeRegions", {name: "1"}, fmt=fmt))
    assert (answer.status, answer.code()) == (400, "UnsupportedParameter"), answer.body[:300]
    data = parsed(answer, fmt)
    message = data.findtext("Message") if fmt == "XML" else data["Message"]
    assert message == Err.UNSUPPORTED_PARAMETER.value.template.format(name=shown)
    assert message.isprintable()


# Item 23: one access-log record per request, one line per record ---------------------------------------

LINE_BREAKS = {"vt": "%0B", "ff": "%0C", "fs": "%1C", "gs": "%1D", "rs": "%1E", "nel": "%C2%85",
               "ls": "%E2%80%A8", "ps": "%E2%80%A9", "cr-lf": "%0D%0A"}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("escape", list(LINE_BREAKS.values()), ids=list(LINE_BREAKS))
def test_an_access_log_record_stays_one_line(gw: str, escape: str) -> None:
    handler, logger = _Records(), logging.getLogger("gateway.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        response = httpx.get(f"{gw}/a{escape}b/c?Action=DescribeRegions", timeout=10)
        request_id = response.headers["x-acs-request-id"]
        # The record is written once the answer is out: wait for it rather than race it.
        wait_until(lambda: any(request_id in line for line in handler.lines), what="the access-log record")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [line for line in handler.lines if request_id in line]
    assert len(lines) == 1, handler.lines
    assert len(lines[0].splitlines()) == 1, lines[0]
    record = json.loads(lines[0])
    assert record["path"] == "/a" + unquote(escape) + "b/c"
