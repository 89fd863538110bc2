"""Node's @alicloud/pop-core with temporary credentials, against a live gateway (#17).

The client is installed by ``npm ci`` in tests/node (package.json and package-lock.json committed; CI and
``make test`` run it). pop-core calls AssumeRole itself, then calls with the credentials it got: accepted;
a role that does not allow the action is Forbidden.RAM; a tampered token, an expired one (minted by the
gateway's own function with a past expiry), another temporary key's token and a missing token each get
their code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sts import SECRETS, Creds, LiveSts, arn, live_sts, minted, tampered

NODE_DIR = Path(__file__).parent / "node"


def _installed() -> bool:
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "@alicloud" / "pop-core").is_dir()


@pytest.fixture(scope="module")
def gw() -> Iterator[LiveSts]:
    if not _installed():
        # CI installs it (.ci/run, make test): a missing install is an error there, not a skip.
        pytest.fail("@alicloud/pop-core is not installed: run `npm ci --prefix tests/node` (make test does)")
    with live_sts() as live:
        yield live


def pop_core(url: str, action: str, *, key_id: str, secret: str, token: str | None = None,
             version: str = "2014-05-26", params: dict[str, str] | None = None) -> dict[str, Any]:
    request = {"endpoint": url, "accessKeyId": key_id, "accessKeySecret": secret, "securityToken": token,
               "apiVersion": version, "action": action, "params": params or {}, "method": "POST"}
    result = subprocess.run(["node", str(NODE_DIR / "call.js"), json.dumps(request)], capture_output=True,
                            text=True, timeout=60, cwd=NODE_DIR)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def assume(url: str, role: str = "Reader") -> Creds:
    answer = pop_core(url, "AssumeRole", key_id="LTAIroot", secret=SECRETS["LTAIroot"], version="2015-04-01",
                      params={"RoleArn": arn(role), "RoleSessionName": "pop-core"})
    assert answer["ok"], answer
    c = answer["body"]["Credentials"]
    return Creds(c["AccessKeyId"], c["AccessKeySecret"], c["SecurityToken"], c["Expiration"])


def code(url: str, credentials: Creds, action: str, token: str | None) -> str | None:
    answer = pop_core(url, action, key_id=credentials.access_key_id, secret=credentials.secret, token=token)
    assert not answer["ok"], answer
    found: str | None = answer["code"]
    return found


def test_pop_core_with_a_security_token(gw: LiveSts) -> None:
    credentials = assume(gw.url)
    answer = pop_core(gw.url, "DescribeRegions", key_id=credentials.access_key_id, secret=credentials.secret,
                      token=credentials.token)
    assert answer["ok"], answer
    assert answer["body"]["Echo"]["Caller"]["AccessKeyId"] == credentials.access_key_id
    assert answer["body"]["Echo"]["Headers"]["x-gateway-role-session-name"] == "pop-core"
    assert code(gw.url, credentials, "CreateThing", credentials.token) == "Forbidden.RAM"
    assert code(gw.url, credentials, "DescribeRegions", tampered(credentials.token)) == "InvalidSecurityToken.Malformed"
    assert code(gw.url, credentials, "DescribeRegions", minted(credentials, expires=1_000_000_000)) == \
        "InvalidSecurityToken.Expired"
    assert code(gw.url, credentials, "DescribeRegions", assume(gw.url).token) == \
        "InvalidSecurityToken.MismatchWithAccessKey"
    assert code(gw.url, credentials, "DescribeRegions", None) == "MissingSecurityToken"
