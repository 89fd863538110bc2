from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from gateway import GatewayMiddleware, Settings, load_policy
from gateway import respond as _compiled  # one of the modules setup.py compiles
from gateway.policy import Policy
from gateway.stores import open_store
from tests.support.apps import EchoService
from tests.support.serve import ROOT, serve_env
from tests.support.servers import free_port, serve_in_thread

pytest_plugins = ["tests.support.redis"]

DATA = Path(__file__).parent / "data"


# Hypothesis' per-example deadline (200 ms) measures the machine, not the code: a first example that
# imports an SDK, on a loaded 2-core runner, took 409 ms. Speed is measured by bench/, never by a test.
hypothesis_settings.register_profile("gateway", deadline=None)
hypothesis_settings.load_profile("gateway")


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """A gateway started in this process froze its objects (GATEWAY_GC_FREEZE); the next test starts clean."""
    yield
    gc.unfreeze()


def pytest_sessionstart(session: pytest.Session) -> None:
    """With GATEWAY_EXPECT_COMPILED=1 (`make test-compiled`), stop unless the mypyc-compiled gateway is
    what runs: in this process, and in a child started as the tests start `gateway serve`."""
    if os.environ.get("GATEWAY_EXPECT_COMPILED") != "1":
        return
    here = _compiled.__file__ or ""
    child = subprocess.run([sys.executable, "-c", "import gateway.respond; print(gateway.respond.__file__)"],
                           cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=30)
    there = child.stdout.strip() or child.stderr
    if not (here.endswith(".so") and there.endswith(".so")):
        pytest.exit(f"GATEWAY_EXPECT_COMPILED=1, but gateway.respond is {here} here and {there} in a "
                    "child process: not the compiled build (make test-compiled)", returncode=3)
    print(f"compiled gateway: {here} (children: {there})")


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(DATA / "policy.toml")


class LiveGateway:
    def __init__(self, url: str, service: EchoService) -> None:
        self.url, self.service = url, service


def _live(policy: Policy, redis_url: str | None, **settings: object) -> Iterator[LiveGateway]:
    service = EchoService()
    config = Settings(config=str(DATA / "policy.toml"), redis_url=redis_url, host_id="gateway.test", **settings)  # type: ignore[arg-type]
    store = open_store(redis_url, prefix=f"t{free_port()}", timeout=0.25)
    app = GatewayMiddleware(service, settings=config, policy=policy, store=store)
    with serve_in_thread(app) as url:
        yield LiveGateway(url, service)


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest, policy: Policy) -> Iterator[LiveGateway]:
    """The gateway in front of the echo service, served by uvicorn: memory store, then Redis."""
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    yield from _live(policy, redis_url)


@pytest.fixture(scope="module")
def memory_gateway(policy: Policy) -> Iterator[LiveGateway]:
    yield from _live(policy, None)


@pytest.fixture(scope="module")
def dead_store_gateway(policy: Policy) -> Iterator[LiveGateway]:
    """Redis configured but nothing listening: every check that needs it must refuse."""
    yield from _live(policy, f"redis://127.0.0.1:{free_port()}/0")
