"""Units of `gateway.checks.owner`: OwnerId / OwnerAccount, and the account's standing."""

from __future__ import annotations

import pytest

from gateway.catalog import Err
from gateway.checks.owner import account_state, owner
from gateway.errors import GatewayError
from gateway.policy import Policy
from tests.support.calls import a_call


def _with(policy: Policy, **params: str) -> object:
    base = dict(a_call().params)
    return a_call(policy, params={**base, **params})


@pytest.mark.parametrize("params", [{}, {"OwnerId": "1111"}, {"OwnerAccount": "alice@example.com"},
                                    {"OwnerId": "", "OwnerAccount": ""}])
def test_the_callers_own_account_or_none_passes(policy: Policy, params: dict[str, str]) -> None:
    owner(_with(policy, **params))  # type: ignore[arg-type]


@pytest.mark.parametrize(("params", "err"), [
    ({"OwnerId": "1111", "OwnerAccount": "alice@example.com"}, Err.INVALID_OWNER),
    ({"OwnerId": "2222"}, Err.INVALID_OWNER_ID),
    ({"OwnerAccount": "bob@example.com"}, Err.INVALID_OWNER_ACCOUNT),
])
def test_another_account_or_both_names_are_refused(policy: Policy, params: dict[str, str], err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        owner(_with(policy, **params))  # type: ignore[arg-type]
    assert caught.value.err is err


def test_an_api_requiring_an_owner_refuses_a_call_without_one(policy: Policy) -> None:
    api = policy.api("2014-05-26", "DescribeOwnedThings")
    with pytest.raises(GatewayError) as caught:
        owner(a_call(policy, api=api))
    assert (caught.value.err, caught.value.status) == (Err.MISSING_OWNER, 403)
    owner(a_call(policy, api=api, params={**a_call().params, "OwnerId": "1111"}))


def test_account_state_checks_real_name_and_balance(policy: Policy) -> None:
    verified = policy.api("2014-05-26", "CreateVerifiedThing")
    order = policy.api("2014-05-26", "CreateOrder")
    alice, bob = policy.access_keys["LTAIalice"], policy.access_keys["LTAIbob"]
    account_state(a_call(policy, api=verified, key=alice))
    account_state(a_call(policy, api=order, key=alice))
    for api, err in ((verified, Err.REAL_NAME_REQUIRED), (order, Err.INSUFFICIENT_BALANCE)):
        with pytest.raises(GatewayError) as caught:
            account_state(a_call(policy, api=api, key=bob))
        assert caught.value.err is err
