"""Read and validate the policy file once; every problem is reported as ``file:line: entry: what``.

The accounts, keys, sub-users, resources and limits are built here, the ``[apis]`` table by
`gateway.policy.apis` (a base class, like `gateway.policy.roles` and `gateway.policy.secrets`: a key's
secrets or public keys), the typed reads and their line numbers by `gateway.policy.checks`.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.errors import PolicyError
from gateway.policy.apis import ApiEntries
from gateway.policy.checks import Lines
from gateway.policy.model import (
    RESOURCE_KINDS,
    AccessKey,
    Account,
    Policy,
    Resource,
    Role,
    SubUser,
)
from gateway.policy.roles import RoleEntries
from gateway.policy.secrets import KeyMaterial

DEMO_POLICY = Path(__file__).resolve().parent.parent / "demo_policy.toml"

TOP_LEVEL = ("accounts", "access_keys", "sub_users", "resources", "apis", "limits", "roles", "sts")
ACCOUNT_FIELDS = ("id", "name", "real_name_verified", "balance")
KEY_FIELDS = ("id", "secrets", "secret_env", "account", "user", "enabled", "actions", "denied_params", "quota",
              "public_keys", "public_keys_env")
SUB_USER_FIELDS = ("account", "name", "statements")
RESOURCE_FIELDS = ("kind", "id", "account")
LIMIT_FIELDS = ("flow", "quota_scope")


#: What makes two entries of one table the same entry (a duplicate is an error, not an override).
_IDENTITY: Mapping[str, Callable[[Any], object]] = MappingProxyType({
    "accounts": lambda a: a.id,
    "access_keys": lambda k: k.id,
    "sub_users": lambda u: (u.account.id, u.name),
    "resources": lambda r: (r.kind, r.id),
    "roles": lambda r: (r.account.id, r.name.lower()),  # role names are case-insensitive, as in RAM
})


def load_policy(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Policy:
    """Load and validate a policy file (None: the bundled demo policy). Raises PolicyError."""
    file = Path(path) if path is not None else DEMO_POLICY
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(text, str(file), os.environ if environ is None else environ)


def parse_policy(text: str, source: str, environ: Mapping[str, str], *, entries_only: bool = False) -> Policy:
    """``entries_only``: a file of accounts, keys and sub-users alone (`gateway keys import`), which as a
    policy would be refused for declaring no API."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    policy = _Builder(source, Lines(text), environ, entries_only=entries_only).build(data)
    return replace(policy, text_sha256=hashlib.sha256(text.encode()).hexdigest())


class _Builder(ApiEntries, RoleEntries, KeyMaterial):
    def __init__(self, source: str, lines: Lines, environ: Mapping[str, str], *, entries_only: bool = False) -> None:
        super().__init__(source, lines, environ)
        self.entries_only = entries_only

    def build(self, data: dict[str, Any]) -> Policy:
        self.fields(data, TOP_LEVEL, 1, "policy")
        limits = self.table(data.get("limits", {}), "limits", self.lines.first("[limits"))
        self.fields(limits, LIMIT_FIELDS, self.lines.first("[limits"), "limits")
        accounts = {a.id: a for a in self.each("accounts", data, self.account)}
        sub_users = {(u.account.id, u.name): u for u in self.each("sub_users", data, self.sub_user, accounts)}
        keys = {k.id: k for k in self.each("access_keys", data, self.access_key, accounts, sub_users)}
        resources = {(r.kind, r.id): r for r in self.each("resources", data, self.resource, accounts)}
        roles: dict[tuple[int, str], Role] = {
            (r.account.id, r.name.lower()): r for r in self.each("roles", data, self.role, accounts, sub_users)}
        sts = self.sts(data.get("sts"))
        if roles and sts is None:
            raise self.fail(self.lines.nth_header("roles", 0), "roles", "[[roles]] need [sts] (signing_key_env)")
        temporary = next((k for k in keys if k.startswith("STS.")), None) if sts is not None else None
        if temporary is not None:
            raise self.fail(self.lines.first(temporary), "access_keys", f"{temporary!r}: ids starting with \"STS.\" "
                            "are the temporary keys AssumeRole issues")
        apis = self.apis(self.table(data.get("apis", {}), "apis", 1))
        line = self.lines.first("quota_scope")
        scope = limits.get("quota_scope", "key")
        if scope not in ("key", "account"):
            raise self.fail(line, "limits", "quota_scope must be \"key\" or \"account\"")
        if not any(apis.values()) and not self.entries_only:
            # Every call would be refused InvalidParameter: a file cut short, or a wrong file, not a policy.
            raise self.fail(self.lines.first("[apis"), "apis", "declares no API (an [apis.<version>.<Action>] "
                            "table is needed, or every call is refused)")
        return Policy(
            source=self.source,
            accounts=MappingProxyType(accounts),
            access_keys=MappingProxyType(keys),
            sub_users=MappingProxyType(sub_users),
            apis=apis if sts is None else self.with_sts_api(apis),
            resources=MappingProxyType(resources),
            flow=self.rate(limits.get("flow"), self.lines.first("[limits"), "limits"),
            quota_scope=scope,
            roles=MappingProxyType(roles),
            sts=sts,
        )

    # -- helpers ---------------------------------------------------------------------------------

    def each(self, table: str, data: dict[str, Any], make: Callable[..., Any], *ctx: Any) -> Iterable[Any]:
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise self.fail(self.lines.first(table), table, f"must be an array of tables ([[{table}]])")
        seen: set[Any] = set()
        for index, entry in enumerate(entries):
            line = self.lines.nth_header(table, index)
            name = f"{table}[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(line, name, "must be a table")
            item = make(entry, line, name, *ctx)
            ident = _IDENTITY[table](item)
            if ident in seen:
                raise self.fail(line, name, f"duplicate entry {ident!r}")
            seen.add(ident)
            yield item

    # -- entries ---------------------------------------------------------------------------------

    def account(self, entry: dict[str, Any], line: int, name: str) -> Account:
        self.fields(entry, ACCOUNT_FIELDS, line, name)
        ident = self.typed(entry, "id", int, line, name)
        label = self.typed(entry, "name", str, line, name)
        if ident is None or ident <= 0 or not label:
            raise self.fail(line, name, "needs a positive numeric id and a name")
        return Account(
            id=ident,
            name=label,
            real_name_verified=self.typed(entry, "real_name_verified", bool, line, name, True),
            balance=float(self.typed(entry, "balance", (int, float), line, name, 0.0)),
        )

    def owner(self, entry: dict[str, Any], line: int, name: str, accounts: Mapping[int, Account]) -> Account:
        ident = self.typed(entry, "account", int, line, name)
        if ident not in accounts:
            raise self.fail(line, name, f"account {ident!r} is not declared in [[accounts]]")
        return accounts[ident]

    def sub_user(self, entry: dict[str, Any], line: int, name: str, accounts: Mapping[int, Account]) -> SubUser:
        self.fields(entry, SUB_USER_FIELDS, line, name)
        label = self.typed(entry, "name", str, line, name)
        if not label:
            raise self.fail(line, name, "needs a name")
        statements = self.statements(self.typed(entry, "statements", list, line, name, []), line, name)
        return SubUser(account=self.owner(entry, line, name, accounts), name=label, statements=statements)

    def access_key(self, entry: dict[str, Any], line: int, name: str, accounts: Mapping[int, Account],
                   sub_users: Mapping[tuple[int, str], SubUser]) -> AccessKey:
        self.fields(entry, KEY_FIELDS, line, name)
        ident = self.typed(entry, "id", str, line, name)
        if not ident:
            raise self.fail(line, name, "needs an id")
        name = f"{name} ({ident})"
        account = self.owner(entry, line, name, accounts)
        public_keys = self.public_keys(entry, line, name)
        secrets = () if public_keys else self.secrets(entry, line, name)
        user_name = self.typed(entry, "user", str, line, name)
        user = None
        if user_name is not None:
            user = sub_users.get((account.id, user_name))
            if user is None:
                raise self.fail(line, name, f"sub-user {user_name!r} of account {account.id} is not declared")
        actions = entry.get("actions", ["*"])
        denied = self.typed(entry, "denied_params", list, line, name, [])
        if not all(isinstance(p, str) for p in denied):
            raise self.fail(line, name, "denied_params must be a list of parameter names")
        return AccessKey(
            id=ident,
            secrets=secrets,
            account=account,
            user=user,
            enabled=self.typed(entry, "enabled", bool, line, name, True),
            actions=None if actions == ["*"] else self.globs(actions, line, name, "actions"),
            denied_params=frozenset(denied),
            quota=self.rate(entry.get("quota"), line, name),
            public_keys=public_keys,
        )

    def resource(self, entry: dict[str, Any], line: int, name: str, accounts: Mapping[int, Account]) -> Resource:
        self.fields(entry, RESOURCE_FIELDS, line, name)
        kind, ident = entry.get("kind"), self.typed(entry, "id", str, line, name)
        if kind not in RESOURCE_KINDS:
            raise self.fail(line, name, f"kind must be one of {', '.join(RESOURCE_KINDS)}")
        if not ident:
            raise self.fail(line, name, "needs an id")
        return Resource(kind=kind, id=ident, account=self.owner(entry, line, name, accounts).id)


#: The file's own entry builders, for the keystore (`gateway.keystore.entries`): an entry kept in Redis is
#: checked exactly as the same entry in the file.
EntryBuilder = _Builder
