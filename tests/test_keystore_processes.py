"""Four ``gateway serve`` processes on one Redis, keys managed with the CLI (#15 §2, §3, Must show).

Two run in proxy mode (in front of tests/support/upstream.py), two in front of the bundled demo service.

* ``gateway keys disable`` → every process refuses the key with Forbidden.AccessKeyDisabled within 1 s
  of the command's return, measured per process over several rounds (the distribution is printed);
* a key created with the CLI works at once on every process with both official SDKs (V1 and V3), and
  so does an id that was refused as unknown just before `keys import` added it;
* rotation: both secrets verify during the overlap, only the new one after ``--finish``;
* ``redis-cli --scan`` + ``HGETALL`` over the keystore shows no secret in plain text.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient
from aliyunsdkcore.client import AcsClient

from gateway.catalog import Err
from tests.conftest import DATA
from tests.support.client import get, signed_params
from tests.support.keystore import cli_env, created, run_cli
from tests.support.redis import REDIS_CLI, RedisServer, running_redis
from tests.support.sdk import TIMEOUT_S, core_request, error_code, host_of, tea_call
from tests.support.serve import Served, gateway_serve
from tests.support.servers import serve_in_thread
from tests.support.upstream import Upstream

PROCESSES = 4
ACCOUNT = "500"
PREFIX = "procs"
ROUNDS = 5
BOUND_S = 1.0
#: Every secret this module's keys ever had: none may appear in Redis in plain text.
SECRETS_SEEN: list[str] = []


class Fleet:
    def __init__(self, redis: RedisServer, served: list[Served], env: dict[str, str], upstream: Upstream) -> None:
        self.redis, self.served, self.env, self.upstream = redis, served, env, upstream

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli(self.env, *args)
        assert done.returncode == 0, done.stderr
        return done

    def new_key(self) -> tuple[str, str]:
        ident, secret = created(self.cli("keys", "create", "--account", ACCOUNT))
        SECRETS_SEEN.append(secret)
        return ident, secret


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with running_redis() as redis, ExitStack() as stack:
        env = cli_env(redis.url, PREFIX, GATEWAY_CONFIG=str(DATA / "policy.toml"), GATEWAY_ACCESS_LOG="false")
        done = run_cli(env, "accounts", "set", ACCOUNT, "--name", "tenant")
        assert done.returncode == 0, done.stderr
        # Half in proxy mode in front of an upstream, half in front of the bundled demo service.
        upstream = Upstream()
        upstream_url = stack.enter_context(serve_in_thread(upstream))
        served = [stack.enter_context(gateway_serve({**env, "GATEWAY_UPSTREAM_URL": upstream_url} if i % 2 else env))
                  for i in range(PROCESSES)]
        yield Fleet(redis, served, env, upstream)


def v1(url: str, ident: str, secret: str, client: httpx.Client | None = None) -> str | None:
    """Code of a signed DescribeRegions (None: admitted)."""
    answer = get(url, signed_params("DescribeRegions", key=ident, secret=secret), client=client)
    return None if answer.status == 200 else answer.code()


def sdk(kind: str, url: str, ident: str, secret: str) -> str | None:
    """Code of DescribeRegions through an official SDK (None: admitted): sdk-core V1, tea-openapi V3."""
    try:
        if kind == "core":
            client = AcsClient(ident, secret, "cn-hangzhou", auto_retry=False, max_retry_time=0,
                               timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S)
            client.do_action_with_exception(core_request(url, "DescribeRegions", "GET", {}))
        else:
            config = open_api_models.Config(access_key_id=ident, access_key_secret=secret, endpoint=host_of(url),
                                            protocol="http", read_timeout=TIMEOUT_S * 1000,
                                            connect_timeout=TIMEOUT_S * 1000)
            tea_call(TeaClient(config), "DescribeRegions", "GET", {})
    except Exception as exc:
        return error_code(exc) or repr(exc)
    return None


def within(predicate: Callable[[], bool], bound: float) -> float:
    """Seconds until ``predicate`` held, polled from now; fails past ``bound``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > bound:
            raise AssertionError(f"not within {bound} s")
    return time.monotonic() - start


def test_a_key_created_with_the_cli_works_at_once_everywhere_with_both_sdks(fleet: Fleet, tmp_path: Path) -> None:
    ident, secret = fleet.new_key()
    forwarded = fleet.upstream.requests
    for served in fleet.served:
        for kind in ("core", "tea-v3"):
            assert sdk(kind, served.url, ident, secret) is None, (served.url, kind)
    assert fleet.upstream.requests == forwarded + 4  # two proxy-mode processes, two SDKs each
    # An id refused as unknown (and so cached as unknown) works as soon as the command adding it returns.
    for served in fleet.served:
        assert v1(served.url, "LTAIimportedLater", "later-secret") == Err.ACCESS_KEY_NOT_FOUND.code
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[accounts]]\nid = {ACCOUNT}\nname = "tenant"\n\n[[access_keys]]\nid = "LTAIimportedLater"\n'
                    f'secrets = ["later-secret"]\naccount = {ACCOUNT}\n')
    SECRETS_SEEN.append("later-secret")
    with httpx.Client() as client:
        fleet.cli("keys", "import", str(keys))
        latencies = [within(lambda url=s.url: v1(url, "LTAIimportedLater", "later-secret", client) is None, BOUND_S)
                     for s in fleet.served]
    print(f"imported id admitted after: {', '.join(f'{x * 1000:.1f} ms' for x in latencies)}")
    for served in fleet.served:
        for kind in ("core", "tea-v3"):
            assert sdk(kind, served.url, "LTAIimportedLater", "later-secret") is None


def _refusal_latencies(fleet: Fleet, ident: str, secret: str) -> list[float]:
    """``keys disable``; per process, seconds from the command's return to its first refusal."""
    go = threading.Event()
    returned: list[float] = []
    found: dict[int, float] = {}
    errors: list[BaseException] = []

    def poll(index: int, url: str) -> None:
        try:
            with httpx.Client() as client:  # one connection: a poll is one request, not a client's setup
                v1(url, ident, secret, client)
                go.wait(30)
                while (code := v1(url, ident, secret, client)) is None:
                    if time.monotonic() - returned[0] > 5:
                        raise AssertionError(f"{url} still admits the disabled key after 5 s")
                found[index] = time.monotonic() - returned[0]
            assert code == Err.ACCESS_KEY_DISABLED.code, code
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(i, s.url)) for i, s in enumerate(fleet.served)]
    for thread in threads:
        thread.start()
    fleet.cli("keys", "disable", ident)
    returned.append(time.monotonic())
    go.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return [found[i] for i in range(len(fleet.served))]


def test_keys_disable_is_refused_by_every_process_within_one_second(fleet: Fleet) -> None:
    ident, secret = fleet.new_key()
    samples: list[float] = []
    for _ in range(ROUNDS):
        for served in fleet.served:  # cached everywhere (read once, then served from the dict)
            within(lambda url=served.url: v1(url, ident, secret) is None, BOUND_S)
            assert v1(served.url, ident, secret) is None
        samples += _refusal_latencies(fleet, ident, secret)
        fleet.cli("keys", "enable", ident)
    ms = sorted(x * 1000 for x in samples)
    print(f"\nrefused after `keys disable` returned, {len(ms)} samples ({PROCESSES} processes x {ROUNDS} rounds): "
          f"min {ms[0]:.1f} ms, median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, "
          f"max {ms[-1]:.1f} ms")
    assert max(samples) < BOUND_S
    fleet.cli("keys", "disable", ident)  # and the official SDKs see the same refusal
    for served in fleet.served:
        within(lambda url=served.url: v1(url, ident, secret) is not None, BOUND_S)
        for kind in ("core", "tea-v3"):
            assert sdk(kind, served.url, ident, secret) == Err.ACCESS_KEY_DISABLED.code


def test_rotation_both_secrets_verify_during_the_overlap_only_the_new_one_after_finish(fleet: Fleet) -> None:
    ident, old = fleet.new_key()
    for served in fleet.served:
        assert sdk("core", served.url, ident, old) is None
    _, new = created(fleet.cli("keys", "rotate", ident))
    SECRETS_SEEN.append(new)
    for served in fleet.served:
        within(lambda url=served.url: v1(url, ident, new) is None, BOUND_S)
        for secret in (old, new):
            for kind in ("core", "tea-v3"):
                assert sdk(kind, served.url, ident, secret) is None, (served.url, kind, secret is new)
    fleet.cli("keys", "rotate", ident, "--finish")
    for served in fleet.served:
        within(lambda url=served.url: v1(url, ident, old) is not None, BOUND_S)
        for kind in ("core", "tea-v3"):
            assert sdk(kind, served.url, ident, old) in (Err.INCOMPLETE_SIGNATURE.code, "SignatureDoesNotMatch")
            assert sdk(kind, served.url, ident, new) is None


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed")
def test_redis_cli_scan_and_hgetall_show_no_secret_in_plain_text(fleet: Fleet) -> None:
    fleet.new_key()
    port = str(fleet.redis.port)
    names = subprocess.run([REDIS_CLI or "redis-cli", "-p", port, "--scan", "--pattern", f"{PREFIX}:ks:*"],
                           capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert any(":ks:k:" in name for name in names) and any(":ks:a:" in name for name in names)
    shown = []
    for name in names:
        shown.append(subprocess.run([REDIS_CLI or "redis-cli", "-p", port, "HGETALL", name], capture_output=True,
                                    text=True, timeout=30, check=True).stdout)
    everything = "\n".join(shown)
    assert "secrets" in everything and "v1." in everything  # the sealed values are there
    assert len(SECRETS_SEEN) >= 4
    for secret in SECRETS_SEEN:
        assert secret not in everything

