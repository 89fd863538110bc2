"""Keeping a ClientToken's lease while its call runs.

A lease (``GATEWAY_IDEMPOTENCY_LEASE``) stands for a call in flight. If it ran out while the call
still ran, a retry would take the token over: the operation would run twice, and the first answer
would not be stored (`Store.store_answer` settles only its own lease). So while the call runs the
lease is renewed every third of its length (`Store.renew`); the lease then only runs out when its
gateway stops renewing it: it died, or could not reach the store for about a lease's length.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from gateway.errors import StoreUnavailable
from gateway.stores.base import IdempotencyClaim, Store

log = logging.getLogger("gateway.stores")

#: Renewals per lease length: one may fail (a store that hiccups) and the next still comes in time.
RENEWALS_PER_LEASE = 3


class LeaseRenewal:
    """Renews one admitted claim's lease from `start` until `stop`; ``lost`` once a renewal found
    the lease no longer this claim's (an answer must then not be kept: it is someone else's call).

    Most calls end well within a third of their lease: until then only a timer is armed, and the
    renewing task exists only for a call that outlasts it."""

    __slots__ = ("_claim", "_request_id", "_scope", "_store", "_task", "_timer", "lost")

    def __init__(self, store: Store, scope: str, claim: IdempotencyClaim, request_id: str) -> None:
        self._store = store
        self._scope = scope
        self._claim = claim
        self._request_id = request_id
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.lost = False

    @property
    def _interval(self) -> float:
        return self._claim.lease_ms / 1000 / RENEWALS_PER_LEASE

    def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._first_due)

    def stop(self) -> None:
        """Stops renewing (it needs no await: a renewal cut short changes nothing, or extends a lease
        that the answer or the release about to follow replaces)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def _first_due(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gateway-lease-renewal")

    async def _run(self) -> None:
        while True:
            outcome = await self._renew_once()
            if outcome == "lost":
                self.lost = True
                log.error("request %s: its ClientToken lease was lost while the call ran (expired, or taken "
                          "by a retry); its answer will not be kept", self._request_id)
            if outcome in ("lost", "broken"):
                return
            await asyncio.sleep(self._interval)

    async def _renew_once(self) -> Literal["renewed", "lost", "unreachable", "broken"]:
        """Never raises: a renewal is the request's bookkeeping, and must not fail the call it serves.
        An unreachable store is asked again at the next renewal; a bug is logged once, and ends them."""
        try:
            return "renewed" if await self._store.renew(self._scope, self._claim) else "lost"
        except StoreUnavailable as exc:
            log.warning("request %s: could not renew its ClientToken lease: %s", self._request_id, exc)
            return "unreachable"
        except Exception:
            log.exception("request %s: renewing its ClientToken lease failed", self._request_id)
            return "broken"
