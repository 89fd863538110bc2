"""The connections the cap (``GATEWAY_MAX_CONNECTIONS``) may close, per server, longest-waiting first."""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING

from uvicorn.server import ServerState

if TYPE_CHECKING:
    from gateway.serving.protocol import GatewayHttpProtocol

log = logging.getLogger("gateway.serving")

CAP_WARNING_INTERVAL = 60.0  # seconds: the cap is logged once a minute at most, not once a connection


class Waiting:
    """One server's connections the cap may close, each kind the longest-waiting first: those waiting
    for a request head or lingering after their last answer, and those waiting for a request body."""

    def __init__(self) -> None:
        self.order: dict[GatewayHttpProtocol, None] = {}  # waiting for a head, or lingering
        self.bodies: dict[GatewayHttpProtocol, None] = {}
        self.warned_at = -CAP_WARNING_INTERVAL

    def victim(self, newcomer: GatewayHttpProtocol) -> GatewayHttpProtocol:
        for idle in self.order:
            if idle is not newcomer:
                return idle
        for stalled in self.bodies:
            if not stalled.answering:
                return stalled
        return newcomer

    def warn(self, cap: int) -> None:
        now = time.monotonic()
        if now - self.warned_at >= CAP_WARNING_INTERVAL:
            self.warned_at = now
            log.warning("%d open connections (GATEWAY_MAX_CONNECTIONS): closing the connections that have "
                        "waited longest for a request head, then for a request body", cap)


_WAITING: weakref.WeakKeyDictionary[ServerState, Waiting] = weakref.WeakKeyDictionary()


def waiting(server_state: ServerState) -> Waiting:
    """The connections of the server whose state is ``server_state`` (its workers share none)."""
    return _WAITING.setdefault(server_state, Waiting())
