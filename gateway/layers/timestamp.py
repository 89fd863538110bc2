from __future__ import annotations

import functools
import re
import time
from datetime import datetime

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError

# ISO 8601 UTC as the SDKs send it; fromisoformat alone would also take dates, offsets and spaces.
CLOCK_MARGIN = 5
_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


@functools.lru_cache(maxsize=256)  # one second's Timestamp is shared by every request of that second
def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch, or None when the value is not ``YYYY-MM-DDThh:mm:ss[.ffffff]Z``."""
    if _SHAPE.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None  # a shape that parses as no date (month 13, second 61)


class TimestampLayer:
    """The Timestamp is well formed and within the allowed skew of the server clock."""

    def __init__(self, *, skew: int) -> None:
        self.skew = skew

    def check(self, ctx: RequestContext) -> None:
        when = parse_timestamp(ctx.timestamp or "")
        if when is None or abs(when - time.time()) > self.skew:
            raise GatewayError(Err.ILLEGAL_TIMESTAMP)
        # A replay is refused by this very check once the Timestamp is out of the window, so the
        # nonce need only be remembered until then (plus a margin for gateway clocks that disagree by a few seconds).
        ctx.nonce_ttl_ms = int((when + self.skew - time.time() + CLOCK_MARGIN) * 1000)
        ctx.timestamp_ms = int(when * 1000)
