"""Signed requests for the benches, each with its own nonce: wrk's request lines, and ASGI scopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.apps import KEY, SECRET
from gateway.signing import percent_encode, sign_request_v1, sign_request_v3

DESCRIBE_REGIONS = {"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON", "RegionId": "cn-hangzhou"}


def v1_query(params: dict[str, str] | None = None, *, key: str = KEY, secret: str = SECRET,
             method: str = "GET") -> str:
    """A V1 request's signed parameters (DescribeRegions by default), percent-encoded."""
    signed = sign_request_v1(params or DESCRIBE_REGIONS, access_key_id=key, secret=secret, method=method)
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in signed.items())


def v1_path(_: int = 0) -> str:
    """A line of lua/paths.lua: a signed V1 DescribeRegions."""
    return "/?" + v1_query()


def v3_line(host: str) -> Callable[[int], str]:
    """Lines of lua/paths.lua for V3 requests signed for ``host``: the path, then tab-separated headers."""
    def line(_: int) -> str:
        headers = sign_request_v3(method="GET", host=host, path="/", query={"RegionId": "cn-hangzhou"},
                                  action="DescribeRegions", version="2014-05-26", access_key_id=KEY,
                                  secret=SECRET)
        headers.pop("host")
        return "/?RegionId=cn-hangzhou\t" + "\t".join(f"{k}: {v}" for k, v in headers.items())

    return line


def scope(method: str = "GET", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn makes it, for in-process runs."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": "/", "raw_path": b"/", "query_string": query, "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8080"), *(headers or [(b"user-agent", b"bench")])],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080)}


def scopes(count: int) -> list[dict[str, Any]]:
    """``count`` signed V1 DescribeRegions GETs."""
    return [scope(query=v1_query().encode()) for _ in range(count)]
