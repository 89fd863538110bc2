"""The access line is built by hand for speed (`gateway.accesslog.access_line`): it must be byte for byte
what ``json.dumps`` of the same record writes, whatever a client put in the path, key id or Action."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accesslog import access_line, log_request
from gateway.call import Call, Exchange


async def _receive() -> dict[str, object]:
    return {"type": "http.request"}


def _exchange(request_id: str, method: str, path: str, code: str, status: int, key_id: str | None,
              action: str | None) -> Exchange:
    ctx = Exchange(request_id, method, path, {}, "host", b"", _receive, "JSON", started=100.0)
    ctx.code, ctx.status = code, status
    if key_id is not None or action is not None:
        ctx.call = Call(request_id, method, path, {}, "host", "JSON", {}, {}, b"", "1.0", action, "2014-05-26",
                        key_id, None, None, None, None, None, None, None)
    return ctx


def _reference(ctx: Exchange, now: float) -> str:
    # What log_request wrote before: json.dumps of the record.
    return json.dumps({
        "RequestId": ctx.request_id, "AccessKeyId": ctx.access_key_id, "Action": ctx.action, "Code": ctx.code,
        "status": ctx.status, "method": ctx.method, "path": ctx.path,
        "duration_ms": round((now - ctx.started) * 1000, 3),
    }, separators=(",", ":"))


TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
TRICKY = st.sampled_from(['"', "\\", "\x7f", "\x00", "\n", "\u2028", "\u0085", "\ud800", "é", "/a b", "~"])


@settings(max_examples=400, deadline=None)
@given(request_id=TEXT | TRICKY, method=TEXT | TRICKY, path=TEXT | TRICKY, code=TEXT | TRICKY,
       status=st.integers(0, 999), key_id=st.none() | TEXT | TRICKY, action=st.none() | TEXT | TRICKY,
       elapsed=st.floats(0, 1e6, allow_nan=False))
def test_the_line_is_what_json_dumps_writes(request_id: str, method: str, path: str, code: str, status: int,
                                            key_id: str | None, action: str | None, elapsed: float) -> None:
    ctx = _exchange(request_id, method, path, code, status, key_id, action)
    line = access_line(ctx, 100.0 + elapsed)
    assert line == _reference(ctx, 100.0 + elapsed)
    assert line.isascii() and json.loads(line)["path"] == path


@pytest.mark.parametrize("path", ["/", "/a%20b", '/q"x', "/back\\slash", "/\u2028", "/\x7f"])
def test_common_and_odd_paths(path: str) -> None:
    ctx = _exchange("0D7F2C3A-0000-4000-8000-000000000000", "GET", path, "OK", 200, "LTAIkey", "DescribeRegions")
    assert access_line(ctx, 100.0125) == _reference(ctx, 100.0125)


def test_log_request_writes_the_line(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _exchange("0D7F2C3A-0000-4000-8000-000000000001", "POST", "/", "Throttling", 400, "LTAIkey", "RunIt")
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        log_request(ctx)
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    written = json.loads(record.getMessage())
    assert {k: v for k, v in written.items() if k != "duration_ms"} == {
        "RequestId": ctx.request_id, "AccessKeyId": "LTAIkey", "Action": "RunIt", "Code": "Throttling",
        "status": 400, "method": "POST", "path": "/"}
    assert written["duration_ms"] >= 0
    # The record still names the function that logged it, as a formatter with %(funcName)s shows.
    assert record.funcName == "log_request"
