"""GATEWAY_FAIL_OPEN: flow/quota may be skipped when only they are out of reach; the nonce never is."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy
from gateway.stores import IdempotencyClaim, MemoryStore, StoredAnswer, StoreUnavailable, Ticket, Verdict
from tests.support.apps import EchoService
from tests.support.client import call, get, signed_params
from tests.support.servers import free_port, serve_in_thread


class TakesUnreachable:
    """A store whose flow/quota part is out of reach, like Redis Cluster with the flow keys' node down;
    the per-caller part (nonce, token) still answers. It delegates to the real MemoryStore."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def admit(self, ticket: Ticket) -> Verdict:
        if ticket.takes:
            raise StoreUnavailable("the node holding the flow keys is down")
        return await self.inner.admit(ticket)

    async def store_answer(self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int) -> None:
        await self.inner.store_answer(scope, claim, answer, ttl_ms)

    async def release(self, scope: str, claim: IdempotencyClaim) -> None:
        await self.inner.release(scope, claim)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class TakesUnreachableReleasing(TakesUnreachable):
    """As RedisStore does when an admit holding a ClientToken fails: it releases that claim's lease
    (here at once, as a background release that ran before the fail-open admit would)."""

    async def admit(self, ticket: Ticket) -> Verdict:
        if ticket.takes and ticket.idempotency is not None:
            await self.inner.release(ticket.scope, ticket.idempotency)
        return await super().admit(ticket)


def _serve(policy: Policy, store: object, fail_open: tuple[str, ...]) -> Iterator[str]:
    settings = Settings(fail_open=fail_open, host_id="gateway.test", access_log=False)
    app = GatewayMiddleware(EchoService(), settings=settings, policy=policy, store=store)  # type: ignore[arg-type]
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def open_gateway(policy: Policy) -> Iterator[str]:
    yield from _serve(policy, TakesUnreachable(), ("quota", "flow"))


@pytest.fixture(scope="module")
def closed_gateway(policy: Policy) -> Iterator[str]:
    yield from _serve(policy, TakesUnreachable(), ())


def _fail_open_count(url: str) -> float:
    text = httpx.get(f"{url}/_gateway/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gateway_fail_open_total{"))


def test_takes_out_of_reach_fail_open_when_chosen(open_gateway: str) -> None:
    from gateway.metrics import count_fail_open  # noqa: F401  (the counter fail-open increments)

    before = _fail_open_count(open_gateway)
    params = signed_params("DescribeRegions", key="LTAIquota")  # a key with a quota: a quota take
    assert get(open_gateway, params).status == 200
    assert get(open_gateway, params).code() == "SignatureNonceUsed"  # the nonce was still claimed
    assert _fail_open_count(open_gateway) == before + 1


def test_a_client_token_fails_open_under_a_lease_of_its_own(policy: Policy) -> None:
    # The failed attempt's lease is being released; the fail-open attempt, were it the same claim,
    # would be cancelled with it.
    params = {"Amount": "5", "ClientToken": "fail-open-token"}
    for url in _serve(policy, TakesUnreachableReleasing(), ("quota", "flow")):
        first = get(url, signed_params("CreateOrder", params, key="LTAIquota"))
        assert first.status == 200, first.body
        retry = get(url, signed_params("CreateOrder", params, key="LTAIquota"))
        assert (retry.status, retry.body) == (200, first.body)  # its answer was stored: replayed


def test_takes_out_of_reach_refuse_by_default(closed_gateway: str) -> None:
    answer = call(closed_gateway, "DescribeRegions", key="LTAIquota")
    assert (answer.status, answer.code()) == (500, "ServiceUnavailable")


def test_requests_without_takes_never_needed_fail_open(closed_gateway: str) -> None:
    assert call(closed_gateway, "DescribeRegions").status == 200


def test_a_store_down_altogether_refuses_even_with_fail_open(policy: Policy) -> None:
    from gateway.stores import open_store

    store = open_store(f"redis://127.0.0.1:{free_port()}/0", timeout=0.25)
    for url in _serve(policy, store, ("quota", "flow")):
        answer = call(url, "DescribeRegions", key="LTAIquota")
        assert (answer.status, answer.code()) == (500, "ServiceUnavailable")
