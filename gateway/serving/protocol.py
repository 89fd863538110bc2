"""`GatewayHttpProtocol`: uvicorn's httptools protocol with the bounds of `gateway.serving`.

The subclass leans on these uvicorn internals, each pinned by ``tests/test_serving.py``: the parser
callbacks ``on_headers_complete`` / ``on_message_complete``, ``on_response_complete`` arming
``timeout_keep_alive_task`` exactly when the connection goes idle, ``self.connections`` (the server's
open connections), ``self.loop``, ``self.transport``, ``self.flow``, ``self.pipeline``,
``server_state.default_headers``, ``handle_websocket_upgrade``, and the request cycle's ``transport``
(closed by the cycle when an answer ends the connection), ``response_started`` and ``response_complete``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.serving.cap import waiting
from gateway.serving.limits import TOO_LARGE, Limits

log = logging.getLogger("gateway.serving")


class _AnswerTransport:
    """What a request's cycle writes its answer through: the connection's transport, except that the
    cycle's close (when the answer ends the connection) is the protocol's, which may linger."""

    __slots__ = ("close", "is_closing", "write")

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        # Bound methods, not wrappers: the cycle's writes cost what they did.
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.close = close


# A connection waiting for its head or its body is listed in the cap's table for that wait (the cap
# closes the longest waiting first) and has a timer that closes it when the wait is too long.
def _arm(loop: asyncio.AbstractEventLoop, table: dict[Any, None], connection: asyncio.Protocol, delay: float,
         late: Callable[[], None]) -> asyncio.TimerHandle:
    table[connection] = None
    return loop.call_later(delay, late)


def _disarm(table: dict[Any, None], connection: asyncio.Protocol, timer: asyncio.TimerHandle | None) -> None:
    table.pop(connection, None)
    if timer is not None:
        timer.cancel()


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, limits: Limits) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._waiting = waiting(server_state)
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
        self._head_timer = _arm(self.loop, self._waiting.order, self, self.limits.header_timeout, self._close)

    def _stop_waiting(self) -> None:
        _disarm(self._waiting.order, self, self._head_timer)
        self._head_timer = None

    def _await_body(self) -> None:
        self._body_timer = _arm(self.loop, self._waiting.bodies, self, self.limits.body_timeout, self._body_late)

    def _stop_body(self) -> None:
        _disarm(self._waiting.bodies, self, self._body_timer)
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
