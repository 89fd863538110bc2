"""Servers under load: uvicorn processes as the benches run them, wrk runs, medians, what a run used.

Figures are ratios against a baseline measured in the same run, from alternating rounds: these
machines are shared and noisy, so an absolute number means little and a ratio means more.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import ROOT, uvicorn_process

HERE = Path(__file__).resolve().parent
#: The interpreter of `make compiled`: its `gateway` is the mypyc-compiled wheel.
COMPILED_PYTHON = ROOT / ".venv-compiled" / "bin" / "python"


def installed_gateway(python: str) -> Path:
    """Where ``python`` imports `gateway` from with the checkout kept off its path (PYTHONSAFEPATH)."""
    out = subprocess.run([python, "-c", "import gateway, pathlib; print(pathlib.Path(gateway.__file__).resolve())"],
                         cwd=ROOT, env={**os.environ, "PYTHONSAFEPATH": "1"}, capture_output=True, text=True,
                         check=True).stdout.strip()
    return Path(out).parent


def is_compiled(python: str) -> bool:
    """Whether ``python``'s installed `gateway` is the compiled build (its respond module an extension)."""
    return any(installed_gateway(python).glob("respond.*.so"))


@contextmanager
def uvicorn_server(target: str, env: Mapping[str, str] | None = None, *, ready_path: str = "/",
                   http: str = "httptools", python: str | None = None) -> Iterator[str]:
    """One uvicorn worker with uvloop and httptools, as the benches are specified; yields its URL.

    ``python``: another interpreter, serving the `gateway` installed in it (e.g. `COMPILED_PYTHON`);
    so does this one with BENCH_USE_INSTALLED=1 (then run the bench itself with PYTHONSAFEPATH=1)."""
    installed = python is not None or os.environ.get("BENCH_USE_INSTALLED") == "1"
    python = python or sys.executable
    app_dir = installed_gateway(python).parent if installed else None
    with uvicorn_process(target, env, ready_path=ready_path, http=http, python=python, app_dir=app_dir) as url:
        yield url


def server_pid(url: str) -> int:
    """The pid of the uvicorn process serving ``url`` (found by its ``--port``)."""
    port = url.rstrip("/").rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if b"uvicorn" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == port.encode():
            return int(entry.name)
    raise LookupError(f"no uvicorn process serves {url}")


def redis_reads(port: int) -> int:
    """Read events the Redis server has processed: one per client write it received, so the
    difference over a run counts the network round trips clients made (pipelined calls share one)."""
    from tests.support.redis import command

    match = re.search(rb"^total_reads_processed:(\d+)", command(port, "INFO", "stats"), re.MULTILINE)
    if match is None:
        raise RuntimeError("redis-server reports no total_reads_processed (Redis < 6?)")
    return int(match[1])


def write_paths(make_path: Callable[[int], str], count: int) -> Path:
    """A file of ``count`` request lines for lua/paths.lua: a path, then tab-separated headers (V3)."""
    with tempfile.NamedTemporaryFile("w", prefix="bench-paths-", suffix=".txt", delete=False) as handle:
        handle.writelines(make_path(i) + "\n" for i in range(count))
    return Path(handle.name)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _percentile(out: str, percent: int) -> float:
    # Anchored to the line start: "+/- Stdev" columns also end in "%" ("82.50%").
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {percent}% latency in wrk's output:\n{out}")
    return float(match[1]) * _UNITS[match[2]]


def _count(pattern: str, out: str) -> int:
    match = re.search(pattern, out, re.MULTILINE)
    return int(match[1]) if match else 0


def wrk(url: str, *, seconds: int = 5, connections: int = 32, paths: Path | None = None) -> Load:
    """One ``wrk -t1`` run; with ``paths``, lua/paths.lua sends each line of that file once."""
    binary = shutil.which("wrk")
    if binary is None:
        sys.exit("wrk is missing: apt-get install -y wrk (Debian package)")
    args = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
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


def median_load(loads: list[Load]) -> Load:
    return Load(
        rps=statistics.median(load.rps for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
        requests=sum(load.requests for load in loads),
    )


def describe_run() -> dict[str, str]:
    """What a results file should say about where it was measured."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "cpus": str(os.cpu_count()),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": sys.version.split()[0],
    }
