from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError


class AccountStateLayer:
    """The calling account meets the API's declared requirements (real-name, minimum balance)."""

    def check(self, ctx: RequestContext) -> None:
        api, key = ctx.api, ctx.key
        if api is None or key is None:
            return
        if api.real_name_required and not key.account.real_name_verified:
            raise GatewayError(Err.REAL_NAME_REQUIRED)
        if api.min_balance > 0 and key.account.balance < api.min_balance:
            raise GatewayError(Err.INSUFFICIENT_BALANCE)
