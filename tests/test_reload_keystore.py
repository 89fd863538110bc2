"""A reload and the Redis keystore (#15): an access key id both in the new file and in the keystore is
refused like at start, and the keystore's cache is the same object before and after a reload."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway import GatewayMiddleware
from gateway.stores import MemoryStore
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import query, signed_params
from tests.support.keystore import admin_on, keystore_settings
from tests.support.servers import free_port

BASE = (DATA / "policy.toml").read_text()


async def test_a_reload_naming_a_keystore_key_is_refused_and_keeps_the_policy(redis_url: str,
                                                                              tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(BASE)
    settings = keystore_settings(redis_url, f"rk{free_port()}", config=str(file))
    middleware = GatewayMiddleware(EchoService(), settings=settings, store=MemoryStore())
    keystore = middleware.gateway.keystore
    assert keystore is not None
    async with admin_on(settings) as admin:
        await admin.set_account(1111, name="tenant")
        made = await admin.create_key(1111)
    ident = made.access_key_id
    shadow = f'\n[[access_keys]]\nid = "{ident}"\nsecrets = ["shadow-secret"]\naccount = 1111\n'
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        async def call(key: str, secret: str | None = None) -> int:
            params = signed_params("DescribeRegions", {}, key=key, secret=secret)
            return (await client.get("/?" + query(params))).status_code

        assert await call(ident, made.secret) == 200  # the keystore's key
        file.write_text(BASE + shadow)
        done = await middleware.reload()
        assert done.result == "error"
        assert done.error is not None and f"{ident} defined both in" in done.error
        assert ident not in middleware.gateway.policy.access_keys
        assert await call(ident, made.secret) == 200  # still the keystore's, with its own secret
        assert await call(ident, "shadow-secret") == 400  # the file's secret never took effect

        file.write_text(BASE + "\n# a comment: a new text, the same entries\n")
        assert (await middleware.reload()).result == "ok"
        assert middleware.gateway.keystore is keystore  # one keystore for every chain the process builds
        assert middleware.chain.parse.cached is keystore.cache.entries
        assert await call(ident, made.secret) == 200
    await keystore.aclose()
