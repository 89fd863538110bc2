"""Where a saturated server's time goes: py-spy samples of one uvicorn worker under wrk, by package.

    python -m bench.profile_load [--seconds 6] [--cases "bare Starlette;V1 chain (memory store)"] [--top 15]

Each case is served as bench/throughput.py serves it (one worker, uvloop, httptools) and loaded by wrk at 32
connections while py-spy (a bench extra) samples the worker's Python stacks. Every sample is charged to
the innermost frame's package (gateway, uvicorn, starlette, redis, asyncio, json, …): time in C that
Python called (a socket write, an HMAC, uvloop's own loop) goes to the frame that called it. Idle time
is not sampled, so the shares are of the CPU the worker spent, which at saturation is all of it; with
its CPU µs per request (bench/throughput.py) they say how many µs each package costs a request.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

from bench.load import server_pid, uvicorn_server, write_paths, wrk
from bench.signed import v1_path, v3_line
from bench.throughput import CASES, PER_SECOND, Case
from tests.support.redis import RedisServer, running_redis

BY_NAME = {case.name: case for case in CASES}

# The package a frame's file belongs to: the first of these its path contains.
PACKAGES = ("gateway/", "uvicorn/", "starlette/", "redis/", "hiredis", "asyncio/", "json/", "bench/")


def package(frame: str) -> str:
    """py-spy's raw frame is ``function (path:line)``."""
    where = frame.rpartition("(")[2]
    for name in PACKAGES:
        if name in where:
            return name.rstrip("/")
    return "other (stdlib, C)" if where else "native"


def profile(case: Case, seconds: int, redis: RedisServer | None) -> tuple[int, collections.Counter[str],
                                                                         collections.Counter[str], float]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with uvicorn_server(case.target, case.env(redis.url if redis else "", ""), ready_path=case.ready,
                        http=case.http) as url, tempfile.NamedTemporaryFile(suffix=".txt") as raw:
        maker = v3_line(url.split("://")[1]) if case.signed == "v3" else v1_path
        paths = write_paths(maker, PER_SECOND * (seconds + 2))
        try:
            wrk(url + "/", seconds=1, paths=paths)  # warm-up
            sampler = subprocess.Popen([spy, "record", "-p", str(server_pid(url)), "-d", str(seconds), "-r", "200",
                                        "-f", "raw", "-o", raw.name], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            load = wrk(url + "/", seconds=seconds + 1, paths=paths)
            sampler.wait()
        finally:
            paths.unlink()
        by_package: collections.Counter[str] = collections.Counter()
        by_function: collections.Counter[str] = collections.Counter()
        total = 0
        for line in Path(raw.name).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            innermost = stack.rsplit(";", 1)[-1]
            by_package[package(innermost)] += int(count)
            by_function[innermost] += int(count)
            total += int(count)
    return total, by_package, by_function, load.rps


def markdown(name: str, total: int, by_package: collections.Counter[str], by_function: collections.Counter[str],
             rps: float, top: int) -> str:
    if not total:
        return f"### {name}\n\nno samples: py-spy could not attach (it needs ptrace permission, e.g. root)\n"
    lines = [f"### {name}: {rps:,.0f} req/s under wrk -c32 while sampled, {total} samples", "",
             "| package (innermost frame) | share of the worker's CPU |", "|---|--:|"]
    lines += [f"| {what} | {100 * count / total:.1f} % |" for what, count in by_package.most_common()]
    lines += ["", f"| function and line (own time, top {top}) | share |", "|---|--:|"]
    lines += [f"| `{frame}` | {100 * count / total:.1f} % |" for frame, count in by_function.most_common(top)]
    return "\n".join(lines) + "\n"


def measure(names: list[str], seconds: int, top: int) -> str:
    """Each case profiled in turn (with a Redis of its own where a case needs one), as markdown."""
    with running_redis() if any(BY_NAME[n].redis for n in names) else nullcontext() as redis:
        return "\n".join(markdown(name, *profile(BY_NAME[name], seconds, redis), top) for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--cases", default="bare Starlette;V1 chain (memory store);V1 chain (Redis)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(measure([name for name in BY_NAME if name in args.cases.split(";")], args.seconds, args.top))


if __name__ == "__main__":
    main()
