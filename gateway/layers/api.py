from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.policy import Policy


class ApiLayer:
    """Action and Version name an API of the registry (the policy file's ``[apis]``)."""

    def __init__(self, policy: Policy) -> None:
        self.apis = policy.apis

    def check(self, ctx: RequestContext) -> None:
        actions = self.apis.get(ctx.version or "")
        if actions is None:
            raise GatewayError(Err.INVALID_VERSION)
        api = actions.get(ctx.action or "")
        if api is None:
            raise GatewayError(Err.INVALID_ACTION_NAME)
        ctx.api = api
