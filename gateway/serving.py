"""The HTTP/1.1 protocol `gateway serve` runs: uvicorn's httptools protocol, with the bounds it lacks.

uvicorn (0.54, httptools) closes no connection that has not sent a whole request head, buffers a head
of any size (httptools joins the pieces of a header with ``+=``: the cost grows with the square of its
size), and accepts connections until the process runs out of descriptors. There, under uvloop, libuv
sheds load its own way: on EMFILE it closes its spare descriptor, then accepts and at once closes every
connection waiting in the backlog (``uv__emfile_trick``, libuv ``src/unix/stream.c``), so each new
caller sees EOF without an answer for as long as idle connections hold the descriptors.

`GatewayHttpProtocol` adds, per worker process:

* **A header timeout** (``GATEWAY_HEADER_TIMEOUT``): a connection whose request head is not whole
  that many seconds after it opened, or after the previous answer on it ended, is closed. It bounds the
  whole head, not the gap between two bytes, like Go's ``ReadHeaderTimeout``: a head trickled a byte
  at a time is closed all the same.
* **A body timeout** (``GATEWAY_BODY_TIMEOUT``): a request body not whole that many seconds after its
  head ended closes the connection (an application waiting for it gets ``http.disconnect``). It too
  bounds the whole body, not a gap. Time spent while the body cannot move through no fault of the
  caller's (an answer being written on the connection, a pipelined request waiting its turn) extends it.
* **A head size bound** (``GATEWAY_MAX_HEADER_BYTES``, request line and headers, like Go's
  ``MaxHeaderBytes``): once that many bytes of a head are read without its end, the caller gets
  ``431`` (plain text, from the server, like uvicorn's own ``400``) and the connection is closed;
  the parser is never handed more.
* **A connection cap** (``GATEWAY_MAX_CONNECTIONS``, by default the descriptor limit less a reserve):
  a connection that takes the count past it closes another, as nginx drains its idle connections when
  it runs out: the one that has waited longest for a request head (or lingers after its last answer),
  else the one that has waited longest for the rest of a request body, else itself. A connection whose
  answer is being written is never closed for it. The process then never reaches EMFILE through
  callers' connections alone, and a caller arriving while idle or stalled connections fill the worker
  is served at once instead of dropped.
* **A lingering close**, as nginx's ``lingering_close`` and Go's ``closeWriteAndWait``: when an answer
  ends the connection while its request body is still arriving (a body refused for its size before it
  was read, an answer given without reading it), closing at once with unread bytes in the receive
  buffer makes the kernel send a reset, and the caller's kernel then drops the answer it had not read
  yet. Instead the answer is sent, the write side shut down (the caller reads the answer, then EOF),
  and what still arrives is read and discarded until the caller closes, for at most ``LINGER_TIME``
  seconds in all (nginx ``lingering_time``), ``LINGER_TIMEOUT`` seconds without a byte (nginx
  ``lingering_timeout``) or ``LINGER_BYTES`` bytes, whichever comes first; then the connection is
  closed. The cap closes lingering connections first.

The subclass leans on these uvicorn internals, each pinned by ``tests/test_serving.py``: the parser
callbacks ``on_headers_complete`` / ``on_message_complete``, ``on_response_complete`` arming
``timeout_keep_alive_task`` exactly when the connection goes idle, ``self.connections`` (the server's
open connections), ``self.loop``, ``self.transport``, ``self.flow``, ``self.pipeline``,
``server_state.default_headers``, ``handle_websocket_upgrade``, and the request cycle's ``transport``
(closed by the cycle when an answer ends the connection), ``response_started`` and ``response_complete``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.settings import Settings

log = logging.getLogger("gateway.serving")

#: Descriptors the default cap leaves to everything but callers' connections (the listening socket,
#: the event loop, logs, upstream and Redis connections); a quarter of a limit under 512.
DESCRIPTOR_RESERVE = 128
CAP_WARNING_INTERVAL = 60.0  # seconds: the cap is logged once a minute at most, not once a connection
TOO_LARGE = b"Request header fields too large."
LINGER_TIME = 30.0  # seconds a lingering close discards a body in all (nginx's lingering_time)
LINGER_TIMEOUT = 5.0  # seconds it waits for the next byte (nginx's lingering_timeout)
LINGER_BYTES = 16 * 1024 * 1024  # bytes it discards at most: past them the caller is not reading answers


@dataclass(frozen=True, slots=True)
class Limits:
    """What `GatewayHttpProtocol` bounds; ``max_connections`` None: no cap. The lingering close's
    bounds are constants (module docstring), fields only so that tests can shorten them."""

    header_timeout: float
    max_header_bytes: int
    max_connections: int | None
    body_timeout: float = 30.0
    linger_time: float = LINGER_TIME
    linger_timeout: float = LINGER_TIMEOUT
    linger_bytes: int = LINGER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        cap = settings.max_connections if settings.max_connections is not None else descriptor_cap()
        return cls(settings.header_timeout, settings.max_header_bytes, cap, settings.body_timeout)


def descriptor_cap() -> int | None:
    """The default cap: this process's soft RLIMIT_NOFILE (workers inherit it) less the reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - min(soft // 4, DESCRIPTOR_RESERVE))


def protocol(limits: Limits) -> type[asyncio.Protocol]:
    """The ``http`` argument of `uvicorn.run`: `GatewayHttpProtocol` bound to ``limits``.

    A partial rather than a class made here: uvicorn pickles its config to each spawned worker, and a
    partial of a module-level class pickles by reference. uvicorn only calls it (with keywords) and
    looks up ``alpn_protocols`` with a default, hence the cast."""
    return cast("type[asyncio.Protocol]", functools.partial(GatewayHttpProtocol, limits=limits))


class _Waiting:
    """One server's connections the cap may close, each kind the longest-waiting first: those waiting
    for a request head or lingering after their last answer, and those waiting for a request body."""

    def __init__(self) -> None:
        self.order: dict[GatewayHttpProtocol, None] = {}  # waiting for a head, or lingering
        self.bodies: dict[GatewayHttpProtocol, None] = {}
        self.warned_at = -CAP_WARNING_INTERVAL

    def victim(self, newcomer: GatewayHttpProtocol) -> GatewayHttpProtocol:
        for idle in self.order:
            if idle is not newcomer:
                return idle
        for stalled in self.bodies:
            if not stalled.answering:
                return stalled
        return newcomer

    def warn(self, cap: int) -> None:
        now = time.monotonic()
        if now - self.warned_at >= CAP_WARNING_INTERVAL:
            self.warned_at = now
            log.warning("%d open connections (GATEWAY_MAX_CONNECTIONS): closing the connections that have "
                        "waited longest for a request head, then for a request body", cap)


_WAITING: weakref.WeakKeyDictionary[ServerState, _Waiting] = weakref.WeakKeyDictionary()


class _AnswerTransport:
    """What a request's cycle writes its answer through: the connection's transport, except that the
    cycle's close (when the answer ends the connection) is the protocol's, which may linger."""

    __slots__ = ("close", "is_closing", "write")

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        # Bound methods, not wrappers: the cycle's writes cost what they did.
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.close = close


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, limits: Limits) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._waiting = _WAITING.setdefault(server_state, _Waiting())
        self._head_bytes: int | None = 0  # bytes of the head being read; None while a body is
        self._heads = 0  # heads read whole on this connection
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None  # armed while a body is unfinished
        self._answer_transport: asyncio.Transport | None = None
        # The lingering close, once begun: discarding what arrives until these run out.
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._linger_until = 0.0
        self._linger_read_at = 0.0
        self._linger_left = 0

    @property
    def answering(self) -> bool:
        """An answer is being written on this connection: the cap leaves it alone."""
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._answer_transport = cast("asyncio.Transport", _AnswerTransport(transport, self._close_after_answer))
        self._await_head()
        cap = self.limits.max_connections
        if cap is not None and len(self.connections) > cap:
            # One closed for each one opened: connections closed but not yet lost still count.
            self._waiting.victim(self)._close()
            self._waiting.warn(cap)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._discard(len(data))
            return
        while self._head_bytes is not None and not self.transport.is_closing():
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                break
            # Only the allowance goes to the parser; if the head has not ended within it, it is refused.
            heads = self._heads
            if room:
                self._head_bytes += room
                super().data_received(data[:room])
                if self.transport.is_closing():  # uvicorn refused the framing (400)
                    return
            if self._heads == heads:
                self._refuse_head()
                return
            data = data[room:]  # past that head: its body, or the next head, counted afresh
        if data and not self.transport.is_closing():
            super().data_received(data)
        # Checked once a read, not once a head: a body that came with its head costs no timer.
        if self._head_bytes is None and self._body_timer is None and not self.transport.is_closing():
            self._await_body()

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._head_bytes = None
        self._stop_waiting()
        super().on_headers_complete()
        if self.url[:1] != b"/" and "raw_path" in self.scope:
            # An absolute-form target ("http://host/x"): uvicorn gives the app its path alone, and
            # gateway.target, which admits origin-form only, must see what was sent. The app's task
            # has only been created, not run: it reads the scope after this.
            self.scope["raw_path"] = self.url.partition(b"?")[0]
        if self.cycle is not None:
            self.cycle.transport = cast("asyncio.Transport", self._answer_transport)

    def on_message_complete(self) -> None:
        # What follows in the stream is the next head. Counting restarts with the next read: bytes of
        # the same read after this point go uncounted, a slack of one read at most.
        self._head_bytes = 0
        if self._body_timer is not None:
            self._stop_body()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._head_bytes = 0  # the connection is the websocket protocol's now: no body of ours to time
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        if self._lingering:  # that answer ended the connection: only its lingering close is left
            self.server_state.total_requests += 1
            return
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # armed only when nothing is pipelined: now idle
            self._await_head()

    def shutdown(self) -> None:
        if self._lingering:  # nothing left to answer: a server shutting down does not wait for it
            self._close()
        else:
            super().shutdown()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting.order[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._close)

    def _stop_waiting(self) -> None:
        self._waiting.order.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _await_body(self) -> None:
        self._waiting.bodies[self] = None
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def _stop_body(self) -> None:
        self._waiting.bodies.pop(self, None)
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_late(self) -> None:
        self._body_timer = None
        if self.pipeline or self.answering:
            # The body cannot move while an answer is written on this connection (uvicorn stops
            # reading a pipelined request until its turn): not the caller's delay, look again later.
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)
            return
        log.info("request body not whole %g s after its head (GATEWAY_BODY_TIMEOUT): connection closed",
                 self.limits.body_timeout)
        self._close()

    def _stop_timers(self) -> None:
        self._stop_waiting()
        self._stop_body()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _close(self) -> None:
        self._stop_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _close_after_answer(self) -> None:
        if self._head_bytes is None and not self.transport.is_closing():
            self._linger()  # the body is still arriving: closing now would reset the connection
        else:
            self._close()

    def _linger(self) -> None:
        self._stop_timers()
        self._lingering = True
        now = self.loop.time()
        self._linger_until = now + self.limits.linger_time
        self._linger_read_at = now
        self._linger_left = self.limits.linger_bytes
        self._waiting.order[self] = None  # nothing more to answer: the first the cap closes
        if self.transport.can_write_eof():
            self.transport.write_eof()  # after the answer: the caller reads it, then EOF
        self.flow.resume_reading()  # uvicorn paused reading a body the application did not take
        self._linger_timer = self.loop.call_later(self.limits.linger_timeout, self._linger_check)

    def _discard(self, size: int) -> None:
        self._linger_read_at = self.loop.time()
        self._linger_left -= size
        if self._linger_left < 0:
            self._close()

    def _linger_check(self) -> None:
        # One timer for both bounds, re-armed from here rather than once a read.
        self._linger_timer = None
        quiet_until = self._linger_read_at + self.limits.linger_timeout
        if self.loop.time() >= min(quiet_until, self._linger_until):
            self._close()
        else:
            self._linger_timer = self.loop.call_at(min(quiet_until, self._linger_until), self._linger_check)

    def _refuse_head(self) -> None:
        log.warning("request head over %d bytes (GATEWAY_MAX_HEADER_BYTES): 431", self.limits.max_header_bytes)
        if self.cycle is None or self.cycle.response_complete:  # not in the middle of another answer
            content = [STATUS_LINE[431]]
            for name, value in self.server_state.default_headers:
                content += [name, b": ", value, b"\r\n"]
            content += [b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(TOO_LARGE), b"connection: close\r\n\r\n", TOO_LARGE]
            self.transport.write(b"".join(content))
            self._linger()  # the rest of the head may be arriving: the 431 must not be reset away
        else:
            self._close()
