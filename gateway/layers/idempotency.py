from __future__ import annotations

import hashlib

from gateway.context import RequestContext
from gateway.stores import IdempotencyClaim

# These change on every retry by design, so they cannot be part of what makes two calls "the same".
VOLATILE = frozenset({"Signature", "SignatureNonce", "Timestamp"})
MAX_TOKEN_LENGTH = 64


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


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
        caller = f"{key.id}|{key.user.name if key.user else ''}|{api.version}|{api.action}"
        fields = sorted((n, v) for n, v in ctx.params.items() if n not in VOLATILE)
        fingerprint = _digest(ctx.method, *(f"{n}={v}" for n, v in fields))
        ctx.idempotency = IdempotencyClaim(
            token=_digest(token) if len(token) > MAX_TOKEN_LENGTH else token,
            owner=_digest(caller),
            fingerprint=fingerprint,
            lease_ms=self.lease_ms,
        )
