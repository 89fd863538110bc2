"""The in-process cache of keystore entries: one dict the parser reads, kept true by change messages.

`entries` maps an access key id to its `AccessKey`, or to None for an id Redis does not hold (a
negative entry, kept `negative_ttl` seconds, so that retries of a wrong id cost no read each). A
cached key costs the parser one dict lookup, as a file key does; nothing else runs per request.

What keeps it true:

* change messages (`gateway.keystore.listen`): an id, account or sub-user changed in Redis is
  dropped at once, with the keys of a changed account or sub-user (a key carries both objects);
* the TTL backstop: an entry is dropped `ttl` seconds after it was read, and read again on next use,
  in case a message was lost;
* while the listener is disconnected (Redis unreachable), messages may be lost: entries then stay
  past their TTL, until ``ttl + grace`` after they were read (the documented outage bound), and the
  whole cache is dropped once the listener is subscribed again;
* a read racing a change: a read that started before any change message arrived is used for its
  own request but not cached (`_generation`).

A miss is one read for every request waiting on that id (single flight), and at most `max_reads`
reads run at once: a flood of random ids queues behind them rather than flooding Redis.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import Protocol

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError, StoreUnavailable
from gateway.policy.model import AccessKey

log = logging.getLogger("gateway.keystore")

#: The longest access key id the keystore takes (`gateway keys import` refuses longer ones).
MAX_ID_LENGTH = 128


class Reader(Protocol):
    async def read(self, key_id: str) -> AccessKey | None: ...


class _Abandoned(StoreUnavailable):
    """The read was cancelled with the request that made it (a client gone)."""


class KeyCache:
    def __init__(self, reader: Reader, *, ttl: float, grace: float, negative_ttl: float = 2.0,
                 max_negative: int = 100_000, max_reads: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reader, self.ttl, self.grace, self.negative_ttl = reader, ttl, grace, negative_ttl
        self.max_negative, self.clock = max_negative, clock
        # Never rebound: parsers hold this very dict.
        self.entries: dict[str, AccessKey | None] = {}
        self.listening = False
        self.on_miss: Callable[[], None] = lambda: None  # starts the listener on first use
        self._due: list[tuple[float, str]] = []
        self._deadline: dict[str, float] = {}
        self._read_at: dict[str, float] = {}
        self._negatives: dict[str, None] = {}  # insertion order: the oldest is evicted first
        self._by_account: dict[int, set[str]] = {}
        self._by_user: dict[tuple[int, str], set[str]] = {}
        self._pending: dict[str, asyncio.Future[AccessKey | None]] = {}
        self._generation = 0
        self._reads = asyncio.Semaphore(max_reads)

    # -- the request path ------------------------------------------------------------------------

    def missing(self, key_id: str | None) -> bool:
        """Whether ``key_id`` must be read from Redis; an id longer than any the keystore holds is not
        (it is simply unknown: no read, and no negative entry the size of what a client sent)."""
        return key_id is not None and 0 < len(key_id) <= MAX_ID_LENGTH and key_id not in self.entries

    async def complete(self, call: Call) -> Call:
        """``call`` with the key its AccessKeyId names read from Redis (ServiceUnavailable if it cannot be)."""
        try:
            key = await self.fetch(call.access_key_id or "")
        except StoreUnavailable as exc:
            log.warning("access key %s: keystore unavailable: %s", call.access_key_id, exc)
            raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
        return call._replace(key=key)

    async def fetch(self, key_id: str) -> AccessKey | None:
        if key_id in self.entries:
            return self.entries[key_id]
        self.on_miss()
        pending = self._pending.get(key_id)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except _Abandoned:  # the request reading it went away: read for this one
                return await self.fetch(key_id)
        future: asyncio.Future[AccessKey | None] = asyncio.get_running_loop().create_future()
        self._pending[key_id] = future
        generation = self._generation
        try:
            async with self._reads:
                key = await self.reader.read(key_id)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, StoreUnavailable) else _Abandoned())
            future.exception()  # retrieved: no waiter is required
            raise
        finally:
            del self._pending[key_id]
        if generation == self._generation:
            self._store(key_id, key)
        future.set_result(key)
        return key

    # -- keeping it true -------------------------------------------------------------------------

    def _store(self, key_id: str, key: AccessKey | None) -> None:
        now = self.clock()
        self._drop(key_id)
        self.entries[key_id] = key
        if key is None:
            if len(self._negatives) >= self.max_negative:
                self._drop(next(iter(self._negatives)))
            self._negatives[key_id] = None
            due = now + self.negative_ttl
        else:
            self._read_at[key_id] = now
            self._by_account.setdefault(key.account.id, set()).add(key_id)
            if key.user is not None:
                self._by_user.setdefault((key.account.id, key.user.name), set()).add(key_id)
            due = now + self.ttl
        self._deadline[key_id] = due
        heapq.heappush(self._due, (due, key_id))

    def _drop(self, key_id: str) -> None:
        key = self.entries.pop(key_id, None)
        self._deadline.pop(key_id, None)
        self._read_at.pop(key_id, None)
        self._negatives.pop(key_id, None)
        if key is not None:
            self._by_account.get(key.account.id, set()).discard(key_id)
            if key.user is not None:
                self._by_user.get((key.account.id, key.user.name), set()).discard(key_id)

    def invalidate(self, message: str) -> None:
        """A change message: ``k:<key id>``, ``a:<account id>``, ``u:<account id>:<name>`` or ``*``."""
        self._generation += 1
        kind, _, what = message.partition(":")
        if kind == "k":
            self._drop(what)
        elif kind == "a" and what.isdigit():
            for key_id in self._by_account.pop(int(what), set()):
                self._drop(key_id)
        elif kind == "u" and what.partition(":")[0].isdigit():
            account, _, name = what.partition(":")
            for key_id in self._by_user.pop((int(account), name), set()):
                self._drop(key_id)
        else:  # "*" (an import), or a message this version does not know: drop everything
            self.clear()

    def clear(self) -> None:
        self._generation += 1
        self.entries.clear()
        for index in (self._deadline, self._read_at, self._negatives, self._by_account, self._by_user):
            index.clear()
        self._due.clear()

    def connected(self) -> None:
        """Subscribed (again): whatever changed while nobody listened is unknown, so nothing cached stays."""
        self.clear()
        self.listening = True

    def disconnected(self) -> None:
        self.listening = False

    def sweep(self) -> None:
        """Drop the entries past their TTL; while not listening, keep positive ones until ``ttl + grace``."""
        now = self.clock()
        due = self._due
        while due and due[0][0] <= now:
            when, key_id = heapq.heappop(due)
            if self._deadline.get(key_id) != when:
                continue  # dropped or read again since
            read_at = self._read_at.get(key_id)
            if read_at is None or self.listening or now >= read_at + self.ttl + self.grace:
                self._drop(key_id)
            else:
                self._deadline[key_id] = keep = read_at + self.ttl + self.grace
                heapq.heappush(due, (keep, key_id))
