"""The account the call acts for: OwnerId / OwnerAccount name the caller's own, and it meets the API's
requirements (real-name verification, a minimum balance)."""

from __future__ import annotations

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError


def owner(call: Call) -> None:
    """OwnerId / OwnerAccount, when given, name the caller's own account (and only one of them)."""
    params = call.params
    # An empty value names no owner (as for the other optional common parameters).
    owner_id = params.get("OwnerId") or None
    owner_account = params.get("OwnerAccount") or None
    if owner_id is not None and owner_account is not None:
        raise GatewayError(Err.INVALID_OWNER)
    account = call.key.account if call.key is not None else None
    if owner_id is not None and (account is None or owner_id != str(account.id)):
        raise GatewayError(Err.INVALID_OWNER_ID)
    if owner_account is not None and (account is None or owner_account != account.name):
        raise GatewayError(Err.INVALID_OWNER_ACCOUNT)
    if owner_id is None and owner_account is None and call.api is not None and call.api.owner_required:
        raise GatewayError(Err.MISSING_OWNER)


def account_state(call: Call) -> None:
    """The calling account meets the API's declared requirements (real-name, minimum balance)."""
    api, key = call.api, call.key
    if api is None or key is None:
        return
    if api.real_name_required and not key.account.real_name_verified:
        raise GatewayError(Err.REAL_NAME_REQUIRED)
    if api.min_balance > 0 and key.account.balance < api.min_balance:
        raise GatewayError(Err.INSUFFICIENT_BALANCE)
