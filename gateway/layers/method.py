from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError

ALLOWED_METHODS = frozenset({"GET", "POST"})


class MethodLayer:
    """GET and POST only (CONTRACT §2); checked before the body is read."""

    def check(self, ctx: RequestContext) -> None:
        if ctx.method not in ALLOWED_METHODS:
            raise GatewayError(Err.UNSUPPORTED_HTTP_METHOD)
