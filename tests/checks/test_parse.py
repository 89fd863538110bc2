"""Units of `gateway.parse`: the request becomes one immutable `Call`; more in tests/test_request_shape.py."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from gateway.call import Call, Exchange
from gateway.catalog import Err
from gateway.errors import BadInput, ClientDisconnected, GatewayError
from gateway.parse import Parser
from gateway.policy import Policy
from gateway.signing import sign_request_v3


def _exchange(method: str = "GET", query: bytes = b"", headers: dict[str, str] | None = None,
              chunks: tuple[bytes, ...] = ()) -> Exchange:
    messages: list[Message] = [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
                               for n, chunk in enumerate(chunks)] or [{"type": "http.request", "body": b""}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return Exchange(request_id="R", method=method, path="/", headers=headers or {}, host_id="h",
                    query_string=query, receive=receive, format="XML")


def _parse(policy: Policy, exchange: Exchange, max_body: int = 1 << 20) -> Call:
    parsed = Parser(policy, max_body_bytes=max_body)(exchange)
    return parsed if isinstance(parsed, Call) else asyncio.run(parsed)  # type: ignore[arg-type]


def test_a_v1_get_is_parsed_without_a_coroutine(policy: Policy) -> None:
    exchange = _exchange(query=b"Action=DescribeRegions&Version=2014-05-26&AccessKeyId=LTAIalice&Format=json"
                               b"&SignatureNonce=n&Timestamp=t&Signature=s%2B&SignatureMethod=HMAC-SHA1"
                               b"&SignatureVersion=1.0")
    call = Parser(policy, max_body_bytes=100)(exchange)
    assert isinstance(call, Call)
    assert (call.action, call.version, call.access_key_id, call.signature, call.format) == (
        "DescribeRegions", "2014-05-26", "LTAIalice", "s+", "JSON")
    assert call.api is policy.api("2014-05-26", "DescribeRegions")
    assert call.key is policy.access_keys["LTAIalice"]
    assert call.identity is not None and call.identity["AccountId"] == 1111
    with pytest.raises(AttributeError):  # a named tuple's fields cannot be set
        call.action = "CreateOrder"  # type: ignore[misc]


def test_a_post_body_joins_the_query(policy: Policy) -> None:
    exchange = _exchange("POST", b"Action=A", {"content-type": "application/x-www-form-urlencoded"},
                         (b"Version=", b"1"))
    call = _parse(policy, exchange)
    assert call.params == {"Action": "A", "Version": "1"} and call.query == {"Action": "A"}
    assert call.body == b"Version=1" and call.api is None


def test_a_v3_call_reads_its_headers(policy: Policy) -> None:
    headers = sign_request_v3(method="GET", host="h", query={}, action="DescribeRegions", version="2014-05-26",
                              access_key_id="LTAIalice", secret="alice-secret")
    call = _parse(policy, _exchange(headers={k.lower(): v for k, v in headers.items()}))
    assert call.v3 is not None and call.signature_version == "3" and call.format == "JSON"
    assert call.key is policy.access_keys["LTAIalice"] and call.action == "DescribeRegions"


@pytest.mark.parametrize(("exchange", "err"), [
    (_exchange("PUT"), Err.UNSUPPORTED_HTTP_METHOD),
    (_exchange(query=b"a=1&a=2"), Err.INVALID_PARAMETER),
    (_exchange(headers={"authorization": "ACS3-HMAC-SHA256 nonsense"}), Err.INCOMPLETE_SIGNATURE),
    (_exchange(query=b"Action=A", headers={"x-acs-action": "B"}), Err.INVALID_PARAMETER),
    (_exchange("GET", headers={"content-length": "3"}, chunks=(b"a=1",)), Err.INVALID_PARAMETER),
])
def test_what_is_not_interpreted_is_refused(policy: Policy, exchange: Exchange, err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        _parse(policy, exchange)
    assert caught.value.err is err


def test_a_body_over_the_limit_is_refused_as_it_arrives(policy: Policy) -> None:
    exchange = _exchange("POST", headers={"content-type": "application/x-www-form-urlencoded"},
                         chunks=(b"a" * 60, b"b" * 60))
    with pytest.raises(BadInput) as caught:
        _parse(policy, exchange, max_body=100)
    assert "GATEWAY_MAX_BODY_BYTES" in caught.value.reason


def test_a_client_leaving_before_its_body_is_told_apart(policy: Policy) -> None:
    async def gone() -> Message:
        return {"type": "http.disconnect"}

    exchange = _exchange("POST")
    exchange.receive = gone
    with pytest.raises(ClientDisconnected):
        _parse(policy, exchange)


def test_a_refusal_while_parsing_keeps_the_format_read_so_far(policy: Policy) -> None:
    exchange = _exchange("POST", b"Format=JSON", {"content-type": "application/x-www-form-urlencoded"},
                         (b"a=1&a=2",))
    with pytest.raises(BadInput):
        _parse(policy, exchange)
    assert (exchange.format, exchange.format_known) == ("JSON", True)
