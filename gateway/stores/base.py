"""The Store protocol and the values it trades in.

A request first passes every stateless check (signature, timestamp, owner, authorization). Then all
the state it needs is decided in one atomic step, `Store.admit`: the nonce claim, the flow-control
takes, the quota takes and the idempotency lease. The parts are checked in that order and committed
only if all of them pass, so a request refused by one part consumes nothing of the others:

* a replayed nonce takes no flow or quota;
* a flow- or quota-refused request does not burn its nonce;
* an idempotent replay (`Outcome.REPLAY`) claims its nonce (the request verified) and nothing else;
* every other refusal commits nothing at all (a nonce history marker, below, is the store's own
  bookkeeping, not the request's: it may be created by any ticket with a nonce).

Nonce history. A store remembers every nonce it accepted since its *history* began: since it was
created (memory) or since the Redis server's data set began (its start, without persistence). A
request signed before that cannot be shown fresh, since its nonce may have been accepted by the
store's previous life: its Timestamp is compared with the history start (``since``):

* ``timestamp >= since``: the nonce is checked as usual;
* otherwise ``HISTORY_STARTING`` while the history is younger than `NONCE_HISTORY_SETTLE_MS` (the
  store just came back: a request signed moments before is most likely a client retrying after the
  outage, and a retry signed anew passes), then ``NONCE_UNPROVEN``.

``since`` is the history's start minus `NONCE_HISTORY_GRACE_MS` (client clocks lag a little), except
where a Redis gateway saw the server restart: a gateway that used an earlier life of the server
(another ``run_id``) knows data may be gone, and takes the first whole second after the start, with
no grace, so a request admitted moments before the restart is not admitted again (``admit.lua``).

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
import secrets
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from gateway.rates import Rate

#: Client clocks may lag the store's by this much: a Timestamp up to it before the nonce history
#: began is still taken as signed after (unless a Redis gateway saw the restart, see above).
NONCE_HISTORY_GRACE_MS = 5_000
#: For this long after its history began, a store answers a Timestamp from before it as unavailable
#: (retry, signed anew) rather than as a used nonce.
NONCE_HISTORY_SETTLE_MS = 2_000


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
    renew or settle it (`Store.renew`, `Store.store_answer`, `Store.release`), never a later claim of the same call that
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
    the caller (``"AK:nonce"``); None skips the nonce check. ``timestamp_ms``: the request's
    Timestamp (ms since the epoch), checked against the nonce history; required by keyword, so that
    no caller skips that check by forgetting it.
    """

    scope: str
    nonce: str | None
    nonce_ttl_ms: int
    takes: tuple[Take, ...] = ()
    idempotency: IdempotencyClaim | None = None
    timestamp_ms: int = field(kw_only=True)


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    NONCE_USED = "nonce_used"
    FLOW_LIMITED = "flow_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    TOKEN_PROCESSING = "token_processing"
    TOKEN_PARAMS_MISMATCH = "token_params_mismatch"
    TOKEN_CALLER_MISMATCH = "token_caller_mismatch"
    REPLAY = "replay"
    NONCE_UNPROVEN = "nonce_unproven"  # signed before the nonce history began
    HISTORY_STARTING = "history_starting"  # the same, while that history is seconds old
    TOKEN_CANCELLED = "token_cancelled"  # this claim was released before its admit ran


class StoredAnswer(NamedTuple):
    """The first answer to an idempotent request, replayed byte for byte.

    A named tuple, like `gateway.call.Call`: built for every answer a ClientToken keeps.
    """

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `Store.admit` decided.

    ``retry_after_ms``: for FLOW_LIMITED and QUOTA_EXHAUSTED, the time until the refused take would
    succeed. ``remaining``: after an ADMITTED ticket with quota takes, the smallest quota left (None
    -- the gateway sends it nowhere; kept because the store contract tests prove each take with it)
    without quota takes). ``answer``: the stored answer of a REPLAY.
    """

    outcome: Outcome
    retry_after_ms: int = 0
    remaining: int | None = None
    answer: StoredAnswer | None = None




class Store(Protocol):
    """The gateway's shared state. Implementations: `MemoryStore`, `RedisStore`."""

    async def admit(self, ticket: Ticket) -> Verdict:
        """Check the nonce (with its history), flow takes, quota takes and idempotency token, in
        that order; commit them all only if all pass (see the module docstring for what a refusal
        or a REPLAY commits). An admit whose claim was released before it ran is TOKEN_CANCELLED."""
        ...

    async def store_answer(
        self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int
    ) -> None:
        """The first call finished: replace its pending lease by ``answer``, kept ``ttl_ms``. Does
        nothing unless the lease is still this claim's (its ``lease``)."""
        ...

    async def renew(self, scope: str, claim: IdempotencyClaim) -> bool:
        """The claim's call still runs: its pending lease lasts ``claim.lease_ms`` more from now, so
        that a retry keeps being told LastTokenProcessing however long the call takes. True if
        renewed; False, changing nothing, once the lease is not this claim's pending one any more (it
        expired, was taken again by a retry, was released, or already holds the answer)."""
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
