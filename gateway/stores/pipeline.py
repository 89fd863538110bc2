"""Auto-pipelining: the script calls of concurrent requests share one Redis round trip.

Each awaited redis-py command costs tens of microseconds of client CPU (a pooled connection taken and
given back, a write with its own timeout task, a read with its own timeout) and one ``send`` syscall,
which on loopback also runs the server side's TCP receive path. Under load many requests reach their
`admit` in the same event-loop turn; as ioredis and Lettuce do, `AutoPipeline` queues their calls
and sends them together:

* `AutoPipeline.call` queues an ``EVALSHA`` and awaits a future; the first call of a turn schedules
  a flush with ``loop.call_soon``, so everything queued during that turn leaves together;
* the flush writes the batch as one pipeline (``transaction=False``: no MULTI/EXEC; each script is
  atomic on its own, and one failing call must not abort the others) on one pooled connection and
  reads the replies in order, resolving each future with its own reply or its own error;
* a ``NOSCRIPT`` reply (a restarted or flushed server) means that script did not run: it is loaded
  and the calls that got ``NOSCRIPT`` are sent again, once;
* a connection error or timeout fails every call of the batch that has no reply yet: any of them
  may have run, so none is retried (the same rule as ``Retry(NoBackoff(), 0)`` in the store); the
  calls answered before it keep their replies;
* a call may carry an *undo* (the store's lease release for an admit holding a ClientToken): when its
  reply is lost to a timeout, the undo is written behind it on the same connection before that is
  dropped. Redis runs a connection's commands in order, so a stalled server that wakes up runs the
  abandoned admit and then its undo, before anything sent to it later. It is sent with ``EVAL``
  (the text, not the SHA): the script cache may be empty, and nobody reads that reply.

What a caller gets is what an unbatched call would give: the script's reply, or the redis-py error
(`RedisStore` wraps it into `StoreUnavailable`, at its one boundary). The write, and the replies of a
batch all together, are each bounded by the client's ``socket_timeout`` (the store's timeout), so a
caller waits one timeout at most, wherever it sits in its batch; a batch holds at most 512 calls,
which Redis answers in milliseconds. Taking a pooled connection keeps the pool's own bound. A caller
cancelled while queued is dropped from its batch before it is sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

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
    __slots__ = ("args", "future", "keys", "script", "undo")

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


class AutoPipeline:
    """Batches the script calls made on ``client`` during one event-loop turn into one pipeline."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queue: list[_Call] = []
        # Batches in flight: referenced so they are not garbage-collected, and awaited by `drain`.
        self._in_flight: set[asyncio.Task[None]] = set()

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
        while self._queue or self._in_flight:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # the flush is scheduled: let it run

    def _flush(self) -> None:
        queued, self._queue = self._queue, []
        queued = [call for call in queued if not call.future.done()]  # cancelled while queued
        # A burst larger than _MAX_BATCH goes out as several pipelines on as many connections, so
        # that no batch's replies take long enough to approach the timeout that bounds them.
        for start in range(0, len(queued), _MAX_BATCH):
            task = asyncio.ensure_future(self._send(queued[start : start + _MAX_BATCH]))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            missing = await self._execute(batch, retry=False)
            if missing:
                # NOSCRIPT: the script did not run, so sending those calls again runs each once.
                for script in {id(call.script): call.script for call in missing}.values():
                    await self._client.script_load(script.script)
                await self._execute(missing, retry=True)
        except asyncio.CancelledError:
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:  # the connection failed: whoever has no reply yet fails with it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)

    async def _execute(self, batch: list[_Call], *, retry: bool) -> list[_Call]:
        """One write of the whole batch on one pooled connection, then the replies in order, each
        settling its own call at once. Returns the calls refused with NOSCRIPT (unless ``retry``).

        redis-py's `Pipeline` would do the same, but packs each argument in Python (half the client
        CPU of a batch, measured) and adds per-command bookkeeping; hiredis packs a command in ~1 µs.
        """
        missing: list[_Call] = []
        pool = self._client.connection_pool
        conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        answered = 0
        try:
            await conn.send_packed_command(
                b"".join([_pack(("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)) for c in batch])
            )
            # One bound for the batch's replies as a whole, so that a server trickling replies cannot
            # hold the last caller for one timeout per call. The reads themselves get none of their own
            # (timeout=inf, redis-py's "no timeout"): a timeout context per read was ~9 % of a
            # worker's CPU on the Redis bench (bench/profile_load.py: asyncio.timeout, reschedule,
            # current_task), once per request since every reply is one read.
            async with asyncio.timeout(conn.socket_timeout):
                for call in batch:
                    try:
                        # Not dropped by redis-py on error: the undos go out on it first (below).
                        reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
                    except NoScriptError as exc:
                        if not retry:
                            missing.append(call)
                            answered += 1
                            continue
                        reply = exc
                    except ResponseError as exc:  # this call's own error; the connection stays in sync
                        reply = exc
                    answered += 1
                    _settle(call.future, reply)
        except BaseException:
            # Replies are left unread: the connection is never pooled again.
            await _send_undos(conn, batch[answered:])
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)
        return missing


async def _send_undos(conn: AbstractConnection, unanswered: list[_Call]) -> None:
    undos = [call.undo for call in unanswered if call.undo is not None]
    if not undos or not conn.is_connected:
        return
    try:
        await conn.send_packed_command(
            b"".join([_pack(("EVAL", _text(s), len(keys), *keys, *args)) for s, keys, args in undos]),
            check_health=False,
        )
    except Exception:  # best effort: the store also retries these releases in the background
        return


def _text(script: AsyncScript) -> str | bytes:
    text = script.script
    return bytes(text) if isinstance(text, memoryview) else text


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)
