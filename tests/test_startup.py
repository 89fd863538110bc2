"""What the gateway does once at start-up (the lifespan), beyond opening its store."""

from __future__ import annotations

import gc

import pytest
from starlette.applications import Starlette
from starlette.types import Message

from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy
from gateway.stores import MemoryStore


@pytest.mark.parametrize("enabled", [True, False])
async def test_start_up_freezes_the_policy_unless_disabled(policy: Policy, enabled: bool) -> None:
    gc.unfreeze()
    app = GatewayMiddleware(Starlette(), settings=Settings(gc_freeze=enabled), policy=policy, store=MemoryStore())
    inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []
    policy_collectable: list[bool] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            # gc.get_objects() lists what full passes walk; frozen objects are no longer among them.
            policy_collectable.append(any(o is policy for o in gc.get_objects()))

    assert gc.is_tracked(policy)
    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert policy_collectable == [not enabled]
    assert (gc.get_freeze_count() > 0) is enabled
