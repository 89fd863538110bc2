"""The parsers of `gateway.settings`' table: each turns one variable's text into its typed value.

A parser raises ValueError with a short reason; `Settings.from_env` adds the variable's name (and hides a
secret's value).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit


def text(raw: str) -> str:
    return raw


def opt_text(raw: str) -> str | None:
    return raw or None


def int_min(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < low:
            raise ValueError(f"must be at least {low}")
        return value

    return parse


def opt_int_min(low: int) -> Callable[[str], int | None]:
    parse = int_min(low)

    def parse_opt(raw: str) -> int | None:
        return parse(raw) if raw else None

    return parse_opt


def positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def csv_list(options: tuple[str, ...] | None = None) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        if options is not None:
            unknown = [item for item in items if item not in options]
            if unknown:
                raise ValueError(f"unknown {', '.join(unknown)} (allowed: {', '.join(options)})")
        return items

    return parse


def networks(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
    return items


def host_names(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    for item in items:
        if "/" in item or "@" in item or " " in item:
            raise ValueError(f"{item!r} is not a host name (name or name:port)")
    return items


def http_url(raw: str) -> str:
    """``raw``, if it is an http(s) URL with a host and a numeric port (if any); else ValueError."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    return raw


def opt_http_url(raw: str) -> str | None:
    return http_url(raw) if raw else None


def path_prefix(raw: str) -> str:
    if not raw.startswith("/") or raw.endswith("/") or len(raw) < 2:
        raise ValueError("must start with / and not end with / (e.g. /_gateway)")
    return raw
