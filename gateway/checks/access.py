"""The key's grants, and for a sub-user its RAM statements over the resources the call names."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from types import MappingProxyType

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.memo import PerObjects
from gateway.policy import AccessKey, ApiSpec, Statement, SubUser
from gateway.resources import ResourceResolver

#: Resource kind -> the row refusing a RAM check on one that does not exist.
NOT_FOUND = MappingProxyType({
    "instance": Err.INSTANCE_NOT_FOUND,
    "disk": Err.DISK_NOT_FOUND,
    "security_group": Err.SECURITY_GROUP_NOT_FOUND,
    "snapshot": Err.SNAPSHOT_NOT_FOUND,
    "image": Err.IMAGE_NOT_FOUND,
})


def _named_resources(api: ApiSpec, params: Mapping[str, str]) -> list[tuple[str, str]]:
    """The distinct (kind, id) pairs a request names: a list repeating one id costs one lookup."""
    named: list[tuple[str, str]] = []
    for spec in api.resource_params:
        kind = spec.resource or ""
        if spec.repeated:
            prefix = spec.name + "."
            named.extend((kind, value) for name, value in params.items() if name.startswith(prefix))
        elif spec.name in params:
            named.append((kind, params[spec.name]))
    return list(dict.fromkeys(named))


def _allows(key: AccessKey, user: SubUser, action: str, targets: list[str]) -> bool:
    """The sub-user's (or role's) statements allow it, and so does a temporary key's session policy."""
    if not _ram_allows(user.statements, action, targets):
        return False
    session = key.session
    return session is None or session.statements is None or _ram_allows(session.statements, action, targets)


def _ram_allows(statements: tuple[Statement, ...], action: str, targets: list[str]) -> bool:
    # Deny wins over Allow; nothing allowed means denied. Every target must pass on its own.
    for target in targets:
        allowed = False
        for statement in statements:
            if statement.actions.match(action) and statement.resources.match(target):
                if statement.effect == "Deny":
                    return False
                allowed = True
        if not allowed:
            return False
    return True


class Access:
    """The key's grants, and for a sub-user its RAM statements over the resources it names."""

    def __init__(self, resolver: ResourceResolver) -> None:
        self.resolver = resolver
        # A call naming no resource is decided by the key and the API alone (statements never change
        # once loaded): decided once per pair, as a regex match per statement on every call is work.
        self._account_wide: PerObjects[bool] = PerObjects()

    def __call__(self, call: Call) -> Awaitable[None] | None:
        key, api = call.key, call.api
        if key is None or api is None:
            return None
        if key.actions is not None and key.actions.match(api.action) is None:
            raise GatewayError(Err.INVALID_ACTION)
        if key.denied_params:
            for name in call.params:
                if name in key.denied_params or name.split(".", 1)[0] in key.denied_params:
                    raise GatewayError(Err.PARAMETER_NOT_PERMITTED, name=name)
        user = key.user
        if user is None:
            return None
        if api.order:
            raise GatewayError(Err.FORBIDDEN_SUB_USER)
        if not api.ram:
            raise GatewayError(Err.FORBIDDEN_NOT_SUPPORT_RAM)
        named = _named_resources(api, call.params)
        if named:
            # Only a sub-user naming resources waits for the resolver; every other call stays sync.
            return self._check_resources(key, user, api.action, named)
        allowed = self._account_wide.get(key, api)
        if allowed is None:
            allowed = self._account_wide.put(_allows(key, user, api.action, ["*"]), key, api)
        if not allowed:
            raise GatewayError(Err.FORBIDDEN_RAM)
        return None

    async def _check_resources(self, key: AccessKey, user: SubUser, action: str,
                               named: list[tuple[str, str]]) -> None:
        account = key.account.id
        targets = []
        for kind, resource_id in named:
            resource = await self.resolver.lookup(kind, resource_id)
            # Another account's resource is reported as missing: a sub-user learns nothing of it; so is
            # one of another kind than asked for, which no statement about this kind may decide.
            if resource is None or resource.account != account or resource.kind != kind:
                raise GatewayError(NOT_FOUND[kind])
            # The statements judge the resource the service will act on: the resolver's canonical id,
            # which a case-insensitive lookup (a database collation) may spell otherwise than the
            # caller. The caller's spelling must pass as well, so that neither can widen access.
            targets.append(f"{kind}/{resource.id}")
            if resource.id != resource_id:
                targets.append(f"{kind}/{resource_id}")
        if not _allows(key, user, action, targets):
            raise GatewayError(Err.FORBIDDEN_RAM)
