"""Units of `gateway.checks.params`: undeclared parameters, types and rules, required ones."""

from __future__ import annotations

import pytest

from gateway.catalog import Err
from gateway.checks.params import Params
from gateway.errors import GatewayError
from gateway.policy import Policy
from tests.support.calls import a_call

CHECK = Params(max_repeated=100)


def _call(policy: Policy, action: str, **params: str) -> object:
    base = {**a_call().params, "Action": action}
    return a_call(policy, params={**base, **params})


@pytest.mark.parametrize(("action", "params"), [
    ("DescribeRegions", {}), ("DescribeRegions", {"AcceptLanguage": "en-US", "RegionId": "cn-hangzhou"}),
    ("DescribeInstances", {"PageSize": "100", "InstanceId.1": "i-1", "InstanceId.2": "i-2", "DryRun": "true"}),
    ("DescribeInstances", {"Name": "web-1", "Status": "Running"}),
    ("DeleteInstance", {"InstanceId": "i-1"}),
])
def test_declared_parameters_within_their_rules_pass(policy: Policy, action: str, params: dict[str, str]) -> None:
    CHECK(_call(policy, action, **params))  # type: ignore[arg-type]


@pytest.mark.parametrize(("action", "params", "err"), [
    ("DescribeRegions", {"Foo": "1"}, Err.UNSUPPORTED_PARAMETER),
    ("DescribeRegions", {"AcceptLanguage": "fr-FR"}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"PageSize": "0"}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"PageSize": "1e2"}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"Name": "Web"}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"Name": "a" * 17}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"DryRun": "yes"}, Err.INVALID_PARAMETER),
    ("DescribeInstances", {"InstanceId": "i-1"}, Err.UNSUPPORTED_PARAMETER),
    ("DeleteInstance", {}, Err.MISSING_PARAMETER),
])
def test_a_parameter_breaking_its_rule_is_refused(policy: Policy, action: str, params: dict[str, str],
                                                   err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        CHECK(_call(policy, action, **params))  # type: ignore[arg-type]
    assert caught.value.err is err


def test_a_missing_required_parameter_is_named(policy: Policy) -> None:
    with pytest.raises(GatewayError) as caught:
        CHECK(_call(policy, "DeleteInstance"))  # type: ignore[arg-type]
    assert caught.value.code == "MissingParameter" and "InstanceId" in caught.value.message
