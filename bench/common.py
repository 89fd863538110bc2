"""What every bench script shares: servers under uvicorn, pre-signed requests, wrk runs, medians.

Figures are ratios against a baseline measured in the same run, from alternating rounds: these
machines are shared and noisy, so an absolute number means little and a ratio means more.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is missing: apt-get install -y wrk (Debian package)")
    return wrk


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:
                return  # any HTTP answer means the server is up
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@functools.cache
def _gateway_protocol() -> Callable[..., asyncio.Protocol]:
    from gateway.serving import Limits, protocol
    from gateway.settings import Settings

    return protocol(Limits.from_settings(Settings.from_env()))


def gateway_http(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """A connection's protocol as `gateway serve` makes it (gateway/serving.py: httptools with the head
    bound, header timeout and connection cap), the limits read once from the server process's GATEWAY_*
    variables as `gateway serve` reads them. For uvicorn's ``--http``, which takes no arguments."""
    return _gateway_protocol()(*args, **kwargs)


#: `uvicorn_server`'s ``http`` for a server that runs the gateway's protocol, as `gateway serve` does.
GATEWAY_HTTP = "bench.common:gateway_http"


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
def uvicorn_server(target: str, env: Mapping[str, str] | None = None, *, factory: bool = True,
                   ready_path: str = "/", http: str = "httptools", log: Path | None = None,
                   python: str | None = None) -> Iterator[str]:
    """One uvicorn worker with uvloop and httptools, as the benches are specified; yields its URL.

    ``http``: uvicorn's ``--http`` (`GATEWAY_HTTP`: the protocol `gateway serve` runs). ``log``: a file
    for the server's output (by default it goes where this process's does). ``python``: another
    interpreter, serving the `gateway` installed in it (e.g. `COMPILED_PYTHON`); so does this one with
    BENCH_USE_INSTALLED=1. PYTHONSAFEPATH keeps ``-m uvicorn``'s cwd, the checkout, off the path, and
    uvicorn's --app-dir (which it puts first) is the installed package's directory; `bench` must then be
    importable from the path's end, as .venv-compiled's .pth file makes it (make compiled)."""
    port = free_port()
    installed = python is not None or os.environ.get("BENCH_USE_INSTALLED") == "1"
    python = python or PYTHON
    args = [python, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
            "--http", http, "--no-access-log", "--log-level", "warning", "--workers", "1"]
    if factory:
        args.append("--factory")
    if installed:
        args += ["--app-dir", str(installed_gateway(python).parent)]
    url = f"http://127.0.0.1:{port}"
    safe = {"PYTHONSAFEPATH": "1"} if installed else {}
    with log.open("wb") if log is not None else nullcontext() as out:
        process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **safe, **(env or {})}, stdout=out,
                                   stderr=subprocess.STDOUT if out else None)
        try:
            wait_http(url + ready_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def write_paths(make_path: Callable[[int], str], count: int) -> Path:
    """A file of ``count`` request paths (one per line) for lua/paths.lua."""
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


def wrk(url: str, *, seconds: int = 5, connections: int = 32, threads: int = 1,
        paths: Path | None = None) -> Load:
    """One wrk run; with ``paths``, lua/paths.lua sends each line of that file once."""
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


def alternate(urls: Mapping[str, str], *, seconds: int, rounds: int,
              paths: Callable[[int], Path] | None = None) -> dict[str, list[Load]]:
    """Each server of ``urls`` loaded by wrk ``-t1 -c32`` for 1 s (a warm-up), then for ``seconds`` a
    round, ``rounds`` rounds, the order reversed every other round; a line printed per run. With
    ``paths``, a file of request paths for a run of that many seconds, made afresh for the warm-up and
    for each round (the servers of a round share it), and deleted after it."""
    runs: dict[str, list[Load]] = {name: [] for name in urls}
    warm = paths(1) if paths is not None else None
    for url in urls.values():
        wrk(url + "/", seconds=1, paths=warm)
    print(f"wrk -t1 -c32 -d{seconds}s, {rounds} rounds, alternating", flush=True)
    for round_no in range(rounds):
        round_paths = paths(seconds) if paths is not None else None
        for name in list(urls) if round_no % 2 == 0 else list(reversed(urls)):
            load = wrk(urls[name] + "/", seconds=seconds, paths=round_paths)
            runs[name].append(load)
            print(f"  round {round_no + 1} {name:>8}: {load.rps:9.0f} req/s  p99 {load.p99_ms:7.2f} ms"
                  f"  non-2xx {load.non_2xx}", flush=True)
        if round_paths is not None:
            round_paths.unlink()
    if warm is not None:
        warm.unlink()
    return runs


def median_load(loads: list[Load]) -> Load:
    return Load(
        rps=statistics.median(load.rps for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
        requests=sum(load.requests for load in loads),
    )


def table(rows: list[tuple[str, Load]], baseline: Load) -> str:
    lines = ["| case | requests/s | p50 ms | p99 ms | × baseline | non-2xx |", "|---|---|---|---|---|---|"]
    for name, load in rows:
        lines.append(f"| {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                     f"{load.rps / baseline.rps:.2f} | {load.non_2xx} |")
    return "\n".join(lines)


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


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


def redis_reads(url: str) -> int:
    """Read events the Redis server has processed: one per client write it received, so the
    difference over a run counts the network round trips clients made (pipelined calls share one)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    info = subprocess.run(["redis-cli", "-p", port, "INFO", "stats"], capture_output=True, text=True,
                          check=True).stdout
    match = re.search(r"^total_reads_processed:(\d+)", info, re.MULTILINE)
    if match is None:
        raise RuntimeError("redis-server reports no total_reads_processed (Redis < 6?)")
    return int(match[1])


def server_pid(url: str) -> int:
    """The pid of the uvicorn process `uvicorn_server` started for ``url`` (found by its ``--port``)."""
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (/proc/PID/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
