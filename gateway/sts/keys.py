"""Temporary keys: a request's AccessKeyId and SecurityToken resolved into the `AccessKey` the chain checks.

`gateway.parse` asks `TemporaryKeys.resolve` for every call when ``[sts]`` is configured. A refusal is
not raised there: it is returned, and the check at the known-key position (before the signature, so the
caller learns the precise reason) raises it. A verified token is kept (bounded LRU, keyed by the token
string) as the synthetic key it stands for, so a repeated token costs a dict lookup; its expiry, and the
key that assumed the role (looked up as it is now: one more dict lookup, two for a keystore key), are
checked on every request, never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

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
                 lookup: Callable[[str], AccessKey | None] | None = None,
                 missing: Callable[[str], bool] | None = None) -> None:
        self.policy = policy
        # The key that assumed a role, as it is now: the policy file's, or (with the Redis keystore) the
        # keystore cache's, whose entries its change messages drop. `missing`: whether an id found by
        # neither must be read from Redis (then `resolve` answers (None, None): `gateway.sts.reads`).
        self.lookup = lookup if lookup is not None else policy.access_keys.get
        self.missing = missing if missing is not None else _never
        # Built with the chain, so a reload that drops a key also drops this cache of tokens it verified.
        self.keys = tokens.Keyring(sts.signing_key, sts.previous_signing_key)
        self.cache_size = cache_size
        # token -> (the key it stands for, the assuming key that key was built with)
        self._verified: OrderedDict[str, tuple[AccessKey, AccessKey | None]] = OrderedDict()

    def resolve(self, key_id: str, key: AccessKey | None, token: str | None) -> tuple[AccessKey | None, Err | None]:
        """The key a call is checked with, or None and the row refusing it. (None, None): the key is unknown,
        or (an `STS.` id) its token is sound but its assuming key must first be read from the keystore."""
        if not key_id.startswith(tokens.TEMPORARY_PREFIX):
            # A long-term key presented with a token: the token is not this key's (Alibaba Cloud refuses it too).
            return (None, Err.TOKEN_MISMATCH) if key is not None and token is not None else (key, None)
        if token is None:
            return None, Err.MISSING_SECURITY_TOKEN
        cache = self._verified
        entry = cache.get(token)
        if entry is None:
            entry = self.verified(token)
            if entry is None:
                return None, Err.TOKEN_MALFORMED
        else:
            cache.move_to_end(token)  # least recently used first out
        verified, built_with = entry
        if verified.id != key_id:
            return None, Err.TOKEN_MISMATCH
        session = verified.session
        if session is None or session.expires <= tokens.clock():
            return None, Err.TOKEN_EXPIRED
        # Looked up on every request, never cached with the token: disabling or deleting the assuming key
        # ends its sessions as soon as this gateway knows of it (a keystore change message: milliseconds).
        caller = self.lookup(session.assumed_by)
        if caller is not None and caller is built_with:  # the usual case: the key the session was built with
            return (verified, None) if caller.enabled else (None, Err.TOKEN_MALFORMED)
        if caller is None and self.missing(session.assumed_by):
            return None, None
        return self.with_caller(token, verified, built_with, caller)

    def with_caller(self, token: str, verified: AccessKey, built_with: AccessKey | None,
                    caller: AccessKey | None) -> tuple[AccessKey | None, Err | None]:
        """The session's key given its assuming key as it is now (None: gone). Refused as malformed when that
        key is gone or disabled; a key read again since (a new object) may carry a new quota."""
        if caller is None or not caller.enabled:
            return None, Err.TOKEN_MALFORMED
        if caller is not built_with:
            if caller.quota != verified.quota:
                verified = replace(verified, quota=caller.quota)
            self._keep(token, (verified, caller))
        return verified, None

    def verified(self, token: str) -> tuple[AccessKey, AccessKey | None] | None:
        """The key ``token`` stands for (cached), with the assuming key it was last built with; None: malformed."""
        cache = self._verified
        entry = cache.get(token)
        if entry is not None:
            cache.move_to_end(token)  # least recently used first out
            return entry
        entry = self._verify(token)
        if entry is not None:
            self._keep(token, entry)
        return entry

    def _keep(self, token: str, entry: tuple[AccessKey, AccessKey | None]) -> None:
        cache = self._verified
        cache[token] = entry
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _verify(self, token: str) -> tuple[AccessKey, AccessKey | None] | None:
        """The token's MAC, role and session policy; its assuming key is judged per request (`resolve`), but
        the key is built with it when it is at hand (its quota), so that a first use builds it once."""
        opened = self.keys.open(token)
        if opened is None:
            return None
        claims, minted_by = opened
        role = self.policy.roles.get((claims.account, claims.role.lower()))
        if role is None:
            return None
        try:
            statements = None if claims.policy is None else parse_session_policy(claims.policy, role.account.id)
        except GrammarError:
            return None
        caller = self.lookup(claims.assumed_by)
        return temporary_key(minted_by, claims, role_session(role, claims, statements), caller), caller


def _never(key_id: str) -> bool:
    return False


def role_session(role: Role, claims: tokens.Claims, statements: tuple[Statement, ...] | None) -> Session:
    return Session(role=role, name=claims.session, assumed_by=claims.assumed_by, expires=claims.expires,
                   statements=statements)


def temporary_key(keys: tokens.TokenKeys, claims: tokens.Claims, session: Session,
                  caller: AccessKey | None) -> AccessKey:
    """The key a temporary AccessKeyId stands for: the role's account and statements, the session policy,
    and the quota of the key that assumed the role (counted as that key's: see `gateway.admit`; set per
    request by `TemporaryKeys.with_caller` when ``caller`` is not known yet)."""
    role = session.role
    return AccessKey(
        id=claims.access_key_id,
        secrets=(keys.secret_of(claims.access_key_id),),
        account=role.account,
        # A role acts as a RAM identity: sub-user rules apply (order APIs, APIs closed to RAM, statements).
        user=SubUser(account=role.account, name=role.name, statements=role.statements),
        quota=None if caller is None else caller.quota,
        session=session,
    )
