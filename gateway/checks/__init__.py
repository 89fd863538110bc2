"""The checks of a parsed `Call`, one concern per module; `gateway.chain` puts them in their fixed order.

A check is a callable of the call (a plain function, or a small class holding what it precomputes
from the settings or the policy) that raises `GatewayError` to refuse and returns None to pass. One
that must wait (a resource resolver) returns an awaitable instead; the others stay plain functions,
so the common path pays no coroutine per check. None of them changes anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.call import Call

Check = Callable[[Call], Awaitable[None] | None]

__all__ = ["Check"]
