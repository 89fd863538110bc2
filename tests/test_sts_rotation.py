"""Rotating the STS signing key (#17 follow-up): ``[sts] previous_signing_key_env`` keeps the sessions the
former key minted working while new ones are minted with the new key, until a reload drops it.

Unit tests (the keyring, the resolver, the policy file, the diff) need no server; the last tests rotate
the key of a live `gateway serve` (proxy mode) with SIGHUP, and of a `GatewayMiddleware` (middleware mode)
with its reload, and call with V1 and V3 signatures.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import GatewayMiddleware, Settings
from gateway.catalog import Err
from gateway.cli import main
from gateway.errors import PolicyError
from gateway.policy import Policy, parse_policy
from gateway.policy.diff import diff_policies
from gateway.stores import MemoryStore
from gateway.sts import token as tokens
from gateway.sts.keys import TemporaryKeys
from tests.support.apps import EchoService
from tests.support.scrape import scrape, value
from tests.support.serve import Served, gateway_serve, serve_env
from tests.support.servers import serve_in_thread, wait_until
from tests.support.sts import POLICY, Creds, assumed, call_sts, call_sts_v3, tampered
from tests.support.upstream import Upstream
from tests.test_error_rows import FORMATS, check_refusal

KEY_A, KEY_B, KEY_C = "a1" * 32, "b2" * 32, "c3" * 32
ENV = {"GATEWAY_STS_KEY_A": KEY_A, "GATEWAY_STS_KEY_B": KEY_B, "GATEWAY_STS_KEY_C": KEY_C}
ONE_KEY = '[sts]\nsigning_key_env = "GATEWAY_TEST_STS_KEY"\n'
BASE = POLICY.read_text()
assert ONE_KEY in BASE
A, B = tokens.TokenKeys(bytes.fromhex(KEY_A)), tokens.TokenKeys(bytes.fromhex(KEY_B))
CLAIMS = tokens.Claims("STS.rotated", 1111, "Reader", "s1", "LTAIroot", 2_000_000_000, None)


def policy_text(current: str, previous: str | None = None) -> str:
    """The STS test policy signing with the variable ``current``, ``previous`` (if any) verifying too."""
    section = f'[sts]\nsigning_key_env = "{current}"\n'
    if previous is not None:
        section += f'previous_signing_key_env = "{previous}"\n'
    return BASE.replace(ONE_KEY, section)


def load(text: str, environ: dict[str, str] | None = None) -> Policy:
    return parse_policy(text, "p.toml", ENV if environ is None else environ)


ROTATED = policy_text("GATEWAY_STS_KEY_B", "GATEWAY_STS_KEY_A")


# --- the keyring -----------------------------------------------------------------------------------


def test_a_token_of_the_previous_key_opens_with_that_key() -> None:
    ring = tokens.Keyring(bytes.fromhex(KEY_B), bytes.fromhex(KEY_A))
    old, new = A.mint(CLAIMS), B.mint(CLAIMS)
    opened = ring.open(old)
    assert opened is not None and opened[0] == CLAIMS
    # The secret is derived with the key that minted the token, not with the current one.
    assert opened[1].secret_of(CLAIMS.access_key_id) == A.secret_of(CLAIMS.access_key_id)
    assert opened[1].secret_of(CLAIMS.access_key_id) != B.secret_of(CLAIMS.access_key_id)
    opened = ring.open(new)
    assert opened is not None and opened[0] == CLAIMS
    assert opened[1].secret_of(CLAIMS.access_key_id) == B.secret_of(CLAIMS.access_key_id)


def test_without_a_previous_key_the_old_token_is_refused() -> None:
    assert tokens.Keyring(bytes.fromhex(KEY_B)).open(A.mint(CLAIMS)) is None
    assert tokens.Keyring(bytes.fromhex(KEY_B)).open(B.mint(CLAIMS)) is not None


def test_a_token_of_neither_key_and_a_tampered_one_are_refused() -> None:
    ring = tokens.Keyring(bytes.fromhex(KEY_B), bytes.fromhex(KEY_A))
    assert ring.open(tokens.TokenKeys(bytes.fromhex(KEY_C)).mint(CLAIMS)) is None
    for token in (A.mint(CLAIMS), B.mint(CLAIMS)):
        assert ring.open(tampered(token)) is None
        assert ring.open(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # its MAC


def test_a_token_of_the_current_key_costs_no_second_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = tokens.Keyring(bytes.fromhex(KEY_B), bytes.fromhex(KEY_A))
    macs: list[str] = []
    original = tokens.TokenKeys._mac

    def counted(self: tokens.TokenKeys, signed: str) -> str:
        macs.append(signed)
        return original(self, signed)

    monkeypatch.setattr(tokens.TokenKeys, "_mac", counted)
    assert ring.open(B.mint(CLAIMS)) is not None
    assert len(macs) == 2  # one to mint, one to open
    macs.clear()
    assert ring.open(A.mint(CLAIMS)) is not None
    assert len(macs) == 3  # one to mint, the current key's (failing), the previous key's


# --- the resolver ----------------------------------------------------------------------------------


def test_the_resolver_gives_an_old_token_the_old_derived_secret() -> None:
    policy = load(ROTATED)
    assert policy.sts is not None
    temporary = TemporaryKeys(policy, policy.sts)
    old, new = A.mint(CLAIMS), B.mint(CLAIMS._replace(access_key_id="STS.minted-by-b"))
    key, err = temporary.resolve(CLAIMS.access_key_id, None, old)
    assert err is None and key is not None and key.secrets == (A.secret_of(CLAIMS.access_key_id),)
    key, err = temporary.resolve("STS.minted-by-b", None, new)
    assert err is None and key is not None and key.secrets == (B.secret_of("STS.minted-by-b"),)
    # After the reload that drops the previous key, a new resolver (one per chain) knows nothing of it.
    dropped = load(policy_text("GATEWAY_STS_KEY_B"))
    assert dropped.sts is not None
    assert TemporaryKeys(dropped, dropped.sts).resolve(CLAIMS.access_key_id, None, old) == (None, Err.TOKEN_MALFORMED)


# --- the policy file -------------------------------------------------------------------------------


def test_the_rotated_policy_loads_both_keys_without_showing_them() -> None:
    sts = load(ROTATED).sts
    assert sts is not None
    assert (sts.signing_key, sts.previous_signing_key) == (bytes.fromhex(KEY_B), bytes.fromhex(KEY_A))
    assert KEY_A not in repr(sts) and KEY_B not in repr(sts) and "a1a1" not in repr(sts)
    assert load(policy_text("GATEWAY_STS_KEY_B")).sts == type(sts)(signing_key=bytes.fromhex(KEY_B))


STS_LINE = BASE[:BASE.index("[sts]")].count("\n") + 1


@pytest.mark.parametrize(("text", "environ", "message"), [
    (policy_text("GATEWAY_STS_KEY_A", "GATEWAY_STS_KEY_A"), ENV, "previous_signing_key_env holds the signing key"),
    # Another variable holding the same key is the same key.
    (policy_text("GATEWAY_STS_KEY_A", "GATEWAY_STS_KEY_B"), {**ENV, "GATEWAY_STS_KEY_B": KEY_A.upper()},
     "previous_signing_key_env holds the signing key"),
    (policy_text("GATEWAY_STS_KEY_B", "UNSET_VAR"), ENV, "previous_signing_key_env 'UNSET_VAR' is not set"),
    (policy_text("GATEWAY_STS_KEY_B", "GATEWAY_STS_KEY_A"), {**ENV, "GATEWAY_STS_KEY_A": "a1" * 31},
     "GATEWAY_STS_KEY_A must hold 64 hex characters"),
    (policy_text("GATEWAY_STS_KEY_B", "GATEWAY_STS_KEY_A"), {**ENV, "GATEWAY_STS_KEY_A": "zz" * 32},
     "GATEWAY_STS_KEY_A must hold 64 hex characters"),
    (policy_text("GATEWAY_STS_KEY_B", ""), ENV, "previous_signing_key_env is empty"),
    (ROTATED.replace('previous_signing_key_env = "GATEWAY_STS_KEY_A"', "previous_signing_key_env = 1"), ENV,
     "previous_signing_key_env has the wrong type"),
])
def test_a_bad_previous_key_is_refused_with_file_and_line(text: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=f"^p.toml:{STS_LINE}: sts: {message}"):
        load(text, environ)


# --- what a reload would change --------------------------------------------------------------------


def test_the_diff_reports_key_changes_without_a_key() -> None:
    one_a, one_b = load(policy_text("GATEWAY_STS_KEY_A")), load(policy_text("GATEWAY_STS_KEY_B"))
    rotated, other = load(ROTATED), load(policy_text("GATEWAY_STS_KEY_B", "GATEWAY_STS_KEY_C"))
    assert diff_policies(one_a, rotated).lines() == [
        "~ sts [sts]: signing key changed; previous signing key = the former signing key (its sessions go on)"]
    assert diff_policies(rotated, one_b).lines() == ["~ sts [sts]: previous signing key removed (its sessions end)"]
    assert diff_policies(one_a, one_b).lines() == ["~ sts [sts]: signing key changed"]
    assert diff_policies(one_b, other).lines() == ["~ sts [sts]: previous signing key added"]
    assert diff_policies(rotated, other).lines() == ["~ sts [sts]: previous signing key changed"]
    assert diff_policies(rotated, rotated).empty
    assert diff_policies(one_a, one_b).summary() == "1 sts changed"


def test_check_config_diff_shows_the_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name, key in ENV.items():
        monkeypatch.setenv(name, key)
    running, candidate = tmp_path / "running.toml", tmp_path / "candidate.toml"
    running.write_text(policy_text("GATEWAY_STS_KEY_A"))
    candidate.write_text(ROTATED)
    monkeypatch.setenv("GATEWAY_CONFIG", str(running))
    assert main(["check-config", "--diff", str(candidate)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2:] == [
        "~ sts [sts]: signing key changed; previous signing key = the former signing key (its sessions go on)",
        "a reload would change: 1 sts changed",
    ]
    assert not any(key in out.lower() for key in (KEY_A, KEY_B, KEY_A[:8], KEY_B[:8]))


# --- a live gateway, rotated with SIGHUP -----------------------------------------------------------


@dataclass
class Rotating:
    gw: Served
    file: Path
    reloads: int = 0

    def reload_to(self, text: str) -> None:
        self.file.write_text(text)
        self.gw.process.send_signal(signal.SIGHUP)
        self.reloads += 1
        wait_until(lambda: value(scrape(self.gw.url), "gateway_policy_reloads_total", result="ok") == self.reloads,
                   what=f"reload {self.reloads} in force")


@pytest.fixture
def rotating(tmp_path: Path) -> Iterator[Rotating]:
    file = tmp_path / "policy.toml"
    file.write_text(policy_text("GATEWAY_STS_KEY_A"))
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    with serve_in_thread(Upstream()) as upstream:
        env = serve_env(GATEWAY_CONFIG=str(file), GATEWAY_ACCESS_LOG="false", GATEWAY_HOST_ID="gateway.test",
                        PROMETHEUS_MULTIPROC_DIR=str(metrics), GATEWAY_UPSTREAM_URL=upstream, **ENV)
        with gateway_serve(env) as gw:
            yield Rotating(gw, file)
            assert "Traceback" not in gw.output(), gw.output()


def works(url: str, credentials: Creds) -> bool:
    """A V1 call in each format and a V3 call with ``credentials`` all succeed."""
    answers = [call_sts(url, "DescribeRegions", credentials, fmt=fmt) for fmt in FORMATS]
    answers.append(call_sts_v3(url, "DescribeRegions", credentials))
    return all(answer.status == 200 for answer in answers)


def check_malformed(url: str, credentials: Creds) -> None:
    for fmt in FORMATS:
        check_refusal(call_sts(url, "DescribeRegions", credentials, fmt=fmt), Err.TOKEN_MALFORMED, fmt)
    for fmt, accept in (("XML", "application/xml"), ("JSON", "application/json")):
        check_refusal(call_sts_v3(url, "DescribeRegions", credentials, accept=accept), Err.TOKEN_MALFORMED, fmt)


def test_a_rotation_keeps_old_sessions_until_the_previous_key_is_dropped(rotating: Rotating) -> None:
    url = rotating.gw.url
    old = assumed(url)
    assert A.open(old.token) is not None and works(url, old)

    rotating.reload_to(ROTATED)  # A previous, B current
    assert works(url, old), "a session minted before the rotation ended with it"
    new = assumed(url)
    assert B.open(new.token) is not None and A.open(new.token) is None  # minted under B only
    assert works(url, new)
    # The old session's secret is the one A derives: the same token signed with B's derivation is refused.
    wrong = call_sts(url, "DescribeRegions", old, secret=B.secret_of(old.access_key_id))
    assert (wrong.status, wrong.code()) == (Err.INCOMPLETE_SIGNATURE.status, Err.INCOMPLETE_SIGNATURE.code), wrong.body

    rotating.reload_to(policy_text("GATEWAY_STS_KEY_B"))  # the rotation is over: A dropped
    check_malformed(url, old)
    assert works(url, new)


def test_new_sessions_end_when_a_reload_goes_back_to_the_old_key_alone(rotating: Rotating) -> None:
    url = rotating.gw.url
    rotating.reload_to(ROTATED)
    new = assumed(url)
    assert works(url, new)
    rotating.reload_to(policy_text("GATEWAY_STS_KEY_A"))  # B is nowhere in the policy any more
    check_malformed(url, new)


def test_a_rotation_in_middleware_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rotation with `GatewayMiddleware` in front of the echo service (real uvicorn), reloaded
    with ``middleware.reload()``; the old session's token is cached by then, and must not outlive its key."""
    for name, key in ENV.items():
        monkeypatch.setenv(name, key)
    file = tmp_path / "policy.toml"
    file.write_text(policy_text("GATEWAY_STS_KEY_A"))
    service = EchoService()
    middleware = GatewayMiddleware(service, settings=Settings(config=str(file), host_id="gateway.test"),
                                   store=MemoryStore())

    def reload_to(text: str) -> None:
        file.write_text(text)
        assert asyncio.run(middleware.reload()).result == "ok"

    with serve_in_thread(middleware) as url:
        old = assumed(url)
        assert works(url, old)
        reload_to(ROTATED)
        assert works(url, old)
        new = assumed(url)
        assert B.open(new.token) is not None and works(url, new)
        calls = service.executed["DescribeRegions"]
        reload_to(policy_text("GATEWAY_STS_KEY_B"))
        check_malformed(url, old)
        assert service.executed["DescribeRegions"] == calls  # refused before the service
        assert works(url, new)
