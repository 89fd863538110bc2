"""AssumeRole served by the gateway, and the temporary keys it issues, over HTTP (our own signer).

Middleware mode (the echo service) for most; proxy mode (ProxyApp in front of an upstream) shows the
gateway answers AssumeRole itself and forwards the temporary key's calls with its identity headers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from gateway import GatewayMiddleware, Settings
from gateway.catalog import Err
from gateway.proxy import ProxyApp
from gateway.signing import sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA, LiveGateway
from tests.support.client import Answer, call, query, signed_params
from tests.support.servers import serve_in_thread
from tests.support.sts import (
    LiveSts,
    arn,
    assume,
    assumed,
    call_sts,
    call_sts_v3,
    creds,
    live_sts,
    sts_policy,
)
from tests.support.upstream import Upstream
from tests.test_error_rows import check_refusal

EXPIRATION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request: pytest.FixtureRequest) -> Iterator[LiveSts]:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    with live_sts(redis_url) as live:
        yield live


def _expires_in(expiration: str) -> float:
    return datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() - time.time()


# --- the answer ---------------------------------------------------------------------------------


def test_answer_has_the_sts_shape_in_json(gw: LiveSts) -> None:
    answer = assume(gw.url, "Reader", session="alice@laptop")
    assert answer.status == 200
    body = answer.json
    assert list(body) == ["RequestId", "AssumedRoleUser", "Credentials"]
    assert body["RequestId"] == answer.headers["x-acs-request-id"]
    assert body["AssumedRoleUser"]["Arn"] == "acs:ram::1111:role/Reader/alice@laptop"
    assert re.fullmatch(r"[0-9]{17}:alice@laptop", body["AssumedRoleUser"]["AssumedRoleId"])
    credentials = body["Credentials"]
    assert list(credentials) == ["AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"]
    assert credentials["AccessKeyId"].startswith("STS.")
    assert EXPIRATION.fullmatch(credentials["Expiration"])
    assert 3590 < _expires_in(credentials["Expiration"]) <= 3600  # DurationSeconds defaults to 3600


def test_answer_in_xml(gw: LiveSts) -> None:
    answer = assume(gw.url, "Reader", fmt="XML")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/xml")
    root = answer.xml
    assert root.tag == "AssumeRoleResponse"
    assert [child.tag for child in root] == ["RequestId", "AssumedRoleUser", "Credentials"]
    assert (root.findtext("Credentials/AccessKeyId") or "").startswith("STS.")
    assert EXPIRATION.fullmatch(root.findtext("Credentials/Expiration") or "")


def test_assume_role_signed_v3(gw: LiveSts) -> None:
    params = {"RoleArn": arn("Reader"), "RoleSessionName": "v3-session", "DurationSeconds": "7200"}
    headers = sign_request_v3(method="POST", host=gw.url.split("://")[1], path="/", query=params,
                              action="AssumeRole", version="2015-04-01", access_key_id="LTAIroot",
                              secret="root-secret")
    response = httpx.post(f"{gw.url}/?{query(params)}", headers=headers)
    answer = Answer(response.status_code, response.headers, response.content)
    assert 7190 < _expires_in(creds(answer).expiration) <= 7200
    assert call_sts_v3(gw.url, "DescribeRegions", creds(answer)).status == 200


def test_each_call_issues_new_credentials(gw: LiveSts) -> None:
    first, second = assumed(gw.url), assumed(gw.url)
    assert first.access_key_id != second.access_key_id and first.secret != second.secret
    assert first.token != second.token


@pytest.mark.parametrize(("duration", "ok"), [("900", True), ("7200", True), ("899", False), ("7201", False),
                                               ("abc", False), ("-900", False), ("1e3", False)])
def test_duration_seconds_between_900_and_the_roles_maximum(gw: LiveSts, duration: str, ok: bool) -> None:
    answer = assume(gw.url, "Reader", DurationSeconds=duration)
    if ok:
        assert abs(_expires_in(creds(answer).expiration) - int(duration)) <= 10
    else:
        check_refusal(answer, Err.INVALID_DURATION, "JSON")


@pytest.mark.parametrize(("name", "ok"), [("ab", True), ("a" * 64, True), ("x.y@z-w_1", True), ("a", False),
                                           ("a" * 65, False), ("has space", False), ("slash/name", False),
                                           ("ünï", False)])
def test_role_session_name_rule(gw: LiveSts, name: str, ok: bool) -> None:
    answer = assume(gw.url, "Reader", session=name)
    if ok:
        assert answer.status == 200
    else:
        check_refusal(answer, Err.INVALID_ROLE_SESSION_NAME, "JSON")


def test_role_names_are_case_insensitive(gw: LiveSts) -> None:
    answer = assume(gw.url, "rEaDeR")
    assert answer.json["AssumedRoleUser"]["Arn"].startswith("acs:ram::1111:role/Reader/")


@pytest.mark.parametrize("role_arn", ["Reader", "acs:ram:1111:role/Reader", "acs:ram::1111:user/Reader",
                                      "acs:ram::abc:role/Reader"])
def test_a_malformed_role_arn_is_invalid_parameter(gw: LiveSts, role_arn: str) -> None:
    answer = assume(gw.url, role_arn if ":" in role_arn else f"x:{role_arn}")
    check_refusal(answer, Err.INVALID_PARAMETER, "JSON")


def test_a_missing_role_session_name_is_missing_parameter(gw: LiveSts) -> None:
    params = signed_params("AssumeRole", {"RoleArn": arn("Reader")}, key="LTAIroot", secret="root-secret",
                           version="2015-04-01")
    answer = Answer(*(lambda r: (r.status_code, r.headers, r.content))(httpx.get(f"{gw.url}/?{query(params)}")))
    check_refusal(answer, Err.MISSING_PARAMETER, "JSON", name="RoleSessionName")


# --- trust --------------------------------------------------------------------------------------


def test_a_trusted_sub_user_may_assume(gw: LiveSts) -> None:
    assert assume(gw.url, "Reader", key="LTAIdev").status == 200


def test_a_sub_user_not_trusted_is_refused(gw: LiveSts) -> None:
    check_refusal(assume(gw.url, "disks-only", key="LTAIdev"), Err.NO_PERMISSION, "JSON")


def test_a_sub_user_whose_statements_lack_assume_role_is_forbidden_ram(gw: LiveSts) -> None:
    # Trust is the role's side; the sub-user's own statements must allow the AssumeRole action too, as in RAM.
    check_refusal(assume(gw.url, "Reader", key="LTAIauditor"), Err.FORBIDDEN_RAM, "JSON")
    assert assume(gw.url, "Reader", key="LTAIintern").status == 200


def test_a_temporary_key_cannot_assume_a_role(gw: LiveSts) -> None:
    credentials = assumed(gw.url, "quota-role")  # its statements allow every action, AssumeRole too
    params = {"RoleArn": arn("Reader"), "RoleSessionName": "chained"}
    answer = call_sts(gw.url, "AssumeRole", credentials, params, version="2015-04-01")
    check_refusal(answer, Err.NO_PERMISSION, "JSON")


def test_assume_role_goes_through_the_chain(gw: LiveSts) -> None:
    params = signed_params("AssumeRole", {"RoleArn": arn("Reader"), "RoleSessionName": "replayed"},
                           key="LTAIroot", secret="root-secret", version="2015-04-01")
    first = httpx.get(f"{gw.url}/?{query(params)}")
    again = httpx.get(f"{gw.url}/?{query(params)}")
    assert first.status_code == 200
    assert again.json()["Code"] == "SignatureNonceUsed"
    bad = signed_params("AssumeRole", {"RoleArn": arn("Reader"), "RoleSessionName": "s"}, key="LTAIroot",
                        secret="not-the-secret", version="2015-04-01")
    assert httpx.get(f"{gw.url}/?{query(bad)}").json()["Code"] == "IncompleteSignature"


# --- the temporary key --------------------------------------------------------------------------


def test_identity_reaches_the_service(gw: LiveSts) -> None:
    credentials = assumed(gw.url, key="LTAIdev", session="build-42")
    echo = call_sts(gw.url, "DescribeRegions", credentials).json["Echo"]
    assert echo["Headers"]["x-gateway-role-arn"] == "acs:ram::1111:role/Reader"
    assert echo["Headers"]["x-gateway-role-session-name"] == "build-42"
    assert echo["Headers"]["x-gateway-assumed-by"] == "LTAIdev"
    assert echo["Headers"]["x-gateway-access-key-id"] == credentials.access_key_id
    assert echo["Headers"]["x-gateway-account-id"] == "1111"
    assert "x-gateway-sub-user" not in echo["Headers"]
    assert echo["Caller"]["RoleArn"] == "acs:ram::1111:role/Reader"
    assert echo["Caller"]["AssumedBy"] == "LTAIdev" and echo["Caller"]["SubUser"] is None


def test_clients_cannot_claim_role_headers(gw: LiveSts) -> None:
    params = signed_params("DescribeRegions", key="LTAIroot", secret="root-secret")
    response = httpx.get(f"{gw.url}/?{query(params)}", headers={"x-gateway-role-arn": "acs:ram::1111:role/Admin",
                                                                 "X_Gateway_Assumed_By": "LTAIroot"})
    headers = response.json()["Echo"]["Headers"]
    assert "x-gateway-role-arn" not in headers and "x-gateway-assumed-by" not in headers


def test_the_roles_statements_decide(gw: LiveSts) -> None:
    credentials = assumed(gw.url, "disks-only")
    assert call_sts(gw.url, "DescribeDisks", credentials).status == 200
    check_refusal(call_sts(gw.url, "DescribeRegions", credentials), Err.FORBIDDEN_RAM, "JSON")
    reader = assumed(gw.url, "Reader")
    assert call_sts(gw.url, "DescribeInstances", reader, {"InstanceId.1": "i-web-1"}).status == 200
    check_refusal(call_sts(gw.url, "DescribeInstances", reader, {"InstanceId.1": "i-secret-1"}),
                  Err.FORBIDDEN_RAM, "JSON")


def test_order_apis_are_closed_to_roles_as_to_sub_users(gw: LiveSts) -> None:
    credentials = assumed(gw.url, "quota-role")
    check_refusal(call_sts(gw.url, "CreateOrder", credentials, {"Amount": "1"}), Err.FORBIDDEN_SUB_USER, "JSON")


@pytest.mark.parametrize(("statement", "allowed", "refused"), [
    ({"Effect": "Allow", "Action": "ecs:DescribeDisks", "Resource": "*"}, "DescribeDisks", "DescribeRegions"),
    ({"Effect": "Allow", "Action": ["ecs:Describe*"], "Resource": ["*"]}, "DescribeRegions", "CreateThing"),
    ({"Effect": "Allow", "Action": "DescribeRegions", "Resource": "*"}, "DescribeRegions", "DescribeDisks"),
])
def test_the_session_policy_narrows_the_role(gw: LiveSts, statement: dict[str, object], allowed: str,
                                             refused: str) -> None:
    policy = json.dumps({"Version": "1", "Statement": [statement]})
    credentials = assumed(gw.url, "quota-role", Policy=policy)
    assert call_sts(gw.url, allowed, credentials).status == 200
    check_refusal(call_sts(gw.url, refused, credentials), Err.FORBIDDEN_RAM, "JSON")


def test_the_session_policy_cannot_widen_the_role(gw: LiveSts) -> None:
    policy = json.dumps({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    credentials = assumed(gw.url, "disks-only", Policy=policy)
    check_refusal(call_sts(gw.url, "DescribeRegions", credentials), Err.FORBIDDEN_RAM, "JSON")


def test_a_session_policy_deny_on_a_resource_wins(gw: LiveSts) -> None:
    policy = json.dumps({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "acs:ecs:*:*:instance/*"},
        {"Effect": "Deny", "Action": "ecs:DescribeInstances", "Resource": "acs:ecs:*:1111:instance/i-web-*"},
    ]})
    credentials = assumed(gw.url, "quota-role", Policy=policy)
    check_refusal(call_sts(gw.url, "DescribeInstances", credentials, {"InstanceId.1": "i-web-1"}),
                  Err.FORBIDDEN_RAM, "JSON")
    assert call_sts(gw.url, "DescribeInstances", credentials, {"InstanceId.1": "i-secret-1"}).status == 200


@pytest.mark.parametrize("policy", [
    "not json", "[]", '{"Version":"1"}', '{"Version":"1","Statement":[]}',
    '{"Version":"1","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"instance/i-1"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}],"Extra":1}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"' + "a" * 2100 + '","Resource":"*"}]}',
])
def test_policy_grammar_is_checked(gw: LiveSts, policy: str) -> None:
    check_refusal(assume(gw.url, "Reader", Policy=policy), Err.INVALID_POLICY_GRAMMAR, "JSON")


def test_quota_counts_against_the_key_that_assumed_the_role(gw: LiveSts) -> None:
    # LTAIquota has 3 calls an hour: AssumeRole is one, and new sessions buy no more.
    first = assumed(gw.url, "quota-role", key="LTAIquota")
    assert call_sts(gw.url, "DescribeRegions", first).status == 200
    second = assumed(gw.url, "quota-role", key="LTAIquota")
    check_refusal(call_sts(gw.url, "DescribeRegions", second), Err.QUOTA_EXHAUSTED, "JSON")
    check_refusal(call_sts(gw.url, "DescribeRegions", first), Err.QUOTA_EXHAUSTED, "JSON")


def test_nonces_are_per_key_and_single_use(gw: LiveSts) -> None:
    credentials = assumed(gw.url)
    params = signed_params("DescribeRegions", {"SecurityToken": credentials.token}, key=credentials.access_key_id,
                           secret=credentials.secret)
    assert httpx.get(f"{gw.url}/?{query(params)}").status_code == 200
    assert httpx.get(f"{gw.url}/?{query(params)}").json()["Code"] == "SignatureNonceUsed"


def test_client_token_is_scoped_to_the_temporary_key(gw: LiveSts) -> None:
    credentials = assumed(gw.url, "quota-role")
    first = call_sts(gw.url, "CreateThing", credentials, {"Name": "x", "ClientToken": "tok-sts-1"})
    again = call_sts(gw.url, "CreateThing", credentials, {"Name": "x", "ClientToken": "tok-sts-1"})
    assert first.status == again.status == 200 and first.body == again.body  # the first answer, replayed
    assert gw.service.executed["CreateThing"] == 1
    other = assumed(gw.url, "quota-role")
    answer = call_sts(gw.url, "CreateThing", other, {"Name": "x", "ClientToken": "tok-sts-1"})
    check_refusal(answer, Err.IDEMPOTENCE_CALLER_MISMATCH, "JSON")


def test_the_token_is_signed_like_every_parameter(gw: LiveSts) -> None:
    mine, theirs = assumed(gw.url), assumed(gw.url)
    params = signed_params("DescribeRegions", {"SecurityToken": mine.token}, key=mine.access_key_id,
                           secret=mine.secret)
    params["SecurityToken"] = theirs.token  # swapped after signing
    assert httpx.get(f"{gw.url}/?{query(params)}").json()["Code"] == "InvalidSecurityToken.MismatchWithAccessKey"


def test_the_wrong_secret_is_incomplete_signature(gw: LiveSts) -> None:
    credentials = assumed(gw.url)
    answer = call_sts(gw.url, "DescribeRegions", credentials, secret="root-secret")
    check_refusal(answer, Err.INCOMPLETE_SIGNATURE, "JSON")


def test_a_long_term_key_with_a_token_is_mismatch(gw: LiveSts) -> None:
    credentials = assumed(gw.url)
    params = signed_params("DescribeRegions", {"SecurityToken": credentials.token}, key="LTAIroot",
                           secret="root-secret")
    answer = Answer(*(lambda r: (r.status_code, r.headers, r.content))(httpx.get(f"{gw.url}/?{query(params)}")))
    check_refusal(answer, Err.TOKEN_MISMATCH, "JSON")


def test_v3_token_header_must_be_signed(gw: LiveSts) -> None:
    credentials = assumed(gw.url)
    assert call_sts_v3(gw.url, "DescribeRegions", credentials).status == 200
    check_refusal(call_sts_v3(gw.url, "DescribeRegions", credentials, sign_token=False),
                  Err.INCOMPLETE_SIGNATURE, "JSON")


def test_v3_token_errors(gw: LiveSts) -> None:
    credentials, other = assumed(gw.url), assumed(gw.url)
    check_refusal(call_sts_v3(gw.url, "DescribeRegions", credentials, token=other.token, accept="application/xml"),
                  Err.TOKEN_MISMATCH, "XML")
    check_refusal(call_sts_v3(gw.url, "DescribeRegions", credentials, token=credentials.token[:-3]),
                  Err.TOKEN_MALFORMED, "JSON")


def test_a_token_from_another_signing_key_is_malformed(gw: LiveSts) -> None:
    from gateway.sts.token import TokenKeys

    credentials = assumed(gw.url)
    claims = TokenKeys(bytes.fromhex("5f" * 32)).open(credentials.token)
    assert claims is not None
    forged = TokenKeys(bytes(32)).mint(claims)
    check_refusal(call_sts(gw.url, "DescribeRegions", credentials, token=forged), Err.TOKEN_MALFORMED, "JSON")


def test_the_temporary_secret_is_the_one_answered(gw: LiveSts) -> None:
    # The secret is derived, not stored: a second gateway with the same signing key verifies it.
    credentials = assumed(gw.url)
    with live_sts() as other:
        assert call_sts(other.url, "DescribeRegions", credentials).status == 200


# --- without [sts], and in proxy mode -----------------------------------------------------------


def test_without_sts_security_token_stays_unsupported(memory_gateway: LiveGateway) -> None:
    answer = call(memory_gateway.url, "DescribeRegions", {"SecurityToken": "v1.abc.def"})
    check_refusal(answer, Err.UNSUPPORTED_PARAMETER, "JSON", name="SecurityToken")
    answer = call(memory_gateway.url, "AssumeRole", {"RoleArn": arn("Reader"), "RoleSessionName": "x"},
                  version="2015-04-01")
    check_refusal(answer, Err.INVALID_VERSION, "JSON")


def test_proxy_mode_answers_assume_role_itself() -> None:
    upstream = Upstream()
    with serve_in_thread(upstream) as upstream_url:
        config = Settings(config=str(DATA / "sts_policy.toml"), upstream_url=upstream_url, host_id="gateway.test")
        app = GatewayMiddleware(ProxyApp(config), settings=config, policy=sts_policy(), store=open_store(None))
        with serve_in_thread(app) as url:
            credentials = assumed(url, key="LTAIdev", session="proxied")
            assert upstream.requests == 0
            params = signed_params("DescribeRegions", {"SecurityToken": credentials.token},
                                   key=credentials.access_key_id, secret=credentials.secret)
            echo = httpx.get(f"{url}/echo?{query(params)}").json()
            assert upstream.requests == 1
            assert echo["Headers"]["x-gateway-role-arn"] == ["acs:ram::1111:role/Reader"]
            assert echo["Headers"]["x-gateway-role-session-name"] == ["proxied"]
            assert echo["Headers"]["x-gateway-assumed-by"] == ["LTAIdev"]
