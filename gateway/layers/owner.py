from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError


class OwnerLayer:
    """OwnerId / OwnerAccount, when given, name the caller's own account (and only one of them)."""

    def check(self, ctx: RequestContext) -> None:
        params = ctx.params
        # An empty value names no owner (as for the other optional common parameters).
        owner_id = params.get("OwnerId") or None
        owner_account = params.get("OwnerAccount") or None
        if owner_id is not None and owner_account is not None:
            raise GatewayError(Err.INVALID_OWNER)
        account = ctx.key.account if ctx.key is not None else None
        if owner_id is not None and (account is None or owner_id != str(account.id)):
            raise GatewayError(Err.INVALID_OWNER_ID)
        if owner_account is not None and (account is None or owner_account != account.name):
            raise GatewayError(Err.INVALID_OWNER_ACCOUNT)
        if owner_id is None and owner_account is None and ctx.api is not None and ctx.api.owner_required:
            raise GatewayError(Err.MISSING_OWNER)
