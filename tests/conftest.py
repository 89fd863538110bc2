from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import GatewayMiddleware, Settings, load_policy
from gateway.policy import Policy
from gateway.stores import open_store
from tests.support.apps import EchoService
from tests.support.servers import free_port, serve_in_thread

pytest_plugins = ["tests.support.redis"]

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """A gateway started in this process froze its objects (GATEWAY_GC_FREEZE); the next test starts clean."""
    yield
    gc.unfreeze()


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
