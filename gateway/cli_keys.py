"""``gateway keys | accounts | sub-users``: the Redis keystore's admin commands (`gateway.keystore.admin`).

They read the same ``GATEWAY_*`` variables as ``gateway serve`` (GATEWAY_KEYSTORE=redis,
GATEWAY_REDIS_URL, GATEWAY_REDIS_PREFIX, GATEWAY_SECRET_KEY). Bad input is one line on stderr and
exit 2; Redis unreachable is one line and exit 1. ``keys create`` and ``keys rotate`` print one JSON
object, ``{"AccessKeyId": ..., "AccessKeySecret": ...}`` (CreateAccessKey's shape): the only time a
secret is ever shown. ``keys list`` prints one JSON object per key, without its secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

from redis.exceptions import RedisError

from gateway.errors import PolicyError, SettingsError, StoreUnavailable
from gateway.keystore.admin import Admin, AdminError
from gateway.keystore.entries import Layout
from gateway.keystore.files import import_policy, shadow_message, shadowed_keys
from gateway.keystore.runtime import codec_from
from gateway.keystore.source import open_client
from gateway.policy import load_policy, parse_policy
from gateway.settings import Settings

Action = Callable[[Admin, argparse.Namespace], Awaitable[Any]]


class _OneLine(argparse.ArgumentParser):
    """Bad arguments are one line and exit 2, as every other bad input of these commands."""

    def error(self, message: str) -> NoReturn:
        print(f"gateway {self.prog.split(' ', 1)[-1]}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _account_id(raw: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise AdminError(f"account id {raw!r} is not a positive integer")
    return int(raw)


def _boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise AdminError(f"{raw!r} is not true or false")
    return raw == "true"


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise AdminError(f"balance {raw!r} is not a number") from None


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


# -- the actions --------------------------------------------------------------------------------

async def _create(admin: Admin, args: argparse.Namespace) -> None:
    new = await admin.create_key(_account_id(args.account), user=args.user, actions=args.actions, quota=args.quota)
    _print(new.as_json())


async def _rotate(admin: Admin, args: argparse.Namespace) -> None:
    new = await admin.rotate(args.id, finish=args.finish)
    _print(new.as_json() if new is not None else {"AccessKeyId": args.id})


async def _list(admin: Admin, args: argparse.Namespace) -> None:
    for key in await admin.list_keys(None if args.account is None else _account_id(args.account)):
        _print(key)


async def _import(admin: Admin, args: argparse.Namespace) -> None:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AdminError(f"{path}: cannot read: {exc.strerror}") from None
    source = parse_policy(text, str(path), os.environ)  # every entry checked as the file's loader does
    running = load_policy(args.settings.config) if args.settings.config else None
    _print(await import_policy(admin, source, tomllib.loads(text), running))


async def _account(admin: Admin, args: argparse.Namespace) -> None:
    made = await admin.set_account(
        _account_id(args.id), name=args.name, balance=None if args.balance is None else _number(args.balance),
        real_name_verified=None if args.real_name_verified is None else _boolean(args.real_name_verified))
    _print({"Id": made.id, "Name": made.name, "RealNameVerified": made.real_name_verified, "Balance": made.balance})


async def _sub_user(admin: Admin, args: argparse.Namespace) -> None:
    statements: list[Any] = []
    if args.statements is not None:
        try:
            statements = json.loads(args.statements)
        except ValueError:
            raise AdminError("--statements is not JSON (a list of {effect, actions, resources} tables)") from None
    statements += [{"effect": "Allow", "actions": [glob]} for glob in args.allow or ()]
    statements += [{"effect": "Deny", "actions": [glob]} for glob in args.deny or ()]
    made = await admin.set_sub_user(_account_id(args.account), args.name, statements)
    _print({"Account": made.account.id, "Name": made.name, "Statements": len(made.statements)})


async def _simple(admin: Admin, args: argparse.Namespace) -> None:
    if args.action == "reencrypt":
        _print({"Reencrypted": await admin.reencrypt()})
        return
    if args.action == "delete":
        await admin.delete_key(args.id)
    else:
        await admin.set_enabled(args.id, args.action == "enable")
    _print({"AccessKeyId": args.id, "Done": args.action})


ACTIONS: dict[str, Action] = {
    "create": _create, "enable": _simple, "disable": _simple, "delete": _simple, "rotate": _rotate,
    "list": _list, "import": _import, "reencrypt": _simple, "accounts set": _account, "sub-users set": _sub_user,
}


def add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    """The sub-commands of ``keys``, ``accounts`` and ``sub-users``."""
    if name not in ADMIN_COMMANDS:
        return
    actions = sub.add_subparsers(dest="action", required=True, parser_class=_OneLine)
    if name == "keys":
        create = actions.add_parser("create", help="a new key; prints its id and secret once")
        create.add_argument("--account", required=True)
        create.add_argument("--user")
        create.add_argument("--actions", nargs="+", metavar="GLOB")
        create.add_argument("--quota", metavar="RATE")
        for action in ("disable", "enable", "delete"):
            actions.add_parser(action, help=f"{action} a key").add_argument("id")
        rotate = actions.add_parser("rotate", help="add a second secret; --finish drops the old one")
        rotate.add_argument("id")
        rotate.add_argument("--finish", action="store_true")
        actions.add_parser("list", help="every key, never a secret").add_argument("--account")
        actions.add_parser("import", help="a policy file's accounts, sub-users and keys").add_argument("file")
        actions.add_parser("reencrypt", help="reseal every secret with GATEWAY_SECRET_KEY")
    elif name == "accounts":
        account = actions.add_parser("set", help="create or update an account")
        account.add_argument("id")
        account.add_argument("--name")
        account.add_argument("--real-name-verified", dest="real_name_verified", metavar="true|false")
        account.add_argument("--balance")
    else:
        user = actions.add_parser("set", help="create or replace a sub-user and its statements")
        user.add_argument("--account", required=True)
        user.add_argument("--name", required=True)
        user.add_argument("--statements", metavar="JSON", help='as in the file: [{"effect": "Allow", "actions": '
                          '["Describe*"], "resources": ["*"]}]')
        user.add_argument("--allow", nargs="+", metavar="GLOB", help="add an Allow statement per action glob")
        user.add_argument("--deny", nargs="+", metavar="GLOB", help="add a Deny statement per action glob")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.keystore != "redis":
        raise SettingsError(f"gateway {args.command} works on the Redis keystore: set GATEWAY_KEYSTORE=redis")
    codec = codec_from(settings)
    args.settings = settings
    action = ACTIONS[args.action if args.command == "keys" else f"{args.command} {args.action}"]
    try:
        asyncio.run(_with_admin(settings, codec, action, args))
    except (AdminError, PolicyError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, RedisError, OSError) as exc:
        print(f"gateway: the keystore (GATEWAY_REDIS_URL) cannot be reached: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


async def _with_admin(settings: Settings, codec: Any, action: Action, args: argparse.Namespace) -> None:
    client = open_client(settings.redis_url, max(settings.redis_timeout, 5.0))
    try:
        await action(Admin(client, Layout(settings.redis_prefix), codec), args)
    finally:
        await client.aclose()


def check_shadowing(settings: Settings, policy: Any) -> str | None:
    """At start and in check-config: a key id in both the file and the keystore stops here (PolicyError,
    one line). Returns a warning when the keystore could not be reached to tell."""
    if settings.keystore != "redis":
        return None

    async def find() -> list[str]:
        client = open_client(settings.redis_url, max(settings.redis_timeout, 5.0))
        try:
            return await shadowed_keys(policy, Admin(client, Layout(settings.redis_prefix), codec_from(settings)))
        finally:
            await client.aclose()

    try:
        both = asyncio.run(find())
    except (StoreUnavailable, RedisError, OSError) as exc:
        return f"the keystore could not be reached to check for key ids also in the file ({type(exc).__name__})"
    if both:
        raise PolicyError(shadow_message(both, policy.source))
    return None


ADMIN_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "keys": (run, "the Redis keystore's access keys: create, disable, enable, delete, rotate, list, import"),
    "accounts": (run, "the Redis keystore's accounts: set (create or update)"),
    "sub-users": (run, "the Redis keystore's sub-users: set (create or replace)"),
}
