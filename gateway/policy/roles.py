"""The policy's ``[[roles]]`` and ``[sts]``: the roles AssumeRole lends, and the key that signs its tokens.

AssumeRole is served exactly when ``[sts]`` is present; its API entry is added here (never declared
under ``[apis]``), so it goes through the chain like any other call. RAM statements are read here for
sub-users and roles alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.policy.checks import Checks
from gateway.policy.model import Account, ApiSpec, ParamSpec, Role, Statement, StsConfig, SubUser

ROLE_FIELDS = ("account", "name", "trusted", "max_duration", "statements")
STS_FIELDS = ("signing_key_env", "previous_signing_key_env")
STATEMENT_FIELDS = ("effect", "actions", "resources")
ROOT = "root"
#: Alibaba Cloud's bounds for a role's maximum session duration, and the default AssumeRole asks for.
MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
STS_VERSION, ASSUME_ROLE = "2015-04-01", "AssumeRole"
_ROLE_NAME = re.compile(r"[A-Za-z0-9.-]{1,64}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _param(name: str, *, required: bool = False, max_length: int = 4096) -> ParamSpec:
    return ParamSpec(name=name, required=required, max_length=max_length)


#: The STS API the gateway answers itself. DurationSeconds and Policy are plain strings here: the
#: AssumeRole handler checks them, to answer with their own rows (InvalidParameter.DurationSeconds...).
ASSUME_ROLE_API = ApiSpec(
    version=STS_VERSION,
    action=ASSUME_ROLE,
    params=MappingProxyType({p.name: p for p in (
        _param("RoleArn", required=True, max_length=1024),
        _param("RoleSessionName", required=True, max_length=1024),
        _param("DurationSeconds", max_length=32),
        _param("Policy", max_length=32768),
        # Sent by the SDKs when configured; accepted and not used (no cross-account trust, no source identity).
        _param("ExternalId", max_length=1024),
        _param("SourceIdentity", max_length=1024),
    )}),
    required=("RoleArn", "RoleSessionName"),
)


class RoleEntries(Checks):
    """Builds ``[[roles]]``, ``[sts]`` and the RAM statements sub-users and roles share."""

    def statements(self, raw_list: Any, line: int, name: str) -> tuple[Statement, ...]:
        statements = []
        if not isinstance(raw_list, list):
            raise self.fail(line, name, "statements must be a list of tables")
        for index, raw in enumerate(raw_list):
            where = f"{name}.statements[{index}]"
            if not isinstance(raw, dict):
                raise self.fail(line, where, "must be a table")
            self.fields(raw, STATEMENT_FIELDS, line, where)
            if raw.get("effect") not in ("Allow", "Deny"):
                raise self.fail(line, where, "effect must be \"Allow\" or \"Deny\"")
            statements.append(Statement(
                effect=raw["effect"],
                actions=self.globs(raw.get("actions"), line, where, "actions"),
                resources=self.globs(raw.get("resources", ["*"]), line, where, "resources"),
            ))
        return tuple(statements)

    def role(self, entry: dict[str, Any], line: int, name: str, accounts: Mapping[int, Account],
             sub_users: Mapping[tuple[int, str], SubUser]) -> Role:
        self.fields(entry, ROLE_FIELDS, line, name)
        label = self.typed(entry, "name", str, line, name)
        if not label or _ROLE_NAME.fullmatch(label) is None:
            raise self.fail(line, name, "needs a name of 1 to 64 letters, digits, '.' or '-'")
        name = f"{name} ({label})"
        ident = self.typed(entry, "account", int, line, name)
        if ident not in accounts:
            raise self.fail(line, name, f"account {ident!r} is not declared in [[accounts]]")
        account = accounts[ident]
        trusted = self.typed(entry, "trusted", list, line, name, [])
        if not trusted or not all(isinstance(t, str) and t for t in trusted):
            raise self.fail(line, name, "trusted must be a non-empty list of sub-user names and/or \"root\"")
        for who in trusted:
            if who != ROOT and (account.id, who) not in sub_users:
                raise self.fail(line, name, f"trusted sub-user {who!r} of account {account.id} is not declared")
        max_duration = self.typed(entry, "max_duration", int, line, name, DEFAULT_DURATION)
        if not MIN_DURATION <= max_duration <= MAX_DURATION:
            raise self.fail(line, name, f"max_duration must be {MIN_DURATION} to {MAX_DURATION} seconds")
        return Role(account=account, name=label, trusted=frozenset(trusted), max_duration=max_duration,
                    statements=self.statements(entry.get("statements", []), line, name))

    def sts(self, data: Any) -> StsConfig | None:
        if data is None:
            return None
        line = self.lines.first("[sts]")
        table = self.table(data, "sts", line)
        self.fields(table, STS_FIELDS, line, "sts")
        # An empty name is "needs" here (as before), "is empty" for the previous key.
        signing_key = self.sts_key(table, "signing_key_env", line) if table.get("signing_key_env") else None
        if signing_key is None:
            raise self.fail(line, "sts", "needs signing_key_env: the environment variable holding the signing key")
        previous = self.sts_key(table, "previous_signing_key_env", line)
        if previous == signing_key:
            # Same key twice: a rotation that forgot to set the new key (the old one would go on minting).
            raise self.fail(line, "sts", "previous_signing_key_env holds the signing key itself: set a new signing key")
        return StsConfig(signing_key=signing_key, previous_signing_key=previous)

    def sts_key(self, table: dict[str, Any], name: str, line: int) -> bytes | None:
        """The key in the variable ``table[name]`` names; None when the field is absent."""
        env = self.typed(table, name, str, line, "sts")
        if env is None:
            return None
        if not env:
            raise self.fail(line, "sts", f"{name} is empty: name the environment variable holding the key")
        value = self.environ.get(env)
        if value is None:
            raise self.fail(line, "sts", f"{name} {env!r} is not set in the environment")
        if _HEX_KEY.fullmatch(value.strip()) is None:
            raise self.fail(line, "sts", f"{env} must hold 64 hex characters (a 32-byte key)")
        return bytes.fromhex(value.strip())

    def with_sts_api(self, apis: Mapping[str, Mapping[str, ApiSpec]]) -> Mapping[str, Mapping[str, ApiSpec]]:
        """``apis`` plus AssumeRole, which the gateway answers itself (an ``[apis]`` entry may not claim it)."""
        actions = dict(apis.get(STS_VERSION, {}))
        if ASSUME_ROLE in actions:
            raise self.fail(self.lines.first(STS_VERSION, ASSUME_ROLE), f"apis.{STS_VERSION}.{ASSUME_ROLE}",
                            "AssumeRole is served by the gateway when [sts] is present: do not declare it")
        actions[ASSUME_ROLE] = ASSUME_ROLE_API
        return MappingProxyType({**apis, STS_VERSION: MappingProxyType(actions)})
