"""The wire: one HTTP/1.1 request written byte for byte, and the answer read back.

`RawRequest` is written by `exchange` on a socket of its own (``Connection: close``): httpx would
normalise exactly what is being fuzzed (escapes, header case, framing). `RawAnswer` is what came back,
or None when nothing did. Also the raw client of the abuse, fault, secret, serving and soak runs.
"""

from __future__ import annotations

import contextlib
import json
import socket
import string
import time
from dataclasses import dataclass
from typing import Any

FORM = b"application/x-www-form-urlencoded"
# Headers that frame the message rather than carry meaning: never mutated (the body would no longer
# match them and the exchange would only wait), always written by `RawRequest.wire`.
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
TCHAR = frozenset((string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode())


@dataclass(frozen=True)
class RawRequest:
    """One HTTP/1.1 request as bytes. ``chunked`` sends the body with Transfer-Encoding: chunked;
    ``length`` overrides the Content-Length value (same number, other spelling: leading zeros)."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    chunked: bool = False
    length: bytes | None = None

    def head(self) -> bytes:
        """The request line and the headers, the blank line included: what GATEWAY_MAX_HEADER_BYTES bounds."""
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in self.headers]
        if self.chunked:
            lines.append(b"transfer-encoding: chunked")
        elif self.body or self.length is not None or self.method == b"POST":
            lines.append(b"content-length: " + (self.length or str(len(self.body)).encode()))
        lines.append(b"connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def wire(self) -> bytes:
        head = self.head()
        if not self.chunked:
            return head + self.body
        chunks = [self.body[i:i + 65_536] for i in range(0, len(self.body), 65_536)]
        return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    def short(self, limit: int = 300) -> str:
        shown = repr(self.wire()[:limit])
        return shown + (f"... ({len(self.wire())} bytes)" if len(self.wire()) > limit else "")


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    seconds: float
    truncated: bool = False  # fewer body bytes than Content-Length: the connection was cut

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answer(raw: bytes, *, head: bool = False, seconds: float = 0.0) -> RawAnswer | None:
    """The first answer in ``raw`` (None if its head is incomplete); the body as Content-Length says."""
    top, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        return None
    status_line, *lines = top.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawAnswer(int(parts[1]), headers, b"" if head else rest[:length], seconds,
                     truncated=not head and len(rest) < length)


def exchange(address: tuple[str, int], request: RawRequest | bytes, *, timeout: float = 10.0) -> RawAnswer | None:
    """Send ``request`` on a new connection and read until the server closes it; None: no answer."""
    data = request.wire() if isinstance(request, RawRequest) else request
    head = isinstance(request, RawRequest) and request.method == b"HEAD"
    began = time.monotonic()
    chunks: list[bytes] = []
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the server may answer and close before reading it all
                sock.sendall(data)
            while chunk := sock.recv(262_144):
                chunks.append(chunk)
    except OSError:
        pass  # reset after a partial answer: judge what arrived
    return parse_answer(b"".join(chunks), head=head, seconds=time.monotonic() - began)


def address_of(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rstrip("/").partition(":")
    return host, int(port)
