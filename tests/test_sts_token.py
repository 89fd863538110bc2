"""Unit tests of the temporary-credential pieces: the token, the session-policy grammar, the policy
file's [[roles]]/[sts], and the resolver that turns a token into a key (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.catalog import Err
from gateway.errors import PolicyError
from gateway.policy import parse_policy
from gateway.sts import token as tokens
from gateway.sts.grammar import GrammarError, parse_session_policy
from gateway.sts.keys import TemporaryKeys
from tests.support.sts import ENVIRON, POLICY, SIGNING_KEY, sts_policy

KEYS = tokens.TokenKeys(bytes.fromhex(SIGNING_KEY))
CLAIMS = tokens.Claims("STS.abc", 1111, "Reader", "s1", "LTAIroot", 2_000_000_000, None)


# --- the token ----------------------------------------------------------------------------------


def test_a_minted_token_opens_to_its_claims() -> None:
    assert KEYS.open(KEYS.mint(CLAIMS)) == CLAIMS
    with_policy = CLAIMS._replace(policy='{"Version":"1"}')
    assert KEYS.open(KEYS.mint(with_policy)) == with_policy


def test_every_altered_character_is_refused() -> None:
    token = KEYS.mint(CLAIMS)
    for index in range(len(token)):
        changed = token[:index] + ("x" if token[index] != "x" else "y") + token[index + 1:]
        assert KEYS.open(changed) is None, index


@pytest.mark.parametrize("cut", [1, 5, 20, 43, 44, 60])
def test_a_truncated_token_is_refused(cut: int) -> None:
    token = KEYS.mint(CLAIMS)
    assert KEYS.open(token[:-cut]) is None
    assert KEYS.open(token[cut:]) is None


@pytest.mark.parametrize("garbage", ["", "v1.", "v1..", "v1.a.b", "v2." + "A" * 50, "v1.!!!.abc", "x" * 10000])
def test_garbage_is_refused_not_raised(garbage: str) -> None:
    assert KEYS.open(garbage) is None


def test_another_signing_key_neither_opens_tokens_nor_derives_secrets() -> None:
    other = tokens.TokenKeys(bytes(32))
    assert other.open(KEYS.mint(CLAIMS)) is None
    assert other.secret_of("STS.abc") != KEYS.secret_of("STS.abc")


def test_a_token_of_the_wrong_shape_is_refused_even_with_a_valid_mac() -> None:
    import base64
    import json

    for fields in ([1, 2], ["STS.a", "1111", "r", "s", "k", 1, None], ["STS.a", 1, "r", "s", "k", 1, 5], {"a": 1}):
        body = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
        signed = tokens.PREFIX + body
        assert KEYS.open(f"{signed}.{KEYS._mac(signed)}") is None


def test_secrets_are_derived_per_key_id() -> None:
    assert KEYS.secret_of("STS.a") == KEYS.secret_of("STS.a") != KEYS.secret_of("STS.b")
    assert len(KEYS.secret_of("STS.a")) == 43


def test_new_key_ids() -> None:
    ids = {tokens.new_access_key_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"STS\.[A-Za-z0-9]{25}", key_id) for key_id in ids)


def test_expiration_format() -> None:
    assert tokens.expiration(0) == "1970-01-01T00:00:00Z"
    assert tokens.expiration(1_700_000_000.9) == "2023-11-14T22:13:20Z"


# --- the session policy -------------------------------------------------------------------------


def test_product_prefixes_are_dropped() -> None:
    (statement,) = parse_session_policy(
        '{"Version":"1","Statement":[{"Effect":"Allow","Action":["ecs:Describe*","sts:AssumeRole"],"Resource":"*"}]}',
        1111)
    assert statement.actions.fullmatch("DescribeRegions") and statement.actions.fullmatch("AssumeRole")
    assert not statement.actions.fullmatch("ecs:DescribeRegions") and not statement.actions.fullmatch("CreateThing")


def test_resources_are_read_from_arns() -> None:
    text = ('{"Version":"1","Statement":[{"Effect":"Deny","Action":"*","Resource":'
            '["acs:ecs:*:*:instance/i-1","acs:ecs:cn-hangzhou:1111:disk/*","acs:ecs:*:2222:image/*"]}]}')
    (statement,) = parse_session_policy(text, 1111)
    assert statement.resources.fullmatch("instance/i-1") and statement.resources.fullmatch("disk/d-9")
    assert not statement.resources.fullmatch("image/m-1")  # another account's: never this session's
    assert not statement.resources.fullmatch("*")


@pytest.mark.parametrize("text", [
    "", "{", "null", '{"Version":1,"Statement":[]}', '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    '{"Version":"1","Statement":{"Effect":"Allow"}}', '{"Version":"1","Statement":["x"]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"*"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":[""],"Resource":"*"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"acs:ecs"}]}',
    '{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"*","Resource":"*"}]}',
    "[" * 100000,
])
def test_grammar_errors(text: str) -> None:
    with pytest.raises(GrammarError):
        parse_session_policy(text, 1111)


# --- the policy file ----------------------------------------------------------------------------

BASE = POLICY.read_text()


def _load(text: str, environ: dict[str, str] | None = None) -> None:
    parse_policy(text, "p.toml", ENVIRON if environ is None else environ)


def test_the_test_policy_loads_with_assume_role_declared() -> None:
    policy = sts_policy()
    assert policy.sts is not None and policy.sts.signing_key == bytes.fromhex(SIGNING_KEY)
    assert policy.api("2015-04-01", "AssumeRole") is not None
    assert policy.roles[(1111, "reader")].trusted == {"root", "dev", "intern", "auditor"}
    assert SIGNING_KEY not in repr(policy.sts)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace('signing_key_env = "GATEWAY_TEST_STS_KEY"', 'signing_key_env = "UNSET_VAR"'),
     r"p.toml:\d+: sts: signing_key_env 'UNSET_VAR' is not set"),
    (lambda t: t.replace('signing_key_env = "GATEWAY_TEST_STS_KEY"', 'signing_key_env = "GATEWAY_TEST_STS_KEY"\nx=1'),
     r"sts: unknown field 'x'"),
    (lambda t: t.replace("max_duration = 7200", "max_duration = 899"), r"max_duration must be 900 to 43200"),
    (lambda t: t.replace("max_duration = 43200", "max_duration = 43201"), r"max_duration must be 900 to 43200"),
    (lambda t: t.replace("max_duration = 7200", 'max_duration = "7200"'), r"max_duration has the wrong type"),
    (lambda t: t.replace('"root", "dev", "intern", "auditor"', '"root", "nobody"'),
     r"trusted sub-user 'nobody' of account 1111 is not declared"),
    (lambda t: t.replace('"root", "dev", "intern", "auditor"', ""), r"trusted must be a non-empty list"),
    (lambda t: t.replace('name = "disks-only"', 'name = "READER"'), r"duplicate entry \(1111, 'reader'\)"),
    (lambda t: t.replace('name = "disks-only"', 'name = "has space"'), r"needs a name of 1 to 64"),
    (lambda t: t.replace('name = "bob-role"', 'name = "bob-role"\nwho = 1'), r"unknown field 'who'"),
    (lambda t: t.replace('id = "LTAIbob"', 'id = "STS.bob"'), r"ids starting with \"STS.\""),
    (lambda t: t + '\n[apis."2015-04-01".AssumeRole]\n', r"AssumeRole is served by the gateway"),
    (lambda t: t.replace("[sts]\nsigning_key_env", "[nosts]\nsigning_key_env"), r"unknown field 'nosts'"),
])
def test_policy_errors_name_the_place(change: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _load(change(BASE))  # type: ignore[operator]


def test_roles_need_sts() -> None:
    text = BASE.replace('[sts]\nsigning_key_env = "GATEWAY_TEST_STS_KEY"\n', "")
    with pytest.raises(PolicyError, match=r"p.toml:\d+: roles: \[\[roles\]\] need \[sts\]"):
        _load(text)


@pytest.mark.parametrize("value", ["", "abc", "5f" * 31, "5f" * 33, "zz" * 32])
def test_the_signing_key_is_64_hex_characters(value: str) -> None:
    with pytest.raises(PolicyError, match="must hold 64 hex characters"):
        _load(BASE, {"GATEWAY_TEST_STS_KEY": value})


def test_the_error_line_points_at_the_role() -> None:
    text = BASE.replace("max_duration = 7200", "max_duration = 1")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.strip() == "[[roles]]")
    with pytest.raises(PolicyError, match=rf"p.toml:{line}: roles\[0\] \(Reader\)"):
        _load(text)


# --- the resolver -------------------------------------------------------------------------------


@pytest.fixture
def temporary() -> TemporaryKeys:
    policy = sts_policy()
    assert policy.sts is not None
    return TemporaryKeys(policy, policy.sts, cache_size=4)


def _token(**changes: object) -> str:
    return KEYS.mint(CLAIMS._replace(**changes))


def test_resolve_gives_the_roles_key(temporary: TemporaryKeys) -> None:
    key, refusal = temporary.resolve("STS.abc", None, _token())
    assert refusal is None and key is not None
    assert key.id == "STS.abc" and key.secrets == (KEYS.secret_of("STS.abc"),) and key.account.id == 1111
    assert key.session is not None and key.session.role.name == "Reader" and key.session.assumed_by == "LTAIroot"
    assert key.user is not None and key.user.statements == key.session.role.statements


@pytest.mark.parametrize(("key_id", "token", "refusal"), [
    ("STS.abc", None, Err.MISSING_SECURITY_TOKEN),
    ("STS.abc", "v1.garbage.mac", Err.TOKEN_MALFORMED),
    ("STS.other", _token(), Err.TOKEN_MISMATCH),
    ("STS.abc", _token(expires=1), Err.TOKEN_EXPIRED),
    ("STS.abc", _token(role="gone"), Err.TOKEN_MALFORMED),  # the role is no longer in the policy
    ("STS.abc", _token(assumed_by="LTAIgone"), Err.TOKEN_MALFORMED),  # nor the key that assumed it
    ("STS.abc", _token(account=2222), Err.TOKEN_MALFORMED),  # no role "Reader" in account 2222
])
def test_resolve_refusals(temporary: TemporaryKeys, key_id: str, token: str | None, refusal: Err) -> None:
    assert temporary.resolve(key_id, None, token) == (None, refusal)


def test_a_long_term_key_with_a_token_is_mismatch(temporary: TemporaryKeys) -> None:
    root = temporary.policy.access_keys["LTAIroot"]
    assert temporary.resolve("LTAIroot", root, _token()) == (None, Err.TOKEN_MISMATCH)
    assert temporary.resolve("LTAIroot", root, None) == (root, None)
    assert temporary.resolve("LTAInobody", None, _token()) == (None, None)  # unknown: InvalidAccessKeyId.NotFound


def test_verified_tokens_are_cached_but_expiry_is_checked_every_time(temporary: TemporaryKeys,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(expires=1_000)
    monkeypatch.setattr(tokens, "clock", lambda: 999.0)
    first, _ = temporary.resolve("STS.abc", None, token)
    second, _ = temporary.resolve("STS.abc", None, token)
    assert first is not None and first is second  # one verification, then the cache
    monkeypatch.setattr(tokens, "clock", lambda: 1_000.0)
    assert temporary.resolve("STS.abc", None, token) == (None, Err.TOKEN_EXPIRED)


def test_the_cache_is_bounded_and_keeps_the_recently_used(temporary: TemporaryKeys) -> None:
    hot = _token(access_key_id="STS.hot")
    first, _ = temporary.resolve("STS.hot", None, hot)
    for n in range(10):
        temporary.resolve(f"STS.k{n}", None, _token(access_key_id=f"STS.k{n}"))
        again, _ = temporary.resolve("STS.hot", None, hot)
        assert again is first  # used between every newcomer: never the least recently used
    assert len(temporary._verified) == 4
    assert list(temporary._verified)[-1] == hot


def test_the_policy_file_in_the_readme_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Temporary credentials", 1)[1]
    block = section.split("<<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0]
    (tmp_path / "policy.toml").write_text(block)
    policy = parse_policy(block, "readme", {"GATEWAY_STS_KEY": "00" * 32})
    assert policy.sts is not None and policy.roles


def test_the_assuming_key_may_come_from_elsewhere_than_the_file() -> None:
    # With the Redis keystore the key that assumed the role is found in the keystore's cache (gateway/chain.py).
    from dataclasses import replace

    policy = sts_policy()
    assert policy.sts is not None
    elsewhere = replace(policy.access_keys["LTAIroot"], id="LTAIredis")
    temporary = TemporaryKeys(policy, policy.sts, lookup={"LTAIredis": elsewhere}.get)
    key, refusal = temporary.resolve("STS.abc", None, _token(assumed_by="LTAIredis"))
    assert refusal is None and key is not None and key.session is not None
    assert key.session.assumed_by == "LTAIredis"
    assert temporary.resolve("STS.abc", None, _token(assumed_by="LTAIroot")) == (None, Err.TOKEN_MALFORMED)
