"""The policy's ``[apis]`` table: each API's parameters, checks and limits, read and validated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.policy.checks import Checks
from gateway.policy.model import AUTH_MODES, PARAM_TYPES, RESOURCE_KINDS, ApiSpec, ParamSpec

API_FIELDS = (
    "params", "order", "min_balance", "real_name_required", "idempotent", "owner_required", "ram",
    "flow", "quota", "auth",
)
# What an anonymous call has no account to meet: a policy asking for them could never be satisfied.
_NEEDS_AN_ACCOUNT = ("order", "min_balance", "real_name_required", "owner_required")
PARAM_FIELDS = (
    "type", "required", "enum", "pattern", "max_length", "min", "max", "repeated", "resource",
)
#: The longest value a pattern may be run on: a backtracking pattern's cost grows with the value's
#: length, and the length is checked first.
MAX_PATTERN_INPUT = 4096


class ApiEntries(Checks):
    """Builds ``[apis.<version>.<action>]`` entries; `gateway.policy.loader` builds the rest of a policy."""

    def apis(self, data: dict[str, Any]) -> Mapping[str, Mapping[str, ApiSpec]]:
        versions: dict[str, Mapping[str, ApiSpec]] = {}
        for version, actions in data.items():
            line = self.lines.first("apis", version)
            actions = self.table(actions, f"apis.{version}", line)
            versions[version] = MappingProxyType({
                action: self.api(version, action, self.table(raw, f"apis.{version}.{action}", line))
                for action, raw in actions.items()
            })
        return MappingProxyType(versions)

    def api(self, version: str, action: str, raw: dict[str, Any]) -> ApiSpec:
        line = self.lines.first(version, action)
        name = f"apis.{version}.{action}"
        self.fields(raw, API_FIELDS, line, name)
        params = {
            pname: self.param(pname, self.table(spec, f"{name}.params.{pname}", line), line, name)
            for pname, spec in self.table(raw.get("params", {}), f"{name}.params", line).items()
        }
        anonymous = self.auth(raw, line, name)
        return ApiSpec(
            version=version,
            action=action,
            params=MappingProxyType(params),
            order=self.typed(raw, "order", bool, line, name, False),
            min_balance=float(self.typed(raw, "min_balance", (int, float), line, name, 0.0)),
            real_name_required=self.typed(raw, "real_name_required", bool, line, name, False),
            idempotent=self.typed(raw, "idempotent", bool, line, name, False),
            owner_required=self.typed(raw, "owner_required", bool, line, name, False),
            ram=self.typed(raw, "ram", bool, line, name, True),
            flow=self.rate(raw.get("flow"), line, name),
            quota=self.rate(raw.get("quota"), line, name),
            anonymous=anonymous,
            repeated=frozenset(p.name for p in params.values() if p.repeated),
            required=tuple(p.name for p in params.values() if p.required),
            resource_params=tuple(p for p in params.values() if p.resource),
        )

    def auth(self, raw: dict[str, Any], line: int, name: str) -> bool:
        """True for ``auth = "anonymous"``; refuses any other value than the two, and an anonymous API
        declaring a requirement only an account could meet."""
        mode = self.typed(raw, "auth", str, line, name, "signed")
        if mode not in AUTH_MODES:
            raise self.fail(line, name, f"auth must be one of {', '.join(AUTH_MODES)} (got {mode!r})")
        if mode != "anonymous":
            return False
        for field in _NEEDS_AN_ACCOUNT:
            if raw.get(field):
                raise self.fail(line, name, f'auth = "anonymous" cannot be combined with {field}: an anonymous '
                                "caller has no account")
        return True

    def param(self, pname: str, raw: dict[str, Any], line: int, api: str) -> ParamSpec:
        name = f"{api}.params.{pname}"
        self.fields(raw, PARAM_FIELDS, line, name)
        kind = raw.get("type", "String")
        if kind not in PARAM_TYPES:
            raise self.fail(line, name, f"type must be one of {', '.join(PARAM_TYPES)}")
        enum = self.typed(raw, "enum", list, line, name)
        pattern = self.typed(raw, "pattern", str, line, name)
        try:
            compiled = re.compile(pattern) if pattern is not None else None
        except re.error as exc:
            raise self.fail(line, name, f"pattern does not compile: {exc}") from None
        max_length = self.typed(raw, "max_length", int, line, name)
        if max_length is not None and max_length < 0:
            raise self.fail(line, name, "max_length must not be negative")
        if compiled is not None and (max_length is None or max_length > MAX_PATTERN_INPUT):
            raise self.fail(line, name, f"a pattern needs a max_length of at most {MAX_PATTERN_INPUT}")
        resource = raw.get("resource")
        if resource is not None and resource not in RESOURCE_KINDS:
            raise self.fail(line, name, f"resource must be one of {', '.join(RESOURCE_KINDS)}")
        return ParamSpec(
            name=pname,
            type=kind,
            required=self.typed(raw, "required", bool, line, name, False),
            enum=frozenset(str(v) for v in enum) if enum is not None else None,
            pattern=compiled,
            max_length=max_length,
            min=self.typed(raw, "min", (int, float), line, name),
            max=self.typed(raw, "max", (int, float), line, name),
            repeated=self.typed(raw, "repeated", bool, line, name, False),
            resource=resource,
        )
