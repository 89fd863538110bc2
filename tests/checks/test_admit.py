"""Units of `gateway.admit` over the memory store: the ticket a call writes, and its ClientToken's life."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admit import NO_TOKEN, Admission
from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.policy import Policy
from gateway.signing._encoding import utc_timestamp
from gateway.stores import MemoryStore, StoredAnswer, Ticket, Verdict
from tests.support.calls import a_call, an_exchange


class Recording(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.tickets: list[Ticket] = []

    async def admit(self, ticket: Ticket) -> Verdict:
        self.tickets.append(ticket)
        return await super().admit(ticket)


def _call(policy: Policy, action: str = "DescribeRegions", nonce: str = "n-1", **params: str) -> Call:
    base = {**a_call().params, "Action": action, "SignatureNonce": nonce, "Timestamp": utc_timestamp(), **params}
    return a_call(policy, params=base)


def _admission(policy: Policy, store: MemoryStore) -> Admission:
    return Admission(store, policy, skew=900, lease_seconds=30, answer_ttl=60)


def test_a_plain_call_writes_its_nonce_for_the_window_and_holds_no_token(policy: Policy) -> None:
    store = Recording()
    admitted = asyncio.run(_admission(policy, store)(_call(policy), an_exchange()))
    assert admitted is NO_TOKEN and not admitted.holds_token
    (ticket,) = store.tickets
    assert (ticket.scope, ticket.nonce, ticket.takes, ticket.idempotency) == ("1111", "LTAIalice:n-1", (), None)
    assert 900_000 < ticket.nonce_ttl_ms <= 906_000
    assert abs(ticket.timestamp_ms - time.time() * 1000) < 2000


def test_a_used_nonce_is_refused(policy: Policy) -> None:
    admission = _admission(policy, MemoryStore())
    asyncio.run(admission(_call(policy), an_exchange()))
    with pytest.raises(GatewayError) as caught:
        asyncio.run(admission(_call(policy), an_exchange()))
    assert caught.value.err is Err.SIGNATURE_NONCE_USED


def test_quota_takes_are_the_keys(policy: Policy) -> None:
    store = Recording()
    call = a_call(policy, params={**_call(policy).params, "AccessKeyId": "LTAIquota"})
    asyncio.run(_admission(policy, store)(call, an_exchange()))
    assert [take.key for take in store.tickets[0].takes] == ["quota:LTAIquota"]


def test_a_client_token_is_kept_then_replayed(policy: Policy) -> None:
    async def scenario() -> None:
        admission = _admission(policy, MemoryStore())
        first = await admission(_call(policy, "CreateOrder", "n-1", ClientToken="t", Amount="1"), an_exchange())
        assert first.holds_token and first.replay is None
        first.start()
        await first.keep(StoredAnswer(200, "application/json", b'{"OrderId":"o"}'))
        await first.settle()
        again = await admission(_call(policy, "CreateOrder", "n-2", ClientToken="t", Amount="1"), an_exchange())
        assert again.replay is not None and again.replay.body == b'{"OrderId":"o"}'

    asyncio.run(scenario())


def test_a_failed_first_call_releases_its_token(policy: Policy) -> None:
    async def scenario() -> None:
        admission = _admission(policy, MemoryStore())
        first = await admission(_call(policy, "CreateOrder", "n-1", ClientToken="t", Amount="1"), an_exchange())
        first.start()
        await first.keep(StoredAnswer(500, "application/json", b"{}"))  # a 5xx is never kept
        await first.settle()
        again = await admission(_call(policy, "CreateOrder", "n-2", ClientToken="t", Amount="1"), an_exchange())
        assert again.holds_token and again.replay is None
        await again.settle()

    asyncio.run(scenario())


def test_the_same_token_while_running_or_with_other_parameters_is_refused(policy: Policy) -> None:
    async def scenario() -> None:
        admission = _admission(policy, MemoryStore())
        first = await admission(_call(policy, "CreateOrder", "n-1", ClientToken="t", Amount="1"), an_exchange())
        first.start()
        with pytest.raises(GatewayError) as caught:
            await admission(_call(policy, "CreateOrder", "n-2", ClientToken="t", Amount="1"), an_exchange())
        assert caught.value.err is Err.LAST_TOKEN_PROCESSING
        await first.keep(StoredAnswer(200, "application/json", b"{}"))
        await first.settle()
        with pytest.raises(GatewayError) as caught:
            await admission(_call(policy, "CreateOrder", "n-3", ClientToken="t", Amount="2"), an_exchange())
        assert caught.value.err is Err.IDEMPOTENT_PARAMETER_MISMATCH

    asyncio.run(scenario())
