"""What `gateway serve`'s protocol bounds (the package docstring says how), read from the settings."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from gateway.settings import Settings

#: Descriptors the default cap leaves to everything but callers' connections (the listening socket,
#: the event loop, logs, upstream and Redis connections); a quarter of a limit under 512.
DESCRIPTOR_RESERVE = 128
TOO_LARGE = b"Request header fields too large."
LINGER_TIME = 30.0  # seconds a lingering close discards a body in all (nginx's lingering_time)
LINGER_TIMEOUT = 5.0  # seconds it waits for the next byte (nginx's lingering_timeout)
LINGER_BYTES = 16 * 1024 * 1024  # bytes it discards at most: past them the caller is not reading answers


@dataclass(frozen=True, slots=True)
class Limits:
    """What `GatewayHttpProtocol` bounds; ``max_connections`` None: no cap. The lingering close's
    bounds are constants (`gateway.serving`'s docstring), fields only so that tests can shorten them."""

    header_timeout: float
    max_header_bytes: int
    max_connections: int | None
    body_timeout: float = 30.0
    linger_time: float = LINGER_TIME
    linger_timeout: float = LINGER_TIMEOUT
    linger_bytes: int = LINGER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        cap = settings.max_connections if settings.max_connections is not None else descriptor_cap()
        return cls(settings.header_timeout, settings.max_header_bytes, cap, settings.body_timeout)


def descriptor_cap() -> int | None:
    """The default cap: this process's soft RLIMIT_NOFILE (workers inherit it) less the reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - min(soft // 4, DESCRIPTOR_RESERVE))
