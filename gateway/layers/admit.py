from __future__ import annotations

import logging
from dataclasses import replace
from types import MappingProxyType

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.stores import Outcome, Store, StoreUnavailable, Ticket, Verdict
from gateway.stores.base import new_lease

log = logging.getLogger("gateway.store")

#: Store outcome -> the row that refuses the request.
REFUSALS = MappingProxyType({
    Outcome.NONCE_USED: Err.SIGNATURE_NONCE_USED,
    Outcome.FLOW_LIMITED: Err.FLOW_CONTROLLED,
    Outcome.QUOTA_EXHAUSTED: Err.QUOTA_EXHAUSTED,
    Outcome.TOKEN_PROCESSING: Err.LAST_TOKEN_PROCESSING,
    Outcome.TOKEN_PARAMS_MISMATCH: Err.IDEMPOTENT_PARAMETER_MISMATCH,
    Outcome.TOKEN_CALLER_MISMATCH: Err.IDEMPOTENCE_CALLER_MISMATCH,
    # Signed before the store's nonce history began: the nonce may have been used in the store's
    # previous life. The replay this stops is exactly a used nonce; IllegalTimestamp would tell a
    # client whose Timestamp is within the skew that its clock is wrong.
    Outcome.NONCE_UNPROVEN: Err.SIGNATURE_NONCE_USED,
    # The same, seconds after the history began: most likely a request signed just before Redis came
    # back, which a retry (SDKs retry a 5xx, signing anew) gets through.
    Outcome.HISTORY_STARTING: Err.SERVICE_UNAVAILABLE,
    # Never seen by its own caller (who was answered ServiceUnavailable before this admit ran).
    Outcome.TOKEN_CANCELLED: Err.SERVICE_UNAVAILABLE,
})
THROTTLED = frozenset({Outcome.FLOW_LIMITED, Outcome.QUOTA_EXHAUSTED})


class AdmitLayer:
    """The one store round trip: nonce, flow control, quota and ClientToken, decided atomically.

    It runs after every stateless check, so a request refused for its owner or its rights burns
    no nonce and consumes no quota; within the round trip the store checks everything before it
    commits anything (nonce, then flow, then quota, then the token).
    """

    def __init__(self, store: Store, *, fail_open: tuple[str, ...] = ()) -> None:
        self.store = store
        self.fail_open = frozenset(fail_open)

    async def check(self, ctx: RequestContext) -> None:
        key = ctx.key
        if key is None:
            return
        ticket = Ticket(
            scope=str(key.account.id),
            nonce=f"{key.id}:{ctx.nonce}",
            nonce_ttl_ms=max(ctx.nonce_ttl_ms, 1),
            takes=ctx.takes,
            idempotency=ctx.idempotency,
            timestamp_ms=ctx.timestamp_ms,
        )
        verdict = await self._admit(ticket)
        if isinstance(verdict, StoreUnavailable):
            ctx.store_error = True
            verdict = await self._fail_open(ctx, ticket, verdict)
        outcome = verdict.outcome
        if outcome is Outcome.ADMITTED:
            ctx.quota_remaining = verdict.remaining
            return
        if outcome is Outcome.REPLAY:
            ctx.replay = verdict.answer
            ctx.idempotency = None  # nothing more to store: the answer is the first call's
            return
        headers = {"x-acs-retry-after": str(max(verdict.retry_after_ms, 1))} if outcome in THROTTLED else None
        ctx.idempotency = None  # refused before the token was claimed: nothing to store or release
        raise GatewayError(REFUSALS[outcome], headers=headers)

    async def _admit(self, ticket: Ticket) -> Verdict | StoreUnavailable:
        """The store's verdict, or the failure to get one: handled by the caller outside any except
        block, because compiled with mypyc an await inside one can let the exception the Task threw
        in resurface afterwards (gateway/middleware.py says more)."""
        try:
            return await self.store.admit(ticket)
        except StoreUnavailable as exc:
            return exc

    async def _fail_open(self, ctx: RequestContext, ticket: Ticket, exc: StoreUnavailable) -> Verdict:
        """Admit without the flow/quota takes the operator chose to fail open on, if only they failed.

        The nonce (and a ClientToken) are never skipped: they are what stops a replay, so a store
        that cannot check them refuses the request. Failing open therefore helps only when the
        takes alone were out of reach — in Redis Cluster, flow keys live on other nodes than the
        caller's — and a store that is down altogether still answers ServiceUnavailable.
        """
        kinds = {take.kind for take in ticket.takes}
        if not kinds or not kinds <= self.fail_open:
            log.error("store unavailable, refusing %s: %s", ctx.request_id, exc)
            raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
        claim = ticket.idempotency
        if claim is not None:
            # A claim of its own: the store is releasing the failed attempt's lease in the background,
            # and would cancel this one with it.
            claim = ctx.idempotency = replace(claim, lease=new_lease())
        try:
            verdict = await self.store.admit(replace(ticket, takes=(), idempotency=claim))
        except StoreUnavailable as again:
            log.error("store unavailable, refusing %s: %s", ctx.request_id, again)
            raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
        if verdict.outcome is not Outcome.ADMITTED:
            return verdict  # refused on its own account: nothing was let through unchecked
        from gateway.metrics import count_fail_open  # metrics is optional; only this path needs it

        for kind in sorted(kinds):
            count_fail_open(kind)
        log.warning("store unavailable for %s of %s: failing open (%s)", "/".join(sorted(kinds)),
                    ctx.request_id, exc)
        return verdict
