"""Rates written as ``N/period`` (``5/second``, ``100/minute``, ``10000/day``), parsed once at start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

PERIODS_MS = MappingProxyType(
    {
        "s": 1_000,
        "second": 1_000,
        "m": 60_000,
        "minute": 60_000,
        "h": 3_600_000,
        "hour": 3_600_000,
        "d": 86_400_000,
        "day": 86_400_000,
    }
)

# "100/day", "5 / 10 seconds", "1000/2h": an optional multiplier lets a period be any length.
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)?\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    period_ms: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.period_ms}ms"


def parse_rate(text: str) -> Rate:
    """``"100/day"`` -> ``Rate(100, 86_400_000)``; raises ValueError with a reason."""
    match = _RATE.match(text.lower())
    if match is None:
        raise ValueError(f"rate {text!r} is not of the form N/period (e.g. 100/minute)")
    limit, multiplier, unit = int(match[1]), int(match[2] or 1), match[3]
    if unit not in PERIODS_MS:
        raise ValueError(f"rate {text!r}: unknown period {unit!r} (one of {', '.join(PERIODS_MS)})")
    if limit < 1 or multiplier < 1:
        raise ValueError(f"rate {text!r}: the count and the period must be positive")
    return Rate(limit, multiplier * PERIODS_MS[unit])
