from __future__ import annotations

import re
from collections.abc import Awaitable

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.parsing import BadInput, parse_into
from gateway.signing import parse_v3_authorization

FORM = "application/x-www-form-urlencoded"
# The charset parameter a form body may carry, as spelled (lower-cased); any other charset, or any other
# parameter, would be read one way here (UTF-8) and another way by a service honouring it.
_UTF8_CHARSETS = frozenset({"charset=utf-8", 'charset="utf-8"'})
# Any other Format value gets the default: aliyun-python-sdk-core sends the literal "Format=None"
# when the caller never chose one, and refusing it would break that SDK's plain do_action().
FORMATS = {"xml": "XML", "json": "JSON"}


_FORMAT_IN_QUERY = re.compile(rb"(?:^|&)Format=([A-Za-z]{3,4})(?:&|$)")

# The API a request calls, named as a parameter and as a header. V1 reads the parameter and leaves the
# header unsigned; V3 reads the header and signs the parameter along with the query. Either way the
# layers authorize one of them, and a service behind the gateway may dispatch on the other: the two
# must agree wherever both are sent (sdk-core and tea-openapi "v2" send both, equal).
_API_NAMED_TWICE = (("Action", "x-acs-action"), ("Version", "x-acs-version"))


def guess_format(ctx: RequestContext) -> None:
    """For a refusal decided before the common parameters were read (a PUT, a bad escape, a
    parameter given twice): the Format the caller most likely wants. It only picks the language of
    an error that is already decided, so it never raises.
    """
    if ctx.format_known:
        return
    if ctx.headers.get("authorization", "").startswith("ACS3-"):
        ctx.format = "XML" if "xml" in ctx.headers.get("accept", "").lower() else "JSON"
    given = ctx.params.get("Format")
    if given is None:
        match = _FORMAT_IN_QUERY.search(ctx.query_string)
        given = match[1].decode() if match is not None else None
    if given is not None:
        ctx.format = FORMATS.get(given.lower(), ctx.format)


def _check_form_type(content_type: str) -> None:
    """One Content-Type, the form media type, and no parameter but a UTF-8 charset.

    Repeated Content-Type headers arrive folded with a comma, which no single form type holds.
    """
    media, _, rest = content_type.partition(";")
    media = media.strip().lower()
    if media != FORM or "," in content_type:
        raise BadInput(f"POST body of type {media or 'none'!r}, not {FORM}")
    if rest and rest.strip().lower() not in _UTF8_CHARSETS:
        raise BadInput("a form body must be UTF-8, with no other Content-Type parameter")


class ClientDisconnected(Exception):
    """The client went away before its body arrived: there is nobody to answer."""


class ParseLayer:
    """Reads the body under its size limit and parses query, form body and common parameters once."""

    def __init__(self, *, max_body_bytes: int) -> None:
        self.max_body = max_body_bytes

    def check(self, ctx: RequestContext) -> Awaitable[None] | None:
        headers = ctx.headers
        if "content-encoding" in headers and headers["content-encoding"].strip().lower() != "identity":
            # A service (aiohttp) would decompress what the gateway parsed as it came.
            raise BadInput("a request Content-Encoding is not supported")
        if "transfer-encoding" in headers and headers["transfer-encoding"].strip().lower() != "chunked":
            # httptools de-chunks "gzip, chunked" and hands on the body still compressed, as if plain.
            raise BadInput("a request Transfer-Encoding other than chunked is not supported")
        if "," in headers.get("content-type", ""):
            # Two Content-Type headers, folded: services pick the first, the last, or refuse (aiohttp),
            # even on an empty body.
            raise BadInput("Content-Type given more than once")
        declared = headers.get("content-length")
        if declared is not None:
            # ASCII digits only, and short: int() of thousands of leading zeros raises ValueError.
            digits = declared.lstrip("0") or "0"
            if not (declared.isascii() and declared.isdigit()) or len(digits) > 19 or int(digits) > self.max_body:
                raise BadInput("body larger than GATEWAY_MAX_BODY_BYTES")
        if ctx.method == "POST" or declared not in (None, "0") or "transfer-encoding" in headers:
            return self._with_body(ctx)
        # A GET without a body, the common case, needs no coroutine at all.
        self._parse(ctx)
        return None

    async def _with_body(self, ctx: RequestContext) -> None:
        ctx.body = await self._read_body(ctx)
        if ctx.body and ctx.method != "POST":
            # Only a POST body is parsed and checked; yet a service may read a GET body as a form
            # (Starlette's request.form() does). Version 1.0 does not even sign one.
            raise BadInput("a body is only accepted on a POST")
        self._parse(ctx)

    def _parse(self, ctx: RequestContext) -> None:
        parse_into(ctx.query_string, ctx.query)
        # Without a form body the parameters are the query: one dict serves as both (neither is
        # changed once parsed).
        params = ctx.params = ctx.query
        if ctx.body and ctx.method == "POST":
            params = ctx.params = dict(ctx.query)
            _check_form_type(ctx.headers.get("content-type", ""))
            parse_into(ctx.body, params)
        authorization = ctx.headers.get("authorization", "")
        if authorization.startswith("ACS3-"):
            self._common_v3(ctx, authorization)
        else:
            self._common_v1(ctx)
        ctx.format_known = True

    async def _read_body(self, ctx: RequestContext) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await ctx.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BadInput("body larger than GATEWAY_MAX_BODY_BYTES")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _common_v1(self, ctx: RequestContext) -> None:
        params = ctx.params
        ctx.signature_version = params.get("SignatureVersion")
        ctx.action = params.get("Action")
        ctx.version = params.get("Version")
        ctx.access_key_id = params.get("AccessKeyId")
        ctx.signature = params.get("Signature")
        ctx.signature_method = params.get("SignatureMethod")
        ctx.nonce = params.get("SignatureNonce")
        ctx.timestamp = params.get("Timestamp")
        fmt = params.get("Format")
        if fmt is not None:
            ctx.format = FORMATS.get(fmt.lower(), ctx.format)
        self._one_api(ctx)

    def _common_v3(self, ctx: RequestContext, authorization: str) -> None:
        try:
            auth = parse_v3_authorization(authorization)
        except ValueError:
            raise GatewayError(Err.INCOMPLETE_SIGNATURE) from None
        headers = ctx.headers
        ctx.v3 = auth
        ctx.signature_version = "3"
        ctx.action = headers.get("x-acs-action")
        ctx.version = headers.get("x-acs-version")
        ctx.access_key_id = auth.access_key_id
        ctx.signature = auth.signature
        ctx.signature_method = auth.algorithm
        ctx.nonce = headers.get("x-acs-signature-nonce")
        ctx.timestamp = headers.get("x-acs-date")
        fmt = ctx.params.get("Format")
        if fmt is not None:
            ctx.format = FORMATS.get(fmt.lower(), ctx.format)
        else:
            # V3 carries no Format: JSON unless the Accept header asks for XML (CONTRACT §3).
            ctx.format = "XML" if "xml" in headers.get("accept", "").lower() else "JSON"
        self._one_api(ctx)
        named = ctx.params.get("AccessKeyId")
        if named is not None and named != auth.access_key_id:
            # A service reading AccessKeyId, as RPC services do, must see the key that was verified.
            raise BadInput("AccessKeyId parameter names another key than the V3 Credential")

    @staticmethod
    def _one_api(ctx: RequestContext) -> None:
        for name, header in _API_NAMED_TWICE:
            param, sent = ctx.params.get(name), ctx.headers.get(header)
            if param is not None and sent is not None and param != sent:
                raise BadInput(f"{name} {param!r} and {header} {sent!r} name different APIs")
