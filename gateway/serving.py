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
  at a time is closed all the same. The body is not covered (the application reads it).
* **A head size bound** (``GATEWAY_MAX_HEADER_BYTES``, request line and headers, like Go's
  ``MaxHeaderBytes``): once that many bytes of a head are read without its end, the caller gets
  ``431`` (plain text, from the server, like uvicorn's own ``400``) and the connection is closed;
  the parser is never handed more.
* **A connection cap** (``GATEWAY_MAX_CONNECTIONS``, by default the descriptor limit less a reserve):
  a connection that takes the count past it closes the connection that has waited longest for a
  request head (itself, when every other one is busy), as nginx drains its idle connections when it
  runs out. The process then never reaches EMFILE through callers' connections alone, and a caller
  arriving while idle connections fill the worker is served at once instead of dropped.

The subclass leans on these uvicorn internals, each pinned by ``tests/test_serving.py``: the parser
callbacks ``on_headers_complete`` / ``on_message_complete``, ``on_response_complete`` arming
``timeout_keep_alive_task`` exactly when the connection goes idle, ``self.connections`` (the server's
open connections), ``self.loop``, ``self.transport`` and ``server_state.default_headers``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import time
import weakref
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


@dataclass(frozen=True, slots=True)
class Limits:
    """What `GatewayHttpProtocol` bounds; ``max_connections`` None: no cap."""

    header_timeout: float
    max_header_bytes: int
    max_connections: int | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        cap = settings.max_connections if settings.max_connections is not None else descriptor_cap()
        return cls(settings.header_timeout, settings.max_header_bytes, cap)


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
    """One server's connections waiting for a request head, the longest-waiting first."""

    def __init__(self) -> None:
        self.order: dict[GatewayHttpProtocol, None] = {}
        self.warned_at = -CAP_WARNING_INTERVAL

    def warn(self, cap: int) -> None:
        now = time.monotonic()
        if now - self.warned_at >= CAP_WARNING_INTERVAL:
            self.warned_at = now
            log.warning("%d open connections (GATEWAY_MAX_CONNECTIONS): closing the connections that have "
                        "waited longest for a request head", cap)


_WAITING: weakref.WeakKeyDictionary[ServerState, _Waiting] = weakref.WeakKeyDictionary()


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, limits: Limits) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._waiting = _WAITING.setdefault(server_state, _Waiting())
        self._head_bytes: int | None = 0  # bytes of the head being read; None while a body is
        self._heads = 0  # heads read whole on this connection
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        cap = self.limits.max_connections
        if cap is not None and len(self.connections) > cap:
            # One closed for each one opened: connections closed but not yet lost still count.
            next(iter(self._waiting.order))._close()  # never empty: this one waits
            self._waiting.warn(cap)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
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

    def on_message_complete(self) -> None:
        # What follows in the stream is the next head. Counting restarts with the next read: bytes of
        # the same read after this point go uncounted, a slack of one read at most.
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # armed only when nothing is pipelined: now idle
            self._await_head()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting.order[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._close)

    def _stop_waiting(self) -> None:
        self._waiting.order.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _close(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        log.warning("request head over %d bytes (GATEWAY_MAX_HEADER_BYTES): 431", self.limits.max_header_bytes)
        if self.cycle is None or self.cycle.response_complete:  # not in the middle of another answer
            content = [STATUS_LINE[431]]
            for name, value in self.server_state.default_headers:
                content += [name, b": ", value, b"\r\n"]
            content += [b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(TOO_LARGE), b"connection: close\r\n\r\n", TOO_LARGE]
            self.transport.write(b"".join(content))
        self._close()
