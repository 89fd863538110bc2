"""One contract for every Store: the memory store and the Redis store (a real redis-server) must agree.

Each test runs once per backend. ``backend.client()`` gives another client of the same state: the
same object for memory (one process), a separate RedisStore (its own connections) for Redis.
Both backends read the same wall clock (Redis server time on this host), so tests that are about time
passing align themselves to quota windows instead of sleeping blindly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.rates import Rate
from gateway.stores import (
    IdempotencyClaim,
    MemoryStore,
    Outcome,
    Store,
    StoredAnswer,
    Take,
    Ticket,
    Verdict,
    open_store,
)
from gateway.stores.base import NONCE_HISTORY_GRACE_MS
from tests.support.redis import running_redis

HOUR = 3_600_000
DAY = 86_400_000
SLACK = 2.0  # seconds


@dataclass
class Backend:
    name: str
    client: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        shared = MemoryStore()
        made = Backend("memory", lambda: shared)
    else:
        url: str = request.getfixturevalue("redis_url")
        # The contract is about atomicity, not latency: a generous timeout keeps hundreds of
        # concurrent connects on a loaded 2-core machine from failing the suite.
        made = Backend("redis", lambda: _remember(made, open_store(url, timeout=SLACK)))
    yield made
    for store in made.opened:
        await store.aclose()


def _remember(backend: Backend, store: Store) -> Store:
    backend.opened.append(store)
    return store


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.client()


@pytest.fixture(params=["memory", "redis"])
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A store whose memory has just begun: a new MemoryStore (a gateway just started), or a store
    over a redis-server just started (empty: a first start, or a restart without persistence)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    with running_redis() as server:
        store = open_store(server.url, timeout=SLACK)
        yield store
        await store.aclose()


def uid() -> str:
    return uuid.uuid4().hex[:12]


def ticket(
    *takes: Take,
    scope: str = "1001",
    nonce: str | None = None,
    ttl_ms: int = 60_000,
    claim: IdempotencyClaim | None = None,
    timestamp_ms: int | None = None,
) -> Ticket:
    when = now_ms() if timestamp_ms is None else timestamp_ms
    return Ticket(scope, nonce if nonce is not None else f"AK:{uid()}", ttl_ms, takes, claim, timestamp_ms=when)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def quota(key: str, limit: int, period_ms: int = HOUR) -> Take:
    return Take("quota", key, Rate(limit, period_ms))


def flow(key: str, limit: int, period_ms: int = HOUR) -> Take:
    return Take("flow", key, Rate(limit, period_ms))


def claim(
    token: str, *, owner: str = "owner-a", fingerprint: str = "fp-1", lease_ms: int = 30_000
) -> IdempotencyClaim:
    return IdempotencyClaim(token, owner, fingerprint, lease_ms)


async def fresh_window(period_ms: int, need_ms: int) -> None:
    """Wait, if needed, until the current epoch-aligned window has ``need_ms`` left."""
    left = period_ms - time.time() * 1000 % period_ms
    if left < need_ms:
        await asyncio.sleep(left / 1000 + 0.003)


async def eventually(attempt: Callable[[], Awaitable[Verdict]], outcome: Outcome, within: float) -> Verdict:
    """Poll ``attempt`` until it yields ``outcome``: for behaviour that IS time passing."""
    deadline = time.monotonic() + within
    while True:
        verdict = await attempt()
        if verdict.outcome is outcome or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(0.01)


async def outcomes(store: Store, tickets: list[Ticket]) -> list[Outcome]:
    return [v.outcome for v in await asyncio.gather(*(store.admit(t) for t in tickets))]


# --- nonce ---


async def test_nonce_is_accepted_once(store: Store) -> None:
    assert (await store.admit(ticket(nonce="AK:n1"))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(nonce="AK:n1"))).outcome is Outcome.NONCE_USED
    assert (await store.admit(ticket(nonce="AK:n2"))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(nonce="AK:n1", scope="2002"))).outcome is Outcome.ADMITTED


async def test_nonce_none_skips_the_check(store: Store) -> None:
    for _ in range(3):
        assert (await store.admit(Ticket("1001", None, 1000, (), timestamp_ms=now_ms()))).outcome is Outcome.ADMITTED


async def test_nonce_expires_after_its_ttl(store: Store) -> None:
    started = time.monotonic()
    assert (await store.admit(ticket(nonce="AK:n", ttl_ms=150))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(nonce="AK:n", ttl_ms=150))).outcome is Outcome.NONCE_USED
    verdict = await eventually(lambda: store.admit(ticket(nonce="AK:n", ttl_ms=150)), Outcome.ADMITTED, 2)
    assert verdict.outcome is Outcome.ADMITTED
    assert time.monotonic() - started >= 0.14


async def test_a_new_store_refuses_what_was_signed_well_before_it_began(new_store: Store) -> None:
    # Its history begins now: a nonce signed a minute ago may have been used by the store's previous
    # life (the gateway before its restart, Redis before its restart), and cannot be shown fresh.
    minute_ago = now_ms() - 60_000
    old = ticket(quota("q", 5), nonce="AK:old", timestamp_ms=minute_ago)
    assert (await new_store.admit(old)).outcome is Outcome.NONCE_UNPROVEN
    # Within the grace (client clocks lag a little), and later, nonces are checked as usual.
    within_grace = now_ms() - NONCE_HISTORY_GRACE_MS + 3_000
    assert (await new_store.admit(ticket(quota("q", 5), nonce="AK:n", timestamp_ms=within_grace))).remaining == 4
    assert (await new_store.admit(ticket(nonce="AK:n"))).outcome is Outcome.NONCE_USED
    # A request without a nonce has nothing to prove; the refusal took no quota.
    no_nonce = Ticket("1001", None, 1000, (quota("q", 5),), timestamp_ms=minute_ago)
    assert (await new_store.admit(no_nonce)).remaining == 3
    # And the refusal is for good: the same request is not admitted later either.
    assert (await new_store.admit(old)).outcome is Outcome.NONCE_UNPROVEN


# --- quota ---


async def test_quota_admits_exactly_its_limit(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    remaining = [(await store.admit(ticket(quota("q", 5)))).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    refused = await store.admit(ticket(quota("q", 5)))
    assert refused.outcome is Outcome.QUOTA_EXHAUSTED
    to_window_end = HOUR - time.time() * 1000 % HOUR
    assert 0 < refused.retry_after_ms <= to_window_end + 50
    assert refused.retry_after_ms >= to_window_end - 1_000


async def test_quota_window_is_aligned_to_the_epoch(store: Store) -> None:
    await fresh_window(DAY, 5_000)
    assert (await store.admit(ticket(quota("daily", 1, DAY)))).outcome is Outcome.ADMITTED
    refused = await store.admit(ticket(quota("daily", 1, DAY)))
    to_midnight_utc = DAY - time.time() * 1000 % DAY
    assert refused.outcome is Outcome.QUOTA_EXHAUSTED
    assert abs(refused.retry_after_ms - to_midnight_utc) < 1_000


async def test_quota_resets_when_its_window_ends(store: Store) -> None:
    await fresh_window(400, 250)
    assert [(await store.admit(ticket(quota("q", 3, 400)))).remaining for _ in range(3)] == [2, 1, 0]
    refused = await store.admit(ticket(quota("q", 3, 400)))
    assert refused.outcome is Outcome.QUOTA_EXHAUSTED
    assert 0 < refused.retry_after_ms <= 400
    await asyncio.sleep(refused.retry_after_ms / 1000 + 0.005)  # time passing is the behaviour here
    again = await store.admit(ticket(quota("q", 3, 400)))
    assert (again.outcome, again.remaining) == (Outcome.ADMITTED, 2)


async def test_quotas_are_per_scope_and_key(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    assert (await store.admit(ticket(quota("q", 1)))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(quota("q", 1)))).outcome is Outcome.QUOTA_EXHAUSTED
    assert (await store.admit(ticket(quota("q", 1), scope="2002"))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(quota("other", 1)))).outcome is Outcome.ADMITTED


async def test_remaining_is_the_smallest_quota_left(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    verdict = await store.admit(ticket(quota("key", 10), quota("api", 3)))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 2)
    assert (await store.admit(ticket(flow("f", 10)))).remaining is None  # no quota take, no number


async def test_one_exhausted_quota_refuses_and_takes_none_of_the_others(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    assert (await store.admit(ticket(quota("api", 1)))).outcome is Outcome.ADMITTED
    both = await store.admit(ticket(quota("key", 5), quota("api", 1)))
    assert both.outcome is Outcome.QUOTA_EXHAUSTED
    assert (await store.admit(ticket(quota("key", 5)))).remaining == 4


# --- flow control (GCRA) ---


async def test_flow_admits_a_burst_of_its_limit(store: Store) -> None:
    assert await outcomes(store, [ticket(flow("api", 5, 10_000)) for _ in range(5)]) == [Outcome.ADMITTED] * 5
    refused = await store.admit(ticket(flow("api", 5, 10_000)))
    assert refused.outcome is Outcome.FLOW_LIMITED
    assert 1_500 < refused.retry_after_ms <= 2_000  # one emission interval, minus the time spent


async def test_flow_spaces_requests_without_a_second_burst(store: Store) -> None:
    rate = flow("api", 2, 400)  # burst 2, then one every 200 ms
    assert [(await store.admit(ticket(rate))).outcome for _ in range(2)] == [Outcome.ADMITTED] * 2
    refused = await store.admit(ticket(rate))
    assert refused.outcome is Outcome.FLOW_LIMITED
    assert 0 < refused.retry_after_ms <= 200
    await asyncio.sleep(refused.retry_after_ms / 1000 + 0.005)  # time passing is the behaviour here
    assert (await store.admit(ticket(rate))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(rate))).outcome is Outcome.FLOW_LIMITED


async def test_flow_is_system_wide_not_per_scope(store: Store) -> None:
    assert (await store.admit(ticket(flow("api", 2), scope="1"))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(flow("api", 2), scope="2"))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(flow("api", 2), scope="3"))).outcome is Outcome.FLOW_LIMITED


# --- one ticket, all parts: a refusal by one part consumes nothing of the others ---


async def test_replayed_nonce_takes_no_quota_and_no_flow(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    takes = (quota("q", 2), flow("f", 2))
    assert (await store.admit(ticket(*takes, nonce="AK:n"))).remaining == 1
    assert (await store.admit(ticket(*takes, nonce="AK:n"))).outcome is Outcome.NONCE_USED
    verdict = await store.admit(ticket(*takes))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 0)


async def test_quota_refusal_burns_neither_nonce_nor_flow(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    assert (await store.admit(ticket(quota("q", 1), flow("f", 2)))).outcome is Outcome.ADMITTED
    refused = await store.admit(ticket(quota("q", 1), flow("f", 2), nonce="AK:n"))
    assert refused.outcome is Outcome.QUOTA_EXHAUSTED
    assert (await store.admit(ticket(flow("f", 2), nonce="AK:n"))).outcome is Outcome.ADMITTED


async def test_flow_refusal_burns_neither_nonce_nor_quota(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    assert (await store.admit(ticket(flow("f", 1), quota("q", 5)))).remaining == 4
    refused = await store.admit(ticket(flow("f", 1), quota("q", 5), nonce="AK:n"))
    assert refused.outcome is Outcome.FLOW_LIMITED
    assert refused.retry_after_ms > 0
    verdict = await store.admit(ticket(quota("q", 5), nonce="AK:n"))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 3)


async def test_checks_run_in_order_nonce_flow_quota_token(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    token = claim(uid())
    assert (await store.admit(ticket(flow("f", 1), quota("q", 1), nonce="AK:n", claim=token))).remaining == 0
    assert (await store.admit(ticket(flow("f", 1), nonce="AK:n"))).outcome is Outcome.NONCE_USED
    assert (await store.admit(ticket(flow("f", 1), quota("q", 1)))).outcome is Outcome.FLOW_LIMITED
    assert (await store.admit(ticket(quota("q", 1), claim=token))).outcome is Outcome.QUOTA_EXHAUSTED
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.TOKEN_PROCESSING


async def test_token_refusal_commits_nothing(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    token = claim(uid())
    assert (await store.admit(ticket(quota("q", 3), claim=token))).remaining == 2
    refused = await store.admit(ticket(quota("q", 3), nonce="AK:n", claim=token))
    assert refused.outcome is Outcome.TOKEN_PROCESSING
    verdict = await store.admit(ticket(quota("q", 3), nonce="AK:n"))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 1)


async def test_replay_claims_its_nonce_and_takes_no_quota(store: Store) -> None:
    await fresh_window(HOUR, 5_000)
    token = claim(uid())
    assert (await store.admit(ticket(quota("q", 3), claim=token))).remaining == 2
    await store.store_answer("1001", token, StoredAnswer(200, "application/json", b"{}"), 60_000)
    assert (await store.admit(ticket(quota("q", 3), nonce="AK:n", claim=token))).outcome is Outcome.REPLAY
    assert (await store.admit(ticket(nonce="AK:n"))).outcome is Outcome.NONCE_USED
    assert (await store.admit(ticket(quota("q", 3)))).remaining == 1


# --- idempotency ---


async def test_token_lifecycle_processing_then_replay(store: Store) -> None:
    token = claim(uid())
    answer = StoredAnswer(201, "text/xml;charset=utf-8", b"<R>\x00\xff caf\xc3\xa9</R>")
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.TOKEN_PROCESSING
    await store.store_answer("1001", token, answer, 60_000)
    replay = await store.admit(ticket(claim=token))
    assert (replay.outcome, replay.answer) == (Outcome.REPLAY, answer)
    assert (await store.admit(ticket(claim=token))).answer == answer  # replays again and again


async def test_token_with_other_parameters_or_caller_is_refused(store: Store) -> None:
    token = claim(uid())
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    other_params = claim(token.token, fingerprint="fp-2")
    other_caller = claim(token.token, owner="owner-b", fingerprint="fp-2")
    assert (await store.admit(ticket(claim=other_params))).outcome is Outcome.TOKEN_PARAMS_MISMATCH
    assert (await store.admit(ticket(claim=other_caller))).outcome is Outcome.TOKEN_CALLER_MISMATCH
    await store.store_answer("1001", token, StoredAnswer(200, "text/xml", b""), 60_000)
    assert (await store.admit(ticket(claim=other_params))).outcome is Outcome.TOKEN_PARAMS_MISMATCH
    assert (await store.admit(ticket(claim=other_caller))).outcome is Outcome.TOKEN_CALLER_MISMATCH
    empty = (await store.admit(ticket(claim=token))).answer
    assert empty == StoredAnswer(200, "text/xml", b"")


async def test_tokens_are_per_scope(store: Store) -> None:
    token = claim(uid())
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(claim=token, scope="2002"))).outcome is Outcome.ADMITTED


async def test_release_lets_a_retry_run(store: Store) -> None:
    token = claim(uid())
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    await store.release("1001", claim(token.token, fingerprint="fp-2"))  # not this lease: kept
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.TOKEN_PROCESSING
    await store.release("1001", token)
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED


async def test_release_and_foreign_answers_leave_a_stored_answer_alone(store: Store) -> None:
    token = claim(uid())
    answer = StoredAnswer(200, "application/json", b'{"ok":1}')
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    await store.store_answer("1001", claim(token.token, owner="owner-b"), answer, 60_000)  # not ours
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.TOKEN_PROCESSING
    await store.store_answer("1001", token, answer, 60_000)
    await store.release("1001", token)  # too late: the answer stays
    assert (await store.admit(ticket(claim=token))).answer == answer


async def test_a_release_ahead_of_its_admit_cancels_it(store: Store) -> None:
    # A gateway gave up on an admit (a stalled Redis) and released its lease before the admit ran.
    token = claim(uid())
    await store.release("1001", token)
    assert (await store.admit(ticket(quota("q", 3), nonce="AK:n", claim=token))).outcome is Outcome.TOKEN_CANCELLED
    # It committed nothing: the retry, with its own lease, runs; the nonce and quota were not taken.
    retry = claim(token.token)
    verdict = await store.admit(ticket(quota("q", 3), nonce="AK:n", claim=retry))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 2)
    await store.release("1001", token)  # once more, late: the retry's lease stays
    assert (await store.admit(ticket(claim=claim(token.token)))).outcome is Outcome.TOKEN_PROCESSING


async def test_a_lease_taken_again_is_settled_only_by_its_new_holder(store: Store) -> None:
    first = claim(uid(), lease_ms=150)  # a slow first call whose lease expires while it runs
    assert (await store.admit(ticket(claim=first))).outcome is Outcome.ADMITTED
    again = claim(first.token)  # the same caller and parameters: only the lease differs
    assert (
        await eventually(lambda: store.admit(ticket(claim=again)), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    await store.release("1001", first)  # the first call failed late: not its lease any more
    await store.store_answer("1001", first, StoredAnswer(200, "text/xml", b"first"), 60_000)
    assert (await store.admit(ticket(claim=claim(first.token)))).outcome is Outcome.TOKEN_PROCESSING
    await store.store_answer("1001", again, StoredAnswer(200, "text/xml", b"again"), 60_000)
    assert (await store.admit(ticket(claim=claim(first.token)))).answer == StoredAnswer(200, "text/xml", b"again")


async def test_store_answer_without_a_lease_stores_nothing(store: Store) -> None:
    token = claim(uid())
    await store.store_answer("1001", token, StoredAnswer(200, "text/xml", b"x"), 60_000)
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED


async def test_lease_and_answer_expire(store: Store) -> None:
    token = claim(uid(), lease_ms=150)
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.TOKEN_PROCESSING
    assert (
        await eventually(lambda: store.admit(ticket(claim=token)), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    await store.store_answer("1001", token, StoredAnswer(200, "text/xml", b"x"), 150)
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.REPLAY
    assert (
        await eventually(lambda: store.admit(ticket(claim=token)), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED


async def test_renew_keeps_a_running_call_processing_past_its_lease(store: Store) -> None:
    # #16 item 21: a call slower than its lease renews it, so a retry never takes it over.
    token = claim(uid(), lease_ms=300)
    assert (await store.admit(ticket(claim=token))).outcome is Outcome.ADMITTED
    deadline = time.monotonic() + 0.9  # three leases long
    while time.monotonic() < deadline:
        assert await store.renew("1001", token) is True
        assert (await store.admit(ticket(claim=claim(token.token)))).outcome is Outcome.TOKEN_PROCESSING
        await asyncio.sleep(0.1)
    answer = StoredAnswer(200, "text/xml", b"first")
    await store.store_answer("1001", token, answer, 60_000)
    assert (await store.admit(ticket(claim=claim(token.token)))).answer == answer


async def test_renew_never_extends_what_is_not_its_pending_lease(store: Store) -> None:
    # Nothing there: no lease is created, and the token stays free.
    absent = claim(uid())
    assert await store.renew("1001", absent) is False
    assert await store.renew("2002", absent) is False
    assert (await store.admit(ticket(claim=claim(absent.token)))).outcome is Outcome.ADMITTED
    # Another claim's lease (the first call's lease expired and a retry took it): left as it is.
    first = claim(uid(), lease_ms=150)
    assert (await store.admit(ticket(claim=first))).outcome is Outcome.ADMITTED
    again = claim(first.token, lease_ms=150)
    assert (
        await eventually(lambda: store.admit(ticket(claim=again)), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    assert await store.renew("1001", first) is False
    assert (  # not extended by the stranger's renewal: it ends on its own holder's terms
        await eventually(lambda: store.admit(ticket(claim=claim(first.token))), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    # Answered: the answer keeps its own TTL, and a late renewal changes nothing.
    done = claim(uid())
    answer = StoredAnswer(200, "text/xml", b"x")
    assert (await store.admit(ticket(claim=done))).outcome is Outcome.ADMITTED
    await store.store_answer("1001", done, answer, 150)
    assert await store.renew("1001", done) is False
    assert (await store.admit(ticket(claim=done))).answer == answer
    assert (
        await eventually(lambda: store.admit(ticket(claim=claim(done.token))), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    # Released: gone for good, a retry runs.
    released = claim(uid())
    assert (await store.admit(ticket(claim=released))).outcome is Outcome.ADMITTED
    await store.release("1001", released)
    assert await store.renew("1001", released) is False
    assert (await store.admit(ticket(claim=claim(released.token)))).outcome is Outcome.ADMITTED


async def test_a_call_whose_lease_was_taken_over_cannot_store_over_the_new_one(store: Store) -> None:
    # #16 item 21: the first call's late answer must not replace the running retry's lease.
    first = claim(uid(), lease_ms=150)
    assert (await store.admit(ticket(claim=first))).outcome is Outcome.ADMITTED
    again = claim(first.token)
    assert (
        await eventually(lambda: store.admit(ticket(claim=again)), Outcome.ADMITTED, 2)
    ).outcome is Outcome.ADMITTED
    await store.store_answer("1001", first, StoredAnswer(200, "text/xml", b"first"), 60_000)
    assert await store.renew("1001", again) is True  # still the retry's pending lease
    assert (await store.admit(ticket(claim=claim(first.token)))).outcome is Outcome.TOKEN_PROCESSING


# --- concurrency: one state, many requests at once, over one client and over several ---


async def test_concurrent_same_nonce_is_admitted_once(backend: Backend) -> None:
    clients = [backend.client() for _ in range(4)]
    verdicts = await asyncio.gather(*(clients[i % 4].admit(ticket(nonce="AK:same")) for i in range(200)))
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 1, Outcome.NONCE_USED: 199}


async def test_concurrent_requests_never_exceed_a_quota(backend: Backend) -> None:
    await fresh_window(HOUR, 10_000)
    store = backend.client()
    assert Counter(await outcomes(store, [ticket(quota("q", 50)) for _ in range(300)])) == {
        Outcome.ADMITTED: 50,
        Outcome.QUOTA_EXHAUSTED: 250,
    }
    clients = [backend.client() for _ in range(5)]
    verdicts = await asyncio.gather(*(clients[i % 5].admit(ticket(quota("q2", 50))) for i in range(300)))
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 50, Outcome.QUOTA_EXHAUSTED: 250}
    assert sorted(v.remaining for v in verdicts if v.remaining is not None) == list(range(50))


async def test_concurrent_flow_admits_exactly_its_burst(backend: Backend) -> None:
    clients = [backend.client() for _ in range(3)]
    verdicts = await asyncio.gather(*(clients[i % 3].admit(ticket(flow("f", 40))) for i in range(120)))
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 40, Outcome.FLOW_LIMITED: 80}


async def test_concurrent_same_token_begins_once(backend: Backend) -> None:
    clients = [backend.client() for _ in range(3)]
    token = claim(uid())
    verdicts = await asyncio.gather(*(clients[i % 3].admit(ticket(claim=token)) for i in range(60)))
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 1, Outcome.TOKEN_PROCESSING: 59}


# --- the memory store only: bounded by its live entries ---


async def test_memory_store_drops_expired_entries() -> None:
    now = [1_700_000_000_000_000]
    store = MemoryStore(clock=lambda: now[0])
    for i in range(10_000):
        await store.admit(
            ticket(quota("q", 100_000, 1_000), flow("f", 100_000), nonce=f"AK:{i}", ttl_ms=1_000)
        )
    assert len(store) >= 10_000
    now[0] += 3_600_000_000  # an hour later every entry has expired
    for i in range(2_000):  # each write sweeps several expired entries
        await store.admit(ticket(nonce=f"AK:later-{i}", ttl_ms=1_000))
    assert len(store) <= 2_000 + 16
