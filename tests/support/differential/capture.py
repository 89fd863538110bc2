"""A raw HTTP/1.1 server on loopback (asyncio, framed by h11) that keeps the exact bytes of each request.

The proxy's upstream must be read byte for byte (aiohttp or uvicorn would normalise what is under
test), so the bytes of each request are recorded as they arrived, h11 only telling where one ends.
The same server answers as the "victim" (a second host the gateway must never reach) and, with
another handler, as the urllib parser of `parsers`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import h11


@dataclass(frozen=True)
class Captured:
    raw: bytes  # the request as it arrived: head and body, framing included
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased by h11, in order
    body: bytes
    error: str | None = None  # h11 could not frame it


Handler = Callable[[Captured], tuple[int, bytes]]


def answer_empty_json(request: Captured) -> tuple[int, bytes]:
    return 200, b"{}"


class RawServer:
    """``handler`` answers each request (status, JSON body); ``requests`` keeps every one received."""

    def __init__(self, handler: Handler = answer_empty_json) -> None:
        self.handler = handler
        self.requests: list[Captured] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> RawServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("raw server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        # Connections still open are ended inside the loop first: left pending, their coroutines would
        # be torn down later by the garbage collector, outside any loop (an "exception ignored" warning).
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 24)
        raw = bytearray()
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    self.requests.append(Captured(bytes(raw), b"", b"", (), b"", error=str(exc)))
                    return
                if event is h11.NEED_DATA:
                    data = await reader.read(262_144)
                    raw += data
                    conn.receive_data(data)
                    if not data:
                        return
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    captured = Captured(bytes(raw), request.method, request.target,
                                        tuple((n, v) for n, v in request.headers.raw_items()), bytes(body))
                    # Bytes after this message belong to the next one: h11 holds them, and so do we.
                    leftover = conn.trailing_data[0]
                    if leftover:
                        captured = replace(captured, raw=captured.raw[:-len(leftover)])
                    self.requests.append(captured)
                    status, payload = self.handler(captured)
                    out = conn.send(h11.Response(status_code=status, headers=[
                        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]))
                    out += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
                    writer.write(out)
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                    raw, request, body = bytearray(leftover), None, bytearray()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.LocalProtocolError):
            return
        finally:
            writer.close()


def json_answer(data: object) -> tuple[int, bytes]:
    return 200, json.dumps(data).encode()
