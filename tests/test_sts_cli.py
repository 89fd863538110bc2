"""`gateway assume-role` and `gateway sign --security-token` against a live gateway with [sts]."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from gateway.cli import main
from tests.support.serve import ROOT, serve_env
from tests.support.sts import LiveSts, arn, live_sts


@pytest.fixture(scope="module")
def gw() -> Iterator[LiveSts]:
    with live_sts() as live:
        yield live


def _assume(gw: LiveSts, *extra: str) -> list[str]:
    return ["assume-role", "--access-key-id", "LTAIroot", "--secret", "root-secret", "--endpoint", gw.url + "/",
            "--role-arn", arn("Reader"), "--role-session-name", "cli", *extra]


def test_assume_role_prints_credentials_that_sign_calls(gw: LiveSts, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_assume(gw, "--duration-seconds", "1800")) == 0
    credentials = json.loads(capsys.readouterr().out)
    assert credentials["AccessKeyId"].startswith("STS.")
    assert main(["sign", "--access-key-id", credentials["AccessKeyId"], "--secret", credentials["AccessKeySecret"],
                 "--security-token", credentials["SecurityToken"], "--endpoint", gw.url + "/",
                 "Action=DescribeRegions", "Version=2014-05-26", "Format=JSON"]) == 0
    response = httpx.get(capsys.readouterr().out.strip())
    assert response.status_code == 200, response.text
    assert response.json()["Echo"]["Headers"]["x-gateway-role-session-name"] == "cli"


def test_env_output_feeds_gateway_sign(gw: LiveSts, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(_assume(gw, "--env")) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("export ")]
    for line in lines:
        name, _, value = line.removeprefix("export ").partition("=")
        monkeypatch.setenv(name, shlex.split(value)[0])
    assert {line.split("=")[0] for line in lines} == {
        "export GATEWAY_SIGN_ACCESS_KEY_ID", "export GATEWAY_SIGN_SECRET", "export GATEWAY_SIGN_SECURITY_TOKEN"}
    assert main(["sign", "--endpoint", gw.url + "/", "Action=DescribeRegions", "Version=2014-05-26",
                 "Format=JSON"]) == 0
    assert httpx.get(capsys.readouterr().out.strip()).status_code == 200


def test_a_refusal_is_one_line_and_exit_2(gw: LiveSts, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_assume(gw, "--duration-seconds", "60")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "InvalidParameter.DurationSeconds" in err


def test_the_console_command_runs_this_worktrees_code(gw: LiveSts) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", *_assume(gw, "--policy",
                             '{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*"}]}')],
                            cwd=ROOT, env={**os.environ, **serve_env()}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["SecurityToken"].startswith("v1.")
