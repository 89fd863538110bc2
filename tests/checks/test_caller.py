"""Units of `gateway.checks.caller`: the API, the key, the signature (V1 and V3), the Timestamp."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from gateway.call import Call
from gateway.catalog import Err
from gateway.checks.caller import KnownApi, Timestamp, known_key, parse_timestamp, signature
from gateway.errors import GatewayError
from gateway.policy import Policy
from gateway.signing import parse_v3_authorization, sign_request_v1, sign_request_v3
from gateway.signing._encoding import utc_timestamp
from tests.support.calls import a_call


def _refused(check: object, call: Call) -> Err:
    with pytest.raises(GatewayError) as caught:
        check(call)  # type: ignore[operator]
    return caught.value.err


def test_known_api_tells_a_wrong_version_from_a_wrong_action(policy: Policy) -> None:
    check = KnownApi(policy.apis)
    check(a_call(policy))
    assert _refused(check, a_call(policy, version="1999-01-01")) is Err.INVALID_VERSION
    assert _refused(check, a_call(policy, action="DescribeNothing")) is Err.INVALID_ACTION_NAME


def test_known_key_refuses_an_unknown_and_a_disabled_key(policy: Policy) -> None:
    known_key(a_call(policy))
    assert _refused(known_key, a_call(policy, access_key_id="LTAInone", key=None)) is Err.ACCESS_KEY_NOT_FOUND
    assert _refused(known_key, a_call(policy, key=policy.access_keys["LTAIdisabled"])) is Err.ACCESS_KEY_DISABLED


def _v1(policy: Policy, secret: str = "alice-secret", method: str = "GET") -> Call:
    params = sign_request_v1({"Action": "DescribeRegions", "Version": "2014-05-26"}, access_key_id="LTAIalice",
                             secret=secret, method=method)
    return a_call(policy, params=params, method=method)


def test_a_v1_signature_verifies_with_either_secret_of_the_key(policy: Policy) -> None:
    signature(_v1(policy))
    signature(_v1(policy, secret="alice-old-secret"))


@pytest.mark.parametrize("tamper", [
    lambda call: call._replace(params={**call.params, "RegionId": "cn-x"}),
    lambda call: call._replace(method="POST"),
    lambda call: call._replace(signature="AAAA"),
    lambda call: call._replace(key=None),
])
def test_a_v1_signature_over_anything_else_is_refused(policy: Policy, tamper: object) -> None:
    assert _refused(signature, tamper(_v1(policy))) is Err.INCOMPLETE_SIGNATURE  # type: ignore[operator]
    assert _refused(signature, _v1(policy, secret="not-the-secret")) is Err.INCOMPLETE_SIGNATURE


def _v3(policy: Policy, body: bytes = b"", **extra: str) -> Call:
    headers = sign_request_v3(method="POST", host="gateway.test", query={"RegionId": "cn-hangzhou"}, body=body,
                              action="DescribeRegions", version="2014-05-26", access_key_id="LTAIalice",
                              secret="alice-secret")
    headers = {k.lower(): v for k, v in {**headers, **extra}.items()}
    auth = parse_v3_authorization(headers["authorization"])
    return a_call(policy, method="POST", headers=headers, query={"RegionId": "cn-hangzhou"},
                  params={"RegionId": "cn-hangzhou"}, body=body, v3=auth, signature_version="3",
                  signature=auth.signature, signature_method=auth.algorithm, api=policy.api("2014-05-26",
                                                                                            "DescribeRegions"),
                  key=policy.access_keys["LTAIalice"])


def test_a_v3_signature_verifies_over_path_query_headers_and_body(policy: Policy) -> None:
    signature(_v3(policy))
    signature(_v3(policy, body=b"a=1"))


def test_a_v3_body_other_than_the_hashed_one_is_refused(policy: Policy) -> None:
    call = _v3(policy, body=b"a=1")
    assert _refused(signature, call._replace(body=b"a=2")) is Err.INCOMPLETE_SIGNATURE
    assert _refused(signature, call._replace(path="/other")) is Err.INCOMPLETE_SIGNATURE
    assert urlsplit("/").path == call.path


def test_a_v3_signature_must_cover_the_binding_headers(policy: Policy) -> None:
    call = _v3(policy)
    assert call.v3 is not None
    short = replace(call.v3, signed_headers=tuple(h for h in call.v3.signed_headers if h != "host"))
    assert _refused(signature, call._replace(v3=short)) is Err.INCOMPLETE_SIGNATURE


def test_timestamps_within_the_skew_pass() -> None:
    check = Timestamp(skew=900)
    check(a_call(timestamp=utc_timestamp()))
    check(a_call(timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 800))))


@pytest.mark.parametrize("value", [
    None, "", "2024-01-01", "2024-01-01T00:00:00+00:00", "2024-13-01T00:00:00Z", "2024-01-01 00:00:00Z",
])
def test_malformed_timestamps_are_refused(value: str | None) -> None:
    assert _refused(Timestamp(skew=900), a_call(timestamp=value)) is Err.ILLEGAL_TIMESTAMP


def test_a_timestamp_past_the_skew_is_refused() -> None:
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1000))
    assert _refused(Timestamp(skew=900), a_call(timestamp=old)) is Err.ILLEGAL_TIMESTAMP
    assert parse_timestamp("2024-01-01T00:00:00.5Z") == parse_timestamp("2024-01-01T00:00:00Z") + 0.5  # type: ignore[operator]
