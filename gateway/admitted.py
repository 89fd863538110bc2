"""Admitted: one admitted call's ClientToken, from admission to settling (`gateway.admit` admits it).

The lease is renewed while the service runs, the answer is kept for replay (the responder's callback,
`Admitted.keep`), and the token is released when no answer was kept (a 5xx, a crash, an answer too
large to keep), so that a retry runs instead of replaying a failure.
"""

from __future__ import annotations

import logging

from gateway.errors import StoreUnavailable
from gateway.stores import IdempotencyClaim, Store, StoredAnswer
from gateway.stores.renewal import LeaseRenewal

log = logging.getLogger("gateway.store")


class Admitted:
    """One admitted call's ClientToken, from admission to settling; `NO_TOKEN` for every other call.

    ``replay`` is the first call's answer when the token had one: it is sent instead of calling the
    service. Otherwise the middleware calls `start`, hands `keep` to the responder, and `settle`s.
    """

    __slots__ = ("_claim", "_renewal", "_scope", "_store", "_ttl_ms", "kept", "replay", "request_id")

    def __init__(self, store: Store | None = None, scope: str = "", claim: IdempotencyClaim | None = None,
                 request_id: str = "", ttl_ms: int = 0, replay: StoredAnswer | None = None) -> None:
        self._store, self._scope, self._claim, self._ttl_ms = store, scope, claim, ttl_ms
        self.request_id, self.replay = request_id, replay
        self._renewal = None if store is None or claim is None else LeaseRenewal(store, scope, claim, request_id)
        self.kept = False  # the answer was handed to the store (before its last byte went out)

    @property
    def holds_token(self) -> bool:
        return self._renewal is not None

    def start(self) -> None:
        """Keep the lease while the service runs (a long call must not let a retry in)."""
        if self._renewal is not None:
            self._renewal.start()

    async def keep(self, answer: StoredAnswer) -> None:
        """The responder's callback: store the final answer for replay (never a 5xx)."""
        renewal, claim, store = self._renewal, self._claim, self._store
        if renewal is None or claim is None or store is None or answer.status >= 500:
            return
        renewal.stop()
        if not renewal.lost:  # else the token is another call's now: its answer is not ours to replace
            try:
                await store.store_answer(self._scope, claim, answer, self._ttl_ms)
            except StoreUnavailable as exc:
                # The lease expires on its own; until then a retry is told LastTokenProcessing.
                log.error("could not store the ClientToken answer of %s: %s", self.request_id, exc)
        self.kept = True

    async def settle(self) -> None:
        """After the answer: release the token unless its answer was kept."""
        renewal, claim, store = self._renewal, self._claim, self._store
        if renewal is None or claim is None or store is None:
            return
        renewal.stop()
        if self.kept:
            return
        try:
            await store.release(self._scope, claim)
        except StoreUnavailable as exc:
            log.error("could not release the ClientToken of %s: %s", self.request_id, exc)


NO_TOKEN = Admitted()  # shared: a call without a ClientToken has nothing to keep or release
