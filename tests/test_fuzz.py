"""HTTP fuzzing against a live gateway: a small, derandomized sample (tests/test_fuzz_campaign.py is the full run).

The gateway runs under a real uvicorn with the HTTP protocol `gateway serve` runs (gateway/serving/:
its head bound, header timeout and connection cap), in front of the echo service, with no
GATEWAY_HOST_ID so that the Host header is reflected as HostId. Requests are written as raw bytes on a
socket (tests/support/fuzzing/ says why, and how answers are judged). The invariants, for every
input: never InternalError, never a 5xx but a catalogued one with its body, never a traceback or a
secret in a body, every answer a catalogued code in a body that parses in its content type (or
uvicorn's own ``400 Invalid HTTP request received.`` when httptools refuses the framing), a head over
GATEWAY_MAX_HEADER_BYTES refused with the server's plain-text ``431`` and a head within it never, and
no signed request with a flipped byte admitted unless the flip leaves what the signature covers
unchanged; the echo service sees exactly what was signed, and the caller the signature proves.

The tests at the end are bugs found on the way, fixed since: they stay as regressions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import GatewayMiddleware, Settings
from gateway.errors import Err
from gateway.policy import Policy
from gateway.serving import Limits, protocol
from gateway.signing import sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import VERSION, call_v3, query, signed_params
from tests.support.fuzzing.meaning import Signed, check_echo, expectation
from tests.support.fuzzing.oracle import ADMIT, ANY, REFUSE, judge
from tests.support.fuzzing.signed import Mutation, mutations, signed_semantics
from tests.support.fuzzing.strategies import padded, raw_requests
from tests.support.fuzzing.wire import RawAnswer, RawRequest, address_of, exchange
from tests.support.keys import SECRETS
from tests.support.servers import serve_in_thread

# Derandomized: CI runs the same sample every time (a red build means a regression, not luck); the
# random exploration is tests/test_fuzz_campaign.py's (make fuzz). Sized for the whole file to run in well under 40 s.
SAMPLE = settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


class Live:
    def __init__(self, url: str, max_head: int) -> None:
        self.url = url
        self.address = address_of(url)
        self.host = f"{self.address[0]}:{self.address[1]}".encode()
        self.max_head = max_head  # GATEWAY_MAX_HEADER_BYTES


@contextmanager
def served(app: ASGIApp, config: Settings) -> Iterator[str]:
    """``app`` under uvicorn with the protocol `gateway serve` passes it, bound by ``config``."""
    with serve_in_thread(app, http=protocol(Limits.from_settings(config))) as url:
        yield url


@pytest.fixture(scope="module")
def live(policy: Policy) -> Iterator[Live]:
    config = Settings(config=str(DATA / "policy.toml"))  # no host_id: HostId is the Host header
    app = GatewayMiddleware(EchoService(), settings=config, policy=policy, store=open_store(None))
    with served(app, config) as url:
        yield Live(url, config.max_header_bytes)


def check(live: Live, request: RawRequest, expect: str, signed: Signed | None = None) -> str:
    answer = exchange(live.address, request)
    verdict = judge(request, answer, expect, check_echo(signed) if signed else None, max_head=live.max_head)
    assert not verdict.violations, (verdict.violations, request.short())
    return verdict.outcome


@settings(SAMPLE, max_examples=1000)
@given(data=st.data())
def test_hostile_requests_get_catalogued_answers(live: Live, data: st.DataObject) -> None:
    check(live, data.draw(raw_requests(live.max_head)), REFUSE)


@settings(SAMPLE, max_examples=800)
@given(data=st.data())
def test_signed_requests_asking_for_anything_get_catalogued_answers(live: Live, data: st.DataObject) -> None:
    signed = data.draw(signed_semantics(live.host))
    check(live, signed.request, ANY, signed)


@settings(SAMPLE, max_examples=1500)
@given(data=st.data())
def test_a_flipped_byte_in_a_v1_request_is_refused_unless_neutral(live: Live, data: st.DataObject) -> None:
    mutation: Mutation = data.draw(mutations(live.host, ("V1",), live.max_head))
    check(live, mutation.request, mutation.expect, mutation.signed)


@settings(SAMPLE, max_examples=1500)
@given(data=st.data())
def test_a_flipped_byte_in_a_v3_request_is_refused_unless_neutral(live: Live, data: st.DataObject) -> None:
    mutation: Mutation = data.draw(mutations(live.host, ("V3",), live.max_head))
    check(live, mutation.request, mutation.expect, mutation.signed)


def test_the_oracle_tells_neutral_flips_from_meaningful_ones(live: Live) -> None:
    """A few flips decided by hand, so that a wrong oracle cannot pass the sampled tests quietly."""
    signed = signed_params("DescribeRegions")
    target = f"/?{query(signed)}".encode()
    base = Signed("V1", RawRequest(b"GET", target, ((b"host", live.host), (b"user-agent", b"fuzz"))),
                  {k: v for k, v in signed.items() if k != "Signature"})
    escape = target.index(b"%3A") + 2  # the "A" of an escape in the Timestamp
    cases = {
        ADMIT: [target[:escape] + b"a" + target[escape + 1:]],  # %3A -> %3a: the same text
        REFUSE: [target.replace(b"DescribeRegions", b"DescribeRegionz"),  # another action
                 target.replace(b"Format=JSON", b"Format=JSOM")],  # a signed value
    }
    for expect, targets in cases.items():
        for changed in targets:
            mutated = RawRequest(b"GET", changed, base.request.headers)
            assert expectation(base, mutated) == expect, changed
    renamed = RawRequest(b"GET", target, ((b"host", live.host), (b"User-Agent", b"fuzz")))
    assert expectation(base, renamed) == ADMIT
    # And the gateway agrees on the one admitted flip (a fresh signature each: nonces are single-use).
    fresh = signed_params("DescribeRegions")
    fresh_target = f"/?{query(fresh)}".encode()
    at = fresh_target.index(b"%3A") + 2
    flipped = RawRequest(b"GET", fresh_target[:at] + b"a" + fresh_target[at + 1:], base.request.headers)
    assert check(live, flipped, ADMIT) == "200"


def test_the_oracle_knows_what_a_v3_signature_covers(live: Live) -> None:
    def v3(overrides: dict[bytes, bytes] | None = None) -> RawRequest:
        headers = sign_request_v3(method="GET", host=live.host.decode(), query={}, action="DescribeRegions",
                                  version=VERSION, access_key_id="LTAIalice", secret=SECRETS["LTAIalice"],
                                  nonce="fixed", date="2030-01-01T00:00:00Z")
        raw = {k.encode(): v.encode() for k, v in headers.items()}
        return RawRequest(b"GET", b"/", tuple({**raw, **(overrides or {})}.items()))

    base = Signed("V3", v3(), {})
    auth = base.request.header(b"authorization") or b""
    signature = auth.index(b"Signature=") + len(b"Signature=")
    letter = next(i for i in range(signature, len(auth)) if chr(auth[i]).isalpha())  # a hex digit a-f
    upper = auth[:letter] + auth[letter:letter + 1].upper() + auth[letter + 1:]
    assert expectation(base, v3({b"authorization": upper})) == ADMIT  # hex in either case
    assert expectation(base, v3({b"host": b"127.0.0.1:1"})) == REFUSE  # host is signed
    assert expectation(base, v3({b"x-acs-date": b"2030-01-01T00:00:01Z"})) == REFUSE
    assert expectation(base, RawRequest(b"GET", b"/?Format=XML", base.request.headers)) == REFUSE  # query signed
    renamed = tuple((n.upper() if n == b"x-acs-action" else n, v) for n, v in base.request.headers)
    assert expectation(base, RawRequest(b"GET", b"/", renamed)) == ADMIT  # header names are case-free
    assert expectation(base, RawRequest(b"GET", b"/", (*base.request.headers, (b"user-agent", b"x")))) == ADMIT


def test_heads_up_to_the_bound_are_served_and_longer_ones_get_431(live: Live) -> None:
    for size, outcome in ((live.max_head - 1, "200"), (live.max_head, "200"), (live.max_head + 1, "http-431")):
        target = f"/?{query(signed_params('DescribeRegions'))}".encode()  # a fresh nonce each
        request = padded(RawRequest(b"GET", target, ((b"host", live.host),)), size)
        assert len(request.head()) == size
        # Admission expected: over the bound, the server's 431 is the only right answer all the same.
        assert check(live, request, ADMIT) == outcome, size


def test_the_oracle_allows_a_431_only_for_a_head_over_the_bound() -> None:
    small = RawRequest(b"GET", b"/", ((b"host", b"gw"),))
    too_large = RawAnswer(431, {"content-type": "text/plain; charset=utf-8"}, b"Request header fields too large.", 0.0)
    assert judge(padded(small, 1025), too_large, max_head=1024).violations == []
    head = replace(padded(small, 1025), method=b"HEAD")
    assert judge(head, replace(too_large, body=b""), max_head=1024).violations == []  # no body to compare
    for within in (small, padded(small, 1024)):
        assert judge(within, too_large, max_head=1024).violations == [
            f"431 for a head within the bound: {len(within.head())} <= 1024 bytes"]
    # Over the bound, an answer from the application is wrong, however right it looks.
    admitted = RawAnswer(200, {"content-type": "application/json;charset=utf-8", "x-acs-request-id": "r"},
                         b'{"RequestId":"r"}', 0.0)
    assert judge(padded(small, 1024), admitted, ANY, max_head=1024).violations == []
    assert judge(padded(small, 1025), admitted, ANY, max_head=1024).violations == [
        "a head over the bound not refused with 431: 200 (1025 > 1024 bytes)"]
    # A 431 with another body is not the server's refusal.
    assert judge(padded(small, 1025), replace(too_large, body=b"{}"), max_head=1024).violations == [
        "a head over the bound not refused with 431: 431 (1025 > 1024 bytes)"]


def test_the_oracle_finds_a_traceback_the_caller_did_not_send() -> None:
    marker = "Traceback (most recent call last):"
    echoed = RawRequest(b"GET", f"/?Text={quote(marker)}".encode(), ((b"host", b"gw"),))
    plain = RawRequest(b"GET", b"/?Text=x", ((b"host", b"gw"),))
    headers = {"content-type": "application/json;charset=utf-8", "x-acs-request-id": "r"}
    echo = RawAnswer(200, headers, json.dumps({"RequestId": "r", "Text": marker}).encode(), 0.0)
    crash = RawAnswer(500, headers, json.dumps({"RequestId": "r", "HostId": "gw", "Code": "InternalError",
                                                "Message": f"{marker} File ..."}).encode(), 0.0)
    assert "a traceback in the body" not in judge(echoed, echo, ANY).violations  # the caller's own text
    assert "a traceback in the body" in judge(plain, echo, ANY).violations
    assert "a traceback in the body" in judge(echoed, crash, ANY).violations  # a refusal never repeats it


# --- the wrapped service's answers, rendered in the caller's format ----------------------------------

_XML_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True).filter(
    lambda n: not n.lower().startswith("xml"))
_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=30))
_json_values = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_XML_NAME, inner, max_size=4)), max_leaves=12)


class Scripted:
    """A wrapped service answering whatever the test sets: status, content type, body."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes, bytes] = (200, b"application/json", b"{}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, content_type, body = self.answer
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})


ScriptedGateway = tuple[Scripted, str, httpx.Client]


@pytest.fixture(scope="module")
def scripted(policy: Policy) -> Iterator[ScriptedGateway]:
    service = Scripted()
    config = Settings(config=str(DATA / "policy.toml"), host_id="gateway.test")
    with served(GatewayMiddleware(service, settings=config, policy=policy, store=open_store(None)), config) as url, \
            httpx.Client() as client:
        yield service, url, client


def _render(scripted: ScriptedGateway, status: int, content_type: bytes, body: bytes, fmt: str) -> httpx.Response:
    service, url, client = scripted
    service.answer = (status, content_type, body)
    return client.get(f"{url}/?{query(signed_params('DescribeRegions', fmt=fmt))}")


@settings(SAMPLE, max_examples=400)
@given(status=st.sampled_from([200, 200, 201, 400, 403, 404, 500, 503]),
       data=st.one_of(st.dictionaries(_XML_NAME, _json_values, max_size=5),
                      st.fixed_dictionaries({"Code": st.sampled_from(["Forbidden.InstanceNotFound", "Throttling"]),
                                             "Message": st.text(max_size=20)}),
                      _json_values),
       fmt=st.sampled_from(["XML", "JSON"]))
def test_service_answers_render_in_the_callers_format(scripted: ScriptedGateway, status: int, data: Any,
                                                      fmt: str) -> None:
    response = _render(scripted, status, b"application/json", json.dumps(data).encode(), fmt)
    request = RawRequest(b"GET", b"/")
    answer = RawAnswer(response.status_code, dict(response.headers), response.content, 0.0)
    assert response.status_code == status
    if isinstance(data, dict) and (200 <= status < 300 or "Code" in data):
        verdict = judge(request, answer, ANY)
        wrong = [v for v in verdict.violations if not v.startswith("(")]  # the service's codes are its own
        assert not wrong, (wrong, response.content)
    elif fmt == "JSON":  # not an object, or an error without a Code: the service's document itself
        assert response.json() == data
    else:  # ... which XML callers get as XML too (#16 item 10), no longer as the service's raw JSON
        assert response.headers["content-type"] == "text/xml;charset=utf-8"
        ElementTree.fromstring(response.content)
    for secret in SECRETS.values():
        assert secret.encode() not in response.content


# --- bugs found on the way, each fixed: they stay as regressions ------------------------------------


def test_content_length_with_many_leading_zeros_is_not_an_internal_error(live: Live) -> None:
    request = RawRequest(b"POST", b"/?Format=JSON", ((b"host", b"gateway.test"),), b"a", length=b"0" * 5000 + b"1")
    answer = exchange(live.address, request)
    assert answer is not None
    assert answer.status != 500, answer.body


@pytest.mark.parametrize("data", [{"1x": 2}, {"a b": 1}, {"Tags": {"env:prod": "x"}}], ids=["digit", "space", "colon"])
def test_service_keys_that_are_not_xml_names_still_render_as_xml(scripted: ScriptedGateway,
                                                                 data: dict[str, Any]) -> None:
    response = _render(scripted, 200, b"application/json", json.dumps(data).encode(), "XML")
    assert response.status_code == 200, response.content
    ElementTree.fromstring(response.content)


def test_an_unsigned_get_body_never_reaches_the_service(live: Live) -> None:
    signed = signed_params("DescribeRegions")
    smuggled = b"Amount=99999&AccessKeyId=LTAIbob"
    request = RawRequest(b"GET", f"/?{query(signed)}".encode(),
                         ((b"host", b"gateway.test"), (b"content-type", b"application/x-www-form-urlencoded")),
                         smuggled)
    answer = exchange(live.address, request)
    assert answer is not None
    if answer.status == 200:
        assert answer.json()["Echo"]["BodyLength"] == 0, "the service got a body nobody signed"
    else:
        assert answer.json()["Code"] == "InvalidParameter"


def test_a_v3_request_cannot_name_another_access_key_in_its_parameters(live: Live) -> None:
    answer = call_v3(live.url, "DescribeRegions", {"AccessKeyId": "LTAIbob"})
    assert answer.status != 200, f"admitted; the service saw {answer.json['Echo']['Params']}"
    # This fixture sets no GATEWAY_HOST_ID, so check_refusal's HostId expectation does not apply.
    assert (answer.status, answer.json["Code"], answer.json["Message"]) == (
        Err.INVALID_PARAMETER.status, Err.INVALID_PARAMETER.code, Err.INVALID_PARAMETER.value.message())
