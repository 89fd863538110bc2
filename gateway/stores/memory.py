"""The embedded store: state for one process, the default when no Redis URL is configured.

Each operation runs without an ``await`` inside, so it is atomic on the event loop, exactly as the
Lua scripts are atomic in Redis; the decisions mirror `gateway/stores/lua/admit.lua` line for line
(same integer microsecond arithmetic), and both pass one contract suite.

Memory stays proportional to live entries: every entry has an expiry, and each write sweeps a few
expired ones off a heap ordered by expiry, so an idle key costs nothing once its time has passed.
A remembered nonce costs one dict slot, its key string, one int and one heap tuple.

Its nonce history begins when it is created: a gateway restarted with the memory store has forgotten
every nonce, exactly like a Redis restarted without persistence, and refuses what was signed before
(see `gateway.stores.base`). It cannot tell a restart from a first start, so the grace always applies.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from mypy_extensions import mypyc_attr

from gateway.rates import Rate
from gateway.stores.base import (
    NONCE_HISTORY_GRACE_MS,
    NONCE_HISTORY_SETTLE_MS,
    IdempotencyClaim,
    Outcome,
    StoredAnswer,
    Ticket,
    Verdict,
)

V = TypeVar("V")

# Expired heap entries swept per write: more than one write can add, so the backlog shrinks, yet small
# enough that a million keys expiring at once never stall the event loop.
_SWEEP_BUDGET = 8


def wall_clock_us() -> int:
    """Wall time, not monotonic: quota windows are aligned to the epoch (a day starts 00:00 UTC)."""
    return time.time_ns() // 1000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _interval_us(rate: Rate) -> int:
    """GCRA emission interval, rounded up as admit.lua does (never faster than the rate)."""
    return _ceil_div(rate.period_ms * 1000, rate.limit)


class _Expiring(Generic[V]):
    """Keys with an absolute expiry (µs) and an optional value; expired keys read as absent."""

    __slots__ = ("_expiry", "_heap", "_value")

    def __init__(self) -> None:
        self._expiry: dict[str, int] = {}
        self._value: dict[str, V] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def alive(self, key: str, now: int) -> bool:
        expires = self._expiry.get(key)
        return expires is not None and expires > now

    def get(self, key: str, now: int) -> V | None:
        return self._value.get(key) if self.alive(key, now) else None

    def put(self, key: str, expires: int, now: int, value: V | None = None) -> None:
        self._sweep(now)
        previous = self._expiry.get(key)
        self._expiry[key] = expires
        if value is None:
            self._value.pop(key, None)
        else:
            self._value[key] = value
        # One heap entry per key is enough while its expiry only moves later (a flow TAT, a counter in
        # its window): the sweep re-files it when the old time comes. An earlier expiry needs its own.
        if previous is None or expires < previous:
            heapq.heappush(self._heap, (expires, key))

    def delete(self, key: str) -> None:
        self._expiry.pop(key, None)
        self._value.pop(key, None)

    def _sweep(self, now: int) -> None:
        heap = self._heap
        for _ in range(_SWEEP_BUDGET):
            if not heap or heap[0][0] > now:
                return
            _, key = heapq.heappop(heap)
            expires = self._expiry.get(key)
            if expires is None:
                continue
            if expires <= now:
                self.delete(key)
            else:
                heapq.heappush(heap, (expires, key))


@dataclass(frozen=True, slots=True)
class _Lease:
    owner: str
    fingerprint: str
    lease: str
    answer: StoredAnswer | None = None


def _scoped(scope: str, name: str) -> str:
    # The unit separator cannot occur in an account id, so scopes never collide.
    return f"{scope}\x1f{name}"


# Compiled (the opt-in mypyc build), a class is closed to interpreted subclasses unless it says otherwise;
# MemoryStore is subclassed (tests/test_render.py records through it; a service may wrap it too).
@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryStore:
    """`Store` for one process. ``clock`` returns microseconds since the epoch (tests may inject one)."""

    def __init__(self, *, clock: Callable[[], int] = wall_clock_us) -> None:
        self._clock = clock
        self._since = clock() - NONCE_HISTORY_GRACE_MS * 1000  # nonce history start, µs
        self._nonces: _Expiring[None] = _Expiring()
        self._flows: _Expiring[int] = _Expiring()  # theoretical arrival time, µs
        self._quotas: _Expiring[tuple[int, int]] = _Expiring()  # (window, used)
        self._leases: _Expiring[_Lease] = _Expiring()
        self._cancelled: _Expiring[None] = _Expiring()  # leases released before their admit

    def __len__(self) -> int:
        """Entries held, expired ones not yet swept included (for memory reports)."""
        held = (self._nonces, self._flows, self._quotas, self._leases, self._cancelled)
        return sum(len(entries) for entries in held)

    async def admit(self, ticket: Ticket) -> Verdict:
        now = self._clock()
        now_ms = now // 1000
        nonce_key = None if ticket.nonce is None else _scoped(ticket.scope, ticket.nonce)
        if nonce_key is not None:
            if self._nonces.alive(nonce_key, now):
                return Verdict(Outcome.NONCE_USED)
            if ticket.timestamp_ms * 1000 < self._since:
                starting = now < self._since + NONCE_HISTORY_SETTLE_MS * 1000
                return Verdict(Outcome.HISTORY_STARTING if starting else Outcome.NONCE_UNPROVEN)

        tats: dict[str, int] = {}
        flow_wait = 0
        for take in ticket.takes:
            if take.kind == "flow":
                interval = _interval_us(take.rate)
                tat = tats.get(take.key) or self._flows.get(take.key, now) or now
                tats[take.key] = tat = max(tat, now) + interval
                flow_wait = max(flow_wait, tat - interval * take.rate.limit - now)
        if flow_wait > 0:
            return Verdict(Outcome.FLOW_LIMITED, retry_after_ms=_ceil_div(flow_wait, 1000))

        counts: dict[str, tuple[int, int]] = {}  # quota key -> (window, used after this ticket)
        quota_wait, remaining = 0, None
        for take in ticket.takes:
            if take.kind == "quota":
                key = _scoped(ticket.scope, take.key)
                window = now_ms // take.rate.period_ms
                if key not in counts:
                    stored = self._quotas.get(key, now)
                    counts[key] = stored if stored is not None and stored[0] == window else (window, 0)
                window, used = counts[key]
                if used >= take.rate.limit:
                    quota_wait = max(quota_wait, (window + 1) * take.rate.period_ms - now_ms)
                else:
                    counts[key] = (window, used + 1)
                    left = take.rate.limit - used - 1
                    remaining = left if remaining is None else min(remaining, left)
        if quota_wait > 0:
            return Verdict(Outcome.QUOTA_EXHAUSTED, retry_after_ms=quota_wait)

        claim = ticket.idempotency
        if claim is not None:
            if self._cancelled.alive(_scoped(ticket.scope, claim.lease), now):
                return Verdict(Outcome.TOKEN_CANCELLED)
            lease = self._leases.get(_scoped(ticket.scope, claim.token), now)
            if lease is not None:
                if lease.owner != claim.owner:
                    return Verdict(Outcome.TOKEN_CALLER_MISMATCH)
                if lease.fingerprint != claim.fingerprint:
                    return Verdict(Outcome.TOKEN_PARAMS_MISMATCH)
                if lease.answer is None:
                    return Verdict(Outcome.TOKEN_PROCESSING)
                self._claim_nonce(nonce_key, ticket, now)
                return Verdict(Outcome.REPLAY, answer=lease.answer)

        # Everything passed: commit.
        self._claim_nonce(nonce_key, ticket, now)
        for flow_key, tat in tats.items():
            self._flows.put(flow_key, tat, now, tat)
        for take in ticket.takes:
            if take.kind == "quota":
                key = _scoped(ticket.scope, take.key)
                window, used = counts[key]
                self._quotas.put(key, (window + 1) * take.rate.period_ms * 1000, now, (window, used))
        if claim is not None:
            lease_end = now + max(1, claim.lease_ms) * 1000
            lease = _Lease(claim.owner, claim.fingerprint, claim.lease)
            self._leases.put(_scoped(ticket.scope, claim.token), lease_end, now, lease)
        return Verdict(Outcome.ADMITTED, remaining=remaining)

    def _claim_nonce(self, nonce_key: str | None, ticket: Ticket, now: int) -> None:
        if nonce_key is not None:
            self._nonces.put(nonce_key, now + max(1, ticket.nonce_ttl_ms) * 1000, now)

    async def store_answer(
        self, scope: str, claim: IdempotencyClaim, answer: StoredAnswer, ttl_ms: int
    ) -> None:
        now = self._clock()
        key = _scoped(scope, claim.token)
        lease = self._leases.get(key, now)
        if lease is not None and lease.lease == claim.lease:
            done = _Lease(lease.owner, lease.fingerprint, lease.lease, answer)
            self._leases.put(key, now + max(1, ttl_ms) * 1000, now, done)

    async def renew(self, scope: str, claim: IdempotencyClaim) -> bool:
        now = self._clock()
        key = _scoped(scope, claim.token)
        lease = self._leases.get(key, now)
        if lease is None or lease.answer is not None or lease.lease != claim.lease:
            return False
        self._leases.put(key, now + max(1, claim.lease_ms) * 1000, now, lease)
        return True

    async def release(self, scope: str, claim: IdempotencyClaim) -> None:
        now = self._clock()
        key = _scoped(scope, claim.token)
        lease = self._leases.get(key, now)
        if lease is None:
            # As release.lua does; here an admit never outlives its caller, but the contract is one.
            self._cancelled.put(_scoped(scope, claim.lease), now + max(1, claim.lease_ms) * 1000, now)
        elif lease.answer is None and lease.lease == claim.lease:  # still our pending lease
            self._leases.delete(key)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
