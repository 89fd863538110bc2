"""The real service-side parsers, each a server on loopback that the forwarded bytes are replayed to.

Each answers JSON: what it read (a `compare.Reading`). Starlette runs under uvicorn with its defaults
(``proxy_headers`` on, trusting 127.0.0.1: what a service behind the gateway typically runs), aiohttp
under its own low-level server (no routing: every path reaches the handler), urllib's ``parse_qsl`` behind
the raw h11 server of `capture`, and a WSGI app under ``wsgiref.simple_server``. Bodies are read as a
framework reads them: the form body whatever the method, its declared charset honoured.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aiohttp import web
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from tests.support.differential.capture import Captured, RawServer, json_answer
from tests.support.differential.compare import Reading, fold, watched
from tests.support.servers import serve_in_thread

FORM = "application/x-www-form-urlencoded"


def _media(content_type: str) -> tuple[str, str | None]:
    """The media type and the charset parameter (the first one), as frameworks split them."""
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset" and charset is None:
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


def framework_form(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """A form body as a framework honouring the charset reads it (werkzeug, Django: decode, then unquote)."""
    media, charset = _media(content_type)
    if media != FORM or not body:
        return []
    charset = charset or "utf-8"
    return parse_qsl(body.decode(charset), keep_blank_values=True, encoding=charset, errors="replace")


def _headers(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        if watched(name):
            out.setdefault(fold(name), []).append(value)
    return out


# --- Starlette, under uvicorn ------------------------------------------------------------------------

async def starlette_reading(scope: Scope, receive: Receive, parser: str = "starlette") -> Reading:
    request = Request(scope, receive)
    try:
        # request.form() is python-multipart's parser (a test dependency): the real one, not a copy.
        form_items = [(k, str(v)) for k, v in (await request.form()).multi_items()]
        params = [*request.query_params.multi_items(), *form_items]
    except Exception as exc:  # a real service would answer 400: it cannot read what was admitted
        return Reading(parser, error=f"{type(exc).__name__}: {exc}")
    headers = _headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]])
    client = request.client.host if request.client else None
    return Reading(parser, request.url.path, params, headers, client)


async def starlette_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    reading = await starlette_reading(scope, receive)
    payload = json.dumps(reading.to_json()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


# --- aiohttp ------------------------------------------------------------------------------------------

async def _aiohttp_handler(request: web.BaseRequest) -> web.Response:
    try:
        form = await request.post()
        params = [*request.query.items(), *((k, str(v)) for k, v in form.items())]
        headers = _headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.raw_headers])
        reading = Reading("aiohttp", request.path, params, headers)
    except Exception as exc:
        reading = Reading("aiohttp", error=f"{type(exc).__name__}: {exc}")
    return web.json_response(reading.to_json())


@contextmanager
def aiohttp_server() -> Iterator[tuple[str, int]]:
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def start() -> web.ServerRunner:
        runner = web.ServerRunner(web.Server(_aiohttp_handler))
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    runner = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# --- urllib.parse, behind the raw server -------------------------------------------------------------

def urllib_reading(request: Captured) -> Reading:
    target = request.target.decode("latin-1")
    path, _, query = target.partition("?")
    content_type = next((v.decode("latin-1") for n, v in request.headers if n == b"content-type"), "")
    try:
        params = [*parse_qsl(query, keep_blank_values=True), *framework_form(request.body, content_type)]
    except (LookupError, UnicodeDecodeError, ValueError) as exc:
        return Reading("urllib", error=f"{type(exc).__name__}: {exc}")
    headers = _headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers])
    return Reading("urllib", unquote(path), params, headers)


def _urllib_handler(request: Captured) -> tuple[int, bytes]:
    return json_answer(urllib_reading(request).to_json())


# --- WSGI, under wsgiref ------------------------------------------------------------------------------

def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        # PATH_INFO is latin-1 text of the unquoted bytes (PEP 3333); frameworks decode it as UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        params = [*parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True),
                  *framework_form(body, environ.get("CONTENT_TYPE", ""))]
        headers = {fold(key[5:]): [value] for key, value in environ.items()
                   if key.startswith("HTTP_") and watched(key[5:])}
        reading = Reading("wsgi", path, params, headers)
    except Exception as exc:
        reading = Reading("wsgi", error=f"{type(exc).__name__}: {exc}")
    payload = json.dumps(reading.to_json()).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgi_server() -> Iterator[tuple[str, int]]:
    server: WSGIServer = make_server("127.0.0.1", 0, _wsgi_app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- all of them --------------------------------------------------------------------------------------

class Parsers:
    """The four parser servers, up for the whole module; `read` replays one request to each."""

    def __init__(self, addresses: dict[str, tuple[str, int]]) -> None:
        self.addresses = addresses

    def read(self, request: bytes) -> list[Reading]:
        return [self._read_one(name, address, request) for name, address in self.addresses.items()]

    @staticmethod
    def _read_one(name: str, address: tuple[str, int], request: bytes) -> Reading:
        status, body = replay(address, request)
        if status != 200:
            return Reading(name, error=f"answered {status}: {body[:200]!r}")
        try:
            return Reading.from_json(name, json.loads(body))
        except ValueError:
            return Reading(name, error=f"answered 200 with {body[:200]!r}")


@contextmanager
def parser_servers() -> Iterator[Parsers]:
    with ExitStack() as stack:
        starlette_url = stack.enter_context(serve_in_thread(starlette_app))
        host, _, port = starlette_url.split("://", 1)[1].partition(":")
        urllib_server = stack.enter_context(RawServer(_urllib_handler))
        yield Parsers({
            "starlette": (host, int(port)),
            "aiohttp": stack.enter_context(aiohttp_server()),
            "urllib": urllib_server.address,
            "wsgi": stack.enter_context(wsgi_server()),
        })


def replay(address: tuple[str, int], request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send the bytes as they are and read one answer (by its Content-Length: the request may ask to
    keep the connection alive); (0, reason) when none came."""
    data = b""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            while True:
                head, separator, rest = data.partition(b"\r\n\r\n")
                if separator:
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                                   if line.lower().startswith(b"content-length:")), None)
                    if length is not None and len(rest) >= length:
                        return int(head.split(b" ", 2)[1]), rest[:length]
                chunk = sock.recv(262_144)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}".encode()
    head, _, rest = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), rest or head
