"""Auto-pipelining: the script calls of concurrent requests share one Redis round trip.

Each awaited redis-py command costs tens of microseconds of client CPU (a pooled connection taken and
given back, a write with its own timeout task, a read with its own timeout) and one ``send`` syscall,
which on loopback also runs the server side's TCP receive path. Under load many requests reach their
`admit` in the same event-loop turn; as ioredis and Lettuce do, `AutoPipeline` queues their calls
and sends them together, on one connection of its own (`gateway.stores.wire`: opened by redis-py,
then read by a Protocol with `hiredis.Reader`, no stream, no pool, no task per batch):

* `AutoPipeline.call` queues an ``EVALSHA`` and awaits a future; the first call of a turn schedules
  a flush with ``loop.call_soon``, so everything queued during that turn leaves in one write (no
  MULTI/EXEC: each script is atomic on its own, and one failing call must not abort the others);
  the replies arrive in order, each resolving its own call's future with its reply or its error;
* a ``NOSCRIPT`` reply (a restarted or flushed server) means that script did not run: it is loaded
  (through redis-py) and the calls that got ``NOSCRIPT`` are sent again, once;
* a lost connection or a timeout fails every call written on it that has no reply yet: any of them
  may have run, so none is retried (the same rule as ``Retry(NoBackoff(), 0)`` in the store); the
  calls answered before keep their replies. The next flush opens a new connection: the store
  recovers by itself, and a server that restarted closes the old one as it goes (its EOF);
* a call may carry an *undo* (the store's lease release for an admit holding a ClientToken): when its
  reply is lost to a timeout, the undo is written behind it on the same connection before that is
  closed. Redis runs a connection's commands in order, so a stalled server that wakes up runs the
  abandoned admit and then its undo, before anything sent to it later. It is sent with ``EVAL``
  (the text, not the SHA): the script cache may be empty, and nobody reads that reply.

What a caller gets is what an unbatched call would give: the script's reply, or the redis-py error
(`RedisStore` wraps it into `StoreUnavailable`, at its one boundary). The replies of a batch all
together are bounded by the client's ``socket_timeout`` (the store's timeout) from its write, so a
caller waits one timeout at most, wherever it sits in its batch (opening the connection is bounded by
redis-py's connect timeout); a batch holds at most 512 calls, which Redis answers in milliseconds.
One watchdog timer enforces every batch's deadline: it is armed for the oldest unanswered call's and,
when it fires early because that call was answered, re-armed for the next one's. A timer per batch,
created and cancelled around every round trip, cost ~20 µs of each request's latency at one
connection (uvloop's timer handles; README, "Decided by measurement").
A caller cancelled while queued is dropped from its batch before it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.stores.wire import Wire, open_wire

Arg = str | int | bytes
#: A call to write behind another whose reply was lost: script, keys, args.
Undo = tuple[AsyncScript, Sequence[str], Sequence[Arg]]


def _pack_in_python(command: tuple[Arg, ...]) -> bytes:
    """RESP, as redis-py's encoder writes it: str as UTF-8, int as decimal digits, bytes as they are."""
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


try:  # hiredis (redis[hiredis]) packs a command in C, ~1 µs
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a declared dependency
    _pack: Callable[[tuple[Arg, ...]], bytes] = _pack_in_python
else:
    # Its stub spells the argument as a 1-tuple; any tuple of str, int and bytes is packed.
    _pack = cast(Callable[[tuple[Arg, ...]], bytes], _hiredis_pack)
# Redis runs a short script in tens of microseconds: a batch this size is answered in milliseconds.
_MAX_BATCH = 512


class _Call:
    __slots__ = ("args", "deadline", "future", "keys", "retried", "script", "undo")

    def __init__(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Arg],
        future: asyncio.Future[Any],
        undo: Undo | None,
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future
        self.undo = undo
        self.retried = False  # sent again after NOSCRIPT
        self.deadline = 0.0  # the loop time by which its batch must be answered, once written


class AutoPipeline:
    """Batches the script calls made on ``client``'s server during one event-loop turn into one write."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._timeout = float(client.connection_pool.connection_kwargs.get("socket_timeout") or 5.0)
        self._queue: list[_Call] = []
        self._wire: Wire[_Call] | None = None
        self._waiting: list[_Call] = []  # flushed while the connection opens
        self._missing: list[_Call] = []  # refused with NOSCRIPT, to send again once loaded
        self._watchdog: asyncio.TimerHandle | None = None
        # Connecting and reloading scripts: referenced so they are not garbage-collected, awaited by `drain`.
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg], *, undo: Undo | None = None
    ) -> Any:
        """``EVALSHA`` of ``script`` in the next batch; its reply, or the error Redis gave it.
        ``undo`` is written behind it if its reply is lost (see the module docstring)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append(_Call(script, keys, args, future, undo))
        return await future

    async def drain(self) -> None:
        """Wait until every call made so far is answered (before the client is closed)."""
        while True:
            wire = self._wire
            pending = [call.future for call in (*self._waiting, *(wire.sent if wire is not None else ()))]
            if self._tasks or pending:
                await asyncio.gather(*self._tasks, *pending, return_exceptions=True)
            elif self._queue:
                await asyncio.sleep(0)  # the flush is scheduled: let it run
            else:
                return

    async def aclose(self) -> None:
        """Answer what was asked, then close the connection."""
        await self.drain()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close(RedisTimeoutError("the store was closed"))

    def _flush(self) -> None:
        queued, self._queue = self._queue, []
        self._send([call for call in queued if not call.future.done()])  # done: cancelled while queued

    def _send(self, calls: list[_Call]) -> None:
        if not calls:
            return
        wire = self._wire
        if wire is None or not wire.is_open:
            if not self._waiting:
                self._start(self._open())
            self._waiting += calls
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        for call in calls:
            call.deadline = deadline
        # A burst larger than _MAX_BATCH goes out as several writes, so that no batch's replies take
        # long enough to approach the timeout that bounds them.
        for start in range(0, len(calls), _MAX_BATCH):
            batch = calls[start : start + _MAX_BATCH]
            wire.write(b"".join([_pack(("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)) for c in batch]),
                       batch)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._watch)

    def _start(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self) -> None:
        wire: Wire[_Call] = Wire(self._settle, self._lost)
        try:
            await open_wire(self._client, wire)
        except BaseException as exc:  # every call waiting for this connection fails with it: none was sent
            waiting, self._waiting = self._waiting, []
            self._lost(waiting, exc if isinstance(exc, Exception) else RedisConnectionError("connect cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        self._wire = wire
        waiting, self._waiting = self._waiting, []
        self._send([call for call in waiting if not call.future.done()])

    def _settle(self, call: _Call, reply: Any) -> None:
        if isinstance(reply, NoScriptError) and not call.retried:
            call.retried = True
            if not self._missing:
                self._start(self._reload())
            self._missing.append(call)
        elif not call.future.done():  # else its caller was cancelled
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _reload(self) -> None:
        """NOSCRIPT: the script did not run, so sending those calls again runs each once."""
        await asyncio.sleep(0)  # the rest of the batch's replies, read in the same turn, join in
        missing, self._missing = self._missing, []
        try:
            for script in {id(call.script): call.script for call in missing}.values():
                await self._client.script_load(script.script)
        except Exception as exc:
            self._lost(missing, exc)
            return
        self._send([call for call in missing if not call.future.done()])

    def _watch(self) -> None:
        """The watchdog: fails the connection once its oldest unanswered call is past its deadline."""
        self._watchdog = None
        wire = self._wire
        if wire is None or not wire.sent:
            return  # everything was answered (a closed connection fails its calls as it closes)
        loop = asyncio.get_running_loop()
        oldest = wire.sent[0].deadline
        if oldest <= loop.time():
            self._expire(wire)
        else:
            self._watchdog = loop.call_at(oldest, self._watch)

    def _expire(self, wire: Wire[_Call]) -> None:
        """A batch went unanswered for the timeout: the server is stalled or unreachable."""
        unanswered = list(wire.sent)
        undos = [call.undo for call in unanswered if call.undo is not None]
        if undos and wire.is_open:
            wire.write(b"".join([_pack(("EVAL", _text(s), len(keys), *keys, *args)) for s, keys, args in undos]), [])
        if self._wire is wire:
            self._wire = None
        wire.close(RedisTimeoutError(f"Timeout reading from the store ({self._timeout} s)"))

    def _lost(self, calls: list[_Call], exc: Exception) -> None:
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)


def _text(script: AsyncScript) -> str | bytes:
    text = script.script
    return bytes(text) if isinstance(text, memoryview) else text
