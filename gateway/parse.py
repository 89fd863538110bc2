"""Parse: the ASGI request becomes one immutable `Call`, or is refused as something not to interpret.

The body is read under its size limit, query and form body are decoded once (`gateway.parsing`), the
common parameters are read from where the request's signature version puts them, and the policy
entries they name are looked up. Nothing here decides whether the call is allowed: `gateway.chain`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Protocol

from starlette.types import Receive

from gateway.anonymous import carries_credentials
from gateway.call import Call, Exchange
from gateway.catalog import Err
from gateway.errors import BadInput, ClientDisconnected, GatewayError
from gateway.named_twice import TOKEN_HEADER, one_api, one_token
from gateway.parsing import parse_into
from gateway.policy import AccessKey, Policy
from gateway.signing import parse_v3_authorization

if TYPE_CHECKING:
    from gateway.sts.keys import TemporaryKeys

ALLOWED_METHODS = frozenset({"GET", "POST"})
FORM = "application/x-www-form-urlencoded"
# The charset parameter a form body may carry, as spelled (lower-cased); any other charset, or any other
# parameter, would be read one way here (UTF-8) and another way by a service honouring it.
_UTF8_CHARSETS = frozenset({"charset=utf-8", 'charset="utf-8"'})
# Any other Format value gets the default: aliyun-python-sdk-core sends the literal "Format=None"
# when the caller never chose one, and refusing it would break that SDK's plain do_action().
FORMATS = {"xml": "XML", "json": "JSON"}
_FORMAT_IN_QUERY = re.compile(rb"(?:^|&)Format=([A-Za-z]{3,4})(?:&|$)")


def guess_format(exchange: Exchange, params: Mapping[str, str]) -> None:
    """For a refusal decided before the call was parsed (a PUT, a bad escape, a parameter given
    twice): the Format the caller most likely wants, from ``params`` read so far. It only picks the
    language of an error that is already decided, so it never raises."""
    if exchange.format_known:
        return
    exchange.format_known = True
    headers = exchange.headers
    if headers.get("authorization", "").startswith("ACS3-"):
        exchange.format = "XML" if "xml" in headers.get("accept", "").lower() else "JSON"
    given = params.get("Format")
    if given is None:
        match = _FORMAT_IN_QUERY.search(exchange.query_string)
        given = match[1].decode() if match is not None else None
    if given is not None:
        exchange.format = FORMATS.get(given.lower(), exchange.format)


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """The whole request body; `ClientDisconnected` if the client leaves first, `BadInput` past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BadInput("body larger than GATEWAY_MAX_BODY_BYTES")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


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


class Keystore(Protocol):
    """Keys kept outside the policy file (`gateway.keystore.cache.KeyCache`): ``entries`` is read like the
    file's keys (None: known not to exist); an id in neither is read by ``complete``."""

    @property
    def entries(self) -> Mapping[str, AccessKey | None]: ...

    def missing(self, key_id: str | None) -> bool: ...

    def complete(self, call: Call) -> Awaitable[Call]: ...


_NO_KEYS: Mapping[str, AccessKey | None] = {}


class Parser:
    """GET and POST only (checked before the body is read), the body under its size limit, then the `Call`."""

    def __init__(self, policy: Policy, *, max_body_bytes: int, keystore: Keystore | None = None,
                 temporary: TemporaryKeys | None = None) -> None:
        self.max_body = max_body_bytes
        self.api = policy.api
        self.keys = policy.access_keys
        # A file key costs one lookup, a cached keystore key two (the file's, then the cache's).
        self.keystore = keystore
        self.cached = keystore.entries if keystore is not None else _NO_KEYS
        self.temporary = temporary  # with [sts]: temporary keys, resolved from their SecurityToken

    def __call__(self, exchange: Exchange) -> Call | Awaitable[Call]:
        if exchange.method not in ALLOWED_METHODS:
            raise GatewayError(Err.UNSUPPORTED_HTTP_METHOD)
        headers = exchange.headers
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
        if exchange.method == "POST" or declared not in (None, "0") or "transfer-encoding" in headers:
            return self._with_body(exchange)
        # A GET without a body, the common case, needs no coroutine at all.
        call = self.parse(exchange, b"")
        if (call.key is None and call.token_error is None and self.keystore is not None
                and self.keystore.missing(call.access_key_id)):
            return self.keystore.complete(call)  # a key not cached yet: read from Redis
        return call

    async def _with_body(self, exchange: Exchange) -> Call:
        body = await read_body(exchange.receive, self.max_body)
        if body and exchange.method != "POST":
            # Only a POST body is parsed and checked; yet a service may read a GET body as a form
            # (Starlette's request.form() does). Version 1.0 does not even sign one.
            raise BadInput("a body is only accepted on a POST")
        call = self.parse(exchange, body)
        if (call.key is None and call.token_error is None and self.keystore is not None
                and self.keystore.missing(call.access_key_id)):
            return await self.keystore.complete(call)
        return call

    def parse(self, exchange: Exchange, body: bytes) -> Call:
        """The call of ``exchange`` whose body is ``body``; a refusal's Format is guessed from what was read."""
        query: dict[str, str] = {}
        params = query
        try:
            parse_into(exchange.query_string, query)
            # Without a form body the parameters are the query: one dict serves as both (neither is
            # changed once parsed).
            if body:
                params = dict(query)
                _check_form_type(exchange.headers.get("content-type", ""))
                parse_into(body, params)
            return self._call(exchange, query, params, body)
        except GatewayError:
            guess_format(exchange, params)
            raise

    def _call(self, exchange: Exchange, query: dict[str, str], params: dict[str, str], body: bytes) -> Call:
        headers = exchange.headers
        authorization = headers.get("authorization", "")
        fmt = params.get("Format")
        answer_format = exchange.format if fmt is None else FORMATS.get(fmt.lower(), exchange.format)
        if not authorization.startswith("ACS3-"):
            one_api(params, headers)
            if self.temporary is not None:
                one_token(params, headers, False)
            action, version, key_id = params.get("Action"), params.get("Version"), params.get("AccessKeyId")
            if key_id is None and not carries_credentials(params, headers):  # never so for a signed call
                anonymous = self._anonymous(exchange, query, params, body, answer_format)
                if anonymous is not None:
                    return anonymous
            key = self.keys.get(key_id or "") or self.cached.get(key_id or "")
            refusal = None
            temporary = self.temporary
            if temporary is not None and key_id is not None and (key is None or "SecurityToken" in params):
                key, refusal = temporary.resolve(key_id, key, params.get("SecurityToken"))
            elif temporary is None and TOKEN_HEADER in headers:
                key, refusal = None, Err.TOKEN_MISMATCH  # no token is verified without [sts]: none goes on
            return Call(
                exchange.request_id, exchange.method, exchange.path, headers, exchange.host_id, answer_format,
                query, params, body, params.get("SignatureVersion"), action, version, key_id,
                params.get("Signature"), params.get("SignatureMethod"), params.get("SignatureNonce"),
                params.get("Timestamp"), None, self.api(version or "", action or ""), key, token_error=refusal,
            )
        try:
            auth = parse_v3_authorization(authorization)
        except ValueError:
            raise GatewayError(Err.INCOMPLETE_SIGNATURE) from None
        one_api(params, headers)
        if self.temporary is not None:
            one_token(params, headers, True)
        named = params.get("AccessKeyId")
        if named is not None and named != auth.access_key_id:
            # A service reading AccessKeyId, as RPC services do, must see the key that was verified.
            raise BadInput("AccessKeyId parameter names another key than the V3 Credential")
        if fmt is None:
            # V3 carries no Format: JSON unless the Accept header asks for XML (CONTRACT §3).
            answer_format = "XML" if "xml" in headers.get("accept", "").lower() else "JSON"
        action, version = headers.get("x-acs-action"), headers.get("x-acs-version")
        key = self.keys.get(auth.access_key_id) or self.cached.get(auth.access_key_id)
        refusal = None
        temporary = self.temporary
        if temporary is not None and (key is None or "x-acs-security-token" in headers):
            token = headers.get("x-acs-security-token")
            key, refusal = temporary.resolve(auth.access_key_id, key, token)
            if token is not None and "x-acs-security-token" not in auth.signed_headers:
                key, refusal = None, Err.INCOMPLETE_SIGNATURE  # an unsigned token could be swapped
        elif temporary is None and TOKEN_HEADER in headers:
            # Without [sts] no token is ever verified, so none may reach the service beside a key's
            # signature (the row [sts] gives a long-term key presented with a token).
            key, refusal = None, Err.TOKEN_MISMATCH
        return Call(
            exchange.request_id, exchange.method, exchange.path, headers, exchange.host_id, answer_format,
            query, params, body, "3", action, version, auth.access_key_id, auth.signature, auth.algorithm,
            headers.get("x-acs-signature-nonce"), headers.get("x-acs-date"), auth,
            self.api(version or "", action or ""), key, token_error=refusal,
        )

    def _anonymous(self, exchange: Exchange, query: dict[str, str], params: dict[str, str], body: bytes,
                   answer_format: str) -> Call | None:
        """The call of a request without credentials, if it names an API declared anonymous; else None
        (it is then parsed, and refused, as any unsigned request is).

        tea-openapi's anonymous V3 call names the API in the x-acs-action/x-acs-version headers alone,
        and no Format: V3's rule (JSON unless Accept asks for XML) then picks the answer's language.
        """
        headers = exchange.headers
        action = params.get("Action") or headers.get("x-acs-action")
        version = params.get("Version") or headers.get("x-acs-version")
        api = self.api(version or "", action or "")
        if api is None or not api.anonymous:
            return None
        if "Format" not in params and "Action" not in params:
            answer_format = "XML" if "xml" in headers.get("accept", "").lower() else "JSON"
        # Nothing signed, so nothing of Timestamp or SignatureNonce is read: they stay in params only.
        return Call(
            exchange.request_id, exchange.method, exchange.path, headers, exchange.host_id, answer_format,
            query, params, body, None, action, version, None, None, None, None, None, None, api, None, True,
        )
