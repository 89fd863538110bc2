"""The Redis store: state shared by every gateway process, one script call per request.

Keys: `gateway.stores.keys`; the scripts and their replies: `gateway.stores.scripts`.

Every per-request key carries the caller's scope as its hash tag, so `admit.lua` may touch them all
in one slot. A quota key holds its window index rather than being named by it: the window comes from
the server clock, known only inside the script, and a script may touch only the keys it is handed.

Flow keys are system-wide, so in Redis Cluster they hash elsewhere (one tag per flow key, spreading
per-API limits over the nodes). There `admit` takes them first, one `admit.lua` call per slot
(concurrently), then runs the scope's nonce/quota/idempotency part as a second call; if any flow
take or the scope part refuses, the flow takes already made are refunded (GCRA refunds are exact).
Trade-offs, cluster only: an admitted request with flow takes costs two round trips (three when
refused after its flow was taken); a refused request briefly holds flow capacity until its refund;
if Redis fails between the calls, the refund may be lost, so flow errs towards refusing, never
admitting more. Nonces and quotas stay in the one atomic scope call, so a nonce is still accepted
once and a quota never over-admits. Flow is decided before the nonce there: a flow-limited replay
gets FLOW_LIMITED, not NONCE_USED. Single-node Redis does everything in one call.

On a single node the script calls of concurrent requests are auto-pipelined (`gateway.stores.pipeline`):
the calls made during one event-loop turn leave in one write and share one round trip, each still one
atomic script with its own reply or error. They go out on one connection of the pipeline's own, which
redis-py opens and a hiredis Protocol then reads (`gateway.stores.wire`); everything else (INFO, PING,
SCRIPT LOAD, cluster mode, the store without pipelining) is redis-py's. Cluster mode keeps one call
per script (see `RedisStore`).

Failures are never retried inside redis-py (``Retry(NoBackoff(), 0)``): a script whose reply was lost
may have committed, and running it again would burn the nonce or take the quota twice. A dead
connection is dropped by redis-py and the next call reconnects, so the store recovers by itself;
a pooled connection whose server has gone (a restart) is replaced by the pool when it is taken,
before it fails a call (see `gateway.stores.clients`). What such a lost admit committed stays
committed (its nonce, its quota: the caller was told ServiceUnavailable and retries signed anew),
except its ClientToken lease, which would answer every retry LastTokenProcessing: it is released
behind the admit on the same connection when pipelined, and retried in the background
(`PendingReleases`).

The nonce history marker (``h``, see `gateway.stores.base`) holds the server time from which the
scope's nonces are all remembered. Created when missing, from the server's start, and kept 7 days,
far longer than any nonce (about twice the Timestamp skew, default one hour): when it expires it is
created again from the same start, so its lifetime costs no false refusals, and it needs no refresh
(no write per request). ``run_id``, the first server life this store talked to, tells the script
whether this gateway used Redis before the server (re)started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from gateway.errors import StoreUnavailable
from gateway.stores.base import (
    NONCE_HISTORY_GRACE_MS,
    NONCE_HISTORY_SETTLE_MS,
    IdempotencyClaim,
    Outcome,
    StoredAnswer,
    Take,
    Ticket,
    Verdict,
)
from gateway.stores.clients import cluster_client, pooled_client
from gateway.stores.keys import Keys
from gateway.stores.pipeline import Arg, AutoPipeline, Undo
from gateway.stores.releases import PendingReleases
from gateway.stores.scripts import BACKEND_ERRORS, Scripts, admitted, read_verdict, unavailable, wrapped

log = logging.getLogger("gateway.stores")

_HISTORY_TTL_MS = 7 * 86_400_000

def admit_call(
    names: Keys, ticket: Ticket, flows: Sequence[Take], quotas: Sequence[Take], *, scoped: bool, run_id: str
) -> tuple[list[str], list[Arg], list[str]]:
    """admit.lua's KEYS and ARGV for ``ticket`` (its header says what each is), and the ClientToken's
    key pair (empty without a claim): what a release of its lease touches."""
    tag = names.tag(ticket.scope)
    nonce = ticket.nonce if scoped else None
    claim = ticket.idempotency if scoped else None
    keys = [f"{tag}:n:{nonce}", f"{tag}:h"] if nonce is not None else []
    args: list[Arg] = [int(nonce is not None), ticket.nonce_ttl_ms, ticket.timestamp_ms, run_id,
                       NONCE_HISTORY_GRACE_MS, NONCE_HISTORY_SETTLE_MS, _HISTORY_TTL_MS,
                       len(flows), len(quotas), int(claim is not None)]
    for take in flows:
        keys.append(names.flow(take.key))
        args += (take.rate.limit, take.rate.period_ms)
    for take in quotas:
        keys.append(f"{tag}:q:{take.key}")
        args += (take.rate.limit, take.rate.period_ms)
    token_keys: list[str] = []
    if claim is not None:
        token_keys = [f"{tag}:i:{claim.token}", f"{tag}:c:{claim.lease}"]
        keys += token_keys
        args += (claim.owner, claim.fingerprint, claim.lease_ms, claim.lease)
    return keys, args, token_keys


class RedisStore:
    """`Store` over a ``redis.asyncio`` client (a pooled `Redis` or a `RedisCluster`), which it owns
    and closes in `aclose`. Build one with `from_url` / `from_cluster_url`, or inject a client made
    with ``decode_responses=False`` (stored answers are bytes) and no retries (see above).

    ``pipelined`` (single node only; default on): the script calls of concurrent requests share one
    pipeline per event-loop turn (`gateway.stores.pipeline`); off, each call is sent on its own."""

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "gw", pipelined: bool = True) -> None:
        self._keys = Keys(prefix)
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        # Cluster mode stays unbatched: a batch would have to be split by node and each part follow
        # MOVED/ASK redirections call by call, which redis-py's cluster pipeline does with retries
        # that could run a committed script twice. Its load is spread over the nodes anyway.
        self._pipeline = AutoPipeline(client) if pipelined and not isinstance(client, RedisCluster) else None
        self._scripts = Scripts(client)
        self._run_id = ""  # INFO's run_id of the first server life this store talked to
        self._pending = PendingReleases(self._release_now)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "gw", timeout: float = 0.25, pipelined: bool = True
    ) -> RedisStore:
        """``redis://``, ``rediss://`` or ``unix://`` URL, as redis-py spells them."""
        return cls(pooled_client(url, timeout), prefix=prefix, pipelined=pipelined)

    @classmethod
    def from_cluster_url(cls, url: str, *, prefix: str = "gw", timeout: float = 0.25) -> RedisStore:
        """``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` for TLS): the nodes
        to discover the cluster from; any query options are redis-py's."""
        return cls(cluster_client(url, timeout), prefix=prefix)

    async def admit(self, ticket: Ticket) -> Verdict:
        flows: list[Take] = []
        quotas: list[Take] = []
        for take in ticket.takes:
            (flows if take.kind == "flow" else quotas).append(take)
        if self._cluster and flows:
            return await self._admit_in_cluster(ticket, flows, quotas)
        return await self._call_admit(ticket, flows, quotas, scoped=True)

    async def _admit_in_cluster(self, ticket: Ticket, flows: list[Take], quotas: list[Take]) -> Verdict:
        """Flow takes first (one call per slot, concurrently), then the scope's part; refunds on refusal."""
        groups = list(self._by_slot(flows).values())
        results = await asyncio.gather(
            *(self._call_admit(ticket, group, [], scoped=False) for group in groups),
            return_exceptions=True,
        )
        taken = [take for group, r in zip(groups, results, strict=True) if admitted(r) for take in group]
        failed = [r for r in results if not admitted(r)]
        if failed:
            await self._refund_flows(taken)
            for result in failed:
                if isinstance(result, BaseException):
                    raise result
            return Verdict(
                Outcome.FLOW_LIMITED, max(r.retry_after_ms for r in failed if isinstance(r, Verdict))
            )
        # If this call fails, its flow takes stay taken: the call may have committed, and an error
        # should make flow control stricter, never looser.
        verdict = await self._call_admit(ticket, [], quotas, scoped=True)
        if verdict.outcome is not Outcome.ADMITTED:
            await self._refund_flows(flows)
        return verdict

    def _by_slot(self, flows: Sequence[Take]) -> dict[int, list[Take]]:
        groups: dict[int, list[Take]] = {}
        for take in flows:
            groups.setdefault(key_slot(self._keys.flow(take.key).encode()), []).append(take)
        return groups

    async def _call_admit(
        self, ticket: Ticket, flows: Sequence[Take], quotas: Sequence[Take], *, scoped: bool
    ) -> Verdict:
        keys, args, token_keys = admit_call(self._keys, ticket, flows, quotas, scoped=scoped, run_id=self._run_id)
        claim = ticket.idempotency if scoped else None
        undo: Undo | None = None
        if claim is not None:
            undo = (self._scripts.release, token_keys, [claim.lease, claim.lease_ms])
        try:
            reply = await self._run(self._scripts.admit, "admit", keys, args, undo=undo)
        except StoreUnavailable:
            if claim is not None:  # it may have taken the lease, or may yet, in a stalled server
                self._pending.add(ticket.scope, claim)
            raise
        self._run_id = self._run_id or bytes(reply[3]).decode()
        return read_verdict(reply)

    async def _refund_flows(self, flows: Sequence[Take]) -> None:
        for group in self._by_slot(flows).values():
            args = [n for take in group for n in (take.rate.limit, take.rate.period_ms)]
            try:
                await self._run(self._scripts.refund, "flow refund", [self._keys.flow(t.key) for t in group], args)
            except StoreUnavailable as exc:
                # Lost refunds only make flow control stricter for one emission interval.
                log.warning("flow refund lost: %s", exc)

    async def _run(
        self, script: AsyncScript, operation: str, keys: list[str], args: Sequence[Arg], undo: Undo | None = None
    ) -> Any:
        try:  # not `wrapped`: a context manager costs a few µs per request
            if self._pipeline is not None:
                return await self._pipeline.call(script, keys, args, undo=undo)
            if isinstance(self._client, RedisCluster):
                # Before it knows the slot map, redis-py sends a script to a random node and, on
                # the MOVED reply, rebuilds its node table under concurrent callers, closing
                # connections they are reading from. Learning the map first is a no-op once known.
                await self._client.initialize()
            return await script(keys=keys, args=args)
        except BACKEND_ERRORS as exc:
            raise unavailable(operation, exc) from exc

    async def store_answer(
        self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int
    ) -> None:
        args: list[Arg] = [claim.lease, ttl_ms, answer.status, answer.content_type, answer.body]
        await self._run(self._scripts.store_answer, "store_answer", [self._keys.token(scope, claim)], args)

    async def renew(self, scope: str, claim: IdempotencyClaim) -> bool:
        key = self._keys.token(scope, claim)
        reply = await self._run(self._scripts.renew, "renew", [key], [claim.lease, claim.lease_ms])
        return int(reply) == 1

    async def release(self, scope: str, claim: IdempotencyClaim) -> None:
        try:
            await self._release_now(scope, claim)
        except StoreUnavailable:
            self._pending.add(scope, claim)
            raise

    async def _release_now(self, scope: str, claim: IdempotencyClaim) -> None:
        args: list[Arg] = [claim.lease, claim.lease_ms]
        await self._run(self._scripts.release, "release", self._keys.token_pair(scope, claim), args)

    async def ping(self) -> None:
        with wrapped("ping"):
            if self._run_id:
                await self._client.ping()
            else:  # a gateway's readiness probe: its first contact, before any request
                self._run_id = str((await self._client.info("server"))["run_id"])

    async def aclose(self) -> None:
        await self._pending.aclose()
        if self._pipeline is not None:
            await self._pipeline.aclose()
        with wrapped("close"):
            await self._client.aclose()
