"""Who is calling, and what: the API exists, the key exists and is enabled, the signature verifies
with one of its secrets, and the Timestamp is within the skew."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from datetime import datetime

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.policy import ApiSpec
from gateway.signing import verify_v1, verify_v3_body

# ISO 8601 UTC as the SDKs send it; fromisoformat alone would also take dates, offsets and spaces.
_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")



class KnownApi:
    """Action and Version name an API of the registry (the policy file's ``[apis]``)."""

    def __init__(self, apis: Mapping[str, Mapping[str, ApiSpec]]) -> None:
        self.apis = apis

    def __call__(self, call: Call) -> None:
        # `gateway.parse` looked the API up; only a refusal asks which of the two names is wrong.
        if call.api is None:
            unknown = Err.INVALID_VERSION if (call.version or "") not in self.apis else Err.INVALID_ACTION_NAME
            raise GatewayError(unknown)


def known_key(call: Call) -> None:
    """The AccessKeyId exists and is enabled (looked up by `gateway.parse`: one dict lookup); a temporary
    key's token verified (`gateway.sts.keys`: its refusal comes here, before the signature check)."""
    key = call.key
    if key is None:
        raise GatewayError(call.token_error or Err.ACCESS_KEY_NOT_FOUND)
    if not key.enabled:
        raise GatewayError(Err.ACCESS_KEY_DISABLED)


def signature(call: Call) -> None:
    """The signature verifies with one of the key's secrets (version 1.0 or V3), or for
    ``ACS3-RSA-SHA256`` one of its public keys (a key holds either kind, so either other claim fails).

    A V3 signature must also cover the headers that bind it to this call (`verify_v3` checks that),
    and the body received must be the one whose hash it signed.
    """
    key = call.key
    if key is None:
        raise GatewayError(Err.INCOMPLETE_SIGNATURE)
    auth = call.v3
    if auth is None:
        ok = verify_v1(key.secrets, call.method, call.params, call.signature or "", call.signature_method or "")
    else:
        ok = verify_v3_body(key.secrets, call.method, call.path, call.query, call.headers, auth, call.body,
                            key.public_keys)
    if not ok:
        raise GatewayError(Err.INCOMPLETE_SIGNATURE)


@functools.lru_cache(maxsize=256)  # one second's Timestamp is shared by every request of that second
def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch, or None when the value is not ``YYYY-MM-DDThh:mm:ss[.ffffff]Z``."""
    if _SHAPE.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None  # a shape that parses as no date (month 13, second 61)


class Timestamp:
    """The Timestamp is well formed and within the allowed skew of the server clock."""

    def __init__(self, *, skew: int) -> None:
        self.skew = skew

    def __call__(self, call: Call) -> None:
        when = parse_timestamp(call.timestamp or "")
        if when is None or abs(when - time.time()) > self.skew:
            raise GatewayError(Err.ILLEGAL_TIMESTAMP)
