"""Real clients against the live gateway (uvicorn; memory store, then a real redis-server).

The official SDKs — ``aliyun-python-sdk-core`` (signature 1.0) and ``alibabacloud-tea-openapi``
(``ACS3-HMAC-SHA256`` by default, 1.0 with ``signature_algorithm="v2"``) — call the echo service
through the gateway, GET and POST, with non-ASCII and reserved-character values, and every call must
arrive exactly as sent. Then what they sent is replayed, exactly and altered, and the SDKs are made
to fail (wrong secret, old clock, reused nonce) to show they read our error bodies. Last, the wire
variants CONTRACT §2 lists that the SDKs do not produce themselves, made by hand with
``gateway.signing``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus
from xml.etree import ElementTree

import httpx
import pytest
from alibabacloud_tea_openapi.exceptions import ThrottlingException
from aliyunsdkcore.acs_exception.exceptions import ServerException

from gateway.checks.params import COMMON_PARAMETERS
from gateway.errors import Err
from gateway.signing import (
    canonical_request_v3,
    hash_payload,
    percent_encode,
    sign_request_v1,
    sign_request_v3,
    sign_v3,
    string_to_sign_v3,
)
from tests.conftest import LiveGateway
from tests.support.client import VERSION, timestamp
from tests.support.keys import SECRETS
from tests.support.sdk import (
    KEY,
    SDKS,
    Wire,
    core_client,
    core_request,
    error_code,
    fix_clock,
    fix_nonce,
    flatten,
    host_of,
    sdk_call,
    tea_call,
    tea_client,
)

ACTION = "DescribeEcho"
METHODS = ("GET", "POST")
FORM = "application/x-www-form-urlencoded"

# The characters the SDKs put on the wire in different ways (space, * ~ / + :), the separators of a
# query string, a literal percent, and text outside ASCII and Latin-1.
TEXT = "a b*c~d/e+f:g &x=y 100% — 你好 Grüße é"
NOTE = "Ünïcödé ☃ + * / : ~ end"
TAGS = ["p q", "r*s/t:u~v"]


def _params(method: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(query, form body) for a call: GET sends everything in the query, POST splits it."""
    if method == "GET":
        return {"Text": TEXT, "Note": NOTE, "Tag": TAGS, "PageSize": "10"}, None
    return {"Tag": TAGS, "PageSize": "10"}, {"Text": TEXT, "Note": NOTE}


def _call(url: str, sdk: str, method: str, *, secret: str | None = None) -> dict[str, Any]:
    """``sdk`` calls the echo API with `_params`: the decoded answer, or the SDK's exception."""
    query, body = _params(method)
    return sdk_call(sdk, url, ACTION, method, query, body, secret=secret)


#: Each SDK with each method: the tests that start from one SDK call.
EACH_CALL = pytest.mark.parametrize(("sdk", "method"), [(sdk, method) for sdk in SDKS for method in METHODS])


def _echoed(answer: dict[str, Any]) -> dict[str, str]:
    """The API's own parameters as the wrapped service received them."""
    params: dict[str, str] = answer["Echo"]["Params"]
    return {k: v for k, v in params.items() if k not in COMMON_PARAMETERS}


def _expected(method: str) -> dict[str, str]:
    query, body = _params(method)
    return {**flatten(query), **flatten(body or {})}


def _code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("text/xml"):
        return ElementTree.fromstring(response.content).findtext("Code")
    code = response.json().get("Code")
    return code if isinstance(code, str) else None


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    yield Wire(monkeypatch)


# --- the SDKs' own calls are accepted, and arrive exactly -----------------------------------------


@EACH_CALL
def test_sdk_call_is_accepted_and_arrives_exactly(gateway: LiveGateway, wire: Wire, sdk: str, method: str) -> None:
    answer = _call(gateway.url, sdk, method)
    assert wire.last.status == 200
    assert wire.last.method == method
    assert _echoed(answer) == _expected(method)
    assert answer["Echo"]["Caller"]["AccessKeyId"] == KEY
    assert "Code" not in answer


# What each SDK puts on the wire (observed from aliyun-python-sdk-core 2.16 and
# alibabacloud-tea-openapi 0.4): the assumptions CONTRACT §2 is built on, pinned so that an SDK
# upgrade that changes them shows up here first.


def test_wire_of_sdk_core(memory_gateway: LiveGateway, wire: Wire) -> None:
    _call(memory_gateway.url, "core", "POST")
    sent = wire.last
    # Every common parameter in the query, values RFC 3986-encoded (space %20, * %2A, ~ kept).
    for pair in ("Format=JSON", "RegionId=cn-hangzhou", "SignatureType=", "SignatureMethod=HMAC-SHA1",
                 "SignatureVersion=1.0", f"AccessKeyId={KEY}", "Tag.1=p%20q", "Tag.2=r%2As%2Ft%3Au~v"):
        assert pair in sent.raw_query.split("&")
    assert re.search(r"(?:^|&)SignatureNonce=[0-9a-f]{32}(?:&|$)", sent.raw_query)
    assert re.search(r"(?:^|&)Timestamp=\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\dZ(?:&|$)", sent.raw_query)
    # The form body is urlencode()d: space as +, and only the body parameters are in it.
    assert sent.header("Content-Type") == FORM
    assert b"Note=%C3%9Cn%C3%AFc%C3%B6d%C3%A9+%E2%98%83+%2B+%2A+%2F+%3A+~+end" in sent.body.split(b"&")
    assert b"Text=" in sent.body and b"Text=" not in sent.raw_query.encode()
    assert sent.header("x-acs-action") == ACTION and sent.header("Accept") == "*/*"


def test_wire_of_tea_openapi_v3(memory_gateway: LiveGateway, wire: Wire) -> None:
    _call(memory_gateway.url, "tea-v3", "POST")
    sent = wire.last
    # Only the API's parameters in the query, urlencode()d (space as +); no Format, no RegionId.
    assert sent.raw_query == "Tag.1=p+q&Tag.2=r%2As%2Ft%3Au~v&PageSize=10"
    assert sent.header("host") == host_of(memory_gateway.url)  # with its port
    assert sent.header("accept") == "application/json"
    assert sent.header("content-type") == FORM
    assert sent.header("x-acs-content-sha256") == hash_payload(sent.body)
    assert re.fullmatch(r"[0-9a-f]{32}", sent.header("x-acs-signature-nonce") or "")
    authorization = sent.header("Authorization") or ""
    assert authorization.startswith(f"ACS3-HMAC-SHA256 Credential={KEY},SignedHeaders=")
    signed = authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    assert {"host", "user-agent", "accept", "content-type", "x-acs-action", "x-acs-version",
            "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"} <= set(signed)


def test_wire_of_tea_openapi_v2(memory_gateway: LiveGateway, wire: Wire) -> None:
    _call(memory_gateway.url, "tea-v2", "POST")
    sent = wire.last
    pairs = sent.raw_query.split("&")
    # Signature 1.0, every common parameter in the query, Format in lower case, no RegionId.
    assert "Format=json" in pairs and "SignatureVersion=1.0" in pairs
    assert not any(p.startswith(("RegionId=", "SignatureType=")) for p in pairs)
    assert sent.header("Authorization") is None
    assert b"Note=%C3%9Cn%C3%AFc%C3%B6d%C3%A9+%E2%98%83+%2B+%2A+%2F+%3A+~+end" in sent.body.split(b"&")


# --- what an SDK sent, replayed ------------------------------------------------------------------


@EACH_CALL
def test_tampered_copy_is_incomplete_signature(gateway: LiveGateway, wire: Wire, sdk: str, method: str) -> None:
    _call(gateway.url, sdk, method)
    sent = wire.last
    # GET: a query parameter; POST: one in the query and one in the form body (for V3 the body is
    # covered by x-acs-content-sha256 alone).
    for name in ("Text", "PageSize") if method == "POST" else ("Text",):
        refused = sent.tampered(name, "11" if name == "PageSize" else "tampered")
        assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature"), refused.text


@EACH_CALL
def test_exact_replay_is_signature_nonce_used(gateway: LiveGateway, wire: Wire, sdk: str, method: str) -> None:
    _call(gateway.url, sdk, method)
    replayed = wire.last.replay()
    assert (replayed.status_code, _code(replayed)) == (400, "SignatureNonceUsed"), replayed.text
    assert replayed.headers["content-type"] == "application/json;charset=utf-8"


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_reusing_a_nonce_raises_signature_nonce_used(
    gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch, sdk: str
) -> None:
    fix_nonce(monkeypatch, uuid.uuid4().hex)
    query, _ = _params("GET")
    sdk_call(sdk, gateway.url, ACTION, "GET", query)
    with pytest.raises(Exception) as raised:
        sdk_call(sdk, gateway.url, ACTION, "GET", {**query, "Text": "another call, same nonce"})
    assert error_code(raised.value) == "SignatureNonceUsed"


@EACH_CALL
def test_sdk_with_a_wrong_secret_raises_incomplete_signature(gateway: LiveGateway, sdk: str, method: str) -> None:
    with pytest.raises(Exception) as raised:
        _call(gateway.url, sdk, method, secret="not-the-secret")
    assert error_code(raised.value) == "IncompleteSignature"


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_with_an_old_clock_raises_illegal_timestamp(
    gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch, sdk: str
) -> None:
    fix_clock(monkeypatch, timestamp(-3700))
    with pytest.raises(Exception) as raised:
        sdk_call(sdk, gateway.url, ACTION, "GET", {"Text": TEXT})
    assert error_code(raised.value) == "IllegalTimestamp"


# --- the SDKs read our error bodies --------------------------------------------------------------

MESSAGE = Err.INCOMPLETE_SIGNATURE.value.message()


def test_sdk_core_reads_a_json_error(memory_gateway: LiveGateway, wire: Wire) -> None:
    # do_action_with_exception always asks for Format=JSON, and only ever parses JSON.
    request = core_request(memory_gateway.url, ACTION, "GET", {"Text": TEXT})
    with pytest.raises(ServerException) as raised:
        core_client(secret="not-the-secret").do_action_with_exception(request)
    exc = raised.value
    assert (exc.get_http_status(), exc.get_error_code(), exc.get_error_msg()) == (
        400, "IncompleteSignature", MESSAGE)
    assert exc.get_request_id() == wire.last.response_headers["x-acs-request-id"]


@pytest.mark.filterwarnings("ignore:implementation_of_do_action:DeprecationWarning")
def test_sdk_core_gets_an_xml_error(memory_gateway: LiveGateway) -> None:
    # Format=XML is sent by get_response() when the request asks for it; sdk-core hands the raw
    # answer back (its exception parser reads JSON only), so the body is checked here.
    request = core_request(memory_gateway.url, ACTION, "GET", {"Text": TEXT})
    request.set_accept_format("XML")
    status, headers, body = core_client(secret="not-the-secret").get_response(request)
    assert status == 400
    assert headers["content-type"] == "text/xml;charset=utf-8"
    root = ElementTree.fromstring(body)
    assert [child.tag for child in root] == ["RequestId", "HostId", "Code", "Message"]
    assert (root.findtext("Code"), root.findtext("Message")) == ("IncompleteSignature", MESSAGE)
    assert root.findtext("RequestId") == headers["x-acs-request-id"]


@pytest.mark.parametrize(
    ("sdk", "accept"),
    [("tea-v3", None), ("tea-v3", "application/xml"), ("tea-v2", None)],
    ids=["v3-json", "v3-xml", "v2-json"],
)
def test_tea_openapi_reads_our_error(
    memory_gateway: LiveGateway, wire: Wire, sdk: str, accept: str | None
) -> None:
    # V3 answers JSON (the SDK sends Accept: application/json) unless Accept asks for XML; tea parses
    # XML only under the exact content type text/xml;charset=utf-8. v2 sends Format=json.
    client = tea_client(memory_gateway.url, v2=sdk == "tea-v2", secret="not-the-secret")
    with pytest.raises(Exception) as raised:
        tea_call(client, ACTION, "GET", {"Text": TEXT}, headers={"accept": accept} if accept else None)
    exc: Any = raised.value
    request_id = wire.last.response_headers["x-acs-request-id"]
    expected_type = "text/xml;charset=utf-8" if accept else "application/json;charset=utf-8"
    assert wire.last.response_headers["content-type"] == expected_type
    assert (exc.status_code, exc.code, exc.request_id) == (400, "IncompleteSignature", request_id)
    assert exc.message == f"code: 400, {MESSAGE} request id: {request_id}"
    assert exc.data["HostId"] == "gateway.test"


def test_sdks_read_throttling_and_its_retry_after(memory_gateway: LiveGateway, wire: Wire) -> None:
    # DescribeFlowLimited admits one call an hour: the first may pass, the next are Throttling.
    client = tea_client(memory_gateway.url)
    with pytest.raises(ThrottlingException) as raised:
        for _ in range(2):
            tea_call(client, "DescribeFlowLimited", "GET", {})
    exc = raised.value
    retry_after_ms = int(wire.last.response_headers["x-acs-retry-after"])
    # tea reads x-acs-retry-after as milliseconds, the unit the gateway sends it in.
    assert (exc.code, exc.retry_after) == ("Throttling", retry_after_ms)
    assert 0 < retry_after_ms <= 3_600_000
    with pytest.raises(ServerException) as core_raised:
        sdk_call("core", memory_gateway.url, "DescribeFlowLimited", "GET", {})
    assert (core_raised.value.get_error_code(), core_raised.value.get_http_status()) == ("Throttling", 400)


# --- wire variants by hand (CONTRACT §2), signed with gateway.signing -----------------------------

VALUE = "a b*c/d:e~f"


def _v1(method: str = "GET", **params: str) -> dict[str, str]:
    return sign_request_v1({"Action": ACTION, "Version": VERSION, "Format": "JSON", **params},
                           access_key_id=KEY, secret=SECRETS[KEY], method=method)


def _encode(params: dict[str, str], quote_value: Any = percent_encode) -> str:
    return "&".join(f"{percent_encode(k)}={quote_value(v)}" for k, v in params.items())


def _accepted(response: httpx.Response, **expected: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert {k: answer["Echo"]["Params"].get(k) for k in expected} == expected
    return answer


ENCODINGS = {
    "pct20": percent_encode,                                 # RFC 3986: space %20, * %2A, / %2F
    "plus": quote_plus,                                      # urlencode(): space +
    "unescaped": lambda v: quote(v, safe="*/:~"),            # * / : left raw, space %20
    "plus-unescaped": lambda v: quote_plus(v, safe="*/:~"),  # * / : raw, space +
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_one_value_in_any_wire_encoding_verifies(gateway: LiveGateway, encoding: str) -> None:
    raw = _encode(_v1(Text=VALUE), ENCODINGS[encoding])
    _accepted(httpx.get(f"{gateway.url}/?{raw}"), Text=VALUE)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_one_value_in_any_form_body_encoding_verifies(gateway: LiveGateway, encoding: str) -> None:
    raw = _encode(_v1("POST", Text=VALUE), ENCODINGS[encoding])
    _accepted(httpx.post(f"{gateway.url}/", content=raw, headers={"content-type": FORM}), Text=VALUE)


def test_post_with_every_parameter_in_the_query_and_an_empty_body(gateway: LiveGateway) -> None:
    answer = _accepted(httpx.post(f"{gateway.url}/?{_encode(_v1('POST', Text=VALUE))}"), Text=VALUE)
    assert answer["Echo"]["BodyLength"] == 0
    # The same with a form Content-Type announcing the empty body.
    raw = _encode(_v1("POST", Text=VALUE))
    _accepted(httpx.post(f"{gateway.url}/?{raw}", content=b"", headers={"content-type": FORM}), Text=VALUE)


def test_post_split_between_query_and_form_body(gateway: LiveGateway) -> None:
    signed = _v1("POST", Text=VALUE, Note=NOTE)
    in_query = {k: v for k, v in signed.items() if k in ("Action", "Version", "Text", "Signature")}
    in_body = {k: v for k, v in signed.items() if k not in in_query}
    response = httpx.post(f"{gateway.url}/?{_encode(in_query)}", content=_encode(in_body, quote_plus),
                          headers={"content-type": f"{FORM}; charset=UTF-8"})
    _accepted(response, Text=VALUE, Note=NOTE)
    # Both halves are signed: change either and the signature fails.
    for half in ("query", "body"):
        query = {**in_query, "Text": "x"} if half == "query" else in_query
        body = {**in_body, "Note": "x"} if half == "body" else in_body
        refused = httpx.post(f"{gateway.url}/?{_encode(query)}", content=_encode(body),
                             headers={"content-type": FORM})
        assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")


def test_post_with_every_common_parameter_in_the_body_and_an_empty_query(gateway: LiveGateway) -> None:
    signed = _v1("POST", Text=VALUE)
    assert "Format" in signed
    response = httpx.post(f"{gateway.url}/", content=_encode(signed), headers={"content-type": FORM})
    _accepted(response, Text=VALUE, Format="JSON")
    # Format was read from the body.
    assert response.headers["content-type"] == "application/json;charset=utf-8"


def test_post_with_every_parameter_in_an_xml_body_is_answered_in_xml(gateway: LiveGateway) -> None:
    # Format=XML from the body governs refusals too: a wrong signature is an XML error.
    signed = {**_v1("POST", Text=VALUE, Format="XML"), "Text": "tampered"}
    refused = httpx.post(f"{gateway.url}/", content=_encode(signed), headers={"content-type": FORM})
    assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")
    assert refused.headers["content-type"] == "text/xml;charset=utf-8"


def test_chunked_post_body_without_content_length(gateway: LiveGateway) -> None:
    body = _encode(_v1("POST", Text=VALUE, Note=NOTE)).encode()
    chunks = iter([body[:7], body[7:40], body[40:]])  # an iterator: httpx sends it chunked
    request = httpx.Request("POST", f"{gateway.url}/", content=chunks, headers={"content-type": FORM})
    assert request.headers["transfer-encoding"] == "chunked" and "content-length" not in request.headers
    with httpx.Client() as client:
        answer = _accepted(client.send(request), Text=VALUE, Note=NOTE)
    assert answer["Echo"]["BodyLength"] == len(body)


def _v3(gw: LiveGateway, method: str, query: dict[str, str], body: bytes = b"", **kw: Any) -> dict[str, str]:
    return sign_request_v3(method=method, host=host_of(gw.url), query=query, body=body, action=ACTION,
                           version=VERSION, access_key_id=KEY, secret=SECRETS[KEY], **kw)


def test_v3_get_with_an_unsigned_content_type(gateway: LiveGateway) -> None:
    headers = _v3(gateway, "GET", {"Text": VALUE})
    assert "content-type" not in headers["authorization"]
    response = httpx.get(f"{gateway.url}/?{_encode({'Text': VALUE}, quote_plus)}",
                         headers={**headers, "content-type": FORM, "x-unsigned": "anything"})
    _accepted(response, Text=VALUE)


def test_v3_post_form_body_is_covered_by_the_content_hash_alone(gateway: LiveGateway) -> None:
    body = _encode({"Text": VALUE, "Note": NOTE}, quote_plus).encode()
    headers = {**_v3(gateway, "POST", {"PageSize": "10"}, body), "content-type": FORM}
    url = f"{gateway.url}/?PageSize=10"
    _accepted(httpx.post(url, content=body, headers=headers), Text=VALUE, Note=NOTE, PageSize="10")
    # A fresh request, its body changed after signing: the hash no longer matches.
    headers = {**_v3(gateway, "POST", {"PageSize": "10"}, body), "content-type": FORM}
    tampered = body.replace(b"Text=a", b"Text=b")
    refused = httpx.post(url, content=tampered, headers=headers)
    assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")
    # ... and so is the hash changed along with it, since the hash is signed.
    headers = {**_v3(gateway, "POST", {"PageSize": "10"}, body), "content-type": FORM}
    headers["x-acs-content-sha256"] = hash_payload(tampered)
    refused = httpx.post(url, content=tampered, headers=headers)
    assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")


@pytest.mark.parametrize("left_out", ["host", "x-acs-signature-nonce"])
def test_v3_signed_headers_must_include(gateway: LiveGateway, left_out: str) -> None:
    headers = _v3(gateway, "GET", {"Text": VALUE})
    signed = sorted(name for name in headers if name != "authorization" and name != left_out)
    payload = headers["x-acs-content-sha256"]
    canonical = canonical_request_v3("GET", "/", {"Text": VALUE}, headers, signed, payload)
    signature = sign_v3(SECRETS[KEY], string_to_sign_v3(canonical))
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={KEY},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    refused = httpx.get(f"{gateway.url}/?{_encode({'Text': VALUE})}", headers=headers)
    assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")


def test_v3_host_is_signed_with_its_port(gateway: LiveGateway) -> None:
    host = host_of(gateway.url)
    assert ":" in host
    headers = _v3(gateway, "GET", {"Text": VALUE})
    assert headers["host"] == host
    _accepted(httpx.get(f"{gateway.url}/?{_encode({'Text': VALUE})}", headers=headers), Text=VALUE)
    # Signed without the port but sent (as HTTP clients do) with it: not the host that was signed.
    headers = sign_request_v3(method="GET", host=host.split(":")[0], query={"Text": VALUE}, action=ACTION,
                              version=VERSION, access_key_id=KEY, secret=SECRETS[KEY])
    del headers["host"]
    refused = httpx.get(f"{gateway.url}/?{_encode({'Text': VALUE})}", headers=headers)
    assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature")


# --- one request, one API -------------------------------------------------------------------------
# The layers authorize the Action the request is verified as; a second, different Action (or
# Version) beside it would be what a service behind the gateway that reads the other place runs.
# LTAIreadonly may only call Describe*.


def test_v3_query_action_must_be_the_signed_action(gateway: LiveGateway) -> None:
    before = sum(gateway.service.executed.values())
    for name, value in (("Action", "DeleteInstance"), ("Version", "2016-01-01")):
        headers = sign_request_v3(method="GET", host=host_of(gateway.url), query={name: value},
                                  action="DescribeRegions", version=VERSION, access_key_id="LTAIreadonly",
                                  secret=SECRETS["LTAIreadonly"])
        refused = httpx.get(f"{gateway.url}/?{name}={value}", headers=headers)
        assert (refused.status_code, _code(refused)) == (400, "InvalidParameter"), refused.text
        assert refused.headers["content-type"] == "application/json;charset=utf-8"
    assert sum(gateway.service.executed.values()) == before
    # Naming the same API in both places is harmless.
    headers = _v3(gateway, "GET", {"Action": ACTION, "Version": VERSION})
    _accepted(httpx.get(f"{gateway.url}/?Action={ACTION}&Version={VERSION}", headers=headers), Action=ACTION)


def test_v1_x_acs_headers_must_name_the_signed_action(gateway: LiveGateway) -> None:
    before = sum(gateway.service.executed.values())
    for header, value in (("x-acs-action", "DeleteInstance"), ("x-acs-version", "2016-01-01")):
        signed = sign_request_v1({"Action": "DescribeRegions", "Version": VERSION, "Format": "JSON"},
                                 access_key_id="LTAIreadonly", secret=SECRETS["LTAIreadonly"])
        refused = httpx.get(f"{gateway.url}/?{_encode(signed)}", headers={header: value})
        assert (refused.status_code, _code(refused)) == (400, "InvalidParameter"), refused.text
        assert refused.headers["content-type"] == "application/json;charset=utf-8"
    assert sum(gateway.service.executed.values()) == before
    # sdk-core and tea-openapi "v2" send both, equal: accepted (as the SDK tests above show).
    signed = _v1(Text=VALUE)
    response = httpx.get(f"{gateway.url}/?{_encode(signed)}",
                         headers={"x-acs-action": ACTION, "x-acs-version": VERSION})
    _accepted(response, Text=VALUE)
