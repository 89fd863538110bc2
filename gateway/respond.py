"""What the gateway sends: refusals, replays, and the wrapped service's answers in the caller's format."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from starlette.types import Message, Send

from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.render import CONTENT_TYPES, error_body, success_body
from gateway.stores import StoredAnswer

REQUEST_ID_HEADER = b"x-acs-request-id"
# The service's headers that a rendered answer replaces with its own.
_REPLACED = frozenset({b"content-type", b"content-length", REQUEST_ID_HEADER})
# An answer larger than this is streamed rather than kept for a ClientToken replay.
MAX_STORED_ANSWER = 1_048_576


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


async def send_error(ctx: RequestContext, send: Send, exc: GatewayError) -> None:
    ctx.code, ctx.status = exc.code, exc.status
    await send_error_body(ctx, send, exc.status, exc.code, exc.message,
                          [(k.encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()])


async def send_error_body(ctx: RequestContext, send: Send, status: int, code: str, message: str,
                          extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(ctx.format, ctx.request_id, ctx.host_id, code, message)
    await send(_start(status, CONTENT_TYPES[ctx.format], len(body), ctx.request_id, extra))
    await send({"type": "http.response.body", "body": body})


async def send_stored(ctx: RequestContext, send: Send, answer: StoredAnswer) -> None:
    ctx.status = answer.status
    await send(_start(answer.status, answer.content_type, len(answer.body), ctx.request_id))
    await send({"type": "http.response.body", "body": answer.body})


def _spliceable(raw: bytes) -> bool:
    return (raw[:1] == b"{" and raw.rstrip()[-1:] == b"}" and b"\n" not in raw
            and b'"RequestId"' not in raw and b'"Code"' not in raw)


@lru_cache(maxsize=64)  # a service answers with one or two content types
def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class Responder:
    """The ``send`` given to the wrapped app for one request; ``started`` once anything went out.

    JSON answers are held until complete, then rendered in the caller's format (a success gains a
    RequestId and loses any top-level Code; an error with a Code becomes the standard error body).
    Anything else streams through untouched, with the request id header added. With ``capture``
    set, the final answer is kept for a ClientToken replay.
    """

    def __init__(self, ctx: RequestContext, send: Send, *,
                 keep: Callable[[StoredAnswer], Awaitable[None]] | None = None) -> None:
        self.ctx, self.send, self.keep = ctx, send, keep
        self.capture = keep is not None
        self.started = False
        self.kept = False  # the answer was handed to ``keep`` (before its last byte went out)
        self.answer: StoredAnswer | None = None
        self._held: Message | None = None
        self._chunks: list[bytes] = []
        self._content_type = ""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.ctx.status = message["status"]
            content_type = b""
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type":
                    content_type = value
                    break
            self._content_type = content_type.decode("latin-1")
            if _is_json(content_type):
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
        if not more:
            await self._render(self._held, b"".join([*self._chunks, body]) if self._chunks else body)
        else:
            self._chunks.append(body)

    async def _collect(self, body: bytes, more: bool) -> None:
        if not self.capture:
            return
        self._chunks.append(body)
        size = sum(len(c) for c in self._chunks)
        if size > MAX_STORED_ANSWER:
            self.capture = False
            self._chunks = []
        elif not more:
            await self._final(StoredAnswer(self.ctx.status, self._content_type, b"".join(self._chunks)))

    async def _final(self, answer: StoredAnswer) -> None:
        # Kept before the last byte is sent: a caller who retries the moment it has the answer
        # must find it stored, not be told LastTokenProcessing.
        self.answer = answer
        if self.keep is not None and answer.status < 500:
            await self.keep(answer)
            self.kept = True

    async def _render(self, start: Message, raw: bytes) -> None:
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
        try:
            data: Any = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await self._passthrough(start, raw)
            return
        if status >= 400 and "Code" in data:
            ctx.code = str(data["Code"])
            body = error_body(ctx.format, ctx.request_id, ctx.host_id, ctx.code, str(data.get("Message", "")))
        elif 200 <= status < 300:
            data.pop("Code", None)  # some SDKs read a Code in a 200 answer as an error
            if "RequestId" not in data:
                data = {"RequestId": ctx.request_id, **data}
            body = success_body(ctx.format, ctx.action or "", data)
        else:
            await self._passthrough(start, raw)
            return
        await self._send_rendered(start, status, body)

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
