"""Settings, the policy file, the CLI and the public API: configuration fails loudly and precisely."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import gateway
from gateway.cli import main
from gateway.policy import PolicyError, load_policy, parse_policy
from gateway.settings import VARIABLES, Settings, SettingsError
from tests.support.serve import import_env

ROOT = Path(__file__).parent.parent


def test_public_api_is_pinned() -> None:
    assert gateway.__all__ == sorted(gateway.__all__)
    assert set(gateway.__all__) == {
        "ApiError", "Call", "Err", "GatewayError", "GatewayMiddleware", "Policy", "PolicyError",
        "PolicyResolver", "Resource", "ResourceResolver", "Settings", "SettingsError", "load_policy",
    }


def test_settings_defaults_and_overrides() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    custom = Settings.from_env({"GATEWAY_PORT": "9000", "GATEWAY_DEFAULT_FORMAT": "json",
                                "GATEWAY_SIGNATURE_METHODS": "HMAC-SHA1", "GATEWAY_ACCESS_LOG": "off"})
    assert (custom.port, custom.default_format, custom.signature_methods, custom.access_log) == (
        9000, "JSON", ("HMAC-SHA1",), False)


@pytest.mark.parametrize(("env", "value"), [
    ("GATEWAY_PORT", "eighty"), ("GATEWAY_WORKERS", "0"), ("GATEWAY_DEFAULT_FORMAT", "YAML"),
    ("GATEWAY_REDIS_TIMEOUT", "-1"), ("GATEWAY_SIGNATURE_METHODS", "HMAC-MD5"), ("GATEWAY_ACCESS_LOG", "maybe"),
    ("GATEWAY_OPS_PREFIX", "ops"), ("GATEWAY_FAIL_OPEN", "nonce"), ("GATEWAY_UPSTREAM_URL", "ftp://x"),
    ("GATEWAY_UPSTREAM_URL", "http://host:port/"), ("GATEWAY_SHUTDOWN_TIMEOUT", "0"),
    ("GATEWAY_HEADER_TIMEOUT", "0"), ("GATEWAY_MAX_HEADER_BYTES", "100"), ("GATEWAY_MAX_CONNECTIONS", "0"),
])
def test_bad_setting_names_the_variable(env: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{env}="):
        Settings.from_env({env: value})


def test_readme_documents_every_variable_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default else "(unset)"
        assert re.search(rf"^\| `{var.env}` \| {re.escape(default)} \|", readme, re.M), var.env


GOOD = """
[[accounts]]
id = 1
name = "a"

[[access_keys]]
id = "K"
secrets = ["s"]
account = 1
"""


@pytest.mark.parametrize(("tail", "line", "problem"), [
    ('\n[[access_keys]]\nid = "K2"\nsecrets = ["s"]\naccount = 9\n', 11, "account 9 is not declared"),
    ('\n[[access_keys]]\nid = "K"\nsecrets = ["s"]\naccount = 1\n', 11, "duplicate entry 'K'"),
    ('\n[[access_keys]]\nid = "K3"\nsecrets = []\naccount = 1\n', 11, "one or two non-empty secrets"),
    ('\n[[access_keys]]\nid = "K4"\nsecrets = ["s"]\naccount = 1\nquota = "lots"\n', 11, "not of the form N/period"),
    ('\n[[access_keys]]\nid = "K5"\nsecrets = ["s"]\naccount = 1\ncolour = "red"\n', 11, "unknown field 'colour'"),
    ('\n[apis."1".Do]\nparams.X = { type = "Decimal" }\n', 11, "type must be one of"),
    ('\n[apis."1".Do]\nparams.X = { pattern = "(" }\n', 11, "pattern does not compile"),
    ('\n[[sub_users]]\naccount = 1\nname = "u"\nstatements = [{ effect = "Maybe", actions = ["*"] }]\n', 11,
     "effect must be"),
    ('\n[limits]\nquota_scope = "planet"\n', 12, "quota_scope"),
])
def test_policy_errors_name_file_line_entry(tail: str, line: int, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(GOOD + tail, "p.toml", {})
    message = str(caught.value)
    assert message.startswith(f"p.toml:{line}: ") and problem in message, message
    assert "\n" not in message


def test_the_line_of_an_entry_deep_in_a_large_policy_is_found_in_one_pass() -> None:
    # Indented and commented headers, "[[...]]" inside a string: only real headers count.
    keys = "".join(f'\n  [[ access_keys ]]  # key {i}\nid = "K{i}"\nsecrets = ["[[access_keys]]"]\naccount = 1\n'
                   for i in range(20_000))
    text = GOOD + keys + '\n[[access_keys]]\nid = "BAD"\nsecrets = []\naccount = 1\n'
    bad_line = text.count("\n", 0, text.index('id = "BAD"'))  # the header's line, 1-based
    with pytest.raises(PolicyError) as caught:  # (a scan per entry made this take minutes)
        parse_policy(text, "p.toml", {})
    assert str(caught.value).startswith(f"p.toml:{bad_line}: access_keys[20001]"), caught.value


def test_secret_env_reads_the_environment() -> None:
    # (with an API: a policy declaring none is refused, #15)
    text = GOOD.replace('secrets = ["s"]', 'secret_env = "MY_SECRET"') + '\n[apis."1".Do]\n'
    assert parse_policy(text, "p.toml", {"MY_SECRET": "from-env"}).access_keys["K"].secrets == ("from-env",)
    with pytest.raises(PolicyError, match="MY_SECRET"):
        parse_policy(text, "p.toml", {})


def test_secrets_never_appear_in_reprs() -> None:
    key = load_policy(ROOT / "tests" / "data" / "policy.toml").access_keys["LTAIalice"]
    assert "alice-secret" not in repr(key) and "alice-secret" not in str(key)


def test_example_and_demo_policies_are_valid() -> None:
    example = parse_policy((ROOT / "deploy" / "policy.example.toml").read_text(), "example",
                           {"ALICE_SECRET": "a", "ALICE_OLD_SECRET": "b"})
    assert example.apis["2014-05-26"]["CreateOrder"].idempotent
    assert load_policy(None).access_keys["LTAIdemoAccessKey"].enabled


def test_check_config_prints_a_summary_or_one_line(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(ROOT / "tests" / "data" / "policy.toml"))
    assert main(["check-config"]) == 0
    assert "7 access keys" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + '\n[[accounts]]\nid = "x"\nname = "b"\n')
    monkeypatch.setenv("GATEWAY_CONFIG", str(bad))
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:11: accounts[1]" in err


def test_sign_prints_a_url_the_gateway_accepts(capsys: pytest.CaptureFixture[str], memory_gateway: object) -> None:
    import httpx

    url = memory_gateway.url  # type: ignore[attr-defined]
    assert main(["sign", "--access-key-id", "LTAIalice", "--secret", "alice-secret", "--endpoint", url + "/",
                 "Action=DescribeRegions", "Version=2014-05-26", "Format=JSON", "AcceptLanguage=zh-CN"]) == 0
    signed = capsys.readouterr().out.strip()
    response = httpx.get(signed)
    assert response.status_code == 200, response.text
    assert main(["sign", "--access-key-id", "LTAIalice", "--secret", "alice-secret", "--endpoint", url + "/",
                 "--method", "POST", "--curl", "Action=DescribeRegions", "Version=2014-05-26"]) == 0
    assert capsys.readouterr().out.startswith("curl -s -X POST")


def test_serve_refuses_workers_without_redis() -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--workers", "2"],
                            capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", **import_env({})})
    assert result.returncode == 2
    assert "needs GATEWAY_REDIS_URL" in result.stderr and result.stderr.count("\n") == 1
