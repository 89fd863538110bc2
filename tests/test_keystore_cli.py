"""``gateway keys | accounts | sub-users`` against a real Redis (#15 §3): every command, its output, exit 2.

Most commands run in-process through `gateway.cli.main` (the same code the console script runs, with
GATEWAY_* set in the environment); the start-up ones (`gateway serve`, a bad GATEWAY_SECRET_KEY) run
as subprocesses. What a command wrote is read back with the gateway's own keystore reader.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.cli import main
from gateway.keystore.codec import Codec, parse_secret_key
from gateway.keystore.runtime import Keystore
from gateway.policy import AccessKey
from tests.conftest import DATA
from tests.support.keystore import OTHER_KEY, SECRET_KEY, cli_env, keystore_settings, run_cli
from tests.support.servers import free_port


class Cli:
    def __init__(self, url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.prefix, self.capsys = url, prefix, capsys

    def __call__(self, *argv: str) -> tuple[int, list[str], str]:
        """Exit code, stdout lines, stderr."""
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out.splitlines(), err

    def ok(self, *argv: str) -> list[Any]:
        code, lines, err = self(*argv)
        assert code == 0, err
        return [json.loads(line) for line in lines]

    def refused(self, *argv: str, match: str) -> str:
        code, lines, err = self(*argv)
        assert code == 2, (lines, err)
        assert lines == [] and len(err.strip().splitlines()) == 1, err
        assert match in err, err
        return err

    def read(self, ident: str) -> AccessKey | None:
        async def read() -> AccessKey | None:
            keystore = Keystore.from_settings(keystore_settings(self.url, self.prefix))
            try:
                return await keystore.cache.reader.read(ident)
            finally:
                await keystore.aclose()

        return asyncio.run(read())

    def raw(self) -> dict[str, dict[str, str]]:
        with redis.Redis.from_url(self.url, decode_responses=True) as client:
            return {name: client.hgetall(name) for name in client.scan_iter(match=f"{self.prefix}:*")}


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    prefix = f"cli{free_port()}"
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    for name, value in {"GATEWAY_KEYSTORE": "redis", "GATEWAY_REDIS_URL": redis_url,
                        "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_SECRET_KEY": SECRET_KEY}.items():
        monkeypatch.setenv(name, value)
    made = Cli(redis_url, prefix, capsys)
    made.ok("accounts", "set", "7", "--name", "acme")
    return made


def test_accounts_set_creates_then_updates_one_field_at_a_time(cli: Cli) -> None:
    assert cli.ok("accounts", "set", "8", "--name", "beta") == [
        {"Id": 8, "Name": "beta", "RealNameVerified": True, "Balance": 0.0}]
    assert cli.ok("accounts", "set", "8", "--balance", "12.5", "--real-name-verified", "false") == [
        {"Id": 8, "Name": "beta", "RealNameVerified": False, "Balance": 12.5}]
    assert cli.ok("accounts", "set", "8", "--name", "gamma")[0]["Balance"] == 12.5
    cli.refused("accounts", "set", "9", "--balance", "1", match="creating it needs --name")
    cli.refused("accounts", "set", "8", "--real-name-verified", "yes", match="'yes' is not true or false")
    cli.refused("accounts", "set", "x8", "--name", "n", match="not a positive integer")
    cli.refused("accounts", "set", "8", "--balance", "lots", match="not a number")


def test_keys_create_prints_one_json_object_and_the_key_works_as_written(cli: Cli) -> None:
    code, lines, _ = cli("keys", "create", "--account", "7")
    assert code == 0 and len(lines) == 1
    printed = json.loads(lines[0])
    assert list(printed) == ["AccessKeyId", "AccessKeySecret"]
    assert printed["AccessKeyId"].startswith("LTAI") and len(printed["AccessKeyId"]) == 24
    assert len(printed["AccessKeySecret"]) == 30
    key = cli.read(printed["AccessKeyId"])
    assert key is not None and key.secrets == (printed["AccessKeySecret"],) and key.enabled
    assert key.account.id == 7 and key.actions is None and key.quota is None and key.user is None
    assert printed["AccessKeySecret"] not in json.dumps(cli.raw())
    cli.ok("sub-users", "set", "--account", "7", "--name", "ops", "--allow", "Describe*")
    [made] = cli.ok("keys", "create", "--account", "7", "--user", "ops", "--actions", "Describe*", "Get*",
                    "--quota", "5/day")
    key = cli.read(made["AccessKeyId"])
    assert key is not None and key.user is not None and key.user.name == "ops"
    assert key.actions is not None and key.actions.fullmatch("DescribeRegions") and key.actions.fullmatch("GetX")
    assert not key.actions.fullmatch("DeleteInstance")
    assert key.quota is not None and (key.quota.limit, key.quota.period_ms) == (5, 86_400_000)


@pytest.mark.parametrize(("argv", "problem"), [
    (["--account", "99"], "account 99 does not exist"),
    (["--account", "7", "--user", "nobody"], "sub-user 'nobody' of account 7 does not exist"),
    (["--account", "7", "--quota", "5/fortnight"], "unknown period 'fortnight'"),
    (["--account", "7", "--quota", "many"], "is not of the form N/period"),
    (["--account", "7", "--actions", ""], "actions must be a non-empty list of glob strings"),
    (["--account", "seven"], "not a positive integer"),
    ([], "the following arguments are required: --account"),
])
def test_keys_create_refuses_bad_input_with_one_line_and_exit_2(cli: Cli, argv: list[str], problem: str) -> None:
    cli.refused("keys", "create", *argv, match=problem)
    assert not [name for name in cli.raw() if ":ks:k:" in name]  # nothing written


def test_disable_enable_delete(cli: Cli) -> None:
    [made] = cli.ok("keys", "create", "--account", "7")
    ident = made["AccessKeyId"]
    assert cli.ok("keys", "disable", ident) == [{"AccessKeyId": ident, "Done": "disable"}]
    assert (key := cli.read(ident)) is not None and not key.enabled
    cli.ok("keys", "enable", ident)
    assert (key := cli.read(ident)) is not None and key.enabled
    cli.ok("keys", "delete", ident)
    assert cli.read(ident) is None
    for action in ("disable", "enable", "delete", "rotate"):
        cli.refused("keys", action, ident, match=f"access key {ident!r} does not exist")


def test_rotate_adds_a_second_secret_and_finish_drops_the_first(cli: Cli) -> None:
    [made] = cli.ok("keys", "create", "--account", "7")
    ident, first = made["AccessKeyId"], made["AccessKeySecret"]
    [rotated] = cli.ok("keys", "rotate", ident)
    assert list(rotated) == ["AccessKeyId", "AccessKeySecret"] and rotated["AccessKeyId"] == ident
    second = rotated["AccessKeySecret"]
    assert second != first and (key := cli.read(ident)) is not None and key.secrets == (first, second)
    cli.refused("keys", "rotate", ident, match="already has two secrets")
    assert cli.ok("keys", "rotate", ident, "--finish") == [{"AccessKeyId": ident}]
    assert (key := cli.read(ident)) is not None and key.secrets == (second,)
    cli.refused("keys", "rotate", ident, "--finish", match="no rotation to finish")
    assert first not in json.dumps(cli.raw()) and second not in json.dumps(cli.raw())


def test_list_describes_every_key_and_never_prints_a_secret(cli: Cli) -> None:
    cli.ok("accounts", "set", "8", "--name", "other")
    made = [cli.ok("keys", "create", "--account", account)[0] for account in ("7", "7", "8")]
    [rotated] = cli.ok("keys", "rotate", made[0]["AccessKeyId"])
    cli.ok("keys", "disable", made[1]["AccessKeyId"])
    code, lines, _ = cli("keys", "list")
    assert code == 0
    listed = {entry["AccessKeyId"]: entry for entry in map(json.loads, lines)}
    assert set(listed) == {m["AccessKeyId"] for m in made}
    assert listed[made[0]["AccessKeyId"]]["Secrets"] == 2 and listed[made[1]["AccessKeyId"]]["Enabled"] is False
    printed = "\n".join(lines)
    for secret in [m["AccessKeySecret"] for m in made] + [rotated["AccessKeySecret"]]:
        assert secret not in printed
    assert "v1." not in printed  # not even sealed
    only_8 = cli.ok("keys", "list", "--account", "8")
    assert [entry["AccessKeyId"] for entry in only_8] == [made[2]["AccessKeyId"]]


def test_sub_users_set_takes_the_files_statements(cli: Cli) -> None:
    statements = [{"effect": "Allow", "actions": ["Describe*"], "resources": ["instance/i-1*"]}]
    assert cli.ok("sub-users", "set", "--account", "7", "--name", "dev", "--statements", json.dumps(statements),
                  "--deny", "DeleteInstance") == [{"Account": 7, "Name": "dev", "Statements": 2}]
    [made] = cli.ok("keys", "create", "--account", "7", "--user", "dev")
    key = cli.read(made["AccessKeyId"])
    assert key is not None and key.user is not None
    allow, deny = key.user.statements
    assert allow.effect == "Allow" and allow.resources.fullmatch("instance/i-17") and deny.effect == "Deny"
    cli.refused("sub-users", "set", "--account", "7", "--name", "dev", "--statements", "[{",
                match="--statements is not JSON")
    cli.refused("sub-users", "set", "--account", "7", "--name", "dev", "--statements",
                '[{"effect": "Maybe", "actions": ["*"]}]', match="effect must be \"Allow\" or \"Deny\"")
    cli.refused("sub-users", "set", "--account", "70", "--name", "dev", "--allow", "*",
                match="account 70 does not exist")


IMPORT = """
[[accounts]]
id = 31
name = "imported"
balance = 5.0

[[sub_users]]
account = 31
name = "reader"
statements = [{ effect = "Allow", actions = ["Describe*"] }]

[[access_keys]]
id = "LTAIimportedKey1"
secrets = ["imported-secret-one"]
account = 31
user = "reader"
quota = "10/minute"

[[access_keys]]
id = "LTAIimportedKey2"
secrets = ["imported-secret-two", "imported-secret-three"]
account = 31
actions = ["Describe*"]
"""


def test_import_adds_new_entries_and_updates_those_with_the_same_id(cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "keys.toml"
    file.write_text(IMPORT)
    assert cli.ok("keys", "import", str(file)) == [{"accounts": 1, "sub_users": 1, "access_keys": 2}]
    one, two = cli.read("LTAIimportedKey1"), cli.read("LTAIimportedKey2")
    assert one is not None and one.secrets == ("imported-secret-one",) and one.user is not None
    assert one.quota is not None and one.quota.limit == 10 and one.account.balance == 5.0
    assert two is not None and two.secrets == ("imported-secret-two", "imported-secret-three")
    assert two.actions is not None and two.actions.fullmatch("DescribeX") and two.user is None
    assert "imported-secret" not in json.dumps(cli.raw())
    file.write_text(IMPORT.replace('quota = "10/minute"', 'enabled = false').replace("balance = 5.0", "balance = 1.0"))
    cli.ok("keys", "import", str(file))
    one = cli.read("LTAIimportedKey1")
    assert one is not None and not one.enabled and one.quota is None and one.account.balance == 1.0
    assert len([n for n in cli.raw() if ":ks:k:" in n]) == 2


def test_import_refuses_a_key_id_the_running_policy_file_defines(cli: Cli, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(DATA / "policy.toml"))
    file = tmp_path / "keys.toml"
    file.write_text(IMPORT.replace("LTAIimportedKey2", "LTAIalice"))
    cli.refused("keys", "import", str(file), match="LTAIalice defined both in GATEWAY_CONFIG")
    assert cli.read("LTAIimportedKey1") is None  # nothing of it written
    cli.refused("keys", "import", str(tmp_path / "missing.toml"), match="cannot read")
    file.write_text(IMPORT.replace('quota = "10/minute"', 'quota = "10/fortnight"'))
    cli.refused("keys", "import", str(file), match="unknown period")


def test_reencrypt_after_the_encryption_key_changed(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    [made] = cli.ok("keys", "create", "--account", "7")
    monkeypatch.setenv("GATEWAY_SECRET_KEY", OTHER_KEY)
    monkeypatch.setenv("GATEWAY_SECRET_KEY_PREVIOUS", SECRET_KEY)
    assert cli.ok("keys", "reencrypt") == [{"Reencrypted": 1}]
    monkeypatch.delenv("GATEWAY_SECRET_KEY_PREVIOUS")
    sealed = json.loads(cli.raw()[f"{cli.prefix}:ks:k:{made['AccessKeyId']}"]["secrets"])
    new_key = parse_secret_key(OTHER_KEY)
    assert new_key is not None
    assert [Codec(new_key).open(s, made["AccessKeyId"]) for s in sealed] == [made["AccessKeySecret"]]


def test_a_key_id_in_both_the_file_and_the_keystore_stops_check_config_and_serve(
        cli: Cli, tmp_path: Path, redis_url: str) -> None:
    file = tmp_path / "keys.toml"
    file.write_text(IMPORT.replace("LTAIimportedKey2", "LTAIalice"))
    cli.ok("keys", "import", str(file))  # GATEWAY_CONFIG unset: nothing to collide with yet
    env = cli_env(redis_url, cli.prefix, GATEWAY_CONFIG=str(DATA / "policy.toml"))
    for command in (["check-config"], ["serve", "--port", str(free_port())]):
        done = run_cli(env, *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "access key id LTAIalice defined both in" in done.stderr and "policy.toml" in done.stderr


def test_start_up_and_configuration_errors_are_one_line(redis_url: str, tmp_path: Path) -> None:
    env = cli_env(redis_url, "startup")
    bad = run_cli({**env, "GATEWAY_SECRET_KEY": "c2hvcnQ="}, "serve", "--port", str(free_port()))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "gateway: GATEWAY_SECRET_KEY=(hidden): must be 32 bytes once decoded, not 5 (`openssl rand -base64 32`)"]
    missing = run_cli({**env, "GATEWAY_SECRET_KEY": ""}, "keys", "list")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "GATEWAY_SECRET_KEY is required" in missing.stderr
    no_redis = run_cli({**env, "GATEWAY_REDIS_URL": ""}, "serve", "--port", str(free_port()))
    assert no_redis.returncode == 2 and no_redis.stderr.strip().splitlines() == [
        "gateway: GATEWAY_KEYSTORE=redis needs GATEWAY_REDIS_URL (a redis://, rediss://, unix:// or "
        "redis+cluster:// URL)"]
    file_mode = run_cli({**env, "GATEWAY_KEYSTORE": "file"}, "keys", "list")
    assert file_mode.returncode == 2 and "set GATEWAY_KEYSTORE=redis" in file_mode.stderr
    down = run_cli({**env, "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "keys", "list")
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1
    assert "cannot be reached" in down.stderr


def test_list_and_import_go_past_one_batch(cli: Cli, tmp_path: Path) -> None:
    n = 1_234  # more than one pipeline batch of `keys list`
    keys = "".join(f'[[access_keys]]\nid = "LTAIbulk{i:05d}"\nsecrets = ["bulk-secret-{i}"]\naccount = {31 + i % 2}\n\n'
                   for i in range(n))
    file = tmp_path / "bulk.toml"
    file.write_text('[[accounts]]\nid = 31\nname = "a"\n\n[[accounts]]\nid = 32\nname = "b"\n\n' + keys)
    assert cli.ok("keys", "import", str(file)) == [{"accounts": 2, "sub_users": 0, "access_keys": n}]
    listed = cli.ok("keys", "list")
    assert sorted(k["AccessKeyId"] for k in listed) == [f"LTAIbulk{i:05d}" for i in range(n)]
    assert len(cli.ok("keys", "list", "--account", "32")) == n // 2
    assert (key := cli.read("LTAIbulk01233")) is not None and key.secrets == ("bulk-secret-1233",)


def test_import_refuses_an_id_longer_than_the_keystore_takes(cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "long.toml"
    file.write_text(IMPORT.replace("LTAIimportedKey2", "LTAI" + "x" * 130))
    cli.refused("keys", "import", str(file), match="longer than 128 characters")
