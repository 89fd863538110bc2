"""The differential test's #17 additions, without a server: its policy is policy.toml's text plus what
temporary credentials and RSA need (so it cannot drift from it), and its comparator reports the role
headers of temporary credentials (missing, extra, spoofed) and an identity the case was not signed as."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import load_policy
from gateway.signing import ALGORITHM_RSA, ALGORITHM_SM3
from tests.conftest import DATA
from tests.support.differential import policy as diff_policy
from tests.support.differential.compare import Expected, Reading, differences, established_differences
from tests.support.differential.credentials import NEW_VERSIONS, VERSIONS, signers
from tests.support.differential.generate import IDENTITY_SPOOFS

ROLE = "acs:ram::1111:role/Reader"


def test_the_policy_is_policy_toml_plus_the_additions(tmp_path: Path) -> None:
    text = diff_policy.write_policy(tmp_path).read_text()
    assert text.startswith((DATA / "policy.toml").read_text())
    base, extended = load_policy(DATA / "policy.toml"), diff_policy.load(tmp_path / "differential_policy.toml")
    assert set(extended.access_keys) - set(base.access_keys) == {diff_policy.RSA_KEY_ID}
    # Every API of policy.toml unchanged; [sts] adds its own version (AssumeRole), nothing else.
    assert {version: extended.apis[version] for version in base.apis} == base.apis
    assert set(extended.apis) - set(base.apis) == {"2015-04-01"}
    rsa_key = extended.access_keys[diff_policy.RSA_KEY_ID]
    assert rsa_key.secrets == () and len(rsa_key.public_keys) == 1
    assert sorted(role.arn for role in extended.roles.values()) == [ROLE, "acs:ram::2222:role/bob-reader"]
    assert not base.roles


def _sts_expected(**identity: str | None) -> Expected:
    return Expected((("Action", "DescribeEcho"),), "/", {
        "x-gateway-account-id": "1111", "x-gateway-account-name": "alice@example.com", "x-gateway-sub-user": None,
        "x-gateway-access-key-id": "STS.abc", "x-acs-request-id": "R", "x-gateway-role-arn": ROLE,
        "x-gateway-role-session-name": "s1", "x-gateway-assumed-by": "LTAIalice", **identity})


def _headers(expected: Expected) -> dict[str, list[str]]:
    return {name: [value] for name, value in expected.identity.items() if value is not None}


def test_role_headers_missing_extra_or_spoofed_are_differences() -> None:
    expected = _sts_expected()
    same = Reading("wsgi", "/", list(expected.params), _headers(expected))
    assert differences(expected, same) == []
    missing = Reading("wsgi", "/", list(expected.params),
                      {k: v for k, v in _headers(expected).items() if k != "x-gateway-role-arn"})
    assert [line.split("]")[0] for line in differences(expected, missing)] == ["[identity x-gateway-role-arn"]
    joined = Reading("wsgi", "/", list(expected.params), {**_headers(expected),
                                                          "x-gateway-role-arn": ["acs:ram::2222:role/x", ROLE]})
    assert [line.split("]")[0] for line in differences(expected, joined)] == ["[identity x-gateway-role-arn"]
    # A long-term key's call: any role header a service reads is one the gateway did not establish.
    plain = _sts_expected(**{"x-gateway-access-key-id": "LTAIalice", "x-gateway-role-arn": None,
                             "x-gateway-role-session-name": None, "x-gateway-assumed-by": None})
    extra = Reading("aiohttp", "/", list(plain.params), {**_headers(plain), "x-gateway-assumed-by": ["LTAIops"]})
    assert [line.split("]")[0] for line in differences(plain, extra)] == ["[identity x-gateway-assumed-by"]


def test_an_identity_the_case_was_not_signed_as_is_a_difference() -> None:
    expected = _sts_expected()
    claimed = {name: expected.identity[name] for name in ("x-gateway-access-key-id", "x-gateway-role-arn")}
    assert established_differences(expected, claimed) == []
    wrong = established_differences(expected, {**claimed, "x-gateway-account-id": "2222"})
    assert [line.split("]")[0] for line in wrong] == ["[established x-gateway-account-id"]


def test_role_header_spoofs_are_drawn_in_folded_spellings() -> None:
    folded = {name.decode().lower().replace("_", "-") for name in IDENTITY_SPOOFS}
    assert {"x-gateway-role-arn", "x-gateway-role-session-name", "x-gateway-assumed-by"} <= folded
    assert any(b"_" in name and b"role" in name.lower() for name in IDENTITY_SPOOFS)


def test_the_new_versions_keep_a_minority_of_the_draws() -> None:
    assert set(NEW_VERSIONS) <= set(VERSIONS)
    assert sum(VERSIONS.count(v) for v in NEW_VERSIONS) / len(VERSIONS) < 0.4


@settings(max_examples=60, database=None, deadline=None)
@given(data=st.data())
def test_signers_claim_what_their_credentials_are(data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(NEW_VERSIONS))
    key = data.draw(st.sampled_from(["LTAIalice", "LTAIops", "LTAIbob"]))
    signer = data.draw(signers(version, key))
    claimed = signer.claimed
    if version.endswith("-sts"):
        claims = diff_policy.TOKEN_KEYS.open(signer.token or "")
        assert claims is not None and claims.access_key_id == signer.access_key_id == claimed["x-gateway-access-key-id"]
        assert claimed["x-gateway-assumed-by"] == key and claimed["x-gateway-sub-user"] is None
        assert claimed["x-gateway-role-arn"] == f"acs:ram::{claims.account}:role/{claims.role}"
        assert claimed["x-gateway-account-id"] == str(claims.account) == ("2222" if key == "LTAIbob" else "1111")
        assert signer.secret == diff_policy.TOKEN_KEYS.secret_of(claims.access_key_id)
    else:
        assert claimed["x-gateway-role-arn"] is None and signer.token is None
    if version == "V3-rsa":
        assert signer.algorithm == ALGORITHM_RSA and claimed["x-gateway-access-key-id"] == diff_policy.RSA_KEY_ID
    if version == "V3-sm3":
        assert signer.algorithm == ALGORITHM_SM3 and signer.hash_header in ("x-acs-content-sm3", "x-acs-content-sha256")


def test_a_token_other_than_the_verified_one_is_a_difference() -> None:
    expected = Expected((("Action", "DescribeEcho"), ("SecurityToken", "v1.mine")), "/", {}, token="v1.mine")
    same = Reading("wsgi", "/", list(expected.params), {"x-acs-security-token": ["v1.mine"]})
    assert differences(expected, same) == []
    other = Reading("wsgi", "/", list(expected.params), {"x-acs-security-token": ["v1.other"]})
    assert [line.split("]")[0] for line in differences(expected, other)] == ["[token"]
    # A long-term key's call verified no token: any token a service reads is unverified.
    plain = Expected((("Action", "DescribeEcho"), ("SecurityToken", "v1.x")), "/", {})
    assert [line.split("]")[0] for line in differences(plain, Reading("aiohttp", "/", list(plain.params)))] == [
        "[token"]
