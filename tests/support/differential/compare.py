"""What the gateway checked against what one parser read: every difference, one line each.

A `Reading` is what one real parser got out of the forwarded request; `Expected` is what the gateway
checked (``ctx``, snapshot at the moment it handed the request on). Header names are compared folded
as WSGI/CGI servers fold them (lower case, ``_`` = ``-``): a service reading ``HTTP_X_GATEWAY_ACCOUNT_ID``
cannot tell ``X_Gateway_Account_Id`` from the gateway's ``x-gateway-account-id``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

#: The identity headers the gateway owns (gateway/identity.py), by folded name.
IDENTITY = ("x-gateway-account-id", "x-gateway-account-name", "x-gateway-sub-user", "x-gateway-access-key-id",
            "x-acs-request-id", "x-gateway-anonymous",
            # Temporary credentials (STS): the role, its session, the key that assumed it.
            "x-gateway-role-arn", "x-gateway-role-session-name", "x-gateway-assumed-by")
#: The headers V3 names its API in (and V1 clients may send too): a service may dispatch on them.
API = ("x-acs-action", "x-acs-version")
#: Where V3 carries temporary credentials' token (V1: the SecurityToken parameter).
TOKEN_HEADER = "x-acs-security-token"
#: Headers a service may take the client's address from.
CLIENT_IP = ("forwarded", "x-real-ip", "x-forwarded-for")
#: The address every request of the test comes from (loopback): the only client address that is true.
PEER = "127.0.0.1"


def fold(name: str) -> str:
    return name.lower().replace("_", "-")


def watched(name: str) -> bool:
    folded = fold(name)
    return folded.startswith("x-gateway-") or folded in IDENTITY or folded in CLIENT_IP or folded in API


@dataclass
class Reading:
    parser: str
    path: str | None = None
    params: list[tuple[str, str]] = field(default_factory=list)  # query then body, in order
    headers: dict[str, list[str]] = field(default_factory=dict)  # folded name -> every value read
    client: str | None = None  # the client address the framework reports, when it has one
    error: str | None = None

    @classmethod
    def from_json(cls, parser: str, data: dict[str, Any]) -> Reading:
        return cls(parser, data.get("path"), [tuple(p) for p in data.get("params", [])],  # type: ignore[misc]
                   data.get("headers", {}), data.get("client"), data.get("error"))

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "params": self.params, "headers": self.headers, "client": self.client,
                "error": self.error}


@dataclass(frozen=True)
class Expected:
    """What the gateway checked: ``ctx.params``, ``ctx.path`` and the identity it established."""

    params: tuple[tuple[str, str], ...]
    path: str
    identity: dict[str, str | None]  # folded identity header -> the gateway's value (None: not sent)
    api: dict[str, str | None] = field(default_factory=dict)  # folded API header -> the API the gateway checked
    v3: bool = False  # the API came from the headers (V3): they must reach the service as checked
    token: str | None = None  # the SecurityToken the gateway verified (temporary credentials), else None

    @classmethod
    def from_ctx(cls, ctx: Any) -> Expected:
        who = ctx.identity or {}
        sub = who.get("SubUser")
        return cls(tuple(ctx.params.items()), ctx.path, {
            "x-gateway-account-id": str(who["AccountId"]) if "AccountId" in who else None,
            "x-gateway-account-name": who.get("AccountName"),
            "x-gateway-sub-user": sub,
            "x-gateway-access-key-id": who.get("AccessKeyId"),
            "x-acs-request-id": ctx.request_id,
            "x-gateway-anonymous": "true" if who.get("Anonymous") else None,
            "x-gateway-role-arn": who.get("RoleArn"),
            "x-gateway-role-session-name": who.get("RoleSessionName"),
            "x-gateway-assumed-by": who.get("AssumedBy"),
        }, {"x-acs-action": ctx.action, "x-acs-version": ctx.version}, ctx.signature_version == "3",
            _verified_token(ctx))


def _verified_token(ctx: Any) -> str | None:
    if ctx.key is None or ctx.key.session is None:
        return None
    return ctx.headers.get("x-acs-security-token") if ctx.signature_version == "3" else ctx.params.get("SecurityToken")


def _addresses(folded: str, value: str) -> list[str]:
    """The client addresses one header value names (RFC 7239 ``for=`` for Forwarded)."""
    if folded == "forwarded":
        found = [part.strip().split("=", 1)[1] for element in value.split(",") for part in element.split(";")
                 if part.strip().lower().startswith("for=")]
        return [a.strip('"').strip("[]") for a in found] or [value]
    return [a.strip() for a in value.split(",")]


def differences(expected: Expected, reading: Reading) -> list[str]:
    """Every way ``reading`` differs from what the gateway checked, each line prefixed by its class."""
    who = reading.parser
    if reading.error is not None:
        return [f"[unreadable] {who} could not read the admitted request: {reading.error}"]
    out = []
    if reading.path != expected.path:
        out.append(f"[path] {who} read path {reading.path!r}, the gateway checked {expected.path!r}")
    seen, meant = Counter(reading.params), Counter(expected.params)
    if seen != meant:
        extra, missing = sorted((seen - meant).elements()), sorted((meant - seen).elements())
        out.append(f"[params] {who} read {_short(extra)} the gateway did not check, "
                   f"and not {_short(missing)} it did")
    for name in sorted({*IDENTITY, *(n for n in reading.headers if n.startswith("x-gateway-"))}):
        value = expected.identity.get(name)
        got = reading.headers.get(name, [])
        if got != ([] if value is None else [value]):
            out.append(f"[identity {name}] {who} read {got!r}, the gateway's is {value!r}")
    for name, checked in expected.api.items():
        # V3 dispatches on these headers: exactly the checked API must arrive. V1 dispatches on the
        # parameters; a header a service might read instead may be absent, never another API.
        got = reading.headers.get(name, [])
        if got != [checked] and (expected.v3 or got):
            out.append(f"[api {name}] {who} read {got!r}, the gateway checked {checked!r}")
    # A service may take the caller's token from either place: only the one the gateway verified may be there.
    tokens = [v for n, v in reading.params if n == "SecurityToken"] + reading.headers.get(TOKEN_HEADER, [])
    if any(token != expected.token for token in tokens):
        out.append(f"[token] {who} read the SecurityToken(s) {[t[:24] for t in tokens]!r}, the gateway verified "
                   f"{(expected.token or '')[:24]!r}")
    for name in CLIENT_IP:
        claimed = [a for v in reading.headers.get(name, []) for a in _addresses(name, v) if a != PEER]
        if claimed:
            out.append(f"[client-ip {name}] {who} read client address(es) {claimed!r}, the client is {PEER}")
    if reading.client is not None and reading.client != PEER:
        out.append(f"[client-ip] {who} reports the client as {reading.client!r}, the client is {PEER}")
    return out


def established_differences(expected: Expected, claimed: Mapping[str, str | None]) -> list[str]:
    """Whether the gateway established the identity the case was signed as (``claimed``: the key, its
    account and sub-user; for temporary credentials the ``STS.`` id, the role's account, the role, the
    session and the key that assumed it): what every parser then reads is compared with this."""
    return [f"[established {name}] the gateway established {expected.identity.get(name)!r}, the case was "
            f"signed as {value!r}" for name, value in claimed.items() if expected.identity.get(name) != value]


def raw_target_differences(expected: Expected, target: bytes) -> list[str]:
    """The request target the service received, read as bytes: origin-form, and its segments the
    segments the gateway checked (an encoded ``/`` or an invalid UTF-8 escape is not what was checked)."""
    if not target.startswith(b"/") or target.startswith(b"//"):
        return [f"[target] the service received the target {target[:80]!r}, not an origin-form path"]
    path = target.split(b"?", 1)[0]
    raw_segments = [unquote_to_bytes(segment) for segment in path.split(b"/")]
    checked = [segment.encode("utf-8", "surrogateescape") for segment in expected.path.split("/")]
    if raw_segments != checked:
        return [f"[raw-path] the service received {path[:80]!r} (segments {raw_segments[:8]!r}), "
                f"the gateway checked {expected.path[:80]!r}"]
    if any(segment in (b".", b"..") for segment in raw_segments):
        return [f"[raw-path] dot segments reach the service: {path[:80]!r}"]
    return []


def _short(pairs: list[tuple[str, str]], limit: int = 6) -> str:
    shown = ", ".join(f"{n!r}={v[:40]!r}" for n, v in pairs[:limit])
    return "{" + shown + (f", ... {len(pairs) - limit} more" if len(pairs) > limit else "") + "}"


def report(request: bytes, forwarded: bytes, expected: Expected, readings: list[Reading], found: list[str]) -> str:
    """A readable failure: the request, what the service received, what the gateway checked, each
    parser's reading, the differences."""
    lines = ["request:", "  " + repr(request[:1500]) + (f" ... ({len(request)} bytes)" if len(request) > 1500 else ""),
             "the service received:", "  " + repr(forwarded[:1500]),
             f"gateway checked: path={expected.path!r}", f"  params={_short(list(expected.params), 40)}",
             f"  identity={expected.identity}"]
    for reading in readings:
        lines.append(f"{reading.parser}: path={reading.path!r} client={reading.client!r} error={reading.error!r}")
        lines.append(f"  params={_short(reading.params, 40)}")
        lines.append(f"  headers={reading.headers}")
    lines.append("differences:")
    lines += ["  " + line for line in found]
    return "\n".join(lines)
