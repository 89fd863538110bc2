"""Every row beyond the seed table (temporary credentials, #17), provoked over HTTP in XML and JSON.

tests/test_error_rows.py covers the forty seed rows; `PROVOKE` here covers the rest, and a test checks
that together they cover the whole catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gateway.catalog import SEED, Err
from tests.support.client import Answer
from tests.support.sts import LiveSts, arn, assume, assumed, call_sts, live_sts, minted, tampered
from tests.test_error_rows import FORMATS, check_refusal
from tests.test_error_rows import PROVOKE as SEED_PROVOKE

Provoke = Callable[[LiveSts, str], Answer]


def _without_token(gw: LiveSts, fmt: str) -> Answer:
    return call_sts(gw.url, "DescribeRegions", assumed(gw.url), fmt=fmt, with_token=False)


def _tampered(gw: LiveSts, fmt: str) -> Answer:
    credentials = assumed(gw.url)
    return call_sts(gw.url, "DescribeRegions", credentials, fmt=fmt, token=tampered(credentials.token))


def _expired(gw: LiveSts, fmt: str) -> Answer:
    credentials = assumed(gw.url)
    return call_sts(gw.url, "DescribeRegions", credentials, fmt=fmt, token=minted(credentials, expires=1_000_000_000))


def _other_key(gw: LiveSts, fmt: str) -> Answer:
    mine, theirs = assumed(gw.url), assumed(gw.url)
    return call_sts(gw.url, "DescribeRegions", mine, fmt=fmt, token=theirs.token)


PROVOKE: dict[Err, Provoke] = {
    Err.MISSING_SECURITY_TOKEN: _without_token,
    Err.TOKEN_MALFORMED: _tampered,
    Err.TOKEN_EXPIRED: _expired,
    Err.TOKEN_MISMATCH: _other_key,
    Err.ROLE_NOT_FOUND: lambda gw, fmt: assume(gw.url, "no-such-role", fmt=fmt),
    Err.NO_PERMISSION: lambda gw, fmt: assume(gw.url, "disks-only", key="LTAIdev", fmt=fmt),
    Err.INVALID_DURATION: lambda gw, fmt: assume(gw.url, "Reader", fmt=fmt, DurationSeconds="899"),
    Err.INVALID_ROLE_SESSION_NAME: lambda gw, fmt: assume(gw.url, "Reader", session="a", fmt=fmt),
    Err.INVALID_POLICY_GRAMMAR: lambda gw, fmt: assume(gw.url, "Reader", fmt=fmt, Policy='{"Version":"2"}'),
}


@pytest.fixture(scope="module", params=["memory", "redis"])
def sts_gateway(request: pytest.FixtureRequest) -> Iterator[LiveSts]:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    with live_sts(redis_url) as gw:
        yield gw


def test_every_row_beyond_the_seed_has_a_provocation() -> None:
    assert not any(err.value.seed for err in PROVOKE)
    assert set(PROVOKE) | set(SEED_PROVOKE) == set(Err)
    assert set(SEED) == set(SEED_PROVOKE)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("err", list(PROVOKE), ids=lambda err: err.name)
def test_row_over_http(sts_gateway: LiveSts, err: Err, fmt: str) -> None:
    check_refusal(PROVOKE[err](sts_gateway, fmt), err, fmt)
    assert sts_gateway.service.executed["DescribeRegions"] == 0  # no call of this module reaches the service


@pytest.mark.parametrize(("err", "status", "code"), [
    (Err.MISSING_SECURITY_TOKEN, 400, "MissingSecurityToken"),
    (Err.TOKEN_MALFORMED, 400, "InvalidSecurityToken.Malformed"),
    (Err.TOKEN_EXPIRED, 400, "InvalidSecurityToken.Expired"),
    (Err.TOKEN_MISMATCH, 400, "InvalidSecurityToken.MismatchWithAccessKey"),
    (Err.ROLE_NOT_FOUND, 404, "EntityNotExist.Role"),
    (Err.NO_PERMISSION, 403, "NoPermission"),
    (Err.INVALID_DURATION, 400, "InvalidParameter.DurationSeconds"),
    (Err.INVALID_ROLE_SESSION_NAME, 400, "InvalidParameter.RoleSessionName"),
    (Err.INVALID_POLICY_GRAMMAR, 400, "InvalidParameter.PolicyGrammar"),
])
def test_codes_and_statuses(err: Err, status: int, code: str) -> None:
    assert (err.code, err.status) == (code, status)


def test_the_role_of_another_account_is_not_found_even_if_it_exists(sts_gateway: LiveSts) -> None:
    check_refusal(assume(sts_gateway.url, arn("bob-role", 2222)), Err.ROLE_NOT_FOUND, "JSON")
    assert assume(sts_gateway.url, arn("bob-role", 2222), key="LTAIbob").status == 200
