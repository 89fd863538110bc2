"""What a candidate policy changes against the one in force: what a reload will do, never a secret.

Entries are matched by what identifies them (a key's id, an API's version and Action, ...), then compared
field by field, so an operator reads ``~ access key LTAIx: enabled true -> false`` rather than two
dumps to compare. `gateway check-config --diff` prints it; a reload logs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from gateway.policy.model import Account, ApiSpec, Policy, Resource, StsConfig, SubUser
from gateway.rates import Rate

#: (period in ms, name, short suffix): a rate is shown as it would be written, "5/day" or "100/10s".
_PERIODS = ((86_400_000, "day", "d"), (3_600_000, "hour", "h"), (60_000, "minute", "m"), (1_000, "second", "s"))
#: Fields whose values are never shown, only that they changed.
_SECRET_FIELDS = frozenset({"secrets"})
#: Fields derived from others (shown through them).
_DERIVED_FIELDS = frozenset({"repeated", "required", "resource_params"})
#: Kinds that are one section, never counted in the plural.
_UNCOUNTED = frozenset({"limits", "sts"})


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "access key", "account", "sub-user", "API", "resource", "role", "limits", "sts"
    name: str
    sign: str  # "+" added, "-" removed, "~" changed
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.sign} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        return [str(change) for change in self.changes]

    def summary(self) -> str:
        """One line of counts: ``2 access keys changed, 1 API added`` (or ``no change``)."""
        counts: dict[tuple[str, str], int] = {}
        for change in self.changes:
            counts[(change.kind, change.sign)] = counts.get((change.kind, change.sign), 0) + 1
        words = {"+": "added", "-": "removed", "~": "changed"}
        parts = [f"{n} {kind}{'s' if n != 1 and kind not in _UNCOUNTED else ''} {words[sign]}"
                 for (kind, sign), n in counts.items()]
        return ", ".join(parts) or "no change"


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    changes: list[Change] = []
    for kind, table in _TABLES:
        changes += _compare(kind, table(old), table(new))
    limits = [f"{name} {_shown(getattr(old, name))} -> {_shown(getattr(new, name))}"
              for name in ("flow", "quota_scope") if getattr(old, name) != getattr(new, name)]
    if limits:
        changes.append(Change("limits", "[limits]", "~", "; ".join(limits)))
    sts = _sts(old.sts, new.sts)
    if sts is not None:
        changes.append(sts)
    return PolicyDiff(tuple(changes))


def _sts(old: StsConfig | None, new: StsConfig | None) -> Change | None:
    """``[sts]`` added, removed, or which of its keys changed: never a key, only whether it is the same one
    (a rotation shows the former signing key kept as the previous one, which an operator wants to see)."""
    if old is None or new is None:
        return None if old is new else Change("sts", "[sts]", "+" if old is None else "-")
    parts = []
    if new.signing_key != old.signing_key:
        parts.append("signing key changed")
    if new.previous_signing_key != old.previous_signing_key:
        if new.previous_signing_key is None:
            parts.append("previous signing key removed (its sessions end)")
        elif new.previous_signing_key == old.signing_key:
            parts.append("previous signing key = the former signing key (its sessions go on)")
        else:
            parts.append("previous signing key " + ("added" if old.previous_signing_key is None else "changed"))
    return Change("sts", "[sts]", "~", "; ".join(parts)) if parts else None


def _apis(policy: Policy) -> Mapping[Hashable, ApiSpec]:
    return {(version, action): spec for version, actions in policy.apis.items() for action, spec in actions.items()}


_TABLES: tuple[tuple[str, Callable[[Policy], Mapping[Any, Any]]], ...] = (
    ("account", lambda p: p.accounts),
    ("sub-user", lambda p: p.sub_users),
    ("access key", lambda p: p.access_keys),
    ("API", _apis),
    ("resource", lambda p: p.resources),
    ("role", lambda p: p.roles),
)


def _compare(kind: str, old: Mapping[Any, Any], new: Mapping[Any, Any]) -> list[Change]:
    changes = [Change(kind, _name(ident), "-") for ident in old if ident not in new]
    changes += [Change(kind, _name(ident), "+") for ident in new if ident not in old]
    for ident, entry in new.items():
        before = old.get(ident)
        if before is not None and before != entry:
            detail = _fields(before, entry)
            if detail:  # else only an entry it refers to changed (its account): listed on its own
                changes.append(Change(kind, _name(ident), "~", detail))
    return changes


def _fields(old: Any, new: Any) -> str:
    parts = []
    for field in fields(old):
        name = field.name
        was, now = getattr(old, name), getattr(new, name)
        if name in _DERIVED_FIELDS or _same(was, now):
            continue
        if name in _SECRET_FIELDS:
            parts.append(f"{name} changed ({len(was)} -> {len(now)})")
        elif name == "params":
            parts.append("params " + " ".join(c.sign + c.name for c in _compare("param", was, now)))
        elif isinstance(was, tuple):
            parts.append(f"{name} changed")
        else:
            parts.append(f"{name} {_shown(was)} -> {_shown(now)}")
    return "; ".join(parts)


def _same(was: Any, now: Any) -> bool:
    # An entry names its account or sub-user: another one is a change, the same one edited is not (it
    # is listed itself).
    if isinstance(was, Account) and isinstance(now, Account):
        return was.id == now.id
    if isinstance(was, SubUser) and isinstance(now, SubUser):
        return (was.account.id, was.name) == (now.account.id, now.name)
    return bool(was == now)


def _name(ident: Any) -> str:
    return "/".join(str(part) for part in ident) if isinstance(ident, tuple) else str(ident)


def _shown(value: Any) -> str:
    """A field's value as the policy file would write it (never called on a secret)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Rate):
        return rate_text(value)
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    if isinstance(value, Account):
        return str(value.id)
    if isinstance(value, SubUser):
        return value.name
    if isinstance(value, Resource):
        return f"{value.kind}/{value.id}"
    if isinstance(value, frozenset | set):
        return "[" + ", ".join(sorted(map(str, value))) + "]"
    if isinstance(value, tuple):
        return f"{len(value)} entries"
    return str(value)


def rate_text(rate: Rate) -> str:
    """``Rate(5, 86_400_000)`` -> ``5/day``; ``Rate(100, 10_000)`` -> ``100/10s``."""
    for period, name, short in _PERIODS:
        if rate.period_ms == period:
            return f"{rate.limit}/{name}"
        if rate.period_ms % period == 0:
            return f"{rate.limit}/{rate.period_ms // period}{short}"
    return f"{rate.limit}/{rate.period_ms}ms"
