"""#16 items 8, 21, 22: a ClientToken replays an answer only to the very call that made it, and a call
keeps its token while it runs, however long it takes.

Each HTTP test runs in both modes (GatewayMiddleware around an ASGI service; GatewayMiddleware with
ProxyApp in front of the same service served as an upstream) and over both stores. The service
counts the calls it ran per ClientToken and echoes the parameters it read; under ``/slow`` it answers
late and in slow chunks (~2.5 s in all), longer than the gateways' one-second lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from redis import Redis
from starlette.types import Receive, Scope, Send

from gateway import GatewayMiddleware, Settings, load_policy
from gateway.admit import VOLATILE, Admission, fingerprint
from gateway.admit import token_owner as owner
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.stores import IdempotencyClaim, MemoryStore, Outcome, StoreUnavailable, Ticket
from gateway.stores.renewal import LeaseRenewal
from tests.conftest import DATA
from tests.support.asgi import read_body
from tests.support.calls import a_call
from tests.support.client import Answer, call_v3, get, post, signed_params
from tests.support.redis import RedisServer, running_redis
from tests.support.servers import free_port, serve_in_thread, wait_until

# Two idempotent APIs with free text, to build parameter lists that an ambiguous encoding confuses.
EXTRA_POLICY = """
[apis."2014-05-26".CreateNote]
idempotent = true
params.Name = { type = "String" }
params.Note = { type = "String" }
"""
LEASE_SECONDS = 1
SLOW_WAIT = 1.25  # before the answer starts, and then again while its chunks trickle out
SLOW_CHUNKS = 10


@pytest.fixture(scope="module")
def note_policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Policy]:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text((DATA / "policy.toml").read_text() + EXTRA_POLICY)
    return path, load_policy(path)


class NoteService:
    """Runs CreateNote: counts each run by ClientToken, echoes the parameters it parsed itself (the
    query and a form body, as a service would: no gateway context, so it serves as an upstream too)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.started = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        params = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
        params += parse_qsl(body.decode(), keep_blank_values=True)
        token = dict(params).get("ClientToken", "")
        self.runs[token] += 1
        payload = json.dumps({"Run": self.runs[token], "Params": sorted(p for p in params if p[0] not in VOLATILE)})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        if not scope["path"].startswith("/slow"):
            await send({"type": "http.response.body", "body": payload.encode()})
            return
        self.started.set()
        await asyncio.sleep(SLOW_WAIT)
        data = payload.encode()
        step = -(-len(data) // SLOW_CHUNKS)
        for i in range(SLOW_CHUNKS):
            await send({"type": "http.response.body", "body": data[i * step:(i + 1) * step], "more_body": True})
            await asyncio.sleep(SLOW_WAIT / SLOW_CHUNKS)
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Live:
    url: str
    service: NoteService
    mode: str
    prefix: str = ""


def _serve(mode: str, redis_url: str | None, policy: tuple[Path, Policy]) -> Iterator[Live]:
    service = NoteService()
    path, loaded = policy
    store = MemoryStore() if redis_url is None else None
    prefix = f"t{free_port()}"
    common: dict[str, Any] = {"config": str(path), "host_id": "gateway.test", "idempotency_lease": LEASE_SECONDS,
                              "redis_url": redis_url, "redis_prefix": prefix}
    if mode == "middleware":
        settings = Settings(**common)
        with serve_in_thread(GatewayMiddleware(service, settings=settings, policy=loaded, store=store)) as url:
            yield Live(url, service, mode, prefix)
        return
    with serve_in_thread(service) as upstream:
        settings = Settings(upstream_url=upstream, **common)
        with serve_in_thread(GatewayMiddleware(ProxyApp(settings), settings=settings, policy=loaded,
                                               store=store)) as url:
            yield Live(url, service, mode)


@pytest.fixture(scope="module", params=[("middleware", "memory"), ("middleware", "redis"),
                                        ("proxy", "memory"), ("proxy", "redis")], ids=lambda p: "-".join(p))
def live(request: pytest.FixtureRequest, note_policy: tuple[Path, Policy]) -> Iterator[Live]:
    mode, store = request.param
    redis_url = request.getfixturevalue("redis_server").url if store == "redis" else None
    yield from _serve(mode, redis_url, note_policy)


def token() -> str:
    return uuid.uuid4().hex


def note(live: Live, params: dict[str, str], *, path: str = "", fmt: str | None = "JSON") -> Answer:
    # get() adds the "/": a path of "/" here would make the target "//", which the gateway refuses.
    return get(live.url + path, signed_params("CreateNote", params, fmt=fmt))


def note_v3(live: Live, params: dict[str, str], accept: str) -> Answer:
    return call_v3(live.url, "CreateNote", params, accept=accept)


# --- item 8: one encoding, no collisions ---


def test_fingerprints_of_distinct_parameter_lists_differ() -> None:
    base = {"Action": "CreateNote", "ClientToken": "t"}
    lists = [
        {**base, "Name": "a", "Note": "b"},
        {**base, "Name": "a\x00Note=b"},  # the NUL join made this the list above
        {**base, "Name": "a=", "Note": "b"},
        {**base, "Name": "a", "Note": "=b"},
        {**base, "Name": "a\x00", "Note": "b"},
        {**base, "Name": "", "Note": "b"},
        {**base, "Note": "b"},
        {**base, "Name=a": "", "Note": "b"},
        {**base, 'Name"': "a", "Note": "b"},
    ]
    prints = {fingerprint("GET", "JSON", params) for params in lists}
    assert len(prints) == len(lists)


def test_fingerprints_ignore_order_and_the_volatile_parameters() -> None:
    params = {"Name": "a", "Note": "b", "Signature": "s1", "SignatureNonce": "n1", "Timestamp": "t1"}
    again = {"Timestamp": "t2", "Note": "b", "SignatureNonce": "n2", "Name": "a", "Signature": "s2"}
    assert fingerprint("POST", "XML", params) == fingerprint("POST", "XML", again)
    assert fingerprint("POST", "XML", params) != fingerprint("GET", "XML", params)


def test_owners_are_unambiguous() -> None:
    assert owner("AK|x", None, "v", "a") != owner("AK", "x", "v", "a")
    assert owner("AK", "", "v", "a") != owner("AK", None, "v", "a")
    assert owner("AK", None, "v|a", "b") != owner("AK", None, "v", "a|b")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_value_spelling_two_parameters_is_not_a_replay_of_them(live: Live, method: str) -> None:
    client_token = token()
    if method == "GET":
        first = note(live, {"ClientToken": client_token, "Name": "a", "Note": "b"})
        second = note(live, {"ClientToken": client_token, "Name": "a\x00Note=b"})
    else:
        first = _post_note(live, {"ClientToken": client_token, "Name": "a", "Note": "b"})
        second = _post_note(live, {"ClientToken": client_token, "Name": "a\x00Note=b"})
    assert first.status == 200, first.body
    # Before the fix: 200 with the first call's answer, which says Note=b to a caller who sent none.
    assert (second.status, second.code()) == (400, "IdempotentParameterMismatch"), second.body
    assert live.service.runs[client_token] == 1


def _post_note(live: Live, params: dict[str, str]) -> Answer:
    return post(live.url, signed_params("CreateNote", params, method="POST"))


# --- item 22: the answer format is part of the call, for V1 and V3 alike ---


def ask(live: Live, version: str, params: dict[str, str], fmt: str, xml: str = "application/xml") -> Answer:
    """V1 asks for a format with its Format parameter, V3 with Accept (``xml``: how it spells XML)."""
    if version == "V1":
        return note(live, params, fmt=fmt)
    return note_v3(live, params, accept=xml if fmt == "XML" else "application/json")


@pytest.mark.parametrize("version", ["V1", "V3"])
def test_a_retry_asking_another_format_is_another_call(live: Live, version: str) -> None:
    # Before the fix, V3: 200 and the first call's XML, to a caller who asked for JSON (V1 already
    # had Format among the fingerprinted parameters: a guard there).
    client_token = token()
    params = {"ClientToken": client_token, "Name": "a"}
    first = ask(live, version, params, "XML")
    assert (first.status, first.headers["content-type"]) == (200, "text/xml;charset=utf-8"), first.body
    other = ask(live, version, params, "JSON")
    assert (other.status, other.code()) == (400, "IdempotentParameterMismatch"), other.body
    assert other.headers["content-type"] == "application/json;charset=utf-8"
    same = ask(live, version, params, "XML", xml="text/xml")  # XML again, spelt otherwise for V3
    assert (same.status, same.body) == (200, first.body)
    assert live.service.runs[client_token] == 1


def test_the_claim_holds_the_decided_format() -> None:
    policy = load_policy(DATA / "policy.toml")
    admission = Admission(MemoryStore(), policy, skew=900, lease_seconds=1, answer_ttl=60)
    api, key = policy.api("2014-05-26", "CreateOrder"), policy.access_keys["LTAIalice"]
    claims = []
    for answer_format in ("XML", "JSON"):
        call = a_call(params={"ClientToken": "t", "Amount": "1"}, format=answer_format, api=api, key=key)
        assert api is not None
        claim = admission._claim(call, api, key)
        assert claim is not None
        claims.append(claim)
    assert claims[0].owner == claims[1].owner
    assert claims[0].fingerprint != claims[1].fingerprint


# --- item 21: the lease lasts as long as the call ---


def _in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def test_a_call_slower_than_its_lease_keeps_its_token(live: Live) -> None:
    client_token = token()
    params = {"ClientToken": client_token, "Name": "slow"}
    live.service.started.clear()
    thread, result = _in_background(lambda: note(live, params, path="/slow"))
    wait_until(live.service.started.is_set, what="the slow call to start")
    time.sleep(LEASE_SECONDS * 1.6)  # time is the behaviour under test: past the lease, mid-answer
    during = note(live, params, path="/slow")
    # Before the fix: the lease had expired, so this retry ran the operation a second time.
    assert (during.status, during.code()) == (403, "LastTokenProcessing"), during.body
    thread.join(timeout=15)
    (first,) = result
    assert first.status == 200, first.body
    assert first.json["Run"] == 1
    after = note(live, params, path="/slow")
    assert (after.status, after.body) == (200, first.body)  # the stored answer, replayed
    assert live.service.runs[client_token] == 1


def test_a_renewal_that_cannot_reach_redis_does_not_fail_the_call(
    note_policy: tuple[Path, Policy], caplog: pytest.LogCaptureFixture
) -> None:
    with running_redis() as server:
        for live in _serve("middleware", server.url, note_policy):
            _outage_mid_call(live, server, caplog)


def _outage_mid_call(live: Live, server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    params = {"ClientToken": token(), "Name": "slow"}
    with caplog.at_level(logging.WARNING, logger="gateway.stores"):
        thread, result = _in_background(lambda: note(live, params, path="/slow"))
        wait_until(live.service.started.is_set, what="the slow call to start")
        server.stop()
        thread.join(timeout=15)
    (first,) = result
    assert first.status == 200, first.body  # the service's answer, not a 5xx
    assert first.json["Run"] == 1
    assert any("could not renew its ClientToken lease" in r.getMessage() for r in caplog.records)


def test_a_call_that_lost_its_lease_does_not_store_over_the_retry(
    note_policy: tuple[Path, Policy], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The lease vanishes mid-call (as when the gateway stalled longer than a lease): a retry takes the
    # token and runs. The first call's answer must not replace the retry's, and the loss is logged.
    account = note_policy[1].access_keys["LTAIalice"].account.id
    for live in _serve("middleware", redis_server.url, note_policy):
        _lose_the_lease_mid_call(live, f"{live.prefix}:{{{account}}}", redis_server.url, caplog)


def _lose_the_lease_mid_call(live: Live, tag: str, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    client_token = token()
    params = {"ClientToken": client_token, "Name": "slow"}
    with caplog.at_level(logging.ERROR, logger="gateway.stores"):
        first_thread, first = _in_background(lambda: note(live, params, path="/slow"))
        wait_until(live.service.started.is_set, what="the first call to start")
        with Redis.from_url(redis_url) as inspect:
            assert inspect.delete(f"{tag}:i:{client_token}") == 1
        live.service.started.clear()
        retry_thread, retry = _in_background(lambda: note(live, params, path="/slow"))
        wait_until(live.service.started.is_set, what="the retry to start")
        first_thread.join(timeout=15)
        retry_thread.join(timeout=15)
    assert (first[0].status, first[0].json["Run"]) == (200, 1)
    assert (retry[0].status, retry[0].json["Run"]) == (200, 2)
    replay = note(live, params, path="/slow")
    assert (replay.status, replay.body) == (200, retry[0].body)  # the retry's answer, not the first's
    assert live.service.runs[client_token] == 2
    assert any("lease was lost" in r.getMessage() for r in caplog.records)


# --- LeaseRenewal, without a server ---


def _claim(lease_ms: int) -> IdempotencyClaim:
    return IdempotencyClaim(token(), "owner", "fp", lease_ms)


def _ticket(claim: IdempotencyClaim) -> Ticket:
    return Ticket("1001", None, 60_000, idempotency=claim, timestamp_ms=time.time_ns() // 1_000_000)


async def test_renewal_holds_the_lease_until_stopped() -> None:
    store, claim = MemoryStore(), _claim(150)
    assert (await store.admit(_ticket(claim))).outcome is Outcome.ADMITTED
    renewal = LeaseRenewal(store, "1001", claim, "req")
    renewal.start()
    await asyncio.sleep(0.5)  # more than three leases
    retry = IdempotencyClaim(claim.token, "owner", "fp", 150)
    assert (await store.admit(_ticket(retry))).outcome is Outcome.TOKEN_PROCESSING
    assert not renewal.lost
    renewal.stop()
    await asyncio.sleep(0.3)
    assert (await store.admit(_ticket(retry))).outcome is Outcome.ADMITTED


async def test_renewal_notices_a_lost_lease(caplog: pytest.LogCaptureFixture) -> None:
    store, claim = MemoryStore(), _claim(90)
    renewal = LeaseRenewal(store, "1001", claim, "req-lost")  # never admitted: nothing to renew
    renewal.start()
    await _until(lambda: renewal.lost)
    assert any("req-lost" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    renewal.stop()


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the running loop until it holds (the renewal runs on this loop)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


class _Failing(MemoryStore):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error, self.calls = error, 0

    async def renew(self, scope: str, claim: IdempotencyClaim) -> bool:
        self.calls += 1
        raise self.error


async def test_renewal_failures_never_raise() -> None:
    unreachable = _Failing(StoreUnavailable("down"))
    renewal = LeaseRenewal(unreachable, "1001", _claim(60), "req")
    renewal.start()
    await _until(lambda: unreachable.calls >= 3)
    assert not renewal.lost  # asked again at every renewal
    renewal.stop()
    broken = _Failing(RuntimeError("bug"))
    renewal = LeaseRenewal(broken, "1001", _claim(60), "req")
    renewal.start()
    await _until(lambda: broken.calls == 1)
    await asyncio.sleep(0.1)  # the behaviour under test is a time: five renewal periods with no retry
    assert broken.calls == 1 and not renewal.lost  # logged once, then no more renewals
    renewal.stop()
