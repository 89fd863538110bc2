"""wrk runs for the proxy benches, read line by line.

bench/common.py's `wrk` finds percentiles with unanchored patterns (``50%\\s+(\\S+)``), which also
match the tail of a ``+/- Stdev`` column such as ``82.50%`` and then fail on the next word; until it
is fixed there, the proxy benches read wrk's output here, anchored to the start of each line.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from bench.common import HERE, Load, require_wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _percentile(out: str, percent: int) -> float:
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {percent}% latency in wrk's output:\n{out}")
    return float(match[1]) * _UNITS[match[2]]


def _count(pattern: str, out: str) -> int:
    match = re.search(pattern, out, re.MULTILINE)
    return int(match[1]) if match else 0


def wrk(url: str, *, seconds: int = 5, connections: int = 32, threads: int = 1,
        paths: Path | None = None) -> Load:
    """One wrk run; with ``paths``, bench/lua/paths.lua sends each line of that file once."""
    args = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    env = dict(os.environ)
    if paths is not None:
        args += ["-s", str(HERE / "lua" / "paths.lua")]
        env["PATHS_FILE"] = str(paths)
    out = subprocess.run([*args, url], capture_output=True, text=True, env=env, check=True).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)\s*$", out, re.MULTILINE)
    if rps is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return Load(rps=float(rps[1]), p50_ms=_percentile(out, 50), p99_ms=_percentile(out, 99),
                non_2xx=_count(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", out),
                requests=_count(r"^\s*(\d+) requests in", out))
