"""Auto-pipelining in the Redis store (gateway/stores/pipeline.py), against a real redis-server.

The admits of concurrent requests made in one event-loop turn leave in one write and share one round
trip, yet each stays one atomic script with its own verdict: these tests check that batching changes
none of the guarantees, and that every failure reaches exactly the calls it must, within the timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.rates import Rate
from gateway.stores import (
    IdempotencyClaim,
    Outcome,
    RedisStore,
    StoredAnswer,
    StoreUnavailable,
    Take,
    Ticket,
    Verdict,
    open_store,
    pipeline,
)
from gateway.stores.wire import Wire
from tests.support.redis import running_redis, wait_window

HOUR = 3_600_000
TIMEOUT = 0.25  # the store's reply timeout in the failure tests
SLACK = 2.0  # seconds: for tests about atomicity, not latency, on a loaded machine


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ticket(*takes: Take, nonce: str | None = None, claim: IdempotencyClaim | None = None) -> Ticket:
    return Ticket("1001", nonce or f"AK:{uuid.uuid4().hex}", 60_000, takes, claim, timestamp_ms=now_ms())


def quota(key: str, limit: int) -> Take:
    return Take("quota", key, Rate(limit, HOUR))


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = open_store(redis_url, timeout=SLACK)
    assert isinstance(store, RedisStore)
    await store.admit(ticket())  # the connection open and the script loaded before anything is counted
    yield store
    await store.aclose()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every write of script calls on the store's connection (gateway/stores/wire.py)."""
    sent: list[bytes] = []
    write = Wire.write

    def counting(self: Wire[Any], data: bytes, items: list[Any]) -> None:
        if b"EVALSHA" in data:
            sent.append(data)
        write(self, data, items)

    monkeypatch.setattr(Wire, "write", counting)
    yield sent


async def evalsha_calls(inspect: Redis) -> int:
    stats = await inspect.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])


async def gather(store: RedisStore, tickets: list[Ticket]) -> list[Verdict | BaseException]:
    return await asyncio.gather(*(store.admit(t) for t in tickets), return_exceptions=True)


def tally(results: list[Verdict | BaseException]) -> Counter[object]:
    return Counter(r.outcome if isinstance(r, Verdict) else type(r) for r in results)


async def test_500_concurrent_admits_on_a_quota_of_100_admit_exactly_100(
    store: RedisStore, inspect: Redis, writes: list[bytes]
) -> None:
    await wait_window(HOUR, 10_000)
    before = await evalsha_calls(inspect)
    results = await gather(store, [ticket(quota("key", 100)) for _ in range(500)])
    assert tally(results) == {Outcome.ADMITTED: 100, Outcome.QUOTA_EXHAUSTED: 400}
    assert sorted(r.remaining for r in results if isinstance(r, Verdict) and r.remaining is not None) == list(
        range(100)
    )  # every admitted request got its own reply: each quota count seen exactly once
    assert len(writes) == 1  # they went out together, in one pipeline
    assert await evalsha_calls(inspect) - before == 500  # yet each was its own script call


async def test_a_batch_shares_one_write_and_one_round_trip(
    store: RedisStore, inspect: Redis, writes: list[bytes]
) -> None:
    before = await evalsha_calls(inspect)
    results = await gather(store, [ticket(quota("key", 1_000)) for _ in range(50)])
    assert tally(results) == {Outcome.ADMITTED: 50}
    assert len(writes) == 1
    assert writes[0].count(b"EVALSHA") == 50
    assert await evalsha_calls(inspect) - before == 50


async def test_a_burst_beyond_the_batch_size_goes_out_in_several_pipelines(
    store: RedisStore, writes: list[bytes]
) -> None:
    results = await gather(store, [ticket(quota("key", 10_000)) for _ in range(1_200)])
    assert tally(results) == {Outcome.ADMITTED: 1_200}
    assert sorted(w.count(b"EVALSHA") for w in writes) == [176, 512, 512]


async def test_close_answers_what_was_queued(redis_url: str) -> None:
    store = open_store(redis_url, timeout=SLACK)
    queued = asyncio.create_task(store.admit(ticket(nonce="AK:last")))
    await asyncio.sleep(0)  # queued, not yet sent
    await store.aclose()
    assert (await queued).outcome is Outcome.ADMITTED


async def test_sequential_admits_stay_one_round_trip_each(store: RedisStore, writes: list[bytes]) -> None:
    for _ in range(10):
        assert (await store.admit(ticket(quota("key", 100)))).outcome is Outcome.ADMITTED
    assert len(writes) == 10


async def test_a_replayed_nonce_in_a_batch_is_refused_alone(store: RedisStore) -> None:
    assert (await store.admit(ticket(nonce="AK:seen"))).outcome is Outcome.ADMITTED
    tickets = [ticket() for _ in range(40)]
    tickets.insert(17, ticket(nonce="AK:seen"))
    results = await gather(store, tickets)
    assert [i for i, r in enumerate(results) if isinstance(r, Verdict) and r.outcome is not Outcome.ADMITTED] == [17]
    assert isinstance(results[17], Verdict) and results[17].outcome is Outcome.NONCE_USED


async def test_one_nonce_twice_in_one_batch_is_admitted_once(store: RedisStore) -> None:
    results = await gather(store, [ticket(nonce="AK:twice"), ticket(), ticket(nonce="AK:twice")])
    assert [r.outcome for r in results if isinstance(r, Verdict)] == [
        Outcome.ADMITTED, Outcome.ADMITTED, Outcome.NONCE_USED,
    ]


async def test_an_error_in_the_middle_of_a_batch_fails_only_its_call(store: RedisStore, inspect: Redis) -> None:
    await inspect.set("gw:{1001}:i:broken", "not a hash", px=60_000)  # admit.lua's HMGET fails: WRONGTYPE
    tickets = [ticket(quota("key", 1_000)) for _ in range(20)]
    tickets.insert(10, ticket(quota("key", 1_000), nonce="AK:broken", claim=IdempotencyClaim("broken", "o", "f", 1)))
    results = await gather(store, tickets)
    assert isinstance(results[10], StoreUnavailable)
    assert "WRONGTYPE" in str(results[10])
    assert tally(results) == {Outcome.ADMITTED: 20, StoreUnavailable: 1}
    # The failed script committed nothing: its nonce is still free.
    assert (await store.admit(ticket(nonce="AK:broken"))).outcome is Outcome.ADMITTED


async def test_a_connection_lost_mid_batch_fails_the_calls_without_a_reply(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = store._pipeline._wire if store._pipeline is not None else None  # opened by the fixture's admit
    assert wire is not None
    settle = wire._on_reply
    replies = 0

    def breaking(call: Any, reply: Any) -> None:
        nonlocal replies
        replies += 1
        if replies == 11:  # the socket dies after ten replies of the batch were read
            assert wire is not None
            wire.sent.appendleft(call)  # its reply never arrived
            wire.close(RedisConnectionError("connection lost (injected)"))
            return
        settle(call, reply)

    monkeypatch.setattr(wire, "_on_reply", breaking)
    tickets = [ticket(nonce=f"AK:mid-{i}") for i in range(20)]
    results = await gather(store, tickets)
    monkeypatch.undo()
    assert all(isinstance(r, Verdict) and r.outcome is Outcome.ADMITTED for r in results[:10])
    assert all(isinstance(r, StoreUnavailable) for r in results[10:]), results
    # Redis ran all twenty: a call without its reply may well have committed, which is why none is
    # retried; its nonce is spent, so a replay of it is still refused.
    assert tally(await gather(store, tickets)) == {Outcome.NONCE_USED: 20}


async def test_noscript_reloads_the_script_and_runs_each_call_once(store: RedisStore, inspect: Redis) -> None:
    await inspect.script_flush()
    before = await evalsha_calls(inspect)
    results = await gather(store, [ticket(quota("key", 10)) for _ in range(30)])
    assert tally(results) == {Outcome.ADMITTED: 10, Outcome.QUOTA_EXHAUSTED: 20}  # no call ran twice
    assert await evalsha_calls(inspect) - before == 60  # 30 refused with NOSCRIPT, then 30 that ran


async def test_other_scripts_share_the_batch(store: RedisStore, inspect: Redis, writes: list[bytes]) -> None:
    claims = [IdempotencyClaim(f"tok-{i}", "o", "f", 30_000) for i in range(7)]
    assert tally(await gather(store, [ticket(claim=c) for c in claims])) == {Outcome.ADMITTED: 7}
    answer = StoredAnswer(200, "application/json", b"{}")
    # First use of these two scripts: NOSCRIPT, loaded, sent again.
    await asyncio.gather(store.store_answer("1001", claims.pop(), answer, 60_000), store.release("1001", claims.pop()))
    writes.clear()
    await asyncio.gather(
        *(store.store_answer("1001", c, answer, 60_000) for c in claims[:3]),
        *(store.release("1001", c) for c in claims[3:]),
    )
    assert len(writes) == 1
    replays = await gather(store, [ticket(claim=c) for c in claims])
    assert [r.outcome for r in replays if isinstance(r, Verdict)] == [Outcome.REPLAY] * 3 + [Outcome.ADMITTED] * 2


async def test_a_caller_cancelled_while_queued_is_not_sent(store: RedisStore) -> None:
    queued = asyncio.create_task(store.admit(ticket(nonce="AK:cancelled")))
    await asyncio.sleep(0)  # the task queues its call; the flush runs on the next turn
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (await store.admit(ticket(nonce="AK:cancelled"))).outcome is Outcome.ADMITTED  # never claimed


async def test_redis_down_fails_every_call_of_the_batch_within_the_timeout() -> None:
    with running_redis() as server:
        store = open_store(server.url, timeout=TIMEOUT)
        assert (await store.admit(ticket())).outcome is Outcome.ADMITTED
        server.stop()
        started = time.monotonic()
        results = await asyncio.gather(*(store.admit(ticket()) for _ in range(50)), return_exceptions=True)
        assert time.monotonic() - started < TIMEOUT + 0.5
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        server.start()  # and the store recovers by itself (a NOSCRIPT reload included)
        await _admitted_again(store)
        await store.aclose()


async def test_a_stalled_server_fails_the_batch_once_within_the_timeout(redis_url: str, inspect: Redis) -> None:
    store = open_store(redis_url, timeout=TIMEOUT)
    assert (await store.admit(ticket())).outcome is Outcome.ADMITTED
    await inspect.client_pause(1_500)  # takes commands, answers none
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(store.admit(ticket()) for _ in range(50)), return_exceptions=True)
        elapsed = time.monotonic() - started
    finally:
        await inspect.client_unpause()
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert TIMEOUT * 0.8 < elapsed < TIMEOUT + 0.75  # one timeout for the batch, not one per call
    await _admitted_again(store)
    await store.aclose()


async def test_a_batch_written_after_an_answered_one_gets_its_own_whole_timeout(
    redis_url: str, inspect: Redis
) -> None:
    # One watchdog timer serves every batch: armed for the first batch's deadline, it must move on to
    # the next unanswered batch's deadline instead of failing that batch early.
    store = open_store(redis_url, timeout=TIMEOUT)
    assert (await store.admit(ticket())).outcome is Outcome.ADMITTED  # the watchdog armed for its deadline
    await asyncio.sleep(TIMEOUT * 0.6)
    await inspect.client_pause(1_500)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.admit(ticket())
        elapsed = time.monotonic() - started
    finally:
        await inspect.client_unpause()
    assert TIMEOUT * 0.8 < elapsed < TIMEOUT + 0.75, elapsed
    await _admitted_again(store)
    await store.aclose()


async def test_calls_answered_over_many_timeouts_are_never_expired(redis_url: str) -> None:
    store = open_store(redis_url, timeout=TIMEOUT)
    started = time.monotonic()
    outcomes: Counter[object] = Counter()
    # Back to back, so that a call is in flight whenever the watchdog fires.
    while time.monotonic() - started < TIMEOUT * 4:
        outcomes[(await store.admit(ticket())).outcome] += 1
    assert set(outcomes) == {Outcome.ADMITTED} and outcomes[Outcome.ADMITTED] >= 100
    await store.aclose()


async def _admitted_again(store: RedisStore) -> None:
    """The store recovers by itself once the server answers again (within 2 s, polled)."""
    deadline, outcome = time.monotonic() + 2, None
    while outcome is not Outcome.ADMITTED and time.monotonic() < deadline:
        try:
            outcome = (await store.admit(ticket())).outcome
        except StoreUnavailable:
            await asyncio.sleep(0.02)
    assert outcome is Outcome.ADMITTED


def test_the_fallback_packer_writes_what_hiredis_writes() -> None:
    command = ("EVALSHA", "ab" * 20, 2, "gw:{1001}:n:AK:ü", "k", b"\x00\xff", -5, 0, 10**15)
    assert pipeline._pack_in_python(command) == pipeline._pack(command)
