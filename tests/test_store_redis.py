"""What only the Redis store must do: keys with TTLs and hash tags, server time, one round trip per
request, failing fast and recovering by itself, and the same guarantees over a 3-master cluster."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from gateway.rates import Rate
from gateway.stores import (
    IdempotencyClaim,
    MemoryStore,
    Outcome,
    RedisStore,
    Store,
    StoredAnswer,
    StoreUnavailable,
    Take,
    Ticket,
    open_store,
)
from gateway.stores.wire import Wire
from tests.support.redis import RedisClusterNodes, RedisServer, command, free_port, running_redis, wait_window

HOUR = 3_600_000
SLACK = 2.0  # seconds: for tests about atomicity, not latency, on a loaded machine


def ticket(
    *takes: Take,
    scope: str = "1001",
    nonce: str | None = None,
    claim: IdempotencyClaim | None = None,
    timestamp_ms: int | None = None,
) -> Ticket:
    when = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    return Ticket(scope, nonce or f"AK:{uuid.uuid4().hex}", 60_000, takes, claim, timestamp_ms=when)


def quota(key: str, limit: int, period_ms: int = HOUR) -> Take:
    return Take("quota", key, Rate(limit, period_ms))


def flow(key: str, limit: int, period_ms: int = HOUR) -> Take:
    return Take("flow", key, Rate(limit, period_ms))


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    store = open_store(redis_url, timeout=SLACK)
    yield store
    await store.aclose()


async def _workload(store: Store) -> None:
    """One of everything the store writes."""
    token, other = IdempotencyClaim("tok-1", "o", "f", 30_000), IdempotencyClaim("tok-2", "o", "f", 30_000)
    await store.admit(ticket(flow("api", 100), quota("key", 10, 60_000), nonce="AK:n1", claim=token))
    await store.admit(ticket(flow("api", 100), quota("key", 10, 60_000), nonce="AK:n2", claim=other))
    await store.store_answer("1001", token, StoredAnswer(200, "text/xml", b"<x/>"), 90_000)
    await store.release("1001", other)
    await store.admit(ticket(quota("key", 10, 60_000), nonce="AK:n1"))  # refused: writes nothing
    await store.admit(ticket(flow("global", 1), scope="2002", nonce="AK:n3"))


async def test_every_key_is_named_by_the_layout_and_has_a_ttl(store: Store, inspect: Redis) -> None:
    await _workload(store)
    keys = sorted([key.decode() async for key in inspect.scan_iter(match="*")])
    assert keys == [
        "gw:{1001}:h",  # the scope's nonce history
        "gw:{1001}:i:tok-1",  # tok-2 was released
        "gw:{1001}:n:AK:n1",
        "gw:{1001}:n:AK:n2",
        "gw:{1001}:q:key",
        "gw:{2002}:h",
        "gw:{2002}:n:AK:n3",
        "gw:{f:api}",
        "gw:{f:global}",
    ]
    ttls = {key: await inspect.pttl(key) for key in keys}
    assert all(ttl > 0 for ttl in ttls.values()), ttls


async def test_each_ttl_is_set_from_its_meaning(store: Store, inspect: Redis) -> None:
    await store.admit(ticket(flow("api", 10, 10_000), quota("key", 5, 60_000), nonce="AK:n", claim=None))
    lease = IdempotencyClaim("t", "o", "f", 5_000)
    await store.admit(ticket(claim=lease))
    to_minute_end = 60_000 - time.time() * 1000 % 60_000
    assert 58_000 < await inspect.pttl("gw:{1001}:n:AK:n") <= 60_000
    assert abs(await inspect.pttl("gw:{1001}:q:key") - to_minute_end) < 500  # expires at its window's end
    assert 900 < await inspect.pttl("gw:{f:api}") <= 1_000  # the TAT: one emission interval ahead
    assert 4_000 < await inspect.pttl("gw:{1001}:i:t") <= 5_000  # the lease
    assert 7 * 86_400_000 - 2_000 < await inspect.pttl("gw:{1001}:h") <= 7 * 86_400_000  # outlives any nonce
    await store.store_answer("1001", lease, StoredAnswer(200, "a", b""), 120_000)  # the lease's holder
    assert 119_000 < await inspect.pttl("gw:{1001}:i:t") <= 120_000  # the answer replaces the lease


async def test_a_tickets_per_request_keys_share_one_slot(store: Store, inspect: Redis) -> None:
    claim = IdempotencyClaim("tok", "o", "f", 30_000)
    await store.admit(
        ticket(quota("k1", 5), quota("k2:Describe", 5), flow("api", 5), nonce="AK:n", claim=claim)
    )
    scoped = [key async for key in inspect.scan_iter(match="gw:{1001}:*")]
    assert len(scoped) == 5  # nonce, history, two quotas, token
    assert {key_slot(key) for key in scoped} == {key_slot(b"1001")}
    assert key_slot(b"gw:{f:api}") == key_slot(b"f:api")  # flow keys hash on their own tag


async def test_prefix_names_every_key(redis_url: str, inspect: Redis) -> None:
    store = open_store(redis_url, prefix="tenant7")
    await _workload(store)
    await store.aclose()
    keys = [key async for key in inspect.scan_iter(match="*")]
    assert keys
    assert all(key.startswith(b"tenant7:") for key in keys)
    with pytest.raises(ValueError, match="braces"):
        open_store(redis_url, prefix="{gw}")


async def test_windows_follow_server_time_not_the_gateway_clock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await wait_window(HOUR, 5_000)
    skew_ns = 5_555_000 * 1_000_000  # this gateway's clock runs 1.5 hours fast
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + skew_ns)
    monkeypatch.setattr(time, "time", lambda: (real_time_ns() + skew_ns) / 1e9)
    assert (await store.admit(ticket(quota("q", 1)))).outcome is Outcome.ADMITTED
    refused = await store.admit(ticket(quota("q", 1)))
    to_real_hour_end = HOUR - real_time_ns() / 1e6 % HOUR
    assert abs(refused.retry_after_ms - to_real_hour_end) < 1_000


async def test_one_round_trip_per_admitted_request(
    store: Store, inspect: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.admit(ticket())  # the first call loads the script and opens the connection
    sent: list[object] = []
    send = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        sent.append(command)  # only the store talks to Redis while this is patched in
        await send(self, command, check_health)

    async def evalsha_calls() -> int:
        stats = await inspect.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])

    before = await evalsha_calls()
    monkeypatch.setattr(Connection, "send_packed_command", counting)
    write = Wire.write

    def counting_wire(self: Wire[Any], data: bytes, items: list[Any]) -> None:
        sent.append(data)  # the pipeline's own connection (gateway/stores/wire.py)
        write(self, data, items)

    monkeypatch.setattr(Wire, "write", counting_wire)
    for i in range(20):
        claim = IdempotencyClaim(f"tok-{i}", "o", "f", 30_000) if i % 2 else None
        verdict = await store.admit(
            ticket(flow("api", 100), quota("key", 100), quota("api", 100), claim=claim)
        )
        assert verdict.outcome is Outcome.ADMITTED
    monkeypatch.undo()
    assert len(sent) == 20  # one request written per admit, so one reply awaited
    assert await evalsha_calls() - before == 20  # and the server saw each as one EVALSHA


async def test_a_backend_error_is_wrapped_once(store: Store, inspect: Redis) -> None:
    await inspect.set("gw:{1001}:i:tok", "not a hash", px=60_000)
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        await store.admit(ticket(claim=IdempotencyClaim("tok", "o", "f", 1_000)))


async def test_nothing_listening_fails_fast() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", timeout=0.25)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.admit(ticket(quota("q", 1)))
    with pytest.raises(StoreUnavailable):
        await store.ping()
    assert time.monotonic() - started < 1
    await store.aclose()


async def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = open_store(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.25)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.admit(ticket())
        assert 0.2 < time.monotonic() - started < 1
        await store.aclose()


async def test_recovers_by_itself_when_redis_returns() -> None:
    with running_redis() as server:
        store = open_store(server.url, timeout=0.25)
        assert (await store.admit(ticket(nonce="AK:before"))).outcome is Outcome.ADMITTED
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.admit(ticket())
        assert time.monotonic() - started < 1
        server.start()  # same port, empty, no scripts loaded
        restarted, outcome = time.monotonic(), None
        while outcome is not Outcome.ADMITTED and time.monotonic() - restarted < 2:
            try:
                outcome = (await store.admit(ticket(quota("q", 5)))).outcome
            except StoreUnavailable:  # a pooled connection from before the restart
                await asyncio.sleep(0.02)
        assert outcome is Outcome.ADMITTED
        await store.aclose()


async def _restart(server: RedisServer) -> float:
    """Stop and start ``server`` (empty); the wall time, in ms, just before it was started again."""
    await asyncio.to_thread(server.stop)
    before = time.time_ns() // 1_000_000
    await asyncio.to_thread(server.start)
    return before


async def test_a_restart_seen_by_a_gateway_refuses_what_was_admitted_just_before_it() -> None:
    with running_redis() as server:
        store = open_store(server.url, timeout=0.25)
        admitted = ticket(nonce="AK:before")  # signed now, to the millisecond
        assert (await store.admit(admitted)).outcome is Outcome.ADMITTED
        restarted = await _restart(server)  # Redis forgets AK:before
        # This store used Redis before the new server started: whatever was signed before the start,
        # even milliseconds before, is refused. Seconds after the start, as unavailable (a client
        # retrying after the outage signs anew and gets through), then as a used nonce.
        assert (await store.admit(admitted)).outcome is Outcome.HISTORY_STARTING
        assert (await store.admit(ticket(timestamp_ms=restarted - 1))).outcome is Outcome.HISTORY_STARTING
        # What is signed from the next whole second on is surely after the start: admitted.
        fresh = await _eventually_admitted(store, within=1.5)
        assert fresh - restarted <= 1_200
        refused = await _eventually(store, admitted, Outcome.NONCE_UNPROVEN, within=3.0)
        assert refused is Outcome.NONCE_UNPROVEN
        # A store that met the server only after the start saw no restart: the grace applies, on a
        # scope whose history it is the first to read.
        newcomer = open_store(server.url, timeout=0.25)
        late_clock = ticket(scope="2002", timestamp_ms=restarted - 2_000)
        assert (await newcomer.admit(late_clock)).outcome is Outcome.ADMITTED
        await newcomer.aclose()
        await store.aclose()


async def _eventually_admitted(store: Store, *, within: float) -> int:
    """Fresh tickets until one is admitted; the Timestamp (ms) of that one."""
    deadline = time.monotonic() + within
    while True:
        attempt = ticket()
        if (await store.admit(attempt)).outcome is Outcome.ADMITTED:
            return attempt.timestamp_ms
        assert time.monotonic() < deadline, "no fresh ticket admitted after the restart"
        await asyncio.sleep(0.02)


async def _eventually(store: Store, attempt: Ticket, outcome: Outcome, *, within: float) -> Outcome:
    deadline = time.monotonic() + within
    while (got := (await store.admit(attempt)).outcome) is not outcome and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return got


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "unpipelined"])
async def test_pooled_connections_from_before_a_restart_fail_no_call_after_it(pipelined: bool) -> None:
    with running_redis() as server:
        store = RedisStore.from_url(server.url, timeout=0.25, pipelined=pipelined)
        burst = 800

        async def outcomes() -> Counter[str]:
            async def one() -> str:
                try:
                    return (await store.admit(ticket())).outcome.value
                except StoreUnavailable as exc:
                    return f"unavailable: {exc}"

            return Counter(await asyncio.gather(*(one() for _ in range(burst))))

        assert await outcomes() == {"admitted": burst}  # fills the pool
        await _restart(server)  # answers PING again: every pooled connection is to the old server
        after = await outcomes()
        # Admitted, or (signed in the very second of the restart) told to retry; never unavailable.
        assert set(after) <= {"admitted", "history_starting"}, after
        await store.aclose()


def _pid(server: RedisServer) -> int:
    found = re.search(rb"^process_id:(\d+)", command(server.port, "INFO", "server"), re.MULTILINE)
    assert found is not None
    return int(found[1])


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "unpipelined"])
async def test_a_client_token_admit_lost_to_a_stalled_redis_leaves_no_lease(pipelined: bool) -> None:
    with running_redis() as server:
        store = RedisStore.from_url(server.url, timeout=0.25, pipelined=pipelined)
        assert (await store.admit(ticket())).outcome is Outcome.ADMITTED  # a pooled, sound connection
        first = IdempotencyClaim(uuid.uuid4().hex, "o", "f", 60_000)
        stalled = ticket(nonce="AK:stalled", claim=first)
        pid = _pid(server)
        os.kill(pid, signal.SIGSTOP)  # connections open, nothing answered
        try:
            with pytest.raises(StoreUnavailable):
                await store.admit(stalled)
        finally:
            os.kill(pid, signal.SIGCONT)
        command(server.port, "PING")  # past what it had buffered: the abandoned admit ran
        retry = IdempotencyClaim(first.token, "o", "f", 60_000)
        if pipelined:
            # Its release was written right behind it, on its connection: the retry runs at once.
            assert (await store.admit(ticket(claim=retry))).outcome is Outcome.ADMITTED
            # The abandoned admit did commit its nonce (the caller retries with a new one).
            assert (await store.admit(ticket(nonce="AK:stalled"))).outcome is Outcome.NONCE_USED
        else:
            # Released in the background, within a few backoff steps.
            outcome = await _eventually(store, ticket(claim=retry), Outcome.ADMITTED, within=3.0)
            assert outcome is Outcome.ADMITTED
        await store.aclose()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, MemoryStore),
        ("", MemoryStore),
        ("memory://", MemoryStore),
        ("redis://127.0.0.1:6379/0", RedisStore),
        ("rediss://user:pw@127.0.0.1:6380/0", RedisStore),
        ("unix:///tmp/redis.sock", RedisStore),
        ("REDIS://127.0.0.1:6379", RedisStore),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", RedisStore),
        ("REDISS+CLUSTER://u:p@127.0.0.1:7000", RedisStore),
    ],
)
async def test_open_store_reads_the_scheme_table(url: str | None, kind: type) -> None:
    store = open_store(url)
    assert isinstance(store, kind)
    await store.aclose()


def test_open_store_refuses_unknown_schemes_without_echoing_the_url() -> None:
    for url in ("mysql://user:s3cret@db/1", "localhost:6379"):
        with pytest.raises(ValueError) as caught:
            open_store(url)
        assert "s3cret" not in str(caught.value)
        assert "one of memory, redis" in str(caught.value)


# --- a 3-master Redis Cluster: per-request keys in the scope's slot, flow keys elsewhere ---


@pytest.fixture
async def cluster_stores(redis_cluster: RedisClusterNodes) -> AsyncIterator[list[Store]]:
    stores = [open_store(redis_cluster.url, timeout=SLACK) for _ in range(4)]
    yield stores
    for store in stores:
        await store.aclose()


def scope() -> str:
    return uuid.uuid4().hex[:8]  # a fresh scope per test: the cluster is shared, never flushed


@pytest.mark.cluster
async def test_cluster_accepts_a_nonce_once(cluster_stores: list[Store]) -> None:
    account = scope()
    verdicts = await asyncio.gather(
        *(cluster_stores[i % 4].admit(ticket(nonce="AK:same", scope=account)) for i in range(200))
    )
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 1, Outcome.NONCE_USED: 199}


@pytest.mark.cluster
async def test_cluster_quota_admits_exactly_its_limit(
    cluster_stores: list[Store], redis_cluster: RedisClusterNodes
) -> None:
    await wait_window(HOUR, 10_000)
    account, api = scope(), f"api-{scope()}"
    verdicts = await asyncio.gather(
        *(
            cluster_stores[i % 4].admit(ticket(flow(api, 1_000), quota("q", 50), scope=account))
            for i in range(300)
        )
    )
    assert Counter(v.outcome for v in verdicts) == {Outcome.ADMITTED: 50, Outcome.QUOTA_EXHAUSTED: 250}
    # The 250 refused requests gave their flow takes back: the TAT is 50 intervals (3.6 s) ahead, not 300.
    client = RedisCluster.from_url(f"redis://127.0.0.1:{redis_cluster.nodes[0].port}")
    ahead = await client.pttl(f"gw:{{f:{api}}}")
    await client.aclose()
    assert 50 * 3_600 - 2_000 < ahead <= 50 * 3_600


@pytest.mark.cluster
async def test_cluster_flow_refusal_takes_nothing_else(cluster_stores: list[Store]) -> None:
    await wait_window(HOUR, 5_000)
    store, account, api, other = cluster_stores[0], scope(), f"api-{scope()}", f"global-{scope()}"
    assert (
        await store.admit(ticket(flow(api, 1), flow(other, 2), quota("q", 5), scope=account))
    ).remaining == 4
    refused = await store.admit(
        ticket(flow(api, 1), flow(other, 2), quota("q", 5), nonce="AK:n", scope=account)
    )
    assert (refused.outcome, refused.retry_after_ms > 0) == (Outcome.FLOW_LIMITED, True)
    verdict = await store.admit(ticket(flow(other, 2), quota("q", 5), nonce="AK:n", scope=account))
    assert (verdict.outcome, verdict.remaining) == (Outcome.ADMITTED, 3)  # nonce, quota, flow all intact


@pytest.mark.cluster
async def test_cluster_keys_all_have_ttls(
    cluster_stores: list[Store], redis_cluster: RedisClusterNodes
) -> None:
    account = scope()
    await _workload_in(cluster_stores[0], account)
    found = []
    for node in redis_cluster.nodes:
        client = Redis(port=node.port)
        found += [(key, await client.pttl(key)) async for key in client.scan_iter(match="gw:*")]
        await client.aclose()
    mine = [(key, ttl) for key, ttl in found if account.encode() in key]
    assert len(mine) == 5  # nonce, history, quota, token, flow
    assert all(ttl > 0 for _, ttl in found), [item for item in found if item[1] <= 0]


async def _workload_in(store: Store, account: str) -> None:
    claim = IdempotencyClaim("tok", "o", "f", 30_000)
    await store.admit(
        ticket(flow(f"f-{account}", 100), quota("q", 10), nonce="AK:n", claim=claim, scope=account)
    )
    await store.store_answer(account, claim, StoredAnswer(200, "text/xml", b"<x/>"), 60_000)
    await store.admit(ticket(flow(f"f-{account}", 100), quota("q", 10), nonce="AK:n", scope=account))
