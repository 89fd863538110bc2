"""The full chain against the bare app: V1 on the memory store and on Redis, V3 on Redis.

    python bench/chain.py [--seconds 5] [--rounds 3]

Each case is served by one uvicorn worker (uvloop, httptools) and loaded by wrk at 32 connections;
the cases alternate round by round and the median of the rounds is reported, with its ratio to the
bare app measured in the same run. Every gateway request is distinct (its own nonce, signed ahead),
and wrk's count of non-2xx answers shows that none was refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

# BENCH_USE_INSTALLED=1 (e.g. with .venv-compiled/bin/python): the checkout goes last on the path, so
# `bench` still imports from it but `gateway` is the installed package (the compiled wheel).
if os.environ.get("BENCH_USE_INSTALLED") == "1":
    sys.path.append(str(Path(__file__).resolve().parent.parent))
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import KEY, SECRET
from bench.common import Load, median_load, redis_server, table, uvicorn_server, write_paths, wrk
from gateway.signing import percent_encode, sign_request_v1, sign_request_v3

# Enough distinct requests for one round at far more than the expected rate.
PER_SECOND = 40_000


def v1_path(i: int) -> str:
    params = sign_request_v1({"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON",
                              "RegionId": "cn-hangzhou"}, access_key_id=KEY, secret=SECRET)
    return "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())


def v3_line(host: str) -> Callable[[int], str]:
    def line(i: int) -> str:
        headers = sign_request_v3(method="GET", host=host, path="/", query={"RegionId": "cn-hangzhou"},
                                  action="DescribeRegions", version="2014-05-26", access_key_id=KEY,
                                  secret=SECRET)
        headers.pop("host")
        return "/?RegionId=cn-hangzhou\t" + "\t".join(f"{k}: {v}" for k, v in headers.items())

    return line


@contextmanager
def nothing() -> Iterator[None]:
    yield None


CASES: dict[str, tuple[str, bool, Callable[[str], Callable[[int], str]] | None]] = {
    # name: (app factory, needs Redis, request maker given the server's host)
    "bare Starlette": ("bench.apps:bare", False, None),
    "V1 chain (memory store)": ("bench.apps:gated", False, lambda host: v1_path),
    "V1 chain (Redis)": ("bench.apps:gated", True, lambda host: v1_path),
    "V3 chain (Redis)": ("bench.apps:gated", True, v3_line),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=";".join(CASES), help="case names separated by ';'")
    args = parser.parse_args()
    chosen = [name for name in CASES if name in args.cases.split(";")]
    results: dict[str, list[Load]] = {name: [] for name in chosen}
    count = PER_SECOND * args.seconds
    redis_cm: AbstractContextManager[str | None] = redis_server() if any(CASES[n][1] for n in chosen) else nothing()
    with redis_cm as redis_url:
        for round_no in range(args.rounds):
            for name in chosen:
                target, needs_redis, maker = CASES[name]
                env = {"GATEWAY_REDIS_URL": redis_url or ""} if needs_redis else {"GATEWAY_REDIS_URL": ""}
                with uvicorn_server(target, env, ready_path="/_gateway/health" if maker else "/") as url:
                    host = url.split("://")[1]
                    paths = write_paths((maker or (lambda h: v1_path))(host), count)
                    try:
                        load = wrk(url + "/", seconds=args.seconds, paths=paths)
                    finally:
                        paths.unlink()
                results[name].append(load)
                print(f"round {round_no + 1} {name}: {load.rps:,.0f} req/s p99 {load.p99_ms:.2f} ms "
                      f"non-2xx {load.non_2xx}", flush=True)
    medians = [(name, median_load(loads)) for name, loads in results.items()]
    print()
    print(table(medians, medians[0][1]))


if __name__ == "__main__":
    main()
