"""Keystore entries in Redis: where they live, how they are spelled, and how they become model objects.

Each entry is one hash whose fields are the policy file's fields, each value JSON (so ``true``,
``5``, ``["Describe*"]`` keep their types), and whose secrets are sealed (`gateway.keystore.codec`).
The model objects are built by the policy loader's own entry builders, so a glob, a rate or a
statement means in Redis exactly what it means in the file::

    <prefix>:ks:a:<account id>           id, name, real_name_verified, balance
    <prefix>:ks:u:<account id>:<name>    account, name, statements
    <prefix>:ks:k:<access key id>        id, account, user, enabled, actions, denied_params, quota,
                                         secrets (a list of sealed secrets)
    <prefix>:ks:changes                  the channel: "k:<id>", "a:<id>", "u:<account>:<name>", "*"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import PolicyError
from gateway.policy.loader import EntryBuilder
from gateway.policy.model import AccessKey, Account, SubUser

RawHash = Mapping[bytes | str, bytes | str]


class Layout:
    """The Redis names of one keystore (``GATEWAY_REDIS_PREFIX``)."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:ks"
        self.channel = f"{self.base}:changes"
        self.key_pattern = f"{self.base}:k:*"

    def key(self, ident: str) -> str:
        return f"{self.base}:k:{ident}"

    def account(self, ident: int) -> str:
        return f"{self.base}:a:{ident}"

    def user(self, account: int, name: str) -> str:
        return f"{self.base}:u:{account}:{name}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode(entry: Mapping[str, Any]) -> dict[Any, str]:  # Any: redis-py's key type is a union
    return {name: json.dumps(value) for name, value in entry.items() if value is not None}


def decode(raw: RawHash) -> dict[str, Any]:
    try:
        return {_text(name): json.loads(_text(value)) for name, value in raw.items()}
    except ValueError:
        raise PolicyError("a keystore entry holds a value that is not JSON") from None


class _Builder(EntryBuilder):
    def __init__(self) -> None:
        super().__init__("keystore", _NO_LINES, {})

    def fail(self, line: int, entry: str, problem: str) -> PolicyError:
        return PolicyError(f"{entry}: {problem}")


class _NoLines:
    def first(self, *needles: str) -> int:
        return 0

    def nth_header(self, table: str, index: int) -> int:
        return 0


_NO_LINES: Any = _NoLines()
_BUILD = _Builder()


def account(entry: dict[str, Any]) -> Account:
    return _BUILD.account(entry, 0, f"account {entry.get('id')!r}")


def sub_user(entry: dict[str, Any], owner: Account) -> SubUser:
    return _BUILD.sub_user(entry, 0, f"sub-user {entry.get('name')!r}", {owner.id: owner})


def access_key(entry: dict[str, Any], owner: Account, user: SubUser | None) -> AccessKey:
    """``entry`` with its secrets already opened."""
    users = {} if user is None else {(owner.id, user.name): user}
    return _BUILD.access_key(entry, 0, "access key", {owner.id: owner}, users)


def statements(raw: Any) -> None:
    """Checks a sub-user's ``statements`` as the file would (PolicyError naming the problem)."""
    sub_user({"account": 1, "name": "check", "statements": raw}, Account(1, "check"))
