"""Reloading the policy in process (#15 §1): validate first, swap one reference, an invalid file changes
nothing, requests in flight keep their policy, the store's state survives, every reload is counted."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import GatewayMiddleware, Settings
from gateway import reload as reload_module
from gateway.metrics import _instruments
from gateway.parse import Parser
from gateway.policy import PolicyError, load_policy, parse_policy
from gateway.policy.diff import diff_policies
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import query, signed_params
from tests.support.redis import command
from tests.support.servers import free_port

BASE = (DATA / "policy.toml").read_text()
ALICE = 'id = "LTAIalice"\nsecrets = ["alice-secret", "alice-old-secret"]\naccount = 1111\n'
QUOTA = 'id = "LTAIquota"\nsecrets = ["quota-secret"]\naccount = 1111\nquota = "1/10000d"\n'


def edited(*replacements: tuple[str, str], base: str = BASE) -> str:
    """``base`` (the test policy) with each replacement made; each old text must be in it."""
    text = base
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


DISABLED = edited((ALICE, ALICE + "enabled = false\n"))
# Quota windows are aligned to the epoch; one of 10,000 days ends in 2052, so no test run straddles it.
FIVE = edited((QUOTA, QUOTA.replace("1/10000d", "5/10000d")))
INVALID = edited((QUOTA, QUOTA.replace("1/10000d", "lots")))


def reloads(result: str) -> float:
    instruments = _instruments()
    assert instruments is not None
    return float(instruments.reloads.labels(result)._value.get())


class Harness:
    def __init__(self, file: Path, middleware: GatewayMiddleware, client: httpx.AsyncClient) -> None:
        self.file, self.middleware, self.client = file, middleware, client

    async def call(self, action: str = "DescribeRegions", key: str = "LTAIalice", **params: str) -> tuple[int, str]:
        response = await self.client.get("/?" + query(signed_params(action, params, key=key)))
        return response.status_code, response.json().get("Code", "OK")

    def write(self, text: str) -> None:
        self.file.write_text(text)


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    file = tmp_path / "policy.toml"
    file.write_text(BASE)
    store = open_store(redis_url, prefix=f"r{free_port()}", timeout=1.0)
    middleware = GatewayMiddleware(EchoService(), settings=Settings(config=str(file), redis_url=redis_url),
                                   store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://gw") as client:
        yield Harness(file, middleware, client)
    await store.aclose()


async def test_a_valid_file_is_swapped_in_and_counted(harness: Harness) -> None:
    assert await harness.call() == (200, "OK")
    before, chain = reloads("ok"), harness.middleware.chain
    harness.write(DISABLED)
    done = await harness.middleware.reload()
    assert done.result == "ok" and done.diff is not None
    assert done.diff.lines() == ["~ access key LTAIalice: enabled true -> false"]
    assert harness.middleware.chain is not chain and harness.middleware.gateway.policy.text_sha256
    assert await harness.call() == (403, "Forbidden.AccessKeyDisabled")
    assert reloads("ok") == before + 1


async def test_an_invalid_file_changes_nothing(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    chain, errors = harness.middleware.chain, reloads("error")
    harness.write(INVALID)
    line = INVALID[:INVALID.index('quota = "lots"')].count("\n") - 3  # the entry's [[access_keys]] header
    with caplog.at_level(logging.ERROR, logger="gateway.reload"):
        done = await harness.middleware.reload()
    assert done.result == "error" and done.error is not None
    assert done.error.startswith(f"{harness.file}:{line}: access_keys[4] (LTAIquota): "), done.error
    assert harness.middleware.chain is chain
    assert any(f"{harness.file}:{line}:" in r.getMessage() for r in caplog.records), caplog.text
    assert reloads("error") == errors + 1
    assert await harness.call() == (200, "OK")
    ready = await harness.client.get("/_gateway/ready")
    assert ready.status_code == 200


async def test_the_same_text_is_unchanged_and_swaps_nothing(harness: Harness) -> None:
    chain, unchanged = harness.middleware.chain, reloads("unchanged")
    harness.write(BASE)
    assert (await harness.middleware.reload()).result == "unchanged"
    assert harness.middleware.chain is chain and reloads("unchanged") == unchanged + 1


async def test_a_policy_without_apis_is_invalid_at_start_and_at_reload(harness: Harness, tmp_path: Path) -> None:
    no_apis = BASE[:BASE.index("[apis.")]
    with pytest.raises(PolicyError, match=r"apis: declares no API"):
        parse_policy(no_apis, "p.toml", {})
    harness.write(no_apis)
    done = await harness.middleware.reload()
    assert done.result == "error" and done.error is not None and "declares no API" in done.error
    assert await harness.call() == (200, "OK")


async def test_a_request_in_flight_finishes_with_the_policy_it_started_with(harness: Harness) -> None:
    # A POST whose body is still arriving when the swap happens: it was parsed by the old chain's
    # parser, and is checked by the old chain, which still admits alice.
    release, reading = asyncio.Event(), asyncio.Event()
    body = query(signed_params("DescribeRegions", method="POST")).encode()

    async def slow_body() -> AsyncIterator[bytes]:
        yield body[:10]
        reading.set()  # the gateway asks for more: it is reading the body, with the chain it started with
        await release.wait()
        yield body[10:]

    in_flight = asyncio.create_task(harness.client.post(
        "/", content=slow_body(), headers={"content-type": "application/x-www-form-urlencoded"}))
    await reading.wait()
    harness.write(DISABLED)
    assert (await harness.middleware.reload()).result == "ok"
    assert await harness.call() == (403, "Forbidden.AccessKeyDisabled")
    release.set()
    response = await in_flight
    assert response.status_code == 200, response.text


async def test_state_survives_a_reload(harness: Harness) -> None:
    harness.write(FIVE)
    assert (await harness.middleware.reload()).result == "ok"
    for _ in range(3):
        assert await harness.call(key="LTAIquota") == (200, "OK")
    # The flow state, a nonce, a ClientToken:
    assert await harness.call("DescribeFlowLimited") == (200, "OK")
    used = signed_params("DescribeRegions")
    assert (await harness.client.get("/?" + query(used))).status_code == 200
    order = signed_params("CreateOrder", {"Amount": "1", "ClientToken": "tok-1"})
    first = await harness.client.get("/?" + query(order))
    assert first.status_code == 200, first.text

    # A reload that does not touch the quota (another key's change): 2 of 5 left.
    harness.write(FIVE.replace(ALICE, ALICE + 'denied_params = ["PageSize"]\n'))
    assert (await harness.middleware.reload()).result == "ok"
    assert [await harness.call(key="LTAIquota") for _ in range(3)] == [(200, "OK")] * 2 + [(400, "Throttling")]
    assert await harness.call("DescribeFlowLimited") == (400, "Throttling")
    assert (await harness.client.get("/?" + query(used))).json()["Code"] == "SignatureNonceUsed"
    again = await harness.client.get("/?" + query(signed_params("CreateOrder", {"Amount": "1",
                                                                                 "ClientToken": "tok-1"})))
    assert again.json()["OrderId"] == first.json()["OrderId"]  # replayed, not run again

    # A new rate applies to the same window: 5 used of 7.
    harness.write(FIVE.replace('"5/10000d"', '"7/10000d"'))
    done = await harness.middleware.reload()
    assert done.diff is not None and done.diff.lines() == [
        "~ access key LTAIalice: denied_params [PageSize] -> []", "~ access key LTAIquota: quota 5/10000d -> 7/10000d"]
    assert [await harness.call(key="LTAIquota") for _ in range(3)] == [(200, "OK")] * 2 + [(400, "Throttling")]


async def test_reloads_never_interleave(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    active, most = 0, 0
    real = reload_module.load_policy

    def slow_load(path: Any) -> Any:
        nonlocal active, most
        active += 1
        most = max(most, active)
        try:
            import time

            time.sleep(0.02)  # the work of a larger file: the others must wait for it
            return real(path)
        finally:
            active -= 1

    monkeypatch.setattr(reload_module, "load_policy", slow_load)
    harness.write(DISABLED)
    results = await asyncio.gather(*(harness.middleware.reload() for _ in range(6)))
    assert most == 1
    assert sorted(r.result for r in results) == ["ok"] + ["unchanged"] * 5


async def test_an_old_chain_is_freed_without_the_collector(harness: Harness) -> None:
    # What makes a cheap re-freeze enough (gateway.reload._refreeze): no reference cycle keeps an old
    # policy, so frozen or not, it goes when its last request ends.
    def parsers() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is Parser)

    before = parsers()
    gc.disable()
    try:
        for i in range(20):
            harness.write(BASE + f"\n# version {i}\n")
            assert (await harness.middleware.reload()).result == "ok"
            assert await harness.call() == (200, "OK")
        assert parsers() == before
    finally:
        gc.enable()


def redis_clients(port: int) -> int:
    return command(port, "CLIENT", "LIST").decode().count("\n")


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_hundred_reloads_open_no_connection_or_descriptor(redis_server: Any, tmp_path: Path) -> None:
    redis_server.start()
    file = tmp_path / "policy.toml"
    file.write_text(BASE)
    store = open_store(redis_server.url, prefix=f"r{free_port()}", timeout=1.0)
    middleware = GatewayMiddleware(EchoService(), settings=Settings(config=str(file), redis_url=redis_server.url),
                                   store=store)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        async def call() -> int:
            return (await client.get("/?" + query(signed_params("DescribeRegions")))).status_code

        assert await call() == 200
        connections, descriptors = redis_clients(redis_server.port), _descriptors()
        for i in range(100):
            file.write_text(DISABLED if i % 2 == 0 else BASE)
            assert (await middleware.reload()).result == "ok"
            assert await call() == (403 if i % 2 == 0 else 200)
        assert redis_clients(redis_server.port) == connections
        assert _descriptors() == descriptors
    await store.aclose()


def test_the_diff_names_every_kind_of_change_and_no_secret() -> None:
    old = parse_policy(BASE, "old.toml", {})
    new_text = edited(
        (ALICE, ALICE.replace('"alice-secret", "alice-old-secret"', '"rotated-secret"')),
        ('[[access_keys]]\nid = "LTAIbob"\nsecrets = ["bob-secret"]\naccount = 2222\n', ""),
        ('[apis."2014-05-26".Crash]\n', '[apis."2014-05-26".Crash]\nflow = "10/second"\n'),
        ('[apis."2016-01-01".DescribeRegions]\n', '[apis."2016-01-01".DescribeRegions]\n\n[apis."2016-01-01".New]\n'),
    ) + '\n[limits]\nflow = "1000/minute"\n'
    new = parse_policy(new_text, "new.toml", {})
    lines = diff_policies(old, new).lines()
    assert lines == [
        "- access key LTAIbob",
        "~ access key LTAIalice: secrets changed (2 -> 1)",
        "+ API 2016-01-01/New",
        "~ API 2014-05-26/Crash: flow none -> 10/second",
        "~ limits [limits]: flow none -> 1000/minute",
    ], lines
    assert not any("secret" in line and "rotated" in line for line in lines)
    assert diff_policies(old, new).summary() == (
        "1 access key removed, 1 access key changed, 1 API added, 1 API changed, 1 limits changed")
    assert diff_policies(old, old).empty and diff_policies(old, old).summary() == "no change"


def test_load_policy_records_the_hash_of_its_text(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text(BASE)
    text_hash = parse_policy(BASE, "x", {}).text_sha256
    assert load_policy(file).text_sha256 == text_hash != parse_policy(DISABLED, "x", {}).text_sha256
