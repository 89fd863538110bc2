"""The keystore of one process: built once by `gateway.build`, shared by every chain built after it
(a policy reload rebuilds the chain, never this), started on its first miss, closed at shutdown."""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import SettingsError
from gateway.keystore.cache import KeyCache
from gateway.keystore.codec import Codec
from gateway.keystore.entries import Layout
from gateway.keystore.listen import listen, sweep
from gateway.keystore.source import Client, KeystoreReader, open_client
from gateway.settings import Settings

log = logging.getLogger("gateway.keystore")

#: The listener's replies may wait behind a busy event loop: unlike a request's read, a slow one costs
#: nothing, and a timeout would empty the cache.
_LISTENER_TIMEOUT = 5.0


def codec_from(settings: Settings) -> Codec:
    if settings.secret_key is None:
        raise SettingsError("GATEWAY_SECRET_KEY is required with GATEWAY_KEYSTORE=redis (`openssl rand -base64 32`)")
    return Codec(settings.secret_key, settings.secret_key_previous)


class Keystore:
    def __init__(self, client: Client, listener: Client, layout: Layout, codec: Codec, cache: KeyCache) -> None:
        self.client, self.listener, self.layout, self.codec, self.cache = client, listener, layout, codec, cache
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        cache.on_miss = self.start

    @classmethod
    def from_settings(cls, settings: Settings) -> Keystore:
        """No I/O: the clients connect on first use."""
        codec = codec_from(settings)
        client = open_client(settings.redis_url, settings.redis_timeout)
        listener = open_client(settings.redis_url, _LISTENER_TIMEOUT)
        layout = Layout(settings.redis_prefix)
        cache = KeyCache(KeystoreReader(client, layout, codec), ttl=settings.keystore_ttl,
                         grace=settings.keystore_grace)
        return cls(client, listener, layout, codec, cache)

    def start(self) -> None:
        """The listener and the sweeper, in the running loop (once; again in a new loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and all(not task.done() for task in self._tasks):
            return
        self._loop = loop
        self._tasks = (loop.create_task(listen(self.listener, self.layout.channel, self.cache)),
                       loop.create_task(sweep(self.cache)))

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, ()
        for task in tasks:
            task.cancel()
        if tasks and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*tasks, return_exceptions=True)
        for client in (self.client, self.listener):
            try:
                await client.aclose()
            except Exception:
                log.debug("closing a keystore client failed", exc_info=True)


def open_keystore(settings: Settings) -> Keystore | None:
    """The keystore ``GATEWAY_KEYSTORE`` names: None for "file" (keys only in the policy file)."""
    return Keystore.from_settings(settings) if settings.keystore == "redis" else None
