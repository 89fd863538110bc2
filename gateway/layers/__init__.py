"""The checks, one per module; `gateway.chain` puts them in their fixed order.

A layer is an object with ``check(ctx)``: it reads the request context, raises a GatewayError to
refuse, or records what it learned on the context. A check that must wait (reading the body, asking
a resource resolver, the store round trip) is a coroutine function; the others stay plain
functions so the common path pays no coroutine per layer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from gateway.context import RequestContext


class Layer(Protocol):
    def check(self, ctx: RequestContext) -> Awaitable[None] | None: ...


__all__ = ["Layer"]
