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

The package, one concern a module: `gateway.serving.limits` (what is bounded, from the settings),
`gateway.serving.cap` (the connections the cap may close), `gateway.serving.protocol` (the protocol
class: the bounds applied to uvicorn's parser callbacks, and the lingering close).
"""

from __future__ import annotations

import asyncio
import functools
from typing import cast

from gateway.serving.limits import (
    DESCRIPTOR_RESERVE,
    LINGER_BYTES,
    LINGER_TIME,
    LINGER_TIMEOUT,
    TOO_LARGE,
    Limits,
    descriptor_cap,
)
from gateway.serving.protocol import GatewayHttpProtocol

__all__ = [
    "DESCRIPTOR_RESERVE",
    "LINGER_BYTES",
    "LINGER_TIME",
    "LINGER_TIMEOUT",
    "TOO_LARGE",
    "GatewayHttpProtocol",
    "Limits",
    "descriptor_cap",
    "protocol",
]


def protocol(limits: Limits) -> type[asyncio.Protocol]:
    """The ``http`` argument of `uvicorn.run`: `GatewayHttpProtocol` bound to ``limits``.

    A partial rather than a class made here: uvicorn pickles its config to each spawned worker, and a
    partial of a module-level class pickles by reference. uvicorn only calls it (with keywords) and
    looks up ``alpn_protocols`` with a default, hence the cast."""
    return cast("type[asyncio.Protocol]", functools.partial(GatewayHttpProtocol, limits=limits))
