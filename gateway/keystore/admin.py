"""Writing the keystore: what ``gateway keys | accounts | sub-users`` do (`gateway.cli_keys` is the CLI).

Every write is checked first, with the policy loader's own entry builders (a rate, a glob, a
statement is valid here exactly when it is valid in the file), then written as one hash, then
announced on the change channel: every gateway drops what it cached of that entry, so the next
request reads the new one (a new key's id also clears any negative entry: it works at once).
Secrets are sealed before they leave this process; only `create_key` and `rotate` return one, once.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.errors import PolicyError
from gateway.keystore import entries
from gateway.keystore.codec import Codec
from gateway.keystore.entries import Layout
from gateway.keystore.source import Client
from gateway.policy.model import Account, SubUser

T = TypeVar("T")
_ALPHABET = string.ascii_letters + string.digits
# Alibaba Cloud's shapes: "LTAI" and 20 more characters; a 30-character secret.
KEY_PREFIX, KEY_LENGTH, SECRET_LENGTH = "LTAI", 20, 30


class AdminError(ValueError):
    """Bad input to an admin command: one line, exit 2."""


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class NewSecret:
    access_key_id: str
    secret: str = field(repr=False)  # printed once by the CLI, never by a log line or a traceback

    def as_json(self) -> dict[str, str]:
        return {"AccessKeyId": self.access_key_id, "AccessKeySecret": self.secret}


class Admin:
    def __init__(self, client: Client, layout: Layout, codec: Codec) -> None:
        self.client, self.layout, self.codec = client, layout, codec

    async def _hash(self, name: str) -> dict[str, Any]:
        return entries.decode(await self.client.hgetall(name))

    async def _announce(self, *messages: str) -> None:
        for message in messages:
            await self.client.publish(self.layout.channel, message)

    async def account(self, ident: int) -> Account:
        raw = await self._hash(self.layout.account(ident))
        if not raw:
            raise AdminError(f"account {ident} does not exist (create it with `gateway accounts set {ident} --name N`)")
        return entries.account(raw)

    async def sub_user(self, owner: Account, name: str) -> SubUser:
        raw = await self._hash(self.layout.user(owner.id, name))
        if not raw:
            raise AdminError(f"sub-user {name!r} of account {owner.id} does not exist")
        return entries.sub_user(raw, owner)

    async def _key(self, ident: str) -> dict[str, Any]:
        raw = await self._hash(self.layout.key(ident))
        if not raw:
            raise AdminError(f"access key {ident!r} does not exist")
        return raw

    # -- access keys -----------------------------------------------------------------------------

    async def create_key(self, account: int, *, user: str | None = None, actions: Sequence[str] | None = None,
                         quota: str | None = None) -> NewSecret:
        owner = await self.account(account)
        sub = None if user is None else await self.sub_user(owner, user)
        new = NewSecret(KEY_PREFIX + _random(KEY_LENGTH), _random(SECRET_LENGTH))
        given = {"id": new.access_key_id, "account": account, "user": user, "enabled": True,
                 "actions": None if actions is None else list(actions), "quota": quota}
        entry: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        _checked(lambda: entries.access_key({**entry, "secrets": [new.secret]}, owner, sub))
        entry["secrets"] = [self.codec.seal(new.secret, new.access_key_id)]
        await self.client.hset(self.layout.key(new.access_key_id), mapping=entries.encode(entry))
        await self._announce(f"k:{new.access_key_id}")
        return new

    async def set_enabled(self, ident: str, enabled: bool) -> None:
        await self._key(ident)
        await self.client.hset(self.layout.key(ident), "enabled", "true" if enabled else "false")
        await self._announce(f"k:{ident}")

    async def delete_key(self, ident: str) -> None:
        if not await self.client.delete(self.layout.key(ident)):
            raise AdminError(f"access key {ident!r} does not exist")
        await self._announce(f"k:{ident}")

    async def rotate(self, ident: str, *, finish: bool = False) -> NewSecret | None:
        """Adds a second secret (both verify until `finish`), or with ``finish`` drops the first."""
        sealed = (await self._key(ident)).get("secrets", [])
        if finish:
            if len(sealed) < 2:
                raise AdminError(f"access key {ident!r} has one secret: no rotation to finish")
            kept, new = [sealed[-1]], None
        else:
            if len(sealed) >= 2:
                raise AdminError(f"access key {ident!r} already has two secrets: finish that rotation first "
                                 f"(`gateway keys rotate {ident} --finish`)")
            new = NewSecret(ident, _random(SECRET_LENGTH))
            kept = [*sealed, self.codec.seal(new.secret, ident)]
        await self.client.hset(self.layout.key(ident), "secrets", entries.encode({"secrets": kept})["secrets"])
        await self._announce(f"k:{ident}")
        return new

    async def list_keys(self, account: int | None = None) -> list[dict[str, Any]]:
        """Every key (of ``account``), as it is described to an operator: never a secret."""
        found = []
        async for batch in self._key_names():
            pipe = self.client.pipeline(transaction=False)
            for name in batch:
                pipe.hgetall(name)
            for reply in await pipe.execute():
                raw = entries.decode(reply)
                if not raw or (account is not None and raw.get("account") != account):
                    continue
                found.append({"AccessKeyId": raw.get("id"), "Account": raw.get("account"), "User": raw.get("user"),
                              "Enabled": raw.get("enabled", True), "Actions": raw.get("actions", ["*"]),
                              "Quota": raw.get("quota"), "Secrets": len(raw.get("secrets", []))})
        return sorted(found, key=lambda k: str(k["AccessKeyId"]))

    async def _key_names(self) -> AsyncIterator[list[str]]:
        """Every access key's hash name, in batches (one pipeline of reads each)."""
        batch: list[str] = []
        async for name in self.client.scan_iter(match=self.layout.key_pattern, count=1000):
            batch.append(name.decode() if isinstance(name, bytes) else name)
            if len(batch) >= 1000:
                yield batch
                batch = []
        if batch:
            yield batch

    async def reencrypt(self) -> int:
        """Reseals, under GATEWAY_SECRET_KEY, every secret sealed with another key; how many keys changed."""
        changed = 0
        async for name in self.client.scan_iter(match=self.layout.key_pattern, count=1000):
            name = name.decode() if isinstance(name, bytes) else name
            raw = await self._hash(name)
            sealed, ident = raw.get("secrets", []), raw.get("id", "")
            if all(self.codec.is_current(s) for s in sealed):
                continue
            resealed = [self.codec.seal(self.codec.open(s, ident), ident) for s in sealed]
            await self.client.hset(name, "secrets", entries.encode({"secrets": resealed})["secrets"])
            changed += 1
        return changed

    # -- accounts and sub-users ------------------------------------------------------------------

    async def set_account(self, ident: int, *, name: str | None = None, real_name_verified: bool | None = None,
                          balance: float | None = None) -> Account:
        """Creates or updates: a field not given keeps its stored value (a new account needs a name)."""
        entry = await self._hash(self.layout.account(ident))
        if not entry and name is None:
            raise AdminError(f"account {ident} does not exist: creating it needs --name")
        given = {"id": ident, "name": name, "real_name_verified": real_name_verified, "balance": balance}
        entry.update({k: v for k, v in given.items() if v is not None})
        made = _checked(lambda: entries.account(entry))
        await self.client.hset(self.layout.account(ident), mapping=entries.encode(entry))
        await self._announce(f"a:{ident}")
        return made

    async def set_sub_user(self, account: int, name: str, statements: list[Any]) -> SubUser:
        owner = await self.account(account)
        entry = {"account": account, "name": name, "statements": statements}
        made = _checked(lambda: entries.sub_user(entry, owner))
        await self.client.hset(self.layout.user(account, name), mapping=entries.encode(entry))
        await self._announce(f"u:{account}:{name}")
        return made


def _checked(build: Callable[[], T]) -> T:
    try:
        return build()
    except PolicyError as exc:
        raise AdminError(str(exc)) from None
