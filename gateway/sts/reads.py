"""With ``[sts]`` and the Redis keystore: the parser's keystore, also reading a session's assuming key.

`gateway.parse` hands a call whose key is neither in the file nor in the keystore's cache to its keystore's
``complete`` (one single-flight read per id, `gateway.keystore.cache.KeyCache`). With `[sts]`, two more
calls arrive there, and this wrapper takes them:

* an ``STS.`` AccessKeyId whose token is sound but whose assuming key was not cached (`TemporaryKeys.resolve`
  answered (None, None)): that key is read the same way (ServiceUnavailable when Redis cannot be read,
  never admitted unchecked), then the session is judged with it. Without this, a session of a Redis key
  verified only on a gateway that had happened to read that key;
* a long-term key read from Redis for a call that carries a token: refused as Mismatch, as a file key
  with a token is (the parser only resolves a key it found).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.call import Call
from gateway.catalog import Err
from gateway.parse import Keystore
from gateway.policy import AccessKey
from gateway.sts import token as tokens
from gateway.sts.keys import TemporaryKeys


def token_of(call: Call) -> str | None:
    """The SecurityToken where the call's signature version carries it (as `gateway.parse` reads it)."""
    return call.headers.get("x-acs-security-token") if call.v3 is not None else call.params.get("SecurityToken")


class SessionKeystore:
    """`gateway.parse.Keystore` over the process's keystore, for a chain with `[sts]`."""

    def __init__(self, keystore: Keystore, temporary: TemporaryKeys) -> None:
        self.keystore, self.temporary = keystore, temporary

    @property
    def entries(self) -> Mapping[str, AccessKey | None]:
        return self.keystore.entries

    def missing(self, key_id: str | None) -> bool:
        # The parser asks only for a call with no key and no refusal: for an STS. id, that is exactly a
        # session whose assuming key must be read (an STS. id itself is never in the keystore).
        if key_id is not None and key_id.startswith(tokens.TEMPORARY_PREFIX):
            return True
        return self.keystore.missing(key_id)

    async def complete(self, call: Call) -> Call:
        key_id = call.access_key_id or ""
        token = token_of(call)
        if not key_id.startswith(tokens.TEMPORARY_PREFIX):
            call = await self.keystore.complete(call)
            if call.key is not None and token is not None:
                return call._replace(key=None, token_error=Err.TOKEN_MISMATCH)
            return call
        temporary = self.temporary
        entry = None if token is None else temporary.verified(token)
        session = None if entry is None else entry[0].session
        if token is None or entry is None or session is None:
            return call._replace(token_error=Err.TOKEN_MALFORMED)  # not reached: `resolve` refused it already
        verified, built_with = entry
        # The keystore's own read path (single flight, bounded, ServiceUnavailable when Redis is down),
        # asked for the assuming key instead of the call's.
        read = await self.keystore.complete(call._replace(access_key_id=session.assumed_by))
        # The session's own checks (match, expiry) passed in `resolve`, before this read was needed.
        key, refusal = temporary.with_caller(token, verified, built_with, read.key)
        return call._replace(key=key, token_error=refusal)
