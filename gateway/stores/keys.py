"""The Redis store's key names, one place for the layout the Lua scripts rely on.

Key layout (``prefix`` defaults to ``gw``; ``{...}`` is the Redis Cluster hash tag)::

    gw:{<scope>}:n:<nonce>     nonce claim            SET PX nonce_ttl
    gw:{<scope>}:q:<key>       quota "window:used"    SET PX until the window ends, then KEEPTTL
    gw:{<scope>}:i:<token>     idempotency hash       state p(ending)/d(one), owner, fp, lease[, answer]
                                                      PX lease, renewed while the call runs, then answer TTL
    gw:{<scope>}:c:<lease>     lease cancelled        SET PX lease, by a release ahead of its admit
    gw:{<scope>}:h             nonce history since    SET PX 7 days, when first missing (ms)
    gw:{f:<key>}               flow-control GCRA TAT  SET PX until the TAT has passed
"""

from __future__ import annotations

from gateway.stores.base import IdempotencyClaim


class Keys:
    """The names under one ``prefix``; a scope becomes the hash tag of every per-request key."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"store prefix {prefix!r}: braces would break the cluster hash tags")
        self.prefix = prefix

    def tag(self, scope: str) -> str:
        if not scope or "{" in scope or "}" in scope:
            raise ValueError(f"scope {scope!r} cannot be a hash tag")
        return f"{self.prefix}:{{{scope}}}"

    def flow(self, key: str) -> str:
        return f"{self.prefix}:{{f:{key}}}"

    def token(self, scope: str, claim: IdempotencyClaim) -> str:
        return f"{self.tag(scope)}:i:{claim.token}"

    def token_pair(self, scope: str, claim: IdempotencyClaim) -> list[str]:
        """The token's hash and its lease's cancellation mark: what a release touches."""
        tag = self.tag(scope)
        return [f"{tag}:i:{claim.token}", f"{tag}:c:{claim.lease}"]
