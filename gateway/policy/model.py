"""The policy, as the layers read it: immutable, indexed for O(1) lookups, built once at start."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from gateway.rates import Rate

if TYPE_CHECKING:
    from gateway.signing import PublicKey

#: Resource kinds a parameter may name, keyed as the policy spells them.
RESOURCE_KINDS = ("instance", "disk", "security_group", "snapshot", "image")
PARAM_TYPES = ("String", "Integer", "Long", "Boolean", "Float")
#: An API's ``auth``: "signed" (the default) or "anonymous" (callable with no credentials at all).
AUTH_MODES = ("signed", "anonymous")
QuotaScope = Literal["key", "account"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    real_name_verified: bool = True
    balance: float = 0.0


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Literal["Allow", "Deny"]
    actions: re.Pattern[str]
    # Matched against "kind/id" of each resource a request names, or "*" when it names none, so
    # a statement scoped to some resources never grants account-wide calls.
    resources: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class SubUser:
    account: Account
    name: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class Role:
    """A ``[[roles]]`` entry: who may assume it (``trusted``: sub-user names and/or ``"root"``), for how
    long at most, and the RAM statements its temporary keys act under."""

    account: Account
    name: str
    trusted: frozenset[str]
    max_duration: int
    statements: tuple[Statement, ...]

    @property
    def arn(self) -> str:
        return f"acs:ram::{self.account.id}:role/{self.name}"


@dataclass(frozen=True, slots=True)
class Session:
    """What a verified SecurityToken says: the role, the session, who assumed it, until when."""

    role: Role
    name: str  # RoleSessionName
    assumed_by: str  # the AccessKeyId that called AssumeRole: quotas count against it
    expires: int  # seconds since the epoch
    statements: tuple[Statement, ...] | None  # the session policy; None when AssumeRole was given none


@dataclass(frozen=True, slots=True)
class StsConfig:
    """``[sts]``: the deployment serves AssumeRole and verifies the temporary keys it issues."""

    signing_key: bytes = field(repr=False)
    # The key before the last rotation: its tokens still verify (until dropped); it mints none.
    previous_signing_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AccessKey:
    id: str
    secrets: tuple[str, ...]  # empty for a key that signs with RSA (public_keys)
    account: Account
    user: SubUser | None = None
    enabled: bool = True
    actions: re.Pattern[str] | None = None  # None: every action
    denied_params: frozenset[str] = frozenset()
    quota: Rate | None = None
    # ACS3-RSA-SHA256 only: the key pair's public halves (one, or two while it is rotated).
    public_keys: tuple[PublicKey, ...] = ()
    session: Session | None = None  # a temporary (STS) key: the token's claims

    def __repr__(self) -> str:
        # Secrets must never reach a log line, a traceback or an error body.
        return f"AccessKey(id={self.id!r}, account={self.account.id}, user={self.user and self.user.name!r})"


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    type: str = "String"
    required: bool = False
    enum: frozenset[str] | None = None
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    repeated: bool = False
    resource: str | None = None


@dataclass(frozen=True, slots=True)
class ApiSpec:
    version: str
    action: str
    params: Mapping[str, ParamSpec] = field(default_factory=lambda: MappingProxyType({}))
    order: bool = False
    min_balance: float = 0.0
    real_name_required: bool = False
    idempotent: bool = False
    owner_required: bool = False
    ram: bool = True
    flow: Rate | None = None
    quota: Rate | None = None
    # ``auth = "anonymous"``: callable without credentials (gateway.checks.anonymous says what that means).
    anonymous: bool = False
    # Declared repeated parameters, for matching "Name.N" without scanning every spec per request.
    repeated: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()
    resource_params: tuple[ParamSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    id: str
    account: int


@dataclass(frozen=True, slots=True)
class Policy:
    source: str
    accounts: Mapping[int, Account]
    access_keys: Mapping[str, AccessKey]
    sub_users: Mapping[tuple[int, str], SubUser]
    apis: Mapping[str, Mapping[str, ApiSpec]]  # Version -> Action -> spec
    resources: Mapping[tuple[str, str], Resource]
    flow: Rate | None = None
    quota_scope: QuotaScope = "key"
    # SHA-256 of the text it was read from: a reload of the same text changes nothing ("unchanged").
    text_sha256: str = ""
    # (account id, role name lower-cased): role names are case-insensitive, as in RAM.
    roles: Mapping[tuple[int, str], Role] = field(default_factory=lambda: MappingProxyType({}))
    sts: StsConfig | None = None

    def api(self, version: str, action: str) -> ApiSpec | None:
        return self.apis.get(version, _NO_APIS).get(action)

    def summary(self) -> str:
        n_apis = sum(len(actions) for actions in self.apis.values())
        return (
            f"{self.source}: {len(self.accounts)} accounts, {len(self.access_keys)} access keys, "
            f"{len(self.sub_users)} sub-users, {n_apis} APIs in {len(self.apis)} versions, "
            f"{len(self.resources)} resources, global flow {self.flow or 'unlimited'}, "
            f"quotas per {self.quota_scope}"
        )


_NO_APIS: Mapping[str, ApiSpec] = MappingProxyType({})
