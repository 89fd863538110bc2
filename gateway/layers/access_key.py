from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.policy import Policy


class AccessKeyLayer:
    """The AccessKeyId exists and is enabled; one dict lookup, whatever the number of keys."""

    def __init__(self, policy: Policy) -> None:
        self.keys = policy.access_keys

    def check(self, ctx: RequestContext) -> None:
        key = self.keys.get(ctx.access_key_id or "")
        if key is None:
            raise GatewayError(Err.ACCESS_KEY_NOT_FOUND)
        if not key.enabled:
            raise GatewayError(Err.ACCESS_KEY_DISABLED)
        ctx.key = key
