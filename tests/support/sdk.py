"""The two official Python SDKs, pointed at a live gateway, and a recorder of what they put on the wire.

- ``aliyun-python-sdk-core``: ``AcsClient`` + ``CommonRequest``, RPC style, signature version 1.0.
- ``alibabacloud-tea-openapi``: ``Client.call_api``, RPC style; ``ACS3-HMAC-SHA256`` by default, or
  version 1.0 with ``Config(signature_algorithm="v2")`` (``call_api`` then takes ``do_rpcrequest``).

Both run with retries off and short timeouts: a test must see the first answer, not a retried one.
`Wire` hooks the HTTP layer both SDKs share (``requests``, vendored in sdk-core), so a test can replay
what an SDK actually sent, exactly or altered, with httpx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkcore.vendored import requests as vendored_requests
from darabonba.runtime import RuntimeOptions

from gateway.signing import percent_encode
from tests.support.client import VERSION
from tests.support.keys import SECRETS

KEY = "LTAIalice"
TIMEOUT_S = 5

#: The SDK flavours under test: sdk-core (V1), tea-openapi by default (V3) and with "v2" (V1).
SDKS = ("core", "tea-v3", "tea-v2")


def host_of(url: str) -> str:
    return url.split("://", 1)[1]


# --- aliyun-python-sdk-core ---------------------------------------------------------------------


def core_client(*, secret: str | None = None) -> AcsClient:
    return AcsClient(KEY, secret or SECRETS[KEY], "cn-hangzhou", auto_retry=False, max_retry_time=0,
                     timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S)


def core_request(url: str, action: str, method: str, query: dict[str, str],
                 body: dict[str, str] | None = None) -> CommonRequest:
    request = CommonRequest(domain=host_of(url), version=VERSION, action_name=action)
    request.set_protocol_type("http")
    request.set_method(method)
    for name, value in query.items():
        request.add_query_param(name, value)
    for name, value in (body or {}).items():
        request.add_body_params(name, value)
    return request


# --- alibabacloud-tea-openapi -------------------------------------------------------------------


def tea_client(url: str, *, v2: bool = False, secret: str | None = None) -> TeaClient:
    config = open_api_models.Config(
        access_key_id=KEY, access_key_secret=secret or SECRETS[KEY], endpoint=host_of(url), protocol="http",
        signature_algorithm="v2" if v2 else None, read_timeout=TIMEOUT_S * 1000,
        connect_timeout=TIMEOUT_S * 1000,
    )
    return TeaClient(config)


def tea_call(client: TeaClient, action: str, method: str, query: dict[str, Any],
             body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    params = open_api_models.Params(
        action=action, version=VERSION, protocol="HTTP", pathname="/", method=method, auth_type="AK",
        style="RPC", req_body_type="formData", body_type="json",
    )
    # Generated product clients flatten the query themselves (Tag=[..] -> Tag.1, Tag.2); call_api
    # does it for the body only.
    request = open_api_models.OpenApiRequest(query=TeaUtils.query(query), body=body, headers=headers)
    runtime = RuntimeOptions(autoretry=False, read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)
    answer: dict[str, Any] = client.call_api(params, request, runtime)
    return answer


# --- one call, whichever SDK --------------------------------------------------------------------


def sdk_call(sdk: str, url: str, action: str, method: str, query: dict[str, Any],
             body: dict[str, Any] | None = None, *, secret: str | None = None) -> dict[str, Any]:
    """Call through ``sdk``; returns the decoded JSON answer, or raises the SDK's own exception.

    sdk-core takes flat string parameters: a list value is flattened here the way its generated
    request classes do it (``Tag.1``, ``Tag.2``).
    """
    if sdk == "core":
        request = core_request(url, action, method, flatten(query), flatten(body or {}) or None)
        answer: dict[str, Any] = json.loads(core_client(secret=secret).do_action_with_exception(request))
        return answer
    client = tea_client(url, v2=sdk == "tea-v2", secret=secret)
    result: dict[str, Any] = tea_call(client, action, method, query, body)["body"]
    return result


def error_code(exc: BaseException) -> str | None:
    """The error code an SDK exception carries: ``get_error_code()`` (sdk-core) or ``.code`` (tea)."""
    get = getattr(exc, "get_error_code", None)
    code = get() if get is not None else getattr(exc, "code", None)
    return None if code is None else str(code)


def flatten(params: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, list):
            flat.update({f"{name}.{i}": str(item) for i, item in enumerate(value, 1)})
        else:
            flat[name] = str(value)
    return flat


def fix_nonce(monkeypatch: pytest.MonkeyPatch, nonce: str) -> None:
    """Make both SDKs sign every request with ``nonce``."""
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: nonce)
    monkeypatch.setattr(TeaUtils, "get_nonce", staticmethod(lambda: nonce))


def fix_clock(monkeypatch: pytest.MonkeyPatch, timestamp: str) -> None:
    """Make both SDKs stamp every request (``Timestamp`` or ``x-acs-date``) with ``timestamp``."""
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: timestamp)
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: timestamp))


# --- the wire -----------------------------------------------------------------------------------

# Set by requests or the socket layer, not by the SDK's signer: httpx sets its own.
_TRANSPORT_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


@dataclass
class Sent:
    """One request as an SDK put it on the wire, and the answer it got."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    @property
    def raw_query(self) -> str:
        return urlsplit(self.url).query

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def replay(self, *, url: str | None = None, body: bytes | None = None) -> httpx.Response:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _TRANSPORT_HEADERS}
        return httpx.request(self.method, url or self.url, headers=headers,
                             content=self.body if body is None else body, timeout=TIMEOUT_S)

    def tampered(self, name: str, value: str) -> httpx.Response:
        """Replay with parameter ``name`` set to ``value`` wherever it was sent (query or form body)."""
        pair = f"{percent_encode(name)}={percent_encode(value)}"
        query = _replace_pair(self.raw_query, name, pair)
        if query is not None:
            return self.replay(url=self.url.split("?", 1)[0] + "?" + query)
        body = _replace_pair(self.body.decode("ascii"), name, pair)
        if body is None:
            raise AssertionError(f"{name} was not sent")
        return self.replay(body=body.encode())


def _replace_pair(raw: str, name: str, pair: str) -> str | None:
    pairs = raw.split("&") if raw else []
    prefix = f"{percent_encode(name)}="
    if not any(p.startswith(prefix) for p in pairs):
        return None
    return "&".join(pair if p.startswith(prefix) else p for p in pairs)


class Wire:
    """Records every request either SDK sends (through ``requests`` or sdk-core's vendored copy)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[Sent] = []
        for session in (requests.Session, vendored_requests.Session):
            monkeypatch.setattr(session, "send", self._recording(session.send))

    def _recording(self, send: Callable[..., Any]) -> Callable[..., Any]:
        def recording_send(session: Any, prepared: Any, **kwargs: Any) -> Any:
            body = prepared.body or b""
            sent = Sent(prepared.method, prepared.url, dict(prepared.headers),
                        body.encode() if isinstance(body, str) else body)
            self.sent.append(sent)
            response = send(session, prepared, **kwargs)
            sent.status, sent.response_body = response.status_code, response.content
            sent.response_headers = {k.lower(): v for k, v in response.headers.items()}
            return response

        return recording_send

    @property
    def last(self) -> Sent:
        return self.sent[-1]
