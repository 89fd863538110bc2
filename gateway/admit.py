"""Admit: everything one call writes to the store, decided in one round trip, and its ClientToken's life.

`Admission` builds the store `Ticket` from the checked `Call` and the policy, and calls `Store.admit`
once. The ticket holds:

* the nonce ``AccessKeyId:SignatureNonce``, remembered until the Timestamp leaves the skew window
  (a replay is refused by the Timestamp check after that), plus a margin for gateway clocks;
* the takes: global and per-API flow control (the service's protection, whoever calls), the key's
  or account's quota (the policy's ``quota_scope``), overall and for the API when it declares one;
* for an API declared idempotent and a call with a ClientToken, the token's claim: who may use it
  (`token_owner`) and what makes a retry the same call (`fingerprint`).

The store checks all of them before it commits any (CONTRACT §4). The `Admitted` it returns owns the
token from there (`gateway.admitted`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from types import MappingProxyType

from gateway.admitted import NO_TOKEN, Admitted
from gateway.anonymous import source_scope
from gateway.call import Call, Exchange
from gateway.catalog import Err
from gateway.checks.caller import parse_timestamp
from gateway.errors import GatewayError, StoreUnavailable
from gateway.memo import PerObjects
from gateway.policy import AccessKey, ApiSpec, Policy
from gateway.stores import IdempotencyClaim, Outcome, Store, Take, Ticket, Verdict
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
#: Seconds a nonce outlives its Timestamp's window: gateways whose clocks disagree by a few seconds.
CLOCK_MARGIN = 5
# These change on every retry by design, so they cannot be part of what makes two calls "the same".
VOLATILE = frozenset({"Signature", "SignatureNonce", "Timestamp"})
MAX_TOKEN_LENGTH = 64
#: The caller an anonymous call's quota and ClientToken are kept for, under its source's scope.
ANONYMOUS_CALLER = "anonymous"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# Built once: json.dumps given any option builds a new encoder on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _encoded(*parts: object) -> str:
    """One unambiguous text for a tuple of strings and lists of pairs: JSON quotes every string, so
    no value (a NUL, a '=', a '|', a quote) can pass for a separator and two inputs never share it."""
    return _ENCODE(parts)


def fingerprint(method: str, answer_format: str, params: dict[str, str]) -> str:
    """What makes two calls with one ClientToken the same call: the method, the answer format the
    gateway decided (V1 names it in Format, V3 in Accept; a replay is the first call's bytes, so a
    retry asking another format is another call), and every parameter but the volatile ones."""
    fields = sorted((n, v) for n, v in params.items() if n not in VOLATILE)
    return _digest(_encoded(method, answer_format, fields))


def token_owner(key_id: str, user: str | None, version: str, action: str) -> str:
    """Who may use a ClientToken again: the key (or sub-user) and the API it was first used for."""
    return _digest(_encoded(key_id, user, version, action))


class Admission:
    """The one store round trip: nonce, flow control, quota and ClientToken, decided atomically.

    It runs after every check, so a request refused for its owner or its rights burns no nonce and
    consumes no quota; within the round trip the store checks everything before it commits anything.
    """

    def __init__(self, store: Store, policy: Policy, *, skew: int, lease_seconds: int, answer_ttl: int,
                 fail_open: tuple[str, ...] = ()) -> None:
        self.store, self.skew, self.fail_open = store, skew, frozenset(fail_open)
        self.lease_ms, self.answer_ttl_ms = lease_seconds * 1000, answer_ttl * 1000
        self.global_flow = Take("flow", "flow:*", policy.flow) if policy.flow else None
        self.per_account = policy.quota_scope == "account"
        self._takes_of: PerObjects[tuple[Take, ...]] = PerObjects()  # fixed by the policy: built once

    async def __call__(self, call: Call, exchange: Exchange, source: str | None = None) -> Admitted:
        """Admit ``call``; ``source`` is the client address, read for an anonymous call only."""
        key, api = call.key, call.api
        if key is None or api is None:  # the checks refuse such a call first, unless it is anonymous
            if api is None or not call.anonymous:
                raise GatewayError(Err.INTERNAL_ERROR)
            ticket = self._anonymous(call, api, source)
        else:
            when = parse_timestamp(call.timestamp or "") or 0.0
            takes = self._takes_of.get(api, key)
            ticket = Ticket(
                scope=str(key.account.id),
                nonce=f"{key.id}:{call.nonce}",
                nonce_ttl_ms=max(int((when + self.skew - time.time() + CLOCK_MARGIN) * 1000), 1),
                takes=takes if takes is not None else self._takes_of.put(self._takes(api, key), api, key),
                # Most APIs are not idempotent: no call, no ClientToken lookup for them.
                idempotency=self._claim(call, api, key) if api.idempotent else None,
                timestamp_ms=int(when * 1000),
            )
        verdict = await self._admit(ticket)
        if isinstance(verdict, StoreUnavailable):
            exchange.store_error = True
            verdict, ticket = await self._fail_open(call, ticket, verdict)
        outcome = verdict.outcome
        if outcome is Outcome.ADMITTED:
            if ticket.idempotency is None:
                return NO_TOKEN
            return Admitted(self.store, ticket.scope, ticket.idempotency, call.request_id, self.answer_ttl_ms)
        if outcome is Outcome.REPLAY:
            return Admitted(replay=verdict.answer)  # nothing more to store: the answer is the first call's
        headers = {"x-acs-retry-after": str(max(verdict.retry_after_ms, 1))} if outcome in THROTTLED else None
        raise GatewayError(REFUSALS[outcome], headers=headers)

    def _takes(self, api: ApiSpec, key: AccessKey | None) -> tuple[Take, ...]:
        """Flow control whoever calls; the key's or account's quota, or for an anonymous call (no
        ``key``) the API's quota under the ticket's scope, the source address."""
        takes = []
        if self.global_flow is not None:
            takes.append(self.global_flow)
        if api.flow is not None:
            takes.append(Take("flow", f"flow:{api.version}:{api.action}", api.flow))
        # A temporary key's quota is the quota of the key that assumed the role, counted as that key's:
        # minting new sessions must not buy more calls.
        owner = (ANONYMOUS_CALLER if key is None else "account" if self.per_account
                 else key.id if key.session is None else key.session.assumed_by)
        if key is not None and key.quota is not None:
            takes.append(Take("quota", f"quota:{owner}", key.quota))
        if api.quota is not None:
            takes.append(Take("quota", f"quota:{owner}:{api.version}:{api.action}", api.quota))
        return tuple(takes)

    def _anonymous(self, call: Call, api: ApiSpec, source: str | None) -> Ticket:
        """No nonce (none is signed); flow control as for everyone; the API's quota, and a ClientToken,
        per source address (`gateway.anonymous.source_scope`, the ticket's scope)."""
        takes = self._takes_of.get(api)
        if takes is None:
            takes = self._takes_of.put(self._takes(api, None), api)
        return Ticket(scope=source_scope(source), nonce=None, nonce_ttl_ms=1, takes=takes,
                      idempotency=self._claim(call, api, None), timestamp_ms=0)

    def _claim(self, call: Call, api: ApiSpec, key: AccessKey | None) -> IdempotencyClaim | None:
        """For APIs declared idempotent, a ClientToken claims its answer (CONTRACT §4).

        Tokens are scoped to the account: another key of the same account reusing a token is told
        InvalidIdempotenceParameter.Mismatch, while another account never sees that the token exists.
        An anonymous call's (no ``key``) are scoped to its source address, the ticket's scope.
        """
        token = call.params.get("ClientToken")
        if not api.idempotent or not token:
            return None
        return IdempotencyClaim(
            token=_digest(token) if len(token) > MAX_TOKEN_LENGTH else token,
            owner=token_owner(ANONYMOUS_CALLER, None, api.version, api.action) if key is None else
            token_owner(key.id, key.user.name if key.user else None, api.version, api.action),
            fingerprint=fingerprint(call.method, call.format, dict(call.params)),
            lease_ms=self.lease_ms,
        )

    async def _admit(self, ticket: Ticket) -> Verdict | StoreUnavailable:
        """The store's verdict, or the failure to get one: handled by the caller outside any except
        block, because compiled with mypyc an await inside one can let the exception the Task threw
        in resurface afterwards (gateway/middleware.py says more)."""
        try:
            return await self.store.admit(ticket)
        except StoreUnavailable as exc:
            return exc

    async def _fail_open(self, call: Call, ticket: Ticket, exc: StoreUnavailable) -> tuple[Verdict, Ticket]:
        """Admit without the flow/quota takes the operator chose to fail open on, if only they failed;
        the verdict and the ticket it was given.

        The nonce (and a ClientToken) are never skipped: they are what stops a replay, so a store
        that cannot check them refuses the request. Failing open therefore helps only when the
        takes alone were out of reach — in Redis Cluster, flow keys live on other nodes than the
        caller's — and a store that is down altogether still answers ServiceUnavailable.
        """
        kinds = {take.kind for take in ticket.takes}
        if not kinds or not kinds <= self.fail_open:
            log.error("store unavailable, refusing %s: %s", call.request_id, exc)
            raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
        claim = ticket.idempotency
        if claim is not None:
            # A claim of its own: the store is releasing the failed attempt's lease in the background,
            # and would cancel this one with it.
            claim = replace(claim, lease=new_lease())
        ticket = replace(ticket, takes=(), idempotency=claim)
        try:
            verdict = await self.store.admit(ticket)
        except StoreUnavailable as again:
            log.error("store unavailable, refusing %s: %s", call.request_id, again)
            raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
        if verdict.outcome is not Outcome.ADMITTED:
            return verdict, ticket  # refused on its own account: nothing was let through unchecked
        from gateway.metrics import count_fail_open  # metrics is optional; only this path needs it

        for kind in sorted(kinds):
            count_fail_open(kind)
        log.warning("store unavailable for %s of %s: failing open (%s)", "/".join(sorted(kinds)),
                    call.request_id, exc)
        return verdict, ticket
