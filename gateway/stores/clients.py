"""The redis-py clients the Redis store runs on, built from its URLs.

Both fail fast and recover by themselves: one reply waits at most the store's timeout, nothing is
retried inside redis-py (``Retry(NoBackoff(), 0)``: a script whose reply was lost may have committed,
and running it again would burn the nonce or take the quota twice), and a dead connection is dropped
and replaced on the next call.
"""

from __future__ import annotations

import re
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

# Redis runs one script at a time: more connections than this add no throughput to one node.
_MAX_CONNECTIONS = 64
# Waiting for a pooled connection, and connecting, are timed across the event loop, which a burst of
# requests keeps busy (HTTP parsing, signatures) for longer than a reply takes: with `timeout` alone a
# healthy Redis looks down under load (measured: every connect of a cold pool failing at 0.25 s in a
# 200-request burst). Replies keep `timeout`; a refused connection still fails at once.
_CONNECT_TIMEOUT_FLOOR = 1.0
_POOL_WAIT_FLOOR = 5.0
_MAX_CLUSTER_CONNECTIONS = 1000
# "redis+cluster://[user:pass@]host:port[,host:port...][/db][?options]"
_CLUSTER_URL = re.compile(
    r"^(?P<scheme>rediss?)\+cluster://(?P<auth>[^@/]*@)?(?P<hosts>[^/?#]+)(?P<rest>.*)$", re.IGNORECASE
)


def _client_options(timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": max(timeout, _CONNECT_TIMEOUT_FLOOR),
        "retry": Retry(NoBackoff(), 0),
        # redis-py 8 speaks RESP3 and then enables maintenance notifications ("auto"), with which
        # its pool skips the check it otherwise makes on every connection it hands out (has the
        # server closed it?): after a Redis restart each pooled connection then failed one call
        # (measured: 256 of 800 in a burst once Redis was back). Off, the pool reconnects those
        # first. The notifications serve Redis Enterprise's planned failovers, and stretch
        # timeouts to 10 s meanwhile, which would defeat this store's prompt ServiceUnavailable.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }


def pooled_client(url: str, timeout: float) -> Redis:
    """``redis://``, ``rediss://`` or ``unix://``: one node, over a bounded pool that waits for a
    free connection (in a burst, requests queue for scripts that each take microseconds rather than
    opening a connection each). A URL's ``?max_connections=`` overrides the bound."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=_MAX_CONNECTIONS,
        timeout=max(timeout, _POOL_WAIT_FLOOR),
        **_client_options(timeout),
    )
    return Redis.from_pool(pool)


def cluster_client(url: str, timeout: float) -> RedisCluster:
    """``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` for TLS): the nodes to
    discover the cluster from; any query options are redis-py's."""
    match = _CLUSTER_URL.match(url)
    if match is None:
        raise ValueError("cluster store URL is not of the form redis+cluster://host:port[,host:port]")
    first, *others = match["hosts"].split(",")
    seeds = [ClusterNode(h.strip("[]"), int(p)) for h, _, p in (seed.rpartition(":") for seed in others)]
    plain = f"{match['scheme'].lower()}://{match['auth'] or ''}{first}{match['rest']}"
    # The cluster client has no waiting pool (it raises past max_connections per node), hence a
    # generous bound.
    return RedisCluster.from_url(
        plain,
        startup_nodes=seeds or None,
        max_connections=_MAX_CLUSTER_CONNECTIONS,
        **_client_options(timeout),
    )
