"""Units of `gateway.checks.access`: the key's grants, RAM statements, resources named by a sub-user."""

from __future__ import annotations

import asyncio

import pytest

from gateway.call import Call
from gateway.catalog import Err
from gateway.checks.access import Access
from gateway.errors import GatewayError
from gateway.policy import Policy
from gateway.resources import PolicyResolver
from tests.support.calls import a_call


def _call(policy: Policy, key: str, action: str, **params: str) -> Call:
    return a_call(policy, params={**a_call().params, "Action": action, **params}, key=policy.access_keys[key])


def _run(policy: Policy, call: Call) -> None:
    pending = Access(PolicyResolver(policy))(call)
    if pending is not None:
        asyncio.run(pending)  # type: ignore[arg-type]


def _refused(policy: Policy, call: Call) -> Err:
    with pytest.raises(GatewayError) as caught:
        _run(policy, call)
    return caught.value.err


def test_a_plain_call_needs_no_coroutine(policy: Policy) -> None:
    assert Access(PolicyResolver(policy))(_call(policy, "LTAIalice", "DescribeRegions")) is None


def test_a_key_limited_to_some_actions_and_parameters(policy: Policy) -> None:
    _run(policy, _call(policy, "LTAIreadonly", "DescribeRegions"))
    assert _refused(policy, _call(policy, "LTAIreadonly", "CreateOrder")) is Err.INVALID_ACTION
    assert _refused(policy, _call(policy, "LTAIreadonly", "DescribeInstances", PageSize="1")) \
        is Err.PARAMETER_NOT_PERMITTED


def test_sub_user_rules(policy: Policy) -> None:
    _run(policy, _call(policy, "LTAIops", "DescribeRegions"))
    assert _refused(policy, _call(policy, "LTAIops", "CreateOrder")) is Err.FORBIDDEN_SUB_USER
    assert _refused(policy, _call(policy, "LTAIops", "DescribeClosedToRam")) is Err.FORBIDDEN_NOT_SUPPORT_RAM


def test_a_sub_user_naming_resources_waits_for_the_resolver(policy: Policy) -> None:
    call = _call(policy, "LTAIops", "DescribeInstances", **{"InstanceId.1": "i-missing"})
    pending = Access(PolicyResolver(policy))(call)
    assert pending is not None
    pending.close()  # type: ignore[attr-defined]
    assert _refused(policy, call) is Err.INSTANCE_NOT_FOUND
