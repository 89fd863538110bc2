"""Anonymous APIs over HTTP (#17 §3): plain requests with no credentials, in middleware and proxy modes,
with the official tea-openapi client and with the curl binary; credentials that are sent are verified.

Units (what "no credentials" is, the ticket, the policy): tests/checks/test_anonymous.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient
from darabonba.runtime import RuntimeOptions

from gateway import GatewayMiddleware, Settings, load_policy
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import Answer, get, query, signed_params
from tests.support.sdk import TIMEOUT_S, Wire, error_code, host_of
from tests.support.servers import free_port, serve_in_thread
from tests.support.upstream import Upstream

POLICY = DATA / "anonymous_policy.toml"
NOTICE = {"Action": "GetPublicNotice", "Version": "2014-05-26"}
# The tests' client is 127.0.0.1: trusted as a proxy, so each test picks its source address with
# X-Forwarded-For, as clients behind a load balancer would be told apart.
TRUSTED = ("127.0.0.1/32",)


@pytest.fixture(scope="module")
def anon_policy() -> Policy:
    return load_policy(POLICY)


def _settings(**extra: Any) -> Settings:
    return Settings(config=str(POLICY), host_id="gateway.test", trusted_proxies=TRUSTED, **extra)


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request: pytest.FixtureRequest, anon_policy: Policy) -> Iterator[tuple[str, EchoService]]:
    """Middleware mode, in front of the echo service: memory store, then Redis."""
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    service = EchoService()
    store = open_store(redis_url, prefix=f"t{free_port()}", timeout=0.25)
    with serve_in_thread(GatewayMiddleware(service, settings=_settings(redis_url=redis_url), policy=anon_policy,
                                           store=store)) as url:
        yield url, service


@pytest.fixture(scope="module")
def proxied(anon_policy: Policy) -> Iterator[str]:
    """Proxy mode: `gateway serve`'s app in front of a real upstream."""
    with serve_in_thread(Upstream()) as upstream_url:
        settings = _settings(upstream_url=upstream_url)
        app = GatewayMiddleware(ProxyApp(settings), settings=settings, policy=anon_policy, store=open_store(None))
        with serve_in_thread(app) as url:
            yield url


def _from(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


def _get(url: str, params: dict[str, str], address: str = "192.0.2.1", **headers: str) -> Answer:
    return get(url, params, headers={**_from(address), **headers})


# --- no credentials: 200 -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
def test_no_credentials_at_all_is_answered_and_the_service_is_told_anonymous(
        gw: tuple[str, EchoService], fmt: str) -> None:
    url, _ = gw
    answer = _get(url, {**NOTICE, "Format": fmt})
    assert answer.status == 200, answer.body
    if fmt == "XML":
        assert answer.xml.tag == "GetPublicNoticeResponse"
        assert answer.xml.findtext("Echo/Caller/Anonymous") == "true"
        assert answer.xml.findtext("Echo/Headers/x-gateway-anonymous") == "true"
        return
    echo = answer.json["Echo"]
    assert echo["Caller"] == {"Anonymous": True, "RequestId": answer.json["RequestId"]}
    assert echo["Headers"] == {"x-gateway-anonymous": "true", "x-acs-request-id": answer.json["RequestId"]}


def test_a_client_cannot_claim_an_identity_on_an_anonymous_call(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    answer = _get(url, {**NOTICE, "Format": "JSON"}, **{"x-gateway-account-id": "1111",
                                                        "X_Gateway_Access_Key_Id": "LTAIalice"})
    assert answer.status == 200
    assert set(answer.json["Echo"]["Headers"]) == {"x-gateway-anonymous", "x-acs-request-id"}


def test_timestamp_and_nonce_on_an_anonymous_call_are_neither_checked_nor_claimed(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    params = {**NOTICE, "Format": "JSON", "Timestamp": "not a time", "SignatureNonce": "once"}
    for _ in range(2):  # the same nonce twice
        answer = _get(url, params)
        assert answer.status == 200, answer.body
    assert answer.json["Echo"]["Params"]["SignatureNonce"] == "once"  # handed on as sent


def test_declared_parameters_are_still_checked(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    assert _get(url, {**NOTICE, "Format": "JSON", "Lang": "en-US"}).status == 200
    refused = _get(url, {**NOTICE, "Format": "JSON", "Lang": "klingon"})
    assert (refused.status, refused.code()) == (400, "InvalidParameter")
    undeclared = _get(url, {**NOTICE, "Format": "JSON", "InstanceId": "i-1"})
    assert (undeclared.status, undeclared.code()) == (400, "UnsupportedParameter")


def test_owner_parameters_are_refused_they_name_no_account(gw: tuple[str, EchoService]) -> None:
    url, service = gw
    before = service.executed["GetPublicNotice"]
    answer = _get(url, {**NOTICE, "Format": "JSON", "OwnerId": "1111"})
    assert (answer.status, answer.code()) == (400, "InvalidOwnerId")
    assert service.executed["GetPublicNotice"] == before


def test_a_signed_api_still_needs_credentials(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    answer = _get(url, {"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON"})
    assert (answer.status, answer.code()) == (400, "MissingParameter")
    assert "AccessKeyId" in answer.json["Message"]


# --- credentials that are sent are verified ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
def test_a_wrong_signature_on_an_anonymous_api_is_refused(gw: tuple[str, EchoService], fmt: str) -> None:
    url, service = gw
    before = service.executed["GetPublicNotice"]
    params = signed_params("GetPublicNotice", fmt=fmt, secret="not-alices-secret")
    answer = _get(url, params)
    assert (answer.status, answer.code()) == (400, "IncompleteSignature")
    tampered = {**signed_params("GetPublicNotice", fmt=fmt), "Lang": "en-US"}  # added after signing
    assert _get(url, tampered).code() == "IncompleteSignature"
    assert service.executed["GetPublicNotice"] == before


@pytest.mark.parametrize(("extra", "code"), [
    ({"Signature": "c2ln"}, "MissingParameter"),                # no AccessKeyId: the row it gets today
    ({"AccessKeyId": "LTAIalice"}, "MissingParameter"),         # no Signature
    ({"AccessKeyId": "LTAInobody", "Signature": "c2ln"}, "MissingParameter"),  # Timestamp missing first
    ({"SignatureMethod": "HMAC-SHA1"}, "MissingParameter"),
])
def test_a_half_signed_request_is_refused_as_any_unsigned_one(gw: tuple[str, EchoService], extra: dict[str, str],
                                                              code: str) -> None:
    url, _ = gw
    answer = _get(url, {**NOTICE, "Format": "JSON", **extra})
    assert (answer.status, answer.code()) == (400, code), answer.body


def test_an_authorization_header_makes_it_a_signed_call(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    answer = _get(url, {**NOTICE, "Format": "JSON"}, authorization="ACS3-HMAC-SHA256 Credential=LTAIalice")
    assert (answer.status, answer.code()) == (400, "IncompleteSignature")
    other = _get(url, {**NOTICE, "Format": "JSON"}, authorization="Bearer abc")
    assert (other.status, other.code()) == (400, "MissingParameter")


def test_a_signed_call_to_an_anonymous_api_is_the_keys_call(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    answer = _get(url, signed_params("GetPublicNotice"))
    assert answer.status == 200, answer.body
    echo = answer.json["Echo"]
    assert echo["Caller"]["AccessKeyId"] == "LTAIalice" and "Anonymous" not in echo["Caller"]
    assert "x-gateway-anonymous" not in echo["Headers"]
    assert echo["Headers"]["x-gateway-account-id"] == "1111"
    # And the key's rights apply: this sub-user may only call Describe*.
    denied = _get(url, signed_params("GetPublicNotice", key="LTAIops"))
    assert (denied.status, denied.code()) == (403, "Forbidden.RAM")


# --- quota per address, flow for everyone ----------------------------------------------------------


def test_the_quota_of_an_anonymous_api_is_per_source_address(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    quota = {"Action": "GetPublicQuota", "Version": "2014-05-26", "Format": "JSON"}
    assert [_get(url, quota, "198.51.100.7").status for _ in range(2)] == [200, 200]  # quota = "2/10000d"
    third = _get(url, quota, "198.51.100.7")
    assert (third.status, third.code()) == (400, "Throttling")
    assert int(third.headers["x-acs-retry-after"]) > 0
    # Another address has a quota of its own; the /64 of an IPv6 client is one address.
    assert _get(url, quota, "198.51.100.8").status == 200
    assert [_get(url, quota, f"2001:db8:7:7::{n}").status for n in (1, 2, 3)] == [200, 200, 400]
    # A signed call is counted for its key, not for the address it comes from.
    assert _get(url, signed_params("GetPublicQuota"), "198.51.100.7").status == 200


def test_flow_control_of_an_anonymous_api_counts_every_caller(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    flow = {"Action": "GetPublicFlow", "Version": "2014-05-26", "Format": "JSON"}
    assert _get(url, flow, "198.51.100.20").status == 200
    assert _get(url, signed_params("GetPublicFlow"), "198.51.100.21").status == 200  # flow = "2/hour"
    refused = _get(url, flow, "198.51.100.22")
    assert (refused.status, refused.code()) == (400, "Throttling")


def test_a_client_token_is_kept_per_source_address(gw: tuple[str, EchoService]) -> None:
    url, service = gw
    params = {"Action": "SubmitFeedback", "Version": "2014-05-26", "Format": "JSON", "Text": "hi",
              "ClientToken": f"tok-{free_port()}"}
    first = _get(url, params, "198.51.100.30")
    again = _get(url, params, "198.51.100.30")
    assert first.status == again.status == 200
    assert again.body == first.body  # the first answer, replayed
    assert service.executed["SubmitFeedback"] == 1
    other = _get(url, params, "198.51.100.31")  # the same token from elsewhere: another call
    assert other.status == 200 and other.json["RequestId"] != first.json["RequestId"]
    changed = _get(url, {**params, "Text": "bye"}, "198.51.100.30")
    assert (changed.status, changed.code()) == (400, "IdempotentParameterMismatch")


# --- tea-openapi's anonymous calls -----------------------------------------------------------------


def _tea_anonymous(url: str, *, v2: bool) -> dict[str, Any]:
    # No access key, no credential: the client has none at all.
    client = TeaClient(open_api_models.Config(endpoint=host_of(url), protocol="http",
                                              signature_algorithm="v2" if v2 else None,
                                              read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000))
    params = open_api_models.Params(action="GetPublicNotice", version="2014-05-26", protocol="HTTP", pathname="/",
                                    method="GET", auth_type="Anonymous", style="RPC", req_body_type="formData",
                                    body_type="json")
    request = open_api_models.OpenApiRequest(query={"Lang": "en-US"})
    runtime = RuntimeOptions(autoretry=False, read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)
    answer: dict[str, Any] = client.call_api(params, request, runtime)
    return answer


@pytest.mark.parametrize("v2", [False, True], ids=["v3", "v2"])
def test_tea_openapis_anonymous_call_is_accepted(gw: tuple[str, EchoService], monkeypatch: pytest.MonkeyPatch,
                                                 v2: bool) -> None:
    url, _ = gw
    wire = Wire(monkeypatch)
    answer = _tea_anonymous(url, v2=v2)
    assert answer["statusCode"] == 200
    assert answer["body"]["Echo"]["Caller"]["Anonymous"] is True
    sent = {name.lower() for name in wire.last.headers}
    # What the SDK sends for an anonymous call: the API in headers, and nothing that signs.
    assert {"x-acs-action", "x-acs-version"} <= sent and "authorization" not in sent
    assert "AccessKeyId" not in wire.last.url and "Signature=" not in wire.last.url
    if not v2:
        assert {"x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"} <= sent
        assert "Action=" not in wire.last.url  # V3: named by x-acs-action alone


def test_tea_openapis_anonymous_call_to_a_signed_api_is_refused(gw: tuple[str, EchoService]) -> None:
    url, _ = gw
    client = TeaClient(open_api_models.Config(endpoint=host_of(url), protocol="http"))
    params = open_api_models.Params(action="DescribeRegions", version="2014-05-26", protocol="HTTP", pathname="/",
                                    method="GET", auth_type="Anonymous", style="RPC", req_body_type="formData",
                                    body_type="json")
    with pytest.raises(Exception) as caught:
        client.call_api(params, open_api_models.OpenApiRequest(), RuntimeOptions(autoretry=False))
    assert error_code(caught.value) == "MissingParameter"


# --- proxy mode, and curl --------------------------------------------------------------------------


def test_proxy_mode_forwards_an_anonymous_call_with_the_gateways_headers(proxied: str) -> None:
    answer = httpx.get(f"{proxied}/echo?{query({**NOTICE, 'Format': 'JSON'})}",
                       headers={**_from("198.51.100.40"), "x-gateway-anonymous": "false"})
    assert answer.status_code == 200, answer.text
    headers = answer.json()["Headers"]
    assert headers["x-gateway-anonymous"] == ["true"]  # the client's own copy was dropped
    assert "x-gateway-account-id" not in headers
    assert headers["x-forwarded-for"] == ["198.51.100.40"]


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="the curl binary is not installed")
def test_plain_curl_with_no_credentials_gets_200_and_a_wrong_signature_is_refused(proxied: str) -> None:
    assert CURL is not None
    ok = subprocess.run([CURL, "-s", "-w", "\n%{http_code}", f"{proxied}/?{query({**NOTICE, 'Format': 'JSON'})}"],
                        capture_output=True, text=True, timeout=30, check=True)
    body, status = ok.stdout.rsplit("\n", 1)
    assert status == "200" and "Regions" in json.loads(body)  # the upstream's answer
    wrong = signed_params("GetPublicNotice", secret="guessed")
    refused = subprocess.run([CURL, "-s", "-w", "\n%{http_code}", f"{proxied}/?{query(wrong)}"],
                             capture_output=True, text=True, timeout=30, check=True)
    body, status = refused.stdout.rsplit("\n", 1)
    assert status == "400" and json.loads(body)["Code"] == "IncompleteSignature"
