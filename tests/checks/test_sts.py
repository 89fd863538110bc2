"""Units of the checks for temporary keys: the known-key check raises the token's refusal, Access
intersects the role's statements with the session policy, admission counts the assuming key's quota."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admit import Admission
from gateway.call import Call
from gateway.catalog import Err
from gateway.checks.access import Access
from gateway.checks.caller import known_key
from gateway.errors import GatewayError
from gateway.policy import AccessKey, Policy
from gateway.resources import PolicyResolver
from gateway.stores import MemoryStore
from gateway.sts import token as tokens
from gateway.sts.keys import TemporaryKeys
from tests.support.calls import a_call
from tests.support.sts import SIGNING_KEY, sts_policy

KEYS = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))


@pytest.fixture(scope="module")
def policy() -> Policy:
    return sts_policy()


def _key(policy: Policy, role: str = "quota-role", session_policy: str | None = None,
         assumed_by: str = "LTAIroot") -> AccessKey:
    assert policy.sts is not None
    claims = tokens.Claims("STS.unit", 1111, role, "s", assumed_by, int(time.time()) + 900, session_policy)
    key, refusal = TemporaryKeys(policy, policy.sts).resolve("STS.unit", None, KEYS.mint(claims))
    assert key is not None, refusal
    return key


def _call(policy: Policy, key: AccessKey, action: str, **params: str) -> Call:
    return a_call(policy, params={**a_call().params, "Action": action, "AccessKeyId": key.id, **params}, key=key)


def _access(policy: Policy, call: Call) -> Err | None:
    try:
        pending = Access(PolicyResolver(policy))(call)
        if pending is not None:
            asyncio.run(pending)  # type: ignore[arg-type]
    except GatewayError as exc:
        return exc.err
    return None


@pytest.mark.parametrize("err", [Err.MISSING_SECURITY_TOKEN, Err.TOKEN_MALFORMED, Err.TOKEN_EXPIRED,
                                 Err.TOKEN_MISMATCH, Err.INCOMPLETE_SIGNATURE])
def test_known_key_raises_the_token_refusal(err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        known_key(a_call(access_key_id="STS.x", key=None, token_error=err))
    assert caught.value.err is err


def test_known_key_without_a_refusal_is_not_found() -> None:
    with pytest.raises(GatewayError) as caught:
        known_key(a_call(key=None))
    assert caught.value.err is Err.ACCESS_KEY_NOT_FOUND


def test_the_role_and_the_session_policy_must_both_allow(policy: Policy) -> None:
    only_disks = '{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:DescribeDisks","Resource":"*"}]}'
    assert _access(policy, _call(policy, _key(policy), "DescribeRegions")) is None
    assert _access(policy, _call(policy, _key(policy, session_policy=only_disks), "DescribeRegions")) is \
        Err.FORBIDDEN_RAM
    assert _access(policy, _call(policy, _key(policy, session_policy=only_disks), "DescribeDisks")) is None
    assert _access(policy, _call(policy, _key(policy, "disks-only"), "DescribeRegions")) is Err.FORBIDDEN_RAM


def test_a_session_deny_on_a_named_resource(policy: Policy) -> None:
    deny = ('{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},'
            '{"Effect":"Allow","Action":"*","Resource":"acs:ecs:*:*:instance/*"},'
            '{"Effect":"Deny","Action":"*","Resource":"acs:ecs:*:*:instance/i-web-1"}]}')
    key = _key(policy, session_policy=deny)
    assert _access(policy, _call(policy, key, "DescribeInstances", **{"InstanceId.1": "i-web-1"})) is Err.FORBIDDEN_RAM
    assert _access(policy, _call(policy, key, "DescribeInstances", **{"InstanceId.1": "i-secret-1"})) is None


def test_quota_is_the_assuming_keys(policy: Policy) -> None:
    key = _key(policy, assumed_by="LTAIquota")
    assert key.quota == policy.access_keys["LTAIquota"].quota
    admission = Admission(MemoryStore(), policy, skew=900, lease_seconds=5, answer_ttl=60)
    api = policy.api("2014-05-26", "DescribeRegions")
    assert api is not None
    takes = admission._takes(api, key)
    assert [take.key for take in takes if take.kind == "quota"] == ["quota:LTAIquota"]
