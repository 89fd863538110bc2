"""The Store protocol and the values it trades in.

A request first passes every stateless check (signature, timestamp, owner, authorization). Then all
the state it needs is decided in one atomic step, `Store.admit`: the nonce claim, the flow-control
takes, the quota takes and the idempotency lease. The parts are checked in that order and committed
only if all of them pass, so a request refused by one part consumes nothing of the others:

* a replayed nonce takes no flow or quota;
* a flow- or quota-refused request does not burn its nonce;
* an idempotent replay (`Outcome.REPLAY`) claims its nonce (the request verified) and nothing else;
* every other refusal commits nothing at all.

One operation rather than one per check (STYLE habit 7 names `claim_nonce`, `take_quota`, ...) because
habit 8 asks for as few round trips as possible: with Redis, `admit` is one script call. The memory and
Redis stores pass one shared contract suite (`tests/test_store_contract.py`).

Times are the store's clock (Redis server time for Redis, so gateways with skewed clocks agree).
Quota windows are fixed and aligned to the Unix epoch (a ``100/day`` quota resets at 00:00 UTC); flow
control is GCRA (burst = limit, then one request per ``period / limit``, no double burst at a window
boundary).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.rates import Rate


@dataclass(frozen=True, slots=True)
class Take:
    """One unit taken from a rate: ``flow`` takes are system-wide (per API, global), not per scope;
    ``quota`` takes are the caller's quota, kept under the ticket's scope."""

    kind: Literal["flow", "quota"]
    key: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A ``ClientToken``. ``owner`` digests the caller (access key or sub-user) and the action;
    ``fingerprint`` digests the parameters. Both are opaque to the store."""

    token: str
    owner: str
    fingerprint: str
    lease_ms: int


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
        """Check the nonce, flow takes, quota takes and idempotency token, in that order; commit them
        all only if all pass (see the module docstring for what a refusal or a REPLAY commits)."""
        ...

    async def store_answer(
        self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int
    ) -> None:
        """The first call finished: replace its pending lease by ``answer``, kept ``ttl_ms``. Does
        nothing unless the lease is still this claim's (same owner and fingerprint)."""
        ...

    async def release(self, scope: str, claim: IdempotencyClaim) -> None:
        """The first call failed (crash, 5xx): drop its pending lease so a retry can run. Does
        nothing unless the key is still a pending lease of this claim."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
