"""The keystore and policy files: ids defined in both (`shadowed_keys`), and `import_policy`.

An access key id may live in the policy file or in the keystore, never both: at run time the file's
entry would win silently, so the overlap is an error wherever it can arise (``gateway serve`` at
start, ``gateway check-config``, ``gateway keys import``, and a policy reload).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.keystore import entries
from gateway.keystore.admin import Admin, AdminError
from gateway.keystore.cache import MAX_ID_LENGTH
from gateway.keystore.entries import Layout
from gateway.policy.model import Policy

_BATCH = 10_000


class Reachable(Protocol):
    """A `gateway.keystore.runtime.Keystore` or an `Admin`: a client and the names in it."""

    @property
    def client(self) -> Any: ...

    @property
    def layout(self) -> Layout: ...


async def shadowed_keys(policy: Policy, keystore: Reachable) -> list[str]:
    """The access key ids of ``policy`` that the keystore also holds (sorted; raises StoreUnavailable-
    worthy redis errors as they come: the caller decides)."""
    return await _existing(keystore, list(policy.access_keys))


async def _existing(keystore: Reachable, ids: list[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(ids), _BATCH):
        batch = ids[start:start + _BATCH]
        pipe = keystore.client.pipeline(transaction=False)
        for ident in batch:
            pipe.exists(keystore.layout.key(ident))
        found += (ident for ident, n in zip(batch, await pipe.execute(), strict=True) if n)
    return sorted(found)


def shadow_message(ids: Iterable[str], where: str) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return (f"access key id{'s' if len(ids) > 1 else ''} {shown} defined both in {where} and in the Redis "
            "keystore: an id must live in one place (delete it from one of them)")


async def import_policy(admin: Admin, source: Policy, raw: dict[str, Any], running: Policy | None) -> dict[str, int]:
    """Writes ``source``'s accounts, sub-users and keys (adding new ids, updating known ones); refused
    when a key id is also in ``running`` (GATEWAY_CONFIG), which would then shadow it. ``raw`` is the
    file's TOML: the keystore stores globs, rates and statements as the file spells them (the model
    keeps them compiled)."""
    if running is not None:
        both = sorted(set(source.access_keys) & set(running.access_keys))
        if both:
            raise AdminError(shadow_message(both, f"GATEWAY_CONFIG ({running.source})"))
    too_long = [ident for ident in source.access_keys if len(ident) > MAX_ID_LENGTH]
    if too_long:
        raise AdminError(f"access key id {too_long[0][:40]!r}... is longer than {MAX_ID_LENGTH} characters")
    spelled_keys = {entry.get("id"): entry for entry in raw.get("access_keys", [])}
    spelled_users = {(entry.get("account"), entry.get("name")): entry for entry in raw.get("sub_users", [])}
    layout, seal = admin.layout, admin.codec.seal
    pipe = admin.client.pipeline(transaction=False)
    # Each entry replaces the stored one whole (delete, then write): a field the file leaves out is gone.
    for account in source.accounts.values():
        pipe.delete(layout.account(account.id))
        pipe.hset(layout.account(account.id), mapping=entries.encode({
            "id": account.id, "name": account.name, "real_name_verified": account.real_name_verified,
            "balance": account.balance}))
    for (owner, name) in source.sub_users:
        statements = spelled_users[(owner, name)].get("statements", [])
        pipe.delete(layout.user(owner, name))
        pipe.hset(layout.user(owner, name), mapping=entries.encode(
            {"account": owner, "name": name, "statements": statements}))
    for key in source.access_keys.values():
        spelled = spelled_keys[key.id]
        pipe.delete(layout.key(key.id))
        pipe.hset(layout.key(key.id), mapping=entries.encode({
            "id": key.id, "account": key.account.id, "user": None if key.user is None else key.user.name,
            "enabled": key.enabled, "actions": spelled.get("actions"), "denied_params": sorted(key.denied_params),
            "quota": spelled.get("quota"), "secrets": [seal(s, key.id) for s in key.secrets]}))
        if len(pipe) >= _BATCH:
            await pipe.execute()
    await pipe.execute()
    # One message for the lot: every gateway drops its whole cache and reads again on use.
    await admin.client.publish(layout.channel, "*")
    return {"accounts": len(source.accounts), "sub_users": len(source.sub_users),
            "access_keys": len(source.access_keys)}
