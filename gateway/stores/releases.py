"""ClientToken releases that could not be made at once, retried in the background.

A lease must not outlive a call that will never settle it, or every retry of that call is told
LastTokenProcessing until the lease expires (``GATEWAY_IDEMPOTENCY_LEASE``, 60 s by default). Two
failures leave one behind: an admit whose reply was lost (a timeout, a dropped connection: its script
may have run, or may still run, queued in a stalled server, after the gateway answered
ServiceUnavailable), and a release, after a failed call, that could not reach Redis.

`PendingReleases` retries each such release, with exponential backoff, until one goes through
(``release.lua`` settles the lease either way: it drops it, or, when the admit has not run yet,
cancels that admit) or until the lease would have expired anyway. It stays bounded under a long
outage: at most ``limit`` releases wait (beyond that a lease is left to expire, with a warning), one
task runs them all, a round's attempts concurrently (the auto-pipeline sends them in one write), and
`aclose` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import StoreUnavailable
from gateway.stores.base import IdempotencyClaim

log = logging.getLogger("gateway.stores")

Release = Callable[[str, IdempotencyClaim], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    scope: str
    claim: IdempotencyClaim
    due: float  # event-loop time of the next attempt
    delay: float  # the wait after this attempt, if it fails
    until: float  # the lease has expired by then: nothing left to release


class PendingReleases:
    """Runs ``release(scope, claim)`` in the background until it succeeds or the lease is over.

    ``release`` raises `StoreUnavailable` when it could not reach the store; any other exception is
    a bug, logged once, and not retried."""

    def __init__(
        self, release: Release, *, limit: int = 1024, first_delay: float = 0.05, max_delay: float = 2.0
    ) -> None:
        self._release = release
        self._limit = limit
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._pending: dict[str, _Pending] = {}  # by lease id: one retry per lease
        self._task: asyncio.Task[None] | None = None
        self._added = asyncio.Event()  # binds to the running loop on first use

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, scope: str, claim: IdempotencyClaim) -> None:
        """Release ``claim``'s lease in the background (from a coroutine: it needs the running loop)."""
        if claim.lease in self._pending:
            return
        if len(self._pending) >= self._limit:
            log.warning("%d ClientToken releases already pending: this lease ends on its own", self._limit)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        until = now + claim.lease_ms / 1000
        self._pending[claim.lease] = _Pending(scope, claim, now + self._first_delay, self._first_delay, until)
        self._added.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="gateway-pending-releases")

    async def aclose(self) -> None:
        """Stop retrying; leases still pending end on their own."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            log.info("closing with %d ClientToken releases pending: their leases end on their own",
                     len(self._pending))
            self._pending.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            now = loop.time()
            for lease in [lease for lease, item in self._pending.items() if item.until <= now]:
                del self._pending[lease]
            due = [item for item in self._pending.values() if item.due <= now]
            if due:
                await self._attempt(due, loop)
            elif self._pending:
                await self._sleep(min(item.due for item in self._pending.values()) - now)

    async def _attempt(self, due: list[_Pending], loop: asyncio.AbstractEventLoop) -> None:
        results = await asyncio.gather(
            *(self._release(item.scope, item.claim) for item in due), return_exceptions=True
        )
        now = loop.time()
        for item, result in zip(due, results, strict=True):
            if isinstance(result, StoreUnavailable):
                item.delay = min(item.delay * 2, self._max_delay)
                item.due = now + item.delay
                continue
            if isinstance(result, BaseException):
                log.error("ClientToken release failed, not retried: %r", result)
            self._pending.pop(item.claim.lease, None)

    async def _sleep(self, seconds: float) -> None:
        """Until the next attempt is due, or a release is added (its first attempt may come sooner)."""
        self._added.clear()
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self._added.wait()
        except TimeoutError:
            pass
