"""Who owns a resource: the question RAM checks ask before evaluating a sub-user's statements.

The built-in resolver answers from the policy file's ``[[resources]]``. A service with its own
inventory plugs in any object with this one coroutine, for example one that queries its database::

    class DatabaseResolver:
        async def lookup(self, kind: str, resource_id: str) -> Resource | None:
            row = await db.fetch_one("SELECT account FROM resources WHERE kind=$1 AND id=$2", kind, resource_id)
            return Resource(kind, resource_id, row["account"]) if row else None

    GatewayMiddleware(app, resolver=DatabaseResolver())
"""

from __future__ import annotations

from typing import Protocol

from gateway.policy import Policy, Resource


class ResourceResolver(Protocol):
    async def lookup(self, kind: str, resource_id: str) -> Resource | None:
        """The resource and its owning account, or None when it does not exist."""
        ...


class PolicyResolver:
    """Resources declared in the policy file."""

    def __init__(self, policy: Policy) -> None:
        self._resources = policy.resources

    async def lookup(self, kind: str, resource_id: str) -> Resource | None:
        return self._resources.get((kind, resource_id))
