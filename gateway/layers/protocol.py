from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.signing import ALGORITHM_V3


class ProtocolLayer:
    """SignatureMethod and SignatureVersion name something this gateway verifies."""

    def __init__(self, *, v1_methods: tuple[str, ...]) -> None:
        self.v1_methods = frozenset(v1_methods)

    def check(self, ctx: RequestContext) -> None:
        if ctx.v3 is not None:
            if ctx.signature_method != ALGORITHM_V3:
                raise GatewayError(Err.INVALID_SIGNATURE_METHOD)
            return
        if ctx.signature_method not in self.v1_methods:
            raise GatewayError(Err.INVALID_SIGNATURE_METHOD)
        if ctx.signature_version != "1.0":
            raise GatewayError(Err.INVALID_SIGNATURE_VERSION)
