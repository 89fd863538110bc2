"""Signed requests, made with the project's own signer, for tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import httpx

from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.signing import percent_encode, sign_request_v1, sign_request_v3
from tests.support.keys import SECRETS

VERSION = "2014-05-26"


def timestamp(offset: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_params(action: str, params: dict[str, str] | None = None, *, key: str = "LTAIalice",
                  secret: str | None = None, fmt: str | None = "JSON", method: str = "GET",
                  version: str = VERSION, **overrides: Any) -> dict[str, str]:
    base = {"Action": action, "Version": version, **(params or {})}
    if fmt is not None:
        base["Format"] = fmt
    signed = sign_request_v1(base, access_key_id=key, secret=secret or SECRETS[key], method=method,
                             **{k: v for k, v in overrides.items() if k in ("nonce", "timestamp", "signature_method")})
    return signed


def query(params: dict[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)

    @property
    def xml(self) -> ElementTree.Element:
        return ElementTree.fromstring(self.body)

    def code(self) -> str | None:
        if self.headers.get("content-type", "").startswith("text/xml"):
            found = self.xml.find("Code")
            return found.text if found is not None else None
        value = self.json.get("Code")
        return value if isinstance(value, str) else None


def get(base: str, params: dict[str, str], client: httpx.Client | None = None, **kw: Any) -> Answer:
    c = client or httpx.Client()
    response = c.get(f"{base}/?{query(params)}", **kw)
    return Answer(response.status_code, response.headers, response.content)


def post(base: str, params: dict[str, str], *, in_query: dict[str, str] | None = None,
         client: httpx.Client | None = None, **kw: Any) -> Answer:
    c = client or httpx.Client()
    url = f"{base}/" + (f"?{query(in_query)}" if in_query else "")
    response = c.post(url, content=query(params).encode(),
                      headers={"content-type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}, **kw)
    return Answer(response.status_code, response.headers, response.content)


def call(base: str, action: str, params: dict[str, str] | None = None, *, fmt: str | None = "JSON",
         key: str = "LTAIalice", **kw: Any) -> Answer:
    return get(base, signed_params(action, params, key=key, fmt=fmt, **kw))


def call_v3(base: str, action: str, params: dict[str, str] | None = None, *, key: str = "LTAIalice",
            method: str = "GET", body: bytes = b"", accept: str | None = None) -> Answer:
    host = base.split("://", 1)[1]
    headers = sign_request_v3(method=method, host=host, path="/", query=params or {}, body=body,
                              action=action, version=VERSION, access_key_id=key, secret=SECRETS[key])
    if accept:
        headers["accept"] = accept
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    url = f"{base}/" + (f"?{query(params)}" if params else "")
    response = httpx.request(method, url, headers=headers, content=body)
    return Answer(response.status_code, response.headers, response.content)


def refused_with(answer: Answer, err: Err, fmt: str) -> None:
    """``answer`` is ``err``'s refusal in ``fmt``: status, code and the row's own message."""
    assert answer.status == err.status, answer.body
    expected = GatewayError(err).message
    if fmt == "XML":
        assert answer.headers["content-type"].startswith("text/xml")
        assert answer.xml.findtext("Code") == err.code and answer.xml.findtext("Message") == expected
    else:
        assert answer.json["Code"] == err.code and answer.json["Message"] == expected
