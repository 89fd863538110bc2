"""Temporary credentials for tests: the STS test policy, a live gateway serving it, and calls made with
the project's own signer (AssumeRole, then calls with the credentials it gave)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy, load_policy
from gateway.stores import open_store
from gateway.sts import token as tokens
from tests.support.apps import EchoService
from tests.support.client import Answer, get, query, signed_params
from tests.support.servers import free_port, serve_in_thread

POLICY = Path(__file__).parent.parent / "data" / "sts_policy.toml"
SIGNING_KEY = "5f" * 32
ENVIRON = {"GATEWAY_TEST_STS_KEY": SIGNING_KEY}
STS_VERSION = "2015-04-01"
ACCOUNT = 1111
SECRETS = {"LTAIroot": "root-secret", "LTAIdev": "dev-secret", "LTAIintern": "intern-secret",
           "LTAIauditor": "auditor-secret",
           "LTAIquota": "quota-secret", "LTAIbob": "bob-secret"}


def arn(role: str, account: int = ACCOUNT) -> str:
    return f"acs:ram::{account}:role/{role}"


def sts_policy() -> Policy:
    return load_policy(POLICY, environ=ENVIRON)


@dataclass
class LiveSts:
    url: str
    service: EchoService


@contextmanager
def live_sts(redis_url: str | None = None, **settings: Any) -> Iterator[LiveSts]:
    """The gateway with the STS policy in front of the echo service, served by uvicorn."""
    service = EchoService()
    config = Settings(config=str(POLICY), redis_url=redis_url, host_id="gateway.test", **settings)
    store = open_store(redis_url, prefix=f"sts{free_port()}", timeout=0.25)
    app = GatewayMiddleware(service, settings=config, policy=sts_policy(), store=store)
    with serve_in_thread(app) as url:
        yield LiveSts(url, service)


@dataclass(frozen=True)
class Creds:
    access_key_id: str
    secret: str
    token: str
    expiration: str


def assume(url: str, role: str, *, key: str = "LTAIroot", session: str = "test-session", fmt: str = "JSON",
           **params: str) -> Answer:
    """AssumeRole, signed (version 1.0) by ``key``."""
    signed = signed_params("AssumeRole", {"RoleArn": arn(role) if ":" not in role else role,
                                          "RoleSessionName": session, **params},
                           key=key, secret=SECRETS[key], fmt=fmt, version=STS_VERSION)
    return get(url, signed)


def creds(answer: Answer) -> Creds:
    assert answer.status == 200, answer.body
    found = answer.json["Credentials"]
    return Creds(found["AccessKeyId"], found["AccessKeySecret"], found["SecurityToken"], found["Expiration"])


def assumed(url: str, role: str = "Reader", **kw: Any) -> Creds:
    return creds(assume(url, role, **kw))


def call_sts(url: str, action: str, credentials: Creds, params: dict[str, str] | None = None, *,
             fmt: str = "JSON", token: str | None = None, with_token: bool = True, secret: str | None = None,
             version: str = "2014-05-26") -> Answer:
    """A version 1.0 call signed with temporary ``credentials`` (``token`` replaces their token)."""
    extra = {"SecurityToken": token if token is not None else credentials.token} if with_token else {}
    signed = signed_params(action, {**(params or {}), **extra}, key=credentials.access_key_id,
                           secret=secret or credentials.secret, fmt=fmt, version=version)
    return get(url, signed)


def call_sts_v3(url: str, action: str, credentials: Creds, params: dict[str, str] | None = None, *,
                token: str | None = None, sign_token: bool = True, accept: str | None = None) -> Answer:
    """A V3 call signed with temporary ``credentials``; ``sign_token=False`` sends the token unsigned."""
    from gateway.signing import sign_request_v3

    host = url.split("://", 1)[1]
    value = credentials.token if token is None else token
    headers = sign_request_v3(method="GET", host=host, path="/", query=params or {}, action=action,
                              version="2014-05-26", access_key_id=credentials.access_key_id,
                              secret=credentials.secret,
                              extra_headers={"x-acs-security-token": value} if sign_token else None)
    if not sign_token:
        headers["x-acs-security-token"] = value
    if accept:
        headers["accept"] = accept
    response = httpx.get(f"{url}/" + (f"?{query(params)}" if params else ""), headers=headers)
    return Answer(response.status_code, response.headers, response.content)


def minted(credentials: Creds, **changes: Any) -> str:
    """``credentials``' token minted again with some claims changed (a past expiry...): the gateway's own
    minting, with the test signing key."""
    keys = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))
    claims = keys.open(credentials.token)
    assert claims is not None
    return keys.mint(claims._replace(**changes))


def tampered(token: str) -> str:
    """The token with one character of its claims changed (its MAC no longer matches)."""
    index = len(tokens.PREFIX) + 10
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1:]
