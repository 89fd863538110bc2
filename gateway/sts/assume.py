"""AssumeRole, answered by the gateway itself once the chain admitted the call (signature, timestamp,
nonce, flow control, the caller's RAM statements: like any other API).

`AssumeRole` is an ASGI app of its own, built with each chain from a policy with ``[sts]``
(`gateway.chain.Chain.assume`): the middleware hands it the AssumeRole call instead of the service.
The answer is JSON in Alibaba Cloud's STS shape; the gateway's responder renders it in the caller's
format (and adds the RequestId) like a service's answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import BadInput, GatewayError
from gateway.policy import AccessKey, Policy
from gateway.policy.model import Role
from gateway.policy.roles import DEFAULT_DURATION, MIN_DURATION, ROOT
from gateway.sts import token as tokens
from gateway.sts.grammar import GrammarError, compact, parse_session_policy

_ROLE_ARN = re.compile(r"acs:ram::([0-9]{1,20}):role/([^/]{1,64})")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.@-]{2,64}")
_DURATION = re.compile(r"[0-9]{1,6}")


def role_id(role: Role) -> str:
    """A stable numeric id for the role, as AssumedRoleId carries one (``<role id>:<session name>``)."""
    digest = hashlib.sha256(f"{role.account.id}:{role.name.lower()}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % 10**17).rjust(17, "3")


class AssumeRole:
    """The AssumeRole decision: role, trust, session name, duration, session policy; then the credentials."""

    def __init__(self, policy: Policy) -> None:
        if policy.sts is None:
            raise ValueError("AssumeRole needs [sts]")
        self.roles = policy.roles
        self.keys = tokens.TokenKeys(policy.sts.signing_key)  # never the previous key: it only verifies

    def role(self, caller: AccessKey, arn: str) -> Role:
        match = _ROLE_ARN.fullmatch(arn)
        if match is None:
            raise BadInput("RoleArn is not acs:ram::<account id>:role/<role name>")
        role = self.roles.get((int(match[1]), match[2].lower()))
        # Another account's role is reported as missing: a caller learns nothing of other accounts.
        if role is None or role.account.id != caller.account.id:
            raise GatewayError(Err.ROLE_NOT_FOUND)
        # A temporary key may not chain into another role: its session would outlive its own expiry.
        if caller.session is not None or (caller.user.name if caller.user else ROOT) not in role.trusted:
            raise GatewayError(Err.NO_PERMISSION)
        return role

    def answer(self, call: Call) -> dict[str, Any]:
        caller, params = call.key, call.params
        if caller is None:  # the chain refuses such a call first
            raise GatewayError(Err.INTERNAL_ERROR)
        role = self.role(caller, params.get("RoleArn", ""))
        session = params.get("RoleSessionName", "")
        if _SESSION_NAME.fullmatch(session) is None:
            raise GatewayError(Err.INVALID_ROLE_SESSION_NAME)
        duration = self.duration(role, params.get("DurationSeconds"))
        policy = params.get("Policy") or None
        if policy is not None:
            try:
                parse_session_policy(policy, role.account.id)
            except GrammarError:
                raise GatewayError(Err.INVALID_POLICY_GRAMMAR) from None
            policy = compact(policy)
        expires = int(tokens.clock()) + duration
        key_id = tokens.new_access_key_id()
        token = self.keys.mint(tokens.Claims(key_id, role.account.id, role.name, session, caller.id, expires, policy))
        return {
            "AssumedRoleUser": {"Arn": f"{role.arn}/{session}", "AssumedRoleId": f"{role_id(role)}:{session}"},
            "Credentials": {
                "AccessKeyId": key_id,
                "AccessKeySecret": self.keys.secret_of(key_id),
                "SecurityToken": token,
                "Expiration": tokens.expiration(expires),
            },
        }

    @staticmethod
    def duration(role: Role, given: str | None) -> int:
        if given is None:
            return min(DEFAULT_DURATION, role.max_duration)
        if _DURATION.fullmatch(given) is None or not MIN_DURATION <= int(given) <= role.max_duration:
            raise GatewayError(Err.INVALID_DURATION)
        return int(given)


    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the AssumeRole call of ``scope`` (the middleware sends only that API here)."""
        call = scope["gateway"]
        body = json.dumps(self.answer(call), separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json;charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})
