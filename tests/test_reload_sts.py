"""A reload and temporary credentials (#15 with #17): AssumeRole is answered by the chain that admitted
it, so a reload that adds, changes or drops ``[sts]`` never lets the service see an AssumeRole call, and
the new signing key is the one that mints and verifies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway import GatewayMiddleware, Settings
from gateway.stores import MemoryStore
from tests.support.apps import EchoService
from tests.support.client import query, signed_params
from tests.support.sts import ENVIRON, POLICY, SECRETS, STS_VERSION, arn

WITH_STS = POLICY.read_text()
# The same policy without temporary credentials: no [sts], no [[roles]] (roles need [sts]).
_ROLES = re.compile(r"^\[\[roles\]\]\n(?:(?!\[).*\n)*", re.M)
WITHOUT_STS = _ROLES.sub("", WITH_STS.replace('[sts]\nsigning_key_env = "GATEWAY_TEST_STS_KEY"\n', ""))
OTHER_KEY = WITH_STS.replace("GATEWAY_TEST_STS_KEY", "GATEWAY_TEST_STS_KEY_2")


def _unknown_api(answer: httpx.Response) -> bool:
    body = answer.json()
    return answer.status_code == 400 and body["Code"] == "InvalidParameter" and "Action or Version" in body["Message"]


class Gw:
    def __init__(self, file: Path, middleware: GatewayMiddleware, service: EchoService,
                 client: httpx.AsyncClient) -> None:
        self.file, self.middleware, self.service, self.client = file, middleware, service, client

    async def assume(self) -> httpx.Response:
        params = signed_params("AssumeRole", {"RoleArn": arn("Reader"), "RoleSessionName": "s1"}, key="LTAIroot",
                               secret=SECRETS["LTAIroot"], version=STS_VERSION)
        return await self.client.get("/?" + query(params))

    async def with_token(self, credentials: dict[str, str]) -> httpx.Response:
        params = signed_params("DescribeRegions", {"SecurityToken": credentials["SecurityToken"]},
                               key=credentials["AccessKeyId"], secret=credentials["AccessKeySecret"])
        return await self.client.get("/?" + query(params))

    async def reload_to(self, text: str) -> str:
        self.file.write_text(text)
        return (await self.middleware.reload()).result


@pytest.fixture
async def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gw]:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GATEWAY_TEST_STS_KEY_2", "a7" * 32)
    file = tmp_path / "policy.toml"
    file.write_text(WITHOUT_STS)
    service = EchoService()
    middleware = GatewayMiddleware(service, settings=Settings(config=str(file)), store=MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://gw") as client:
        yield Gw(file, middleware, service, client)


async def test_a_reload_adding_sts_answers_assume_role_in_the_gateway(gw: Gw) -> None:
    assert "\n[sts]\n" not in WITHOUT_STS and "\n[[roles]]\n" not in WITHOUT_STS
    assert _unknown_api(await gw.assume())
    assert await gw.reload_to(WITH_STS) == "ok"
    answer = await gw.assume()
    assert answer.status_code == 200, answer.text
    credentials = answer.json()["Credentials"]
    assert credentials["AccessKeyId"].startswith("STS.")
    assert gw.service.executed["AssumeRole"] == 0  # answered by the gateway, never forwarded
    assert (await gw.with_token(credentials)).status_code == 200


async def test_a_reload_changing_the_signing_key_mints_and_verifies_with_the_new_one(gw: Gw) -> None:
    assert await gw.reload_to(WITH_STS) == "ok"
    before = (await gw.assume()).json()["Credentials"]
    assert await gw.reload_to(OTHER_KEY) == "ok"
    stale = await gw.with_token(before)
    assert stale.status_code == 400 and stale.json()["Code"] == "InvalidSecurityToken.Malformed"
    after = (await gw.assume()).json()["Credentials"]
    assert (await gw.with_token(after)).status_code == 200


async def test_a_reload_dropping_sts_stops_assume_role_and_its_tokens(gw: Gw) -> None:
    assert await gw.reload_to(WITH_STS) == "ok"
    credentials = (await gw.assume()).json()["Credentials"]
    assert await gw.reload_to(WITHOUT_STS) == "ok"
    assert _unknown_api(await gw.assume())
    assert gw.service.executed["AssumeRole"] == 0
    assert (await gw.with_token(credentials)).status_code != 200
