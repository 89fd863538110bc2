"""``gateway check-config --diff CANDIDATE``: what a reload would change, before it is done (#15 §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support.serve import ROOT, serve_env
from tests.test_reload import ALICE, BASE, DISABLED, INVALID


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    file = tmp_path / "running.toml"
    file.write_text(BASE)
    monkeypatch.setenv("GATEWAY_CONFIG", str(file))
    return file


def test_diff_lists_added_removed_and_changed_entries(running: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(DISABLED.replace(ALICE, ALICE.replace('"alice-secret", ', ""))
                         .replace('[apis."2014-05-26".Crash]\n', "")
                         + '\n[[access_keys]]\nid = "LTAInew"\nsecrets = ["new-secret"]\naccount = 2222\n'
                         + '\n[limits]\nquota_scope = "account"\n')
    assert main(["check-config", "--diff", str(candidate)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"candidate {candidate}: 2 accounts, 8 access keys")
    assert out[1] == f"against {running} (GATEWAY_CONFIG)"
    assert out[2:] == [
        "+ access key LTAInew",
        "~ access key LTAIalice: secrets changed (2 -> 1); enabled true -> false",
        "- API 2014-05-26/Crash",
        "~ limits [limits]: quota_scope key -> account",
        "a reload would change: 1 access key added, 1 access key changed, 1 API removed, 1 limits changed",
    ]
    assert "secret" not in "\n".join(out).replace("secrets changed", "")


def test_the_same_text_would_be_unchanged(running: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--diff", str(running)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == 'same text: a reload would be "unchanged"'


def test_an_invalid_candidate_is_one_line_and_exit_2(running: Path, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(INVALID)
    line = INVALID[:INVALID.index('quota = "lots"')].count("\n") - 3
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--diff", str(candidate)],
                          cwd=ROOT, env=serve_env(GATEWAY_CONFIG=str(running)), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"gateway: {candidate}:{line}: access_keys[4]")


def test_a_candidate_without_apis_is_refused(running: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(BASE[:BASE.index("[apis.")])
    assert main(["check-config", "--diff", str(candidate)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{candidate}:1: apis: declares no API" in err


def test_serve_refuses_to_start_on_a_policy_without_apis(tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(BASE[:BASE.index("[apis.")])
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--port", "0"], cwd=ROOT,
                          env=serve_env(GATEWAY_CONFIG=str(file)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"{file}:1: apis: declares no API" in done.stderr, done.stderr
