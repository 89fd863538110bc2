"""A SecurityToken reaches the service only as the gateway verified it (found by the differential test).

V1 verifies the ``SecurityToken`` parameter, V3 the ``x-acs-security-token`` header; a service may read
either. Before, a token in the place the version does not read (V1's header, V3's parameter) was
forwarded unverified: another session's token, or one next to a long-term key's signature, reached the
service beside the identity headers of someone else. Now such a token must be the verified one (the SDKs
send one token, in their version's place, so they are unaffected), else InvalidParameter (400).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.catalog import Err
from gateway.signing import sign_request_v1, sign_request_v3
from tests.conftest import LiveGateway
from tests.support.client import Answer, query, refused_with
from tests.support.sts import SECRETS, Creds, LiveSts, assumed, live_sts

VERSION = "2014-05-26"
FORMATS = ["JSON", "XML"]


@pytest.fixture(scope="module")
def sts() -> Iterator[LiveSts]:
    with live_sts() as live:
        yield live


@pytest.fixture(scope="module")
def mine(sts: LiveSts) -> Creds:
    return assumed(sts.url, session="mine")


@pytest.fixture(scope="module")
def other(sts: LiveSts) -> Creds:
    """Another session's credentials: a valid token, but not the one the call is signed with."""
    return assumed(sts.url, session="other")


def v1(url: str, key: str, secret: str, fmt: str, *, param: str | None, header: str | None) -> Answer:
    params = {"Action": "DescribeRegions", "Version": VERSION, "Format": fmt,
              **({"SecurityToken": param} if param is not None else {})}
    signed = sign_request_v1(params, access_key_id=key, secret=secret)
    response = httpx.get(f"{url}/?{query(signed)}", headers={"x-acs-security-token": header} if header else {})
    return Answer(response.status_code, response.headers, response.content)


def v3(url: str, key: str, secret: str, fmt: str, *, header: str | None, param: str | None) -> Answer:
    params = {"SecurityToken": param} if param is not None else {}
    headers = sign_request_v3(method="GET", host=url.split("://", 1)[1], query=params, action="DescribeRegions",
                              version=VERSION, access_key_id=key, secret=secret,
                              extra_headers={"x-acs-security-token": header} if header else None)
    headers["accept"] = "application/xml" if fmt == "XML" else "application/json"
    response = httpx.get(f"{url}/" + (f"?{query(params)}" if params else ""), headers=headers)
    return Answer(response.status_code, response.headers, response.content)


@pytest.mark.parametrize("fmt", FORMATS)
def test_v1_a_token_header_that_is_not_the_verified_parameter_is_refused(sts: LiveSts, mine: Creds, other: Creds,
                                                                        fmt: str) -> None:
    refused_with(v1(sts.url, mine.access_key_id, mine.secret, fmt, param=mine.token, header=other.token),
                 Err.INVALID_PARAMETER, fmt)
    # A long-term key's V1 call verifies no token: none may ride along in the header.
    refused_with(v1(sts.url, "LTAIroot", SECRETS["LTAIroot"], fmt, param=None, header=other.token),
                 Err.INVALID_PARAMETER, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_v3_a_token_parameter_that_is_not_the_verified_header_is_refused(sts: LiveSts, mine: Creds, other: Creds,
                                                                        fmt: str) -> None:
    refused_with(v3(sts.url, mine.access_key_id, mine.secret, fmt, header=mine.token, param=other.token),
                 Err.INVALID_PARAMETER, fmt)
    refused_with(v3(sts.url, "LTAIroot", SECRETS["LTAIroot"], fmt, header=None, param=other.token),
                 Err.INVALID_PARAMETER, fmt)


def test_the_verified_token_in_both_places_is_admitted(sts: LiveSts, mine: Creds) -> None:
    for answer in (v1(sts.url, mine.access_key_id, mine.secret, "JSON", param=mine.token, header=mine.token),
                   v3(sts.url, mine.access_key_id, mine.secret, "JSON", header=mine.token, param=mine.token)):
        assert answer.status == 200, answer.body
        echo = answer.json["Echo"]
        assert echo["Params"]["SecurityToken"] == mine.token
        assert echo["Caller"]["AccessKeyId"] == mine.access_key_id
        assert echo["Headers"]["x-gateway-role-session-name"] == "mine"


def test_each_version_alone_is_unchanged(sts: LiveSts, mine: Creds) -> None:
    assert v1(sts.url, mine.access_key_id, mine.secret, "JSON", param=mine.token, header=None).status == 200
    assert v3(sts.url, mine.access_key_id, mine.secret, "JSON", header=mine.token, param=None).status == 200
    assert v1(sts.url, "LTAIroot", SECRETS["LTAIroot"], "JSON", param=None, header=None).status == 200


def test_without_sts_a_token_parameter_is_an_undeclared_parameter(memory_gateway: LiveGateway) -> None:
    """README: without [sts], SecurityToken is refused like any undeclared parameter."""
    answer = v3(memory_gateway.url, "LTAIalice", "alice-secret", "JSON", header=None, param="v1.x.y")
    assert (answer.status, answer.code()) == (Err.UNSUPPORTED_PARAMETER.status, Err.UNSUPPORTED_PARAMETER.code)
    assert "SecurityToken" in answer.json["Message"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_sts_no_token_header_reaches_the_service(memory_gateway: LiveGateway, fmt: str) -> None:
    # Without [sts] no token is ever verified: a token header beside a long-term key's signature (V1 or
    # V3, signed or not) was forwarded to the service unverified; it is refused as [sts] refuses a
    # long-term key presented with a token.
    for answer in (v3(memory_gateway.url, "LTAIalice", "alice-secret", fmt, header="v1.x.y", param=None),
                   v1(memory_gateway.url, "LTAIalice", "alice-secret", fmt, param=None, header="v1.x.y")):
        refused_with(answer, Err.TOKEN_MISMATCH, fmt)
    assert v3(memory_gateway.url, "LTAIalice", "alice-secret", fmt, header=None, param=None).status == 200
