"""The change listener: one pub/sub subscription per process, and the cache's sweeper.

Subscribed, every message drops what it names (`KeyCache.invalidate`). The connection is pinged each
second and given up after `DEAD_AFTER` seconds without an answer, so a silent network fails as a closed
one does; then the cache is told (`disconnected`: entries outlive their TTL up to the grace) and the
subscription is retried every `RETRY` seconds. Once subscribed again the cache is emptied
(`connected`): messages sent meanwhile were lost.

Redis Cluster: classic PUBLISH reaches subscribers on every node, so one subscription (redis-py's
cluster pub/sub, on one node) hears every change; sharded channels are not used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.keystore.cache import KeyCache

log = logging.getLogger("gateway.keystore")

RETRY = 0.2
PING_EVERY = 1.0
DEAD_AFTER = 3.0
SWEEP_EVERY = 0.25
_POLL = 0.1


async def listen(client: Any, channel: str, cache: KeyCache) -> None:
    """Runs until cancelled."""
    failures = 0
    while True:
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(DEAD_AFTER):  # a server that never confirms counts as down
                await pubsub.subscribe(channel)
                while (message := await pubsub.get_message(timeout=_POLL)) is None or message["type"] != "subscribe":
                    pass
            cache.connected()
            if failures:
                log.warning("keystore change listener subscribed again after %d failed attempts; cache emptied",
                            failures)
            failures = 0
            await _receive(pubsub, cache)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the subscription: retried, never fatal
            if cache.listening or failures == 0:
                log.warning("keystore change listener lost its subscription (%s: %s); cached entries "
                            "are kept up to GATEWAY_KEYSTORE_TTL + GATEWAY_KEYSTORE_GRACE", type(exc).__name__, exc)
            cache.disconnected()
            failures += 1
        finally:
            cache.disconnected()
            await _close(pubsub)
        await asyncio.sleep(RETRY)


async def _receive(pubsub: Any, cache: KeyCache) -> None:
    answered = pinged = time.monotonic()
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL)
        now = time.monotonic()
        if message is not None:
            answered = now
            if message["type"] == "message":
                data = message["data"]
                cache.invalidate(data.decode() if isinstance(data, bytes) else str(data))
        if now - pinged >= PING_EVERY:
            pinged = now
            await pubsub.ping()
        if now - answered > DEAD_AFTER:
            raise TimeoutError(f"no answer from Redis for {DEAD_AFTER:g} s")


async def _close(pubsub: Any) -> None:
    try:
        await asyncio.shield(pubsub.aclose())
    except Exception:  # closing a broken connection may fail too; it is gone either way
        log.debug("closing the keystore subscription failed", exc_info=True)


async def sweep(cache: KeyCache) -> None:
    while True:
        cache.sweep()
        await asyncio.sleep(SWEEP_EVERY)
