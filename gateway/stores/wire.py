"""One Redis connection for the store's script calls: bytes out, replies in order, and nothing more.

redis-py opens it, so the URL's every option holds as for its other connections (TLS, ``unix://``,
AUTH, the database, the connect timeout): `open_wire` makes a connection of the client's own pool class
and settings, lets it connect and shake hands, and then takes its transport over with a `Wire`, an
asyncio Protocol that feeds what arrives to `hiredis.Reader` and hands each reply to the item written
for it, first in, first out. Why not redis-py for the calls too: each awaited command costs a pooled
connection taken and given back, a stream write, a stream read and their timeouts, about 80 µs of
client CPU at one call in flight against 50 µs for the whole round trip here, of which the ``send``
syscall itself is most (bench/redis_clients.py, README "Performance").

The connection speaks RESP2 (no push messages, whatever the client's own connections negotiated).
What the replies mean, timeouts and recovery belong to the caller (`gateway.stores.pipeline`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Item = TypeVar("Item")


def reply_error(error: hiredis.ReplyError) -> ResponseError:
    """The redis-py exception for an error reply, as its own parser classes the ones the store meets."""
    message = str(error)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class Wire(asyncio.Protocol, Generic[Item]):
    """Replies to ``sent``, in order: ``on_reply(item, reply)`` for each (an error reply as its redis-py
    exception); ``on_lost(items, exc)`` once, with the items still awaiting a reply, when the connection
    ends or its stream cannot be parsed."""

    def __init__(self, on_reply: Callable[[Item, Any], None], on_lost: Callable[[list[Item], Exception], None]) -> None:
        self._reader = hiredis.Reader()
        self._on_reply, self._on_lost = on_reply, on_lost
        self._transport: asyncio.Transport | None = None
        self._streams: tuple[object, ...] = ()  # redis-py's, kept alive: collecting its writer closes the transport
        self.sent: deque[Item] = deque()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def write(self, data: bytes, items: list[Item]) -> None:
        """``data`` holds one command per item, in their order."""
        if self._transport is None:
            raise RedisConnectionError("the store's connection is closed")
        self._transport.write(data)
        self.sent.extend(items)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        sent, on_reply = self.sent, self._on_reply
        try:
            reply = reader.gets()
            while reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    reply = reply_error(reply)
                on_reply(sent.popleft(), reply)
                if self._transport is None:  # closed by a reply's callback: the rest is nobody's
                    return
                reply = reader.gets()
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nothing was sent for
            self.close(RedisConnectionError(f"the store's connection is out of sync: {exc!r}"))

    def eof_received(self) -> None:
        return None  # the transport closes, and connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(RedisConnectionError(f"Connection closed by server: {exc!r}" if exc else "Connection closed"))

    def close(self, exc: Exception) -> None:
        """Close (what was written still goes out first) and fail whatever awaits a reply."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self.sent:
            items = list(self.sent)
            self.sent.clear()
            self._on_lost(items, exc)


async def open_wire(client: Redis, wire: Wire[Any]) -> None:
    """Connect ``wire`` to ``client``'s server as redis-py connects (see the module docstring)."""
    pool = client.connection_pool
    conn = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
    await conn.connect()  # type: ignore[no-untyped-call]
    # redis-py's stream pair wraps the transport; after the handshake nothing is buffered in it, and
    # the connection object is done with: detached here so that collecting it closes nothing. The
    # wire keeps the streams, whose writer closes the transport when collected.
    writer, reader = conn._writer, conn._reader
    if writer is None or reader is None or len(reader._buffer):  # type: ignore[attr-defined]
        await conn.disconnect()
        raise RedisConnectionError("the store's connection was not ready after its handshake")
    conn._writer = conn._reader = None
    transport = writer.transport
    transport.set_protocol(wire)
    wire._streams = (reader, writer)
    wire.connection_made(transport)
