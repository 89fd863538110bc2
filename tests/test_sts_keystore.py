"""Temporary keys whose assuming key lives in the Redis keystore (#17 with #15 §2).

Two gateways on one Redis (GATEWAY_KEYSTORE=redis), each a GatewayMiddleware served by its own uvicorn, with
the STS test policy: AssumeRole on gateway A, signed by a key the admin created in Redis; the credentials
must work on gateway B, which never read that key; disabling the assuming key must end its sessions on both
within a second; with Redis down, an uncached assuming key is ServiceUnavailable, never admitted unchecked;
and a long-term keystore key sent with a token is refused as Mismatch even on its first read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from gateway import GatewayMiddleware
from gateway.catalog import Err
from gateway.keystore.runtime import Keystore
from gateway.stores import MemoryStore
from tests.support.apps import EchoService
from tests.support.client import Answer, get, refused_with, signed_params
from tests.support.keystore import admin_on, cli_env, keystore_settings, run_cli
from tests.support.redis import running_redis
from tests.support.servers import free_port, serve_in_thread, wait_until
from tests.support.sts import ACCOUNT, POLICY, STS_VERSION, Creds, arn, call_sts, call_sts_v3, creds, sts_policy


@dataclass
class Gateway:
    url: str
    keystore: Keystore


@dataclass
class Deployment:
    a: Gateway
    b: Gateway
    redis_url: str
    prefix: str
    key_id: str
    secret: str


def _keystore_key(redis_url: str, prefix: str) -> tuple[str, str]:
    """A root key of the STS policy's account, created in Redis by the admin (the file does not hold it)."""
    settings = keystore_settings(redis_url, prefix)

    async def make() -> tuple[str, str]:
        async with admin_on(settings) as admin:
            await admin.set_account(ACCOUNT, name="alice@example.com")
            made = await admin.create_key(ACCOUNT)
            return made.access_key_id, made.secret

    return asyncio.run(make())


@contextmanager
def _deployment(redis_url: str) -> Iterator[Deployment]:
    prefix = f"stsks{free_port()}"
    key_id, secret = _keystore_key(redis_url, prefix)
    with ExitStack() as stack:
        gateways = []
        for _ in range(2):
            settings = keystore_settings(redis_url, prefix, config=str(POLICY), host_id="gateway.test")
            app = GatewayMiddleware(EchoService(), settings=settings, policy=sts_policy(), store=MemoryStore())
            assert app.gateway.keystore is not None
            gateways.append(Gateway(stack.enter_context(serve_in_thread(app)), app.gateway.keystore))
        yield Deployment(gateways[0], gateways[1], redis_url, prefix, key_id, secret)


@pytest.fixture
def deployment(redis_url: str) -> Iterator[Deployment]:
    with _deployment(redis_url) as live:
        yield live


def _assume(url: str, key_id: str, secret: str, fmt: str = "JSON") -> Answer:
    signed = signed_params("AssumeRole", {"RoleArn": arn("Reader"), "RoleSessionName": "keystore-session"},
                           key=key_id, secret=secret, fmt=fmt, version=STS_VERSION)
    return get(url, signed)


def _caller(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    found: dict[str, Any] = answer.json["Echo"]["Caller"]
    return found


def test_a_session_of_a_keystore_key_works_on_a_gateway_that_never_read_that_key(deployment: Deployment) -> None:
    session = creds(_assume(deployment.a.url, deployment.key_id, deployment.secret))
    assert deployment.key_id not in deployment.b.keystore.cache.entries
    first = call_sts(deployment.b.url, "DescribeRegions", session)
    assert _caller(first)["AccessKeyId"] == session.access_key_id
    answer = call_sts_v3(deployment.b.url, "DescribeRegions", session)
    assert answer.status == 200, answer.body
    for fmt in ("XML", "JSON"):  # the session's own checks still run there
        refused_with(call_sts(deployment.b.url, "DescribeRegions", session, fmt=fmt, token=session.token[:-3]),
                      Err.TOKEN_MALFORMED, fmt)


def test_a_session_whose_assuming_key_is_not_in_redis_is_malformed_on_a_gateway_that_reads_it(
        deployment: Deployment) -> None:
    session = creds(_assume(deployment.a.url, deployment.key_id, deployment.secret))
    done = run_cli(cli_env(deployment.redis_url, deployment.prefix), "keys", "delete", deployment.key_id)
    assert done.returncode == 0, done.stderr
    for fmt in ("XML", "JSON"):
        refused_with(call_sts(deployment.b.url, "DescribeRegions", session, fmt=fmt), Err.TOKEN_MALFORMED, fmt)


def _refused_within(url: str, session: Creds, since: float, limit: float) -> float:
    """Seconds from ``since`` until ``url`` refuses ``session``; fails past ``limit``."""
    while True:
        answer = call_sts(url, "DescribeRegions", session)
        if answer.status != 200:
            refused_with(answer, Err.TOKEN_MALFORMED, "JSON")
            return time.monotonic() - since
        assert time.monotonic() - since < limit, "a session outlived its assuming key's disable"
        time.sleep(0.01)


@pytest.mark.parametrize("action", ["disable", "delete"])
def test_keys_disable_of_the_assuming_key_refuses_its_sessions_on_both_gateways_within_a_second(
        deployment: Deployment, action: str) -> None:
    session = creds(_assume(deployment.a.url, deployment.key_id, deployment.secret))
    own = Creds(deployment.key_id, deployment.secret, "", "")
    for gateway in (deployment.a, deployment.b):  # a first read starts the listener; subscribing empties the cache
        assert call_sts(gateway.url, "DescribeRegions", own, with_token=False).status == 200
        wait_until(lambda gateway=gateway: gateway.keystore.cache.listening, what="listener subscribed")  # type: ignore[misc]
    # The assuming key cached again, and the session verified (its token cached) on both: what follows shows
    # a session ending through the change message that drops its assuming key's entry.
    for gateway in (deployment.a, deployment.b):
        assert call_sts(gateway.url, "DescribeRegions", own, with_token=False).status == 200
        assert deployment.key_id in gateway.keystore.cache.entries
        assert call_sts(gateway.url, "DescribeRegions", session).status == 200
    done = run_cli(cli_env(deployment.redis_url, deployment.prefix), "keys", action, deployment.key_id)
    assert done.returncode == 0, done.stderr
    changed = time.monotonic()
    took = [_refused_within(gateway.url, session, changed, 1.0) for gateway in (deployment.a, deployment.b)]
    print(f"`keys {action}` -> sessions refused on A after {took[0] * 1000:.0f} ms, B after {took[1] * 1000:.0f} ms")
    for gateway in (deployment.a, deployment.b):
        for fmt in ("XML", "JSON"):
            refused_with(call_sts(gateway.url, "DescribeRegions", session, fmt=fmt), Err.TOKEN_MALFORMED, fmt)
        answer = call_sts_v3(gateway.url, "DescribeRegions", session, accept="application/xml")
        refused_with(answer, Err.TOKEN_MALFORMED, "XML")
    if action == "disable":  # enabled again, its sessions (not yet expired) are accepted again
        done = run_cli(cli_env(deployment.redis_url, deployment.prefix), "keys", "enable", deployment.key_id)
        assert done.returncode == 0, done.stderr
        for gateway in (deployment.a, deployment.b):
            wait_until(lambda gateway=gateway: call_sts(gateway.url, "DescribeRegions",  # type: ignore[misc]
                                                        session).status == 200, timeout=2, what="session back")


def test_redis_down_with_the_assuming_key_uncached_is_service_unavailable() -> None:
    with running_redis() as server, _deployment(server.url) as live:
        session = creds(_assume(live.a.url, live.key_id, live.secret))
        assert live.key_id not in live.b.keystore.cache.entries
        server.stop()
        for fmt in ("XML", "JSON"):
            refused_with(call_sts(live.b.url, "DescribeRegions", session, fmt=fmt), Err.SERVICE_UNAVAILABLE, fmt)
        answer = call_sts_v3(live.b.url, "DescribeRegions", session, accept="application/xml")
        refused_with(answer, Err.SERVICE_UNAVAILABLE, "XML")
        assert live.b.keystore.cache.entries.get(live.key_id) is None


def test_an_uncached_keystore_key_sent_with_a_token_is_mismatch_like_a_file_key(deployment: Deployment) -> None:
    session = creds(_assume(deployment.a.url, deployment.key_id, deployment.secret))
    own = Creds(deployment.key_id, deployment.secret, session.token, session.expiration)
    assert deployment.key_id not in deployment.b.keystore.cache.entries
    for fmt in ("XML", "JSON"):  # the first read of the key (B), then a cached key (A): refused alike
        for gateway in (deployment.b, deployment.a):
            refused_with(call_sts(gateway.url, "DescribeRegions", own, fmt=fmt), Err.TOKEN_MISMATCH, fmt)
    deployment.b.keystore.cache.invalidate(f"k:{deployment.key_id}")  # uncached again, for the V3 spelling
    refused_with(call_sts_v3(deployment.b.url, "DescribeRegions", own), Err.TOKEN_MISMATCH, "JSON")
    # The file's keys, for comparison: the same refusal.
    file_key = Creds("LTAIroot", "root-secret", session.token, session.expiration)
    refused_with(call_sts(deployment.b.url, "DescribeRegions", file_key), Err.TOKEN_MISMATCH, "JSON")
    # Without a token the keystore key is accepted, as the long-term key it is.
    assert call_sts(deployment.b.url, "DescribeRegions", own, with_token=False).status == 200


# -- the resolver, without a server: the assuming key is judged as it is now, on every request ---------------


def test_the_assuming_key_is_looked_up_on_every_request_not_cached_with_the_token() -> None:
    from dataclasses import replace

    from gateway.rates import Rate
    from gateway.sts import token as tokens
    from gateway.sts.keys import TemporaryKeys
    from tests.support.sts import SIGNING_KEY

    policy = sts_policy()
    assert policy.sts is not None
    elsewhere = replace(policy.access_keys["LTAIroot"], id="LTAIredis")
    current: dict[str, Any] = {"LTAIredis": elsewhere}
    temporary = TemporaryKeys(policy, policy.sts, lookup=current.get, missing=lambda key_id: key_id not in current)
    keys = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))
    token = keys.mint(tokens.Claims("STS.unit", ACCOUNT, "Reader", "s", "LTAIredis", int(time.time()) + 900, None))
    first, refusal = temporary.resolve("STS.unit", None, token)
    assert refusal is None and first is not None and first.quota is None
    assert temporary.resolve("STS.unit", None, token)[0] is first  # unchanged key: the cached object
    current["LTAIredis"] = replace(elsewhere, enabled=False)
    assert temporary.resolve("STS.unit", None, token) == (None, Err.TOKEN_MALFORMED)
    quota = Rate(3, 3_600_000)
    current["LTAIredis"] = replace(elsewhere, quota=quota)  # read again, with a quota since
    again, refusal = temporary.resolve("STS.unit", None, token)
    assert refusal is None and again is not None and again.quota == quota
    del current["LTAIredis"]  # not cached: the parser's keystore reads it (gateway.sts.reads)
    assert temporary.resolve("STS.unit", None, token) == (None, None)
    current["LTAIredis"] = None  # known not to exist
    assert temporary.resolve("STS.unit", None, token) == (None, Err.TOKEN_MALFORMED)
