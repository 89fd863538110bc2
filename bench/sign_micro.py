"""Microbenchmark: one V1 signature verification, gateway.signing against aliyunsdkcore's own signer.

    .venv/bin/python bench/sign_micro.py [--repeat N]

For 10, 50 and 200 parameters it prints microseconds per verification (median and min over the
repeats) for ``gateway.signing.verify_v1`` and for what aliyunsdkcore does to sign the same
parameters (its RPC string-to-sign composer, then its HMAC-SHA1 signer, then a constant-time compare).

Every request in the pool has its own nonce, timestamp and business values, so the encoding memo in
gateway.signing only ever helps with what really recurs (names, Action, Version, ...): a worst case
for it, not a replay of one warm request.
"""

from __future__ import annotations

import argparse
import hmac
import statistics
import sys
import timeit
import uuid
from collections.abc import Callable, Sequence

from aliyunsdkcore.auth.algorithm import sha_hmac1  # type: ignore[import-untyped]
from aliyunsdkcore.auth.composer import rpc_signature_composer  # type: ignore[import-untyped]

from gateway.signing import sign_request_v1, verify_v1

SECRET = "bench-secret-0123456789abcdef"
SIZES = (10, 50, 200)
# Requests per pool, so that every size times roughly as many strings.
POOL = {10: 4000, 50: 1000, 200: 300}

_sdk_string_to_sign: Callable[[str, dict[str, str]], str] = getattr(
    rpc_signature_composer, "__compose_string_to_sign"
)

Request = tuple[dict[str, str], str]


def make_request(size: int, serial: int) -> Request:
    """A signed request of ``size`` parameters, ``Signature`` not counted, as the gateway decodes it."""
    params = {
        "Action": "DescribeInstances",
        "Version": "2014-05-26",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "InstanceName": f"web server {serial}",
    }
    for index in range(size - 10):
        value = f"value {serial}:{index}" if index % 3 == 0 else f"v{serial}-{index}"
        params[f"Tag.{index}.Value"] = value
    signed = sign_request_v1(
        params,
        access_key_id="LTAI5tBenchKey0001",
        secret=SECRET,
        nonce=uuid.uuid4().hex,
        timestamp=f"2024-01-{1 + serial // 86400 % 28:02d}T{serial // 3600 % 24:02d}:"
        f"{serial // 60 % 60:02d}:{serial % 60:02d}Z",
    )
    signature = signed.pop("Signature")
    assert len(signed) == size, (len(signed), size)
    return signed, signature


def verify_gateway(pool: Sequence[Request]) -> None:
    secrets = [SECRET]
    for params, signature in pool:
        if not verify_v1(secrets, "GET", params, signature, "HMAC-SHA1"):
            raise AssertionError("gateway.signing rejected a valid request")


def verify_sdk(pool: Sequence[Request]) -> None:
    key = SECRET + "&"
    for params, signature in pool:
        expected = sha_hmac1.get_sign_string(_sdk_string_to_sign("GET", params), key)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise AssertionError("aliyunsdkcore disagrees with gateway.signing")


def per_call_us(
    run: Callable[[Sequence[Request]], None], pool: Sequence[Request], repeat: int
) -> list[float]:
    run(pool)  # warm up, and prove both sides accept every request
    times = timeit.repeat(lambda: run(pool), number=1, repeat=repeat)
    return [t / len(pool) * 1e6 for t in times]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed passes over each pool (default 15)")
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]}; µs per verification, median (min) of {args.repeat} passes")
    print(f"{'params':>6}  {'gateway.signing':>17}  {'aliyunsdkcore':>17}  {'speed-up':>8}")
    for size in SIZES:
        pool = [make_request(size, serial) for serial in range(POOL[size])]
        ours = per_call_us(verify_gateway, pool, args.repeat)
        theirs = per_call_us(verify_sdk, pool, args.repeat)
        ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
        print(
            f"{size:>6}  {ours_median:>8.2f} ({min(ours):>6.2f})  "
            f"{theirs_median:>8.2f} ({min(theirs):>6.2f})  {theirs_median / ours_median:>7.2f}x"
        )


if __name__ == "__main__":
    main()
