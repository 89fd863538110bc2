"""The SecurityToken: stateless, so that any gateway holding the signing key verifies it without a store.

A token is ``v1.<claims>.<mac>``: the claims (temporary AccessKeyId, role, session, who assumed it,
expiry, session policy) as Base64url JSON, and an HMAC-SHA256 over everything before the last dot.
The temporary secret is not in the token: it is an HMAC of the AccessKeyId, so nothing is stored and
only a holder of the signing key can compute it. The two uses get separate subkeys of the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

#: The gateway's clock for minting and expiry; tests replace it to age a token without waiting.
clock: Callable[[], float] = time.time

PREFIX = "v1."
TEMPORARY_PREFIX = "STS."
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
#: The longest token opened: a session policy is at most 2048 characters, the rest is small.
MAX_TOKEN_LENGTH = 8192


class Claims(NamedTuple):
    access_key_id: str
    account: int
    role: str  # the role's name as the policy spells it
    session: str  # RoleSessionName
    assumed_by: str  # the AccessKeyId that called AssumeRole
    expires: int  # seconds since the epoch
    policy: str | None  # the session policy, compact JSON


_KINDS: tuple[type | tuple[type, ...], ...] = (str, int, str, str, str, int, (str, type(None)))


def new_access_key_id() -> str:
    return TEMPORARY_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(25))


def expiration(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: the one format alibabacloud-credentials parses."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenKeys:
    """The two subkeys of one signing key: one MACs tokens, one derives temporary secrets."""

    def __init__(self, signing_key: bytes) -> None:
        self._token_key = hmac.new(signing_key, b"acs-gateway sts token", hashlib.sha256).digest()
        self._secret_key = hmac.new(signing_key, b"acs-gateway sts secret", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "TokenKeys(...)"

    def secret_of(self, access_key_id: str) -> str:
        return _b64(hmac.new(self._secret_key, access_key_id.encode(), hashlib.sha256).digest())

    def _mac(self, signed: str) -> str:
        return _b64(hmac.new(self._token_key, signed.encode("ascii"), hashlib.sha256).digest())

    def mint(self, claims: Claims) -> str:
        payload = json.dumps(list(claims), separators=(",", ":"), ensure_ascii=True).encode()
        signed = PREFIX + _b64(payload)
        return f"{signed}.{self._mac(signed)}"

    def open(self, token: str) -> Claims | None:
        """The claims of a token this key minted, else None (tampered, truncated, garbage). Expiry is
        the caller's to check, on every request."""
        if len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
            return None
        signed, dot, mac = token.rpartition(".")
        if not dot or _B64URL.fullmatch(mac) is None or not hmac.compare_digest(mac, self._mac(signed)):
            return None
        body = signed[len(PREFIX):]
        if _B64URL.fullmatch(body) is None:
            return None
        try:
            fields = json.loads(_unb64(body))
        except ValueError:
            return None
        # Only this gateway's code writes a token that passes the MAC; the shape is checked all the same.
        if not isinstance(fields, list) or len(fields) != len(Claims._fields):
            return None
        if not all(isinstance(value, kind) for value, kind in zip(fields, _KINDS, strict=True)):
            return None
        return Claims(*fields)


class Keyring:
    """The signing key's subkeys, and while a rotation is under way the previous key's: it mints nothing,
    and verifies the tokens it minted until the policy drops it. A token of the current key costs one MAC;
    the previous key is tried only when that fails."""

    def __init__(self, signing_key: bytes, previous: bytes | None = None) -> None:
        self.current = TokenKeys(signing_key)
        self.previous = None if previous is None else TokenKeys(previous)

    def __repr__(self) -> str:
        return f"Keyring(previous={self.previous is not None})"

    def open(self, token: str) -> tuple[Claims, TokenKeys] | None:
        """The claims of a token either key minted, with the key that minted it: its temporary secret is
        derived with that key (a secret derived with the other one does not sign for it)."""
        claims = self.current.open(token)
        if claims is not None:
            return claims, self.current
        if self.previous is None:
            return None
        claims = self.previous.open(token)
        return None if claims is None else (claims, self.previous)


def remaining(claims: Claims) -> float:
    return claims.expires - clock()
