from __future__ import annotations

import hashlib
import json

from gateway.context import RequestContext
from gateway.stores import IdempotencyClaim

# These change on every retry by design, so they cannot be part of what makes two calls "the same".
VOLATILE = frozenset({"Signature", "SignatureNonce", "Timestamp"})
MAX_TOKEN_LENGTH = 64


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _encoded(*parts: object) -> str:
    """One unambiguous text for a tuple of strings and lists of pairs: JSON quotes every string, so
    no value (a NUL, a '=', a '|', a quote) can pass for a separator and two inputs never share it."""
    return json.dumps(parts, separators=(",", ":"))


def fingerprint(method: str, answer_format: str, params: dict[str, str]) -> str:
    """What makes two calls with one ClientToken the same call: the method, the answer format the
    gateway decided (V1 names it in Format, V3 in Accept; a replay is the first call's bytes, so a
    retry asking another format is another call), and every parameter but the volatile ones."""
    fields = sorted((n, v) for n, v in params.items() if n not in VOLATILE)
    return _digest(_encoded(method, answer_format, fields))


def owner(key_id: str, user: str | None, version: str, action: str) -> str:
    return _digest(_encoded(key_id, user, version, action))


class IdempotencyLayer:
    """For APIs declared idempotent, a ClientToken claims its answer (CONTRACT §4).

    Tokens are scoped to the account: another key of the same account reusing a token is told
    InvalidIdempotenceParameter.Mismatch, while another account never sees that the token exists.
    """

    def __init__(self, *, lease_seconds: int) -> None:
        self.lease_ms = lease_seconds * 1000

    def check(self, ctx: RequestContext) -> None:
        api, key = ctx.api, ctx.key
        token = ctx.params.get("ClientToken")
        if api is None or key is None or not api.idempotent or not token:
            return
        ctx.idempotency = IdempotencyClaim(
            token=_digest(token) if len(token) > MAX_TOKEN_LENGTH else token,
            owner=owner(key.id, key.user.name if key.user else None, api.version, api.action),
            fingerprint=fingerprint(ctx.method, ctx.format, ctx.params),
            lease_ms=self.lease_ms,
        )
