from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError

# Nonces are opaque (UUIDs, 32 hex characters, ...), but each is remembered for up to twice the
# skew: a bound keeps one request from parking an arbitrarily large key in the store.
MAX_NONCE_LENGTH = 128


class NonceLayer:
    """Shapes the nonce claim; the claim itself is made with the rest of the state in `AdmitLayer`."""

    def check(self, ctx: RequestContext) -> None:
        if len(ctx.nonce or "") > MAX_NONCE_LENGTH:
            raise GatewayError(Err.INVALID_PARAMETER)
