"""The reverse proxy `gateway serve` runs in front of ``GATEWAY_UPSTREAM_URL`` (CONTRACT §1, §3).

`ProxyApp` is the ASGI app `GatewayMiddleware` wraps. Every request it is given (the middleware
has admitted it) goes to the upstream with its method, raw path and query, body and end-to-end
headers, the identity headers the middleware set included. The upstream's status, headers and body
come back as ASGI messages; the middleware's Responder renders JSON answers in the caller's format.
An upstream that cannot be reached, or does not answer within the read timeout, is
``ServiceUnavailable``, raised before the answer starts so that the middleware can render it.

The client is aiohttp, one pooled session per worker process: measured at about ten times
httpx.AsyncClient's requests/s under 32 concurrent connections (README, "Decided by measurement";
encode/httpx#3215).
"""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn
from urllib.parse import urlsplit

try:
    import aiohttp
    from yarl import URL
except ImportError as exc:  # pragma: no cover - the optional extra is missing
    raise ImportError("GATEWAY_UPSTREAM_URL needs aiohttp: pip install 'acs-gateway[proxy]'") from exc

from starlette.types import Message, Receive, Scope, Send

from gateway.catalog import Err
from gateway.errors import ClientDisconnected, GatewayError, SettingsError
from gateway.forwarded import ClientAddress, Headers, forwarded_headers
from gateway.identity import REQUEST_ID, client_headers, is_owned
from gateway.parse import read_body
from gateway.render import is_json
from gateway.settings import Settings, http_url

log = logging.getLogger("gateway.proxy")

#: Meaningful for one connection only (RFC 9110 §7.6.1), never forwarded; ``proxy-*`` neither.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"})
#: Request headers the proxy writes itself, or drops: the body is already in hand, so there is
#: nothing to ``expect: 100-continue`` for.
REWRITTEN = frozenset({b"host", b"content-length", b"accept-encoding", b"expect"})
_REQUEST_DROPPED = HOP_BY_HOP | REWRITTEN
#: Headers the gateway checked or wrote, which a client's ``Connection`` must not strip from what the
#: service reads (besides the gateway-owned family, `gateway.identity.is_owned`, and ``x-acs-*``).
CHECKED = frozenset({b"authorization", b"content-type", b"content-encoding"})
#: Upstream answer headers not relayed: uvicorn writes its own date and server (two of each
#: otherwise, as nginx avoids too), and the gateway's request id is the one the caller gets.
NOT_RELAYED = frozenset({b"date", b"server", REQUEST_ID})
#: Everything that means "the upstream cannot be reached or did not answer in time".
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
#: Connections per worker to the upstream; waiting longer than the connect timeout for one of them
#: is ServiceUnavailable, like an upstream that does not accept.
POOL_SIZE = 256
#: Below the 5 s after which uvicorn (a common upstream) drops an idle connection: a POST sent on a
#: connection the upstream is closing cannot be retried safely.
KEEPALIVE_SECONDS = 4.0


def _dropped(raw: list[tuple[bytes, bytes]], extra: frozenset[bytes]) -> frozenset[bytes]:
    # A Connection header may name more headers that are for this hop only.
    named = {token.strip().lower() for name, value in raw if name.lower() == b"connection"
             for token in value.split(b",")}
    return HOP_BY_HOP | extra | named


def _request_dropped(raw: Headers) -> frozenset[bytes]:
    # RFC 9110 lets Connection name headers for this hop only; never one the checks read or the
    # gateway wrote, or a client could make the service see a request other than the one checked.
    named = {token.strip().lower() for name, value in raw if name.lower() == b"connection"
             for token in value.split(b",")}
    if named <= _REQUEST_DROPPED:  # "keep-alive", the common case
        return _REQUEST_DROPPED
    return _REQUEST_DROPPED.union(token for token in named if not _end_to_end(token))


def _end_to_end(name: bytes) -> bool:
    return name in CHECKED or name.startswith(b"x-acs-") or is_owned(name)


def _forwardable(name: bytes, dropped: frozenset[bytes]) -> bool:
    lowered = name.lower()
    return lowered not in dropped and not lowered.startswith(b"proxy-")


def _text(value: bytes) -> str:
    # aiohttp writes header values UTF-8 encoded: the gateway's identity headers are UTF-8, a
    # client's header is usually ASCII; anything else is carried as latin-1 characters.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class ProxyApp:
    """Forwards every HTTP request to ``settings.upstream_url`` and relays the answer."""

    def __init__(self, settings: Settings) -> None:
        # Settings built in code (not from the environment) have not been through the variable's parser.
        try:
            upstream = http_url(settings.upstream_url or "")
        except ValueError as exc:
            raise SettingsError(f"GATEWAY_UPSTREAM_URL={settings.upstream_url!r}: {exc}") from None
        parts = urlsplit(upstream)
        # The upstream's userinfo is not used (nor ever taken from a request): only scheme and authority.
        netloc = parts.netloc.rpartition("@")[2]
        self.base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self.host = netloc
        self.origin = URL.build(scheme=parts.scheme, authority=netloc, encoded=True)
        self.prefix = parts.path.rstrip("/")
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.upstream_connect_timeout,  # a free pooled connection, or a new one
            sock_connect=settings.upstream_connect_timeout,
            sock_read=settings.upstream_read_timeout,  # the answer, and then each of its chunks
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets would bypass every check of the chain
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        call = scope.get("gateway")
        # The middleware has read the body to check it: forward that object, not a second copy.
        try:
            body: bytes = call.body if call is not None else await read_body(receive)
        except ClientDisconnected:
            return  # nobody to answer
        request_id = call.request_id if call is not None else "-"
        try:
            response = await self.session().request(
                scope["method"], self._url(scope), headers=self._headers(scope),
                data=body or None, allow_redirects=False,
            )
        except UPSTREAM_ERRORS as exc:
            self._unavailable(request_id, exc)
        try:
            await self._relay(response, receive, send, request_id)
        finally:
            response.release()

    def session(self) -> aiohttp.ClientSession:
        """The pooled client of the running loop (one per uvicorn worker: each is its own process)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._loop, self._session = loop, aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=self.timeout,
                auto_decompress=False,  # bodies are relayed as they came, with their Content-Encoding
                cookie_jar=aiohttp.DummyCookieJar(),  # one caller's cookies must never reach another's call
                skip_auto_headers=("User-Agent", "Accept", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _url(self, scope: Scope) -> URL:
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        origin = self.origin
        if not path.startswith("/"):  # gateway.target refuses these first; never joined to the authority
            raise GatewayError(Err.INTERNAL_ERROR)
        # Built from parts, never by joining strings: nothing in the target can become the authority.
        # encoded=True: the path and query go out byte for byte as received (the signature covers them).
        url = URL.build(scheme=origin.scheme, authority=origin.raw_authority, path=self.prefix + path,
                        query_string=scope.get("query_string", b"").decode("latin-1"), encoded=True)
        if url.raw_authority != origin.raw_authority:
            raise GatewayError(Err.INTERNAL_ERROR)
        return url

    def _headers(self, scope: Scope) -> list[tuple[str, str]]:
        raw: Headers = scope["headers"]
        if scope.get("gateway") is None:
            # Not behind GatewayMiddleware, which has already replaced the headers the gateway owns.
            host = next((value for name, value in raw if name == b"host"), None)
            raw = client_headers(raw) + forwarded_headers(self.client_address.of(scope),
                                                          scope.get("scheme", "http"), host)
        dropped = _request_dropped(raw)
        headers = [(name.decode("latin-1"), _text(value))
                   for name, value in raw if _forwardable(name, dropped)]
        headers += [
            ("host", self.host),
            # The Responder re-renders JSON answers, so they must come back uncompressed.
            ("accept-encoding", "identity"),
        ]
        return headers

    async def _relay(self, response: aiohttp.ClientResponse, receive: Receive, send: Send,
                     request_id: str) -> None:
        raw = list(response.raw_headers)
        dropped = _dropped(raw, NOT_RELAYED)
        start: Message = {"type": "http.response.start", "status": response.status,
                          "headers": [(name, value) for name, value in raw if _forwardable(name, dropped)]}
        content_type = next((value for name, value in raw if name.lower() == b"content-type"), b"")
        # The middleware's Responder holds a JSON answer until it is complete, refusing it past
        # GATEWAY_MAX_ANSWER_BYTES (its send raises, which stops this loop): it is streamed all the same,
        # never read whole here. Nothing has gone out while it is held, so an upstream failing
        # mid-body is still a clean ServiceUnavailable.
        held = is_json(content_type)
        await send(start)
        gone = asyncio.ensure_future(_disconnected(receive))
        failed: BaseException | None = None
        try:
            async for chunk in response.content.iter_any():
                if gone.done():
                    return  # the caller left: stop reading the upstream
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except UPSTREAM_ERRORS as exc:
            failed = exc
        finally:
            gone.cancel()
        if failed is None:
            return
        if held:
            self._unavailable(request_id, failed)
        # Too late for an error answer: the response stays incomplete and uvicorn closes it.
        log.warning("request %s: upstream failed mid-answer: %s", request_id, type(failed).__name__)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _unavailable(self, request_id: str, exc: BaseException) -> NoReturn:
        # The class names the failure; the message is left out, as it could carry the query.
        detail = str(exc) if isinstance(exc, aiohttp.ClientConnectorError) else type(exc).__name__
        log.warning("request %s: upstream %s unavailable: %s", request_id, self.base, detail)
        raise GatewayError(Err.SERVICE_UNAVAILABLE) from None
