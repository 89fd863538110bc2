"""The reverse proxy's cost: the upstream served directly, against the same upstream behind `gateway serve`.

    .venv/bin/python bench/proxy.py [--seconds 5] [--rounds 3]

The upstream is bench/apps.py's bare Starlette app. The gateway is what `gateway serve` runs in
proxy mode (``gateway.app:create_app`` served with gateway/serving.py's protocol: the full V1 chain on
the memory store, ProxyApp, metrics), with the bench policy. Each is one uvicorn worker (uvloop,
httptools) loaded by wrk ``-t1 -c32``; the two alternate round after round and the medians are
compared. Every request carries its own nonce:
paths are signed ahead into a file that bench/lua/paths.lua replays one per request (split between
wrk's threads), a fresh file each round; wrk's count of non-2xx answers must stay 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import KEY, POLICY, SECRET
from bench.common import GATEWAY_HTTP, alternate, median_load, uvicorn_server, write_paths
from gateway.signing import percent_encode, sign_request_v1

# Signed paths per second of a round: far more than the gateway answers, so none is ever reused.
PER_SECOND = 12_000
TARGET = 0.45  # the gateway's requests/s as a share of the upstream's own


def signed_path(_: int) -> str:
    params = sign_request_v1({"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON",
                              "AcceptLanguage": "en-US"}, access_key_id=KEY, secret=SECRET)
    return "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with uvicorn_server("bench.apps:bare", factory=True) as upstream:
        env = {"GATEWAY_UPSTREAM_URL": upstream, "GATEWAY_CONFIG": str(POLICY), "GATEWAY_ACCESS_LOG": "false",
               "GATEWAY_REDIS_URL": ""}
        with uvicorn_server("gateway.app:create_app", env, ready_path="/_gateway/ready", http=GATEWAY_HTTP) as gateway:
            runs = alternate({"direct": upstream, "gateway": gateway}, seconds=args.seconds, rounds=args.rounds,
                             paths=lambda seconds: write_paths(signed_path, PER_SECOND * seconds))
    direct, gated = median_load(runs["direct"]), median_load(runs["gateway"])
    for name, load in (("direct", direct), ("gateway", gated)):
        print(f"{name:>8}: median {load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms"
              f"  non-2xx {load.non_2xx}")
    ratio = gated.rps / direct.rps
    print(f"gateway / direct requests/s: {ratio:.2f}x (target >= {TARGET}x)")
    if gated.non_2xx or direct.non_2xx:
        sys.exit("some answers were not 2xx: the figures do not measure admitted requests")


if __name__ == "__main__":
    main()
