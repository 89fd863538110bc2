"""The Store protocol and the values it trades in.

A request first passes every stateless check (signature, timestamp, owner, authorization). Then all
the state it needs is decided in one atomic step, `Store.admit`: the nonce claim, the flow-control
takes, the quota takes and the idempotency lease. The parts are checked in that order and committed
only if all of them pass, so a request refused by one part consumes nothing of the others:

* a replayed nonce takes no flow or quota;
* a flow- or quota-refused request does not burn its nonce;
* an idempotent replay (`Outcome.REPLAY`) claims its nonce (the request verified) and nothing else;
* every other refusal commits nothing at all.

"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.rates import Rate


@dataclass(frozen=True, slots=True)
class Take:
    """One unit taken from a rate: ``flow`` takes are system-wide (per API, global), not per scope;
    ``quota`` takes are the caller's quota, kept under the ticket's scope."""

    kind: Literal["flow", "quota"]
    key: str
    rate: Rate


def new_lease() -> str:
    """A fresh lease id: 64 random bits, unique among the leases any token will ever see."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A ``ClientToken``. ``owner`` digests the caller (access key or sub-user) and the action;
    ``fingerprint`` digests the parameters. Both are opaque to the store.

    ``lease`` names this claim's lease, unique per claim: only the claim that took a lease may
    settle it (`Store.store_answer`, `Store.release`), never a later claim of the same call that
    took it again after it expired."""

    token: str
    owner: str
    fingerprint: str
    lease_ms: int
    lease: str = field(default_factory=new_lease)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Everything one request needs from the store.

    ``scope`` is the caller's account id: every per-request key (nonce, quota, idempotency) lives
    under it, so in Redis Cluster one script can touch them all. ``nonce`` is already namespaced by
    the caller (``"AK:nonce"``); None skips the nonce check.
    """

    scope: str
    nonce: str | None
    nonce_ttl_ms: int
    takes: tuple[Take, ...] = ()
    idempotency: IdempotencyClaim | None = None


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    NONCE_USED = "nonce_used"
    FLOW_LIMITED = "flow_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    TOKEN_PROCESSING = "token_processing"
    TOKEN_PARAMS_MISMATCH = "token_params_mismatch"
    TOKEN_CALLER_MISMATCH = "token_caller_mismatch"
    REPLAY = "replay"
    TOKEN_CANCELLED = "token_cancelled"  # this claim was released before its admit ran


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer to an idempotent request, replayed byte for byte."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `Store.admit` decided.

    ``retry_after_ms``: for FLOW_LIMITED and QUOTA_EXHAUSTED, the time until the refused take would
    succeed. ``remaining``: after an ADMITTED ticket with quota takes, the smallest quota left (None
    without quota takes). ``answer``: the stored answer of a REPLAY.
    """

    outcome: Outcome
    retry_after_ms: int = 0
    remaining: int | None = None
    answer: StoredAnswer | None = None


class StoreUnavailable(Exception):
    """The store could not decide: connection refused, timeout, cluster down, a script error.

    Every backend failure is wrapped into this once, at the store boundary; the gateway answers
    ``ServiceUnavailable`` and admits nothing.
    """


class Store(Protocol):
    """The gateway's shared state. Implementations: `MemoryStore`, `RedisStore`."""

    async def admit(self, ticket: Ticket) -> Verdict:
        """Check the nonce, flow takes, quota takes and idempotency token, in
        that order; commit them all only if all pass (see the module docstring for what a refusal
        or a REPLAY commits). An admit whose claim was released before it ran is TOKEN_CANCELLED."""
        ...

    async def store_answer(
        self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int
    ) -> None:
        """The first call finished: replace its pending lease by ``answer``, kept ``ttl_ms``. Does
        nothing unless the lease is still this claim's (its ``lease``)."""
        ...

    async def release(self, scope: str, claim: IdempotencyClaim) -> None:
        """The claim's call will not finish (a crash, a 5xx, or an admit whose reply was lost): its
        lease must not stand. A pending lease of this claim is dropped so a retry can run; a stored
        answer or another claim's lease is left alone. With no lease at all, the claim's admit may
        not have run yet (queued in a stalled Redis): it is cancelled, so that when it runs it
        commits nothing (TOKEN_CANCELLED), for as long as the lease would have lasted."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
