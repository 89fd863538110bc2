"""Reading one access key, with its account and sub-user, from the Redis keystore.

Two round trips: the key's hash names its account and sub-user, whose hashes come in one pipeline
(in Redis Cluster they may live on other nodes; redis-py splits the pipeline per node). Every
backend failure becomes `StoreUnavailable`, and so does an entry that cannot be built (a secret
sealed with a key this process lacks, a damaged field): the gateway then answers ServiceUnavailable,
never admits unchecked, and logs what is wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gateway.errors import PolicyError, SettingsError, StoreUnavailable
from gateway.keystore import entries
from gateway.keystore.codec import Codec, SealError
from gateway.keystore.entries import Layout
from gateway.policy.model import AccessKey, SubUser
from gateway.stores.clients import cluster_client, pooled_client
from gateway.stores.scripts import wrapped

log = logging.getLogger("gateway.keystore")

Client = Redis | RedisCluster


def open_client(url: str | None, timeout: float) -> Client:
    """A client on ``GATEWAY_REDIS_URL``, built as the store builds its own (cluster, TLS, unix://)."""
    scheme = (url or "").partition("://")[0].lower()
    if not url or scheme == "memory":
        raise SettingsError("GATEWAY_KEYSTORE=redis needs GATEWAY_REDIS_URL (a redis://, rediss://, unix:// "
                            "or redis+cluster:// URL)")
    return cluster_client(url, timeout) if scheme.endswith("+cluster") else pooled_client(url, timeout)


class KeystoreReader:
    """`read` one access key as a model object (None: no such key)."""

    def __init__(self, client: Client, layout: Layout, codec: Codec) -> None:
        self.client, self.layout, self.codec = client, layout, codec

    async def read(self, key_id: str) -> AccessKey | None:
        with wrapped("keystore read"):
            raw = await self.client.hgetall(self.layout.key(key_id))
            if not raw:
                return None
            fields = entries.decode(raw)
            owner, user = fields.get("account"), fields.get("user")
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.layout.account(owner if isinstance(owner, int) else 0))
            if isinstance(user, str):
                pipe.hgetall(self.layout.user(owner if isinstance(owner, int) else 0, user))
            replies: list[Any] = await pipe.execute()
        try:
            return self._build(key_id, fields, replies)
        except (PolicyError, SealError) as exc:
            log.error("keystore entry of access key %s cannot be used: %s", key_id, exc)
            raise StoreUnavailable(f"keystore entry {key_id}: {exc}") from None

    def _build(self, key_id: str, fields: dict[str, Any], replies: list[Any]) -> AccessKey | None:
        if not replies[0]:
            # The account is gone (deleted after the key was made): the key names nobody.
            log.warning("access key %s names account %r, which is not in the keystore", key_id, fields.get("account"))
            return None
        owner = entries.account(entries.decode(replies[0]))
        user: SubUser | None = None
        if len(replies) > 1:
            if not replies[1]:
                log.warning("access key %s names sub-user %r, which is not in the keystore", key_id, fields["user"])
                return None
            user = entries.sub_user(entries.decode(replies[1]), owner)
        sealed = fields.get("secrets")
        if not isinstance(sealed, list) or not all(isinstance(s, str) for s in sealed):
            raise PolicyError("secrets must be a list of sealed secrets")
        fields = {**fields, "id": key_id, "secrets": [self.codec.open(s, key_id) for s in sealed]}
        return entries.access_key(fields, owner, user)
