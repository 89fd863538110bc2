"""The Redis keystore in one process: sealing, the cache and what keeps it true, Redis down (#15 §2).

Every test runs against a real redis-server (tests/support/redis.py); the HTTP ones against a real
uvicorn. Where time itself is the behaviour (the TTL, the outage bound) a test either drives the
cache's clock or measures the real one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from gateway import GatewayMiddleware
from gateway.build import build
from gateway.catalog import Err
from gateway.chain import build_chain
from gateway.errors import SettingsError, StoreUnavailable
from gateway.keystore.admin import Admin, NewSecret
from gateway.keystore.cache import KeyCache
from gateway.keystore.codec import Codec, SealError, key_id, parse_secret_key
from gateway.keystore.runtime import Keystore
from gateway.policy import AccessKey, Policy
from gateway.resources import PolicyResolver
from gateway.settings import Settings
from gateway.stores import MemoryStore
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import call, refused_with
from tests.support.keystore import OTHER_KEY, SECRET_KEY, admin_on, keystore_settings, until
from tests.support.redis import running_redis
from tests.support.servers import free_port, serve_in_thread, wait_until

ACCOUNT = 4242


# -- sealing ----------------------------------------------------------------------------------------


def test_a_sealed_secret_opens_and_records_its_key_version() -> None:
    key = bytes(range(32))
    codec = Codec(key)
    sealed = codec.seal("s3cret-value", "LTAIone")
    assert sealed.startswith(f"v1.{key_id(key)}.") and "s3cret-value" not in sealed
    assert codec.open(sealed, "LTAIone") == "s3cret-value"
    assert codec.seal("s3cret-value", "LTAIone") != sealed  # a fresh nonce each time
    with pytest.raises(SealError):
        codec.open(sealed, "LTAItwo")  # bound to its access key id: copied onto another key, it does not open
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealError):
        codec.open(tampered, "LTAIone")


def test_two_key_versions_open_while_the_encryption_key_rotates() -> None:
    old, new = bytes(range(32)), bytes(range(1, 33))
    sealed_old = Codec(old).seal("under-old", "K")
    rotating = Codec(new, previous=old)
    assert rotating.open(sealed_old, "K") == "under-old"
    sealed_new = rotating.seal("under-new", "K")
    assert sealed_new.startswith(f"v1.{key_id(new)}.")  # the current key seals
    assert rotating.is_current(sealed_new) and not rotating.is_current(sealed_old)
    with pytest.raises(SealError, match=key_id(old)):
        Codec(new).open(sealed_old, "K")  # once the previous key is gone, its ciphertexts name it


@pytest.mark.parametrize(("raw", "problem"), [
    ("not base64!", "not standard base64"),
    (base64.b64encode(b"short").decode(), "32 bytes"),
    (base64.b64encode(bytes(31)).decode(), "not 31"),
])
def test_a_bad_secret_key_is_one_line_naming_the_variable_never_its_value(raw: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"GATEWAY_SECRET_KEY": raw})
    message = str(caught.value)
    assert message.startswith("GATEWAY_SECRET_KEY=") and problem in message and "\n" not in message
    assert raw not in message
    assert parse_secret_key(SECRET_KEY) == bytes(range(32))
    assert SECRET_KEY not in repr(Settings.from_env({"GATEWAY_SECRET_KEY": SECRET_KEY}))


def test_the_redis_keystore_needs_a_secret_key_and_a_redis_url() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_SECRET_KEY is required"):
        Keystore.from_settings(Settings.from_env({"GATEWAY_KEYSTORE": "redis", "GATEWAY_REDIS_URL": "redis://x"}))
    with pytest.raises(SettingsError, match="needs GATEWAY_REDIS_URL"):
        Keystore.from_settings(Settings.from_env({"GATEWAY_KEYSTORE": "redis", "GATEWAY_SECRET_KEY": SECRET_KEY}))


async def test_reencrypt_moves_every_secret_to_the_new_key(redis_url: str) -> None:
    prefix = f"ks{free_port()}"
    old = keystore_settings(redis_url, prefix)
    async with admin_on(old) as admin:
        await admin.set_account(ACCOUNT, name="tenant")
        made = [await admin.create_key(ACCOUNT) for _ in range(3)]
    rotating = keystore_settings(redis_url, prefix, secret_key=parse_secret_key(OTHER_KEY),
                                 secret_key_previous=parse_secret_key(SECRET_KEY))
    new_only = keystore_settings(redis_url, prefix, secret_key=parse_secret_key(OTHER_KEY))
    with_new_only = Keystore.from_settings(new_only)
    try:
        with pytest.raises(StoreUnavailable):  # sealed with a key it lacks: never admitted, never NotFound
            await with_new_only.cache.reader.read(made[0].access_key_id)
        async with admin_on(rotating) as admin:
            assert await admin.reencrypt() == 3
            assert await admin.reencrypt() == 0
        for new in made:
            key = await with_new_only.cache.reader.read(new.access_key_id)
            assert key is not None and key.secrets == (new.secret,)
    finally:
        await with_new_only.aclose()


# -- the cache and what keeps it true -----------------------------------------------------------------


class Counting:
    """The real reader, counted: how many Redis reads the cache made."""

    def __init__(self, reader: Any) -> None:
        self.reader, self.reads = reader, 0

    async def read(self, ident: str) -> AccessKey | None:
        self.reads += 1
        return await self.reader.read(ident)  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def live(redis_url: str) -> AsyncIterator[tuple[Keystore, Admin, Counting, Clock]]:
    """A keystore listening for changes, with a driven clock and a counted reader; an admin on it."""
    settings = keystore_settings(redis_url, f"ks{free_port()}", keystore_ttl=10.0, keystore_grace=30.0)
    keystore = Keystore.from_settings(settings)
    clock = Clock()
    counting = Counting(keystore.cache.reader)
    keystore.cache.reader, keystore.cache.clock = counting, clock
    keystore.start()
    await until(lambda: keystore.cache.listening, what="keystore listener subscribed")
    async with admin_on(settings) as admin:
        await admin.set_account(ACCOUNT, name="tenant")
        yield keystore, admin, counting, clock
    await keystore.aclose()


async def heard(keystore: Keystore, change: Any) -> Any:
    """``await change`` once the listener has heard its message (so that it drops nothing read after)."""
    before = keystore.cache._generation
    done = await change
    await until(lambda: keystore.cache._generation > before, timeout=1.0, what="change message heard")
    return done


async def test_a_miss_is_one_read_for_every_waiter_then_a_dict_lookup(live: Any) -> None:
    keystore, admin, counting, _ = live
    new = await heard(keystore, admin.create_key(ACCOUNT, actions=["Describe*"], quota="5/day"))
    keys = await asyncio.gather(*(keystore.cache.fetch(new.access_key_id) for _ in range(50)))
    assert counting.reads == 1
    assert all(k is keys[0] for k in keys) and keys[0].secrets == (new.secret,)
    assert keys[0].account.id == ACCOUNT and keys[0].actions is not None and keys[0].quota is not None
    assert keystore.cache.entries[new.access_key_id] is keys[0]  # what the parser reads: one dict lookup
    await keystore.cache.fetch(new.access_key_id)
    assert counting.reads == 1


async def test_a_change_message_drops_the_entry_at_once(live: Any) -> None:
    keystore, admin, _, _ = live
    new = await heard(keystore, admin.create_key(ACCOUNT))
    assert (await keystore.cache.fetch(new.access_key_id)).enabled
    await admin.set_enabled(new.access_key_id, False)
    await until(lambda: new.access_key_id not in keystore.cache.entries, timeout=1.0, what="entry dropped")
    assert not (await keystore.cache.fetch(new.access_key_id)).enabled
    await admin.delete_key(new.access_key_id)
    await until(lambda: new.access_key_id not in keystore.cache.entries, timeout=1.0, what="entry dropped")
    assert await keystore.cache.fetch(new.access_key_id) is None


async def test_an_account_or_sub_user_change_reaches_keys_already_cached(live: Any) -> None:
    keystore, admin, _, _ = live
    await admin.set_sub_user(ACCOUNT, "ops", [{"effect": "Allow", "actions": ["Describe*"]}])
    plain = await heard(keystore, admin.create_key(ACCOUNT))
    of_user = await heard(keystore, admin.create_key(ACCOUNT, user="ops"))
    for new in (plain, of_user):
        key = await keystore.cache.fetch(new.access_key_id)
        assert key.account.real_name_verified and key.account.balance == 0.0
    await admin.set_account(ACCOUNT, real_name_verified=False, balance=12.5)
    await until(lambda: not ({plain.access_key_id, of_user.access_key_id} & set(keystore.cache.entries)),
                timeout=1.0, what="keys of the account dropped")
    for new in (plain, of_user):
        key = await keystore.cache.fetch(new.access_key_id)
        assert not key.account.real_name_verified and key.account.balance == 12.5 and key.account.name == "tenant"
    await admin.set_sub_user(ACCOUNT, "ops", [{"effect": "Deny", "actions": ["*"]}])
    await until(lambda: of_user.access_key_id not in keystore.cache.entries, timeout=1.0, what="user's key dropped")
    assert plain.access_key_id in keystore.cache.entries  # a sub-user change leaves the account's other keys
    key = await keystore.cache.fetch(of_user.access_key_id)
    assert key.user is not None and [s.effect for s in key.user.statements] == ["Deny"]


async def test_the_ttl_backstop_reads_again_when_a_message_was_lost(live: Any) -> None:
    keystore, admin, counting, clock = live
    new = await heard(keystore, admin.create_key(ACCOUNT))
    await keystore.cache.fetch(new.access_key_id)
    # Changed in Redis with no message (as if it were lost): the cache cannot know until the TTL.
    await admin.client.hset(admin.layout.key(new.access_key_id), "enabled", "false")
    clock.now += 9.9
    keystore.cache.sweep()
    assert keystore.cache.entries[new.access_key_id].enabled
    clock.now += 0.2
    keystore.cache.sweep()
    assert new.access_key_id not in keystore.cache.entries
    assert not (await keystore.cache.fetch(new.access_key_id)).enabled
    assert counting.reads == 2


async def test_unknown_ids_are_cached_negatively_for_a_short_time_and_bounded(live: Any) -> None:
    keystore, _, counting, clock = live
    cache: KeyCache = keystore.cache
    for _ in range(5):
        assert await cache.fetch("LTAInosuchkey") is None
    assert counting.reads == 1 and cache.entries["LTAInosuchkey"] is None
    clock.now += cache.negative_ttl + 0.01
    cache.sweep()
    assert "LTAInosuchkey" not in cache.entries
    cache.max_negative = 10
    for n in range(100):  # a flood of random ids: the negative entries stay bounded
        await cache.fetch(f"LTAIrandom{n}")
    assert sum(1 for v in cache.entries.values() if v is None) == 10


async def test_keys_create_announces_the_new_id_which_clears_its_negative_entry(live: Any) -> None:
    keystore, admin, _, _ = live
    pubsub = admin.client.pubsub()
    await pubsub.subscribe(admin.layout.channel)
    try:
        new = await admin.create_key(ACCOUNT)
        heard = []
        while not heard:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                heard.append(message["data"].decode())
        assert heard == [f"k:{new.access_key_id}"]
    finally:
        await pubsub.aclose()
    keystore.cache.entries["LTAIsoon"] = None  # as a refused request would have left it
    keystore.cache.invalidate("k:LTAIsoon")
    assert "LTAIsoon" not in keystore.cache.entries


async def test_a_read_racing_a_change_is_used_but_not_cached(live: Any) -> None:
    keystore, admin, _, _ = live
    new = await heard(keystore, admin.create_key(ACCOUNT))
    started, changed = asyncio.Event(), asyncio.Event()
    reader = keystore.cache.reader.reader

    class Slow:
        async def read(self, ident: str) -> AccessKey | None:
            key = await reader.read(ident)
            started.set()
            await changed.wait()  # the change message arrives meanwhile
            return key  # type: ignore[no-any-return]

    keystore.cache.reader = Slow()
    fetching = asyncio.ensure_future(keystore.cache.fetch(new.access_key_id))
    await started.wait()
    await heard(keystore, admin.set_enabled(new.access_key_id, False))
    changed.set()
    assert (await fetching).enabled  # the old answer serves the request that asked before the change
    assert new.access_key_id not in keystore.cache.entries


# -- over HTTP: Redis down --------------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[Any]:
    with running_redis() as server:
        yield server


def _dump(url: str) -> dict[bytes, dict[bytes, bytes]]:
    with redis.Redis.from_url(url) as client:
        return {name: client.hgetall(name) for name in client.scan_iter()}


def _restore(url: str, saved: dict[bytes, dict[bytes, bytes]]) -> None:
    with redis.Redis.from_url(url) as client:
        for name, fields in saved.items():
            client.hset(name, mapping=fields)


def test_redis_down_cached_keys_work_for_the_bound_uncached_are_service_unavailable(
        policy: Policy, private_redis: Any) -> None:
    ttl, grace = 0.5, 2.0
    settings = keystore_settings(private_redis.url, "down", config=str(DATA / "policy.toml"),
                                 host_id="gateway.test", keystore_ttl=ttl, keystore_grace=grace)

    async def make() -> tuple[Any, Any]:
        async with admin_on(settings) as admin:
            await admin.set_account(ACCOUNT, name="tenant")
            return await admin.create_key(ACCOUNT), await admin.create_key(ACCOUNT)

    cached, uncached = asyncio.run(make())
    app = GatewayMiddleware(EchoService(), settings=settings, policy=policy, store=MemoryStore())
    keystore = app.gateway.keystore
    assert keystore is not None
    with serve_in_thread(app) as url:
        ok = call(url, "DescribeRegions", key=cached.access_key_id, secret=cached.secret)
        assert ok.status == 200, ok.body
        wait_until(lambda: keystore.cache.listening, what="listener subscribed")
        if cached.access_key_id not in keystore.cache.entries:  # subscribed after the read: emptied, read again
            assert call(url, "DescribeRegions", key=cached.access_key_id, secret=cached.secret).status == 200
        saved = _dump(private_redis.url)  # the test's redis-server keeps nothing across a restart
        private_redis.stop()
        stopped = time.monotonic()
        wait_until(lambda: not keystore.cache.listening, timeout=3, what="listener saw Redis go")
        for fmt in ("XML", "JSON"):
            answer = call(url, "DescribeRegions", key=uncached.access_key_id, secret=uncached.secret, fmt=fmt)
            refused_with(answer, Err.SERVICE_UNAVAILABLE, fmt)
        served = 0
        while call(url, "DescribeRegions", key=cached.access_key_id, secret=cached.secret).status == 200:
            served += 1
            assert time.monotonic() - stopped < ttl + grace + 1.0, "cached entry outlived TTL + grace"
            time.sleep(0.05)
        lasted = time.monotonic() - stopped
        print(f"cached key served for {lasted:.2f} s after Redis stopped ({served} requests)")
        assert lasted >= grace - 0.1 and served > 0
        answer = call(url, "DescribeRegions", key=cached.access_key_id, secret=cached.secret, fmt="JSON")
        refused_with(answer, Err.SERVICE_UNAVAILABLE, "JSON")
        private_redis.start()  # back: the listener subscribes again and the key is read again
        _restore(private_redis.url, saved)
        wait_until(lambda: call(url, "DescribeRegions", key=cached.access_key_id,
                                secret=cached.secret).status == 200, timeout=5, what="key served again")


async def test_a_waiter_reads_for_itself_when_the_request_reading_for_it_goes_away(live: Any) -> None:
    keystore, admin, _, _ = live
    new = await heard(keystore, admin.create_key(ACCOUNT))
    started = asyncio.Event()
    reader = keystore.cache.reader

    class Stalling:
        def __init__(self) -> None:
            self.calls = 0

        async def read(self, ident: str) -> AccessKey | None:
            self.calls += 1
            if self.calls == 1:
                started.set()
                await asyncio.Event().wait()  # never answers: its request is cancelled
            return await reader.read(ident)  # type: ignore[no-any-return]

    keystore.cache.reader = Stalling()
    first = asyncio.ensure_future(keystore.cache.fetch(new.access_key_id))
    await started.wait()
    second = asyncio.ensure_future(keystore.cache.fetch(new.access_key_id))
    await asyncio.sleep(0)  # the second now waits on the first's read
    first.cancel()
    key = await second
    assert key is not None and key.secrets == (new.secret,) and keystore.cache.reader.calls == 2
    assert first.cancelled()


def test_the_keystore_is_built_once_and_shared_by_every_chain_built_after(policy: Policy, redis_url: str) -> None:
    settings = keystore_settings(redis_url, "shared", config=str(DATA / "policy.toml"))
    gateway = build(settings, policy=policy, store=MemoryStore())
    assert gateway.keystore is not None
    # What a policy reload does: a new chain from a new policy, the same keystore.
    rebuilt = build_chain(settings, policy, gateway.store, PolicyResolver(policy), gateway.keystore.cache)
    assert rebuilt.parse.cached is gateway.chain.parse.cached is gateway.keystore.cache.entries
    gateway.keystore.cache.clear()  # emptied in place: the parsers keep reading the live dict
    assert rebuilt.parse.cached is gateway.keystore.cache.entries
    assert build(Settings(), policy=policy, store=MemoryStore()).keystore is None  # GATEWAY_KEYSTORE=file


async def test_an_id_longer_than_any_stored_is_unknown_without_a_read(live: Any) -> None:
    keystore, _, counting, _ = live
    assert not keystore.cache.missing("LTAI" + "x" * 200) and not keystore.cache.missing("") and \
        not keystore.cache.missing(None)
    assert keystore.cache.missing("LTAI" + "x" * 124)
    assert counting.reads == 0


async def test_a_silent_redis_is_noticed_by_the_listeners_ping_then_the_cache_is_emptied_on_return(
        live: Any) -> None:
    keystore, admin, _, _ = live
    new = await heard(keystore, admin.create_key(ACCOUNT))
    await keystore.cache.fetch(new.access_key_id)
    paused = time.monotonic()
    await admin.client.execute_command("CLIENT", "PAUSE", "4500", "ALL")  # answers nothing, closes nothing
    await until(lambda: not keystore.cache.listening, timeout=6, what="listener gave the connection up")
    noticed = time.monotonic() - paused
    assert noticed < 4.5, noticed  # by its ping, before the pause ended
    assert new.access_key_id in keystore.cache.entries  # kept meanwhile (TTL + grace)
    await until(lambda: keystore.cache.listening, timeout=10, what="listener subscribed again")
    assert new.access_key_id not in keystore.cache.entries  # messages may have been lost: emptied


def test_a_new_secret_is_never_in_its_repr() -> None:
    made = NewSecret("LTAIx", "s3cret-value")
    assert "s3cret-value" not in repr(made) and "LTAIx" in repr(made) and made.secret == "s3cret-value"
