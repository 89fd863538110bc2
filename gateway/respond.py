"""What the gateway sends: refusals, replays, and the wrapped service's answers in the caller's format."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Send

from gateway.call import Exchange
from gateway.catalog import Err
from gateway.errors import GatewayError, NotJson
from gateway.identity import REQUEST_ID as REQUEST_ID_HEADER
from gateway.render import CONTENT_TYPES, as_text, error_body, is_json, parse_json, success_body
from gateway.stores import StoredAnswer

log = logging.getLogger("gateway.respond")

# The service's headers that a rendered answer replaces with its own.
_REPLACED = frozenset({b"content-type", b"content-length", REQUEST_ID_HEADER})
# An answer larger than this is streamed rather than kept for a ClientToken replay.
MAX_STORED_ANSWER = 1_048_576
#: GATEWAY_MAX_ANSWER_BYTES' default: the most of a JSON answer held to be rendered.
MAX_ANSWER_BYTES = 8_388_608


_CONTENT_TYPE_BYTES = {fmt: content_type.encode() for fmt, content_type in CONTENT_TYPES.items()}


def _start(status: int, content_type: str | bytes, length: int, request_id: str,
           extra: list[tuple[bytes, bytes]] | None = None) -> Message:
    headers = [
        (b"content-type", content_type if isinstance(content_type, bytes) else content_type.encode("latin-1")),
        (b"content-length", b"%d" % length),
        (REQUEST_ID_HEADER, request_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    return {"type": "http.response.start", "status": status, "headers": headers}


async def send_error(ctx: Exchange, send: Send, exc: GatewayError) -> None:
    ctx.code, ctx.status = exc.code, exc.status
    await send_error_body(ctx, send, exc.status, exc.code, exc.message,
                          [(k.encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()])


async def send_error_body(ctx: Exchange, send: Send, status: int, code: str, message: str,
                          extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(ctx.format, ctx.request_id, ctx.host_id, code, message)
    await send(_start(status, CONTENT_TYPES[ctx.format], len(body), ctx.request_id, extra))
    await send({"type": "http.response.body", "body": body})


async def send_stored(ctx: Exchange, send: Send, answer: StoredAnswer) -> None:
    ctx.status = answer.status
    await send(_start(answer.status, answer.content_type, len(answer.body), ctx.request_id))
    await send({"type": "http.response.body", "body": answer.body})


def _spliceable(raw: bytes) -> bool:
    # NaN and Infinity (Python's json writes them) are no JSON: such an answer is parsed and re-encoded.
    return (raw[:1] == b"{" and raw.rstrip()[-1:] == b"}" and b"\n" not in raw
            and b'"RequestId"' not in raw and b'"Code"' not in raw and b"NaN" not in raw
            and b"Infinity" not in raw)


def _encoded(start: Message) -> bool:
    return any(name.lower() == b"content-encoding" and value.strip().lower() != b"identity"
               for name, value in start.get("headers", ()))


class Responder:
    """The ``send`` given to the wrapped app for one request; ``started`` once anything went out.

    JSON answers are held until complete, then rendered in the caller's format (`_render` says how).
    Anything else streams through untouched, with the request id header added. With ``keep`` given
    (a call holding a ClientToken: `gateway.admit.Admitted.keep`), the final answer is handed to it.

    A JSON answer larger than ``max_answer`` bytes is not held: the ``send`` that crosses the limit
    raises `GatewayError` (InternalError) into the app, nothing having been sent, and so does every
    later one; ``refused`` tells the middleware to answer it should the app swallow the exception.
    """

    def __init__(self, ctx: Exchange, action: str, send: Send, *,
                 keep: Callable[[StoredAnswer], Awaitable[None]] | None = None,
                 max_answer: int = MAX_ANSWER_BYTES) -> None:
        self.ctx, self.action, self.send, self.keep, self.max_answer = ctx, action, send, keep, max_answer
        self.capture = keep is not None
        self.started = False
        self.refused = False  # the JSON answer outgrew max_answer
        self._held: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._content_type = ""

    async def __call__(self, message: Message) -> None:
        if self.refused:
            raise GatewayError(Err.INTERNAL_ERROR)
        if message["type"] == "http.response.start":
            self.ctx.status = message["status"]
            content_type = b""
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type":
                    content_type = value
                    break
            self._content_type = content_type.decode("latin-1")
            if is_json(content_type):
                self._held = message  # nothing sent yet: a failure before the body can still be answered
                return
            self.started = True
            message = {**message, "headers": [*message.get("headers", []),
                                              (REQUEST_ID_HEADER, self.ctx.request_id.encode())]}
            await self.send(message)
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self._held is None:
            await self._collect(body, more)
            await self.send(message)
            return
        self._size += len(body)
        if self._size > self.max_answer:
            self._refuse()
        if not more:
            await self._render(self._held, b"".join([*self._chunks, body]) if self._chunks else body)
        else:
            self._chunks.append(body)

    def _refuse(self) -> None:
        log.error("request %s: the service's JSON answer is larger than GATEWAY_MAX_ANSWER_BYTES (%d bytes): "
                  "answered InternalError", self.ctx.request_id, self.max_answer)
        self.refused, self._held, self._chunks = True, None, []
        raise GatewayError(Err.INTERNAL_ERROR)

    async def _collect(self, body: bytes, more: bool) -> None:
        if not self.capture:
            return
        self._chunks.append(body)
        self._size += len(body)
        if self._size > MAX_STORED_ANSWER:
            self.capture = False
            self._chunks = []
        elif not more:
            await self._final(StoredAnswer(self.ctx.status, self._content_type, b"".join(self._chunks)))

    async def _final(self, answer: StoredAnswer) -> None:
        # Kept before the last byte is sent: a caller who retries the moment it has the answer
        # must find it stored, not be told LastTokenProcessing.
        if self.keep is not None:
            await self.keep(answer)

    async def _render(self, start: Message, raw: bytes) -> None:
        """The held JSON answer in the caller's format; every body sent parses in that format.

        A success object gains a RequestId and loses any top-level Code; an error object with a Code
        becomes the standard error body. Any other document keeps its status and goes out as JSON,
        or in XML as the ``{Action}Response`` root's members (an object) or its ``Result`` (anything
        else; a success also gains the RequestId). An empty body goes as it came (a 204 has none);
        a body that is not JSON is the service's fault, answered InternalError, unless it has a
        Content-Encoding (an app's GZipMiddleware, an upstream ignoring our Accept-Encoding): that one
        goes as it came, for the caller's client to decode.
        """
        ctx = self.ctx
        status: int = start["status"]
        if ctx.format == "JSON" and 200 <= status < 300 and _spliceable(raw):
            # The common success: a compact JSON object with neither RequestId nor Code. Adding the
            # RequestId in front needs no parse and no re-encoding of the service's answer.
            rest = raw[1:]
            joiner = b"" if rest.lstrip().startswith(b"}") else b","
            await self._send_rendered(start, status, b'{"RequestId":"' + ctx.request_id.encode() + b'"'
                                      + joiner + rest)
            return
        if not raw:
            await self._passthrough(start, raw)
            return
        failure: str | None = None
        try:
            body = self._document(status, parse_json(raw))
        except (NotJson, RecursionError) as exc:  # RecursionError: nested past what the renderer follows
            body, failure = raw, str(exc)
        if failure is None:
            await self._send_rendered(start, status, body)
        elif _encoded(start):
            await self._passthrough(start, raw)
        else:
            log.error("request %s: the service's answer (status %d) is labelled JSON but is not JSON it can "
                      "render (%s): answered InternalError", ctx.request_id, status, failure)
            await send_error(ctx, self.send, GatewayError(Err.INTERNAL_ERROR))
            self.started = True

    def _document(self, status: int, data: Any) -> bytes:
        ctx = self.ctx
        if status >= 400 and isinstance(data, dict) and "Code" in data:
            ctx.code = as_text(data["Code"])
            return error_body(ctx.format, ctx.request_id, ctx.host_id, ctx.code, as_text(data.get("Message")))
        if 200 <= status < 300:
            if isinstance(data, dict):
                data.pop("Code", None)  # some SDKs read a Code in a 200 answer as an error
                if "RequestId" not in data:
                    data = {"RequestId": ctx.request_id, **data}
            elif ctx.format == "XML":
                data = {"RequestId": ctx.request_id, "Result": data}
        elif ctx.format == "XML" and not isinstance(data, dict):
            data = {"Result": data}
        return success_body(ctx.format, self.action, data)

    async def _send_rendered(self, start: Message, status: int, body: bytes) -> None:
        ctx = self.ctx
        self.started = True
        kept = [(k, v) for k, v in start.get("headers", ()) if k.lower() not in _REPLACED]
        if self.capture:
            await self._final(StoredAnswer(status, CONTENT_TYPES[ctx.format], body))
        await self.send(_start(status, _CONTENT_TYPE_BYTES[ctx.format], len(body), ctx.request_id, kept))
        await self.send({"type": "http.response.body", "body": body})

    async def _passthrough(self, start: Message, raw: bytes) -> None:
        self.started = True
        if self.capture:
            await self._final(StoredAnswer(start["status"], self._content_type, raw))
        await self.send({**start, "headers": [*start.get("headers", []),
                                              (REQUEST_ID_HEADER, self.ctx.request_id.encode())]})
        await self.send({"type": "http.response.body", "body": raw})
