"""Temporary keys: a request's AccessKeyId and SecurityToken resolved into the `AccessKey` the chain checks.

`gateway.parse` asks `TemporaryKeys.resolve` for every call when ``[sts]`` is configured. A refusal is
not raised there: it is returned, and the check at the known-key position (before the signature, so the
caller learns the precise reason) raises it. A verified token is kept (bounded LRU, keyed by the token
string) as the synthetic key it stands for, so a repeated token costs a dict lookup; its expiry is
checked on every request, never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from gateway.catalog import Err
from gateway.policy import AccessKey, Policy, SubUser
from gateway.policy.model import Role, Session, Statement, StsConfig
from gateway.sts import token as tokens
from gateway.sts.grammar import GrammarError, parse_session_policy

#: Common parameters a deployment with ``[sts]`` accepts on every API (V1 sends the token as a parameter).
STS_PARAMETERS = frozenset({"SecurityToken"})
#: Verified tokens kept: enough for every live session of a large deployment; an evicted one is verified again.
CACHE_SIZE = 16384


class TemporaryKeys:
    def __init__(self, policy: Policy, sts: StsConfig, *, cache_size: int = CACHE_SIZE,
                 lookup: Callable[[str], AccessKey | None] | None = None) -> None:
        self.policy = policy
        # The key that assumed a role: the policy file's, or (with the Redis keystore) the keystore cache's.
        self.lookup = lookup if lookup is not None else policy.access_keys.get
        self.keys = tokens.TokenKeys(sts.signing_key)
        self.cache_size = cache_size
        self._verified: OrderedDict[str, AccessKey] = OrderedDict()

    def resolve(self, key_id: str, key: AccessKey | None, token: str | None) -> tuple[AccessKey | None, Err | None]:
        """The key a call is checked with, or None and the row refusing it (None: the key is unknown)."""
        if not key_id.startswith(tokens.TEMPORARY_PREFIX):
            # A long-term key presented with a token: the token is not this key's (Alibaba Cloud refuses it too).
            return (None, Err.TOKEN_MISMATCH) if key is not None and token is not None else (key, None)
        if token is None:
            return None, Err.MISSING_SECURITY_TOKEN
        cache = self._verified
        verified = cache.get(token)
        if verified is None:
            verified = self._verify(token)
            if verified is None:
                return None, Err.TOKEN_MALFORMED
            self._keep(token, verified)
        else:
            cache.move_to_end(token)  # least recently used first out
        if verified.id != key_id:
            return None, Err.TOKEN_MISMATCH
        session = verified.session
        if session is None or session.expires <= tokens.clock():
            return None, Err.TOKEN_EXPIRED
        return verified, None

    def _keep(self, token: str, key: AccessKey) -> None:
        verified = self._verified
        verified[token] = key
        if len(verified) > self.cache_size:
            verified.popitem(last=False)

    def _verify(self, token: str) -> AccessKey | None:
        claims = self.keys.open(token)
        if claims is None:
            return None
        # The token names the role and the key that assumed it; both must still be in the policy (and
        # that key enabled): removing or disabling a key also ends the sessions it opened.
        role = self.policy.roles.get((claims.account, claims.role.lower()))
        caller = self.lookup(claims.assumed_by)
        if role is None or caller is None or not caller.enabled:
            return None
        try:
            statements = None if claims.policy is None else parse_session_policy(claims.policy, role.account.id)
        except GrammarError:
            return None
        return temporary_key(self.keys, claims, role_session(role, claims, statements), caller)


def role_session(role: Role, claims: tokens.Claims, statements: tuple[Statement, ...] | None) -> Session:
    return Session(role=role, name=claims.session, assumed_by=claims.assumed_by, expires=claims.expires,
                   statements=statements)


def temporary_key(keys: tokens.TokenKeys, claims: tokens.Claims, session: Session, caller: AccessKey) -> AccessKey:
    """The key a temporary AccessKeyId stands for: the role's account and statements, the session policy,
    and the quota of the key that assumed the role (counted as that key's: see `gateway.admit`)."""
    role = session.role
    return AccessKey(
        id=claims.access_key_id,
        secrets=(keys.secret_of(claims.access_key_id),),
        account=role.account,
        # A role acts as a RAM identity: sub-user rules apply (order APIs, APIs closed to RAM, statements).
        user=SubUser(account=role.account, name=role.name, statements=role.statements),
        quota=caller.quota,
        session=session,
    )
