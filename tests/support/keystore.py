"""The Redis keystore in tests: settings, an admin on it, the CLI as a subprocess, async polling."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from gateway.keystore.admin import Admin
from gateway.keystore.entries import Layout
from gateway.keystore.runtime import codec_from
from gateway.keystore.source import open_client
from gateway.settings import Settings
from tests.support.serve import ROOT, serve_env

SECRET_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(100, 132))).decode()


def keystore_settings(redis_url: str, prefix: str, **values: Any) -> Settings:
    env = {"GATEWAY_KEYSTORE": "redis", "GATEWAY_REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": prefix,
           "GATEWAY_SECRET_KEY": SECRET_KEY}
    return Settings.from_env(env, **values)


@asynccontextmanager
async def admin_on(settings: Settings) -> AsyncIterator[Admin]:
    client = open_client(settings.redis_url, 5.0)
    try:
        yield Admin(client, Layout(settings.redis_prefix), codec_from(settings))
    finally:
        await client.aclose()


def cli_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return serve_env(GATEWAY_KEYSTORE="redis", GATEWAY_REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=prefix,
                     GATEWAY_SECRET_KEY=SECRET_KEY, GATEWAY_LOG_LEVEL="warning", **extra)


def run_cli(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def created(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The (AccessKeyId, AccessKeySecret) a ``keys create`` or ``keys rotate`` printed."""
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"AccessKeyId", "AccessKeySecret"}
    return printed["AccessKeyId"], printed["AccessKeySecret"]


async def until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.005)
