"""Units of anonymous calls (#17 §3): what "no credentials" is, the Call parse builds, which checks run,
the ticket admission writes, and the identity the service is given. HTTP: tests/test_anonymous.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.types import Message

from gateway.admit import Admission
from gateway.anonymous import CREDENTIAL_HEADERS, CREDENTIAL_PARAMS, carries_credentials, source_scope
from gateway.call import Call, Exchange
from gateway.catalog import Err
from gateway.chain import build_chain
from gateway.checks.owner import owner
from gateway.errors import GatewayError, PolicyError
from gateway.identity import downstream_headers
from gateway.parse import Parser
from gateway.policy import Policy, load_policy
from gateway.resources import PolicyResolver
from gateway.settings import Settings
from gateway.stores import MemoryStore
from tests.checks.test_admit import Recording
from tests.support.calls import an_exchange

POLICY = Path(__file__).parents[1] / "data" / "anonymous_policy.toml"
NOTICE = b"Action=GetPublicNotice&Version=2014-05-26"


@pytest.fixture(scope="module")
def anon_policy() -> Policy:
    return load_policy(POLICY)


def _exchange(query: bytes, headers: dict[str, str] | None = None) -> Exchange:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    return Exchange(request_id="R-1", method="GET", path="/", headers=headers or {}, host_id="h",
                    query_string=query, receive=receive, format="XML")


def _parse(policy: Policy, query: bytes, headers: dict[str, str] | None = None) -> Call:
    parsed = Parser(policy, max_body_bytes=1024)(_exchange(query, headers))
    assert isinstance(parsed, Call)
    return parsed


# --- what "no credentials" means ---------------------------------------------------------------


def test_no_credentials_is_none_of_the_signing_parameters_or_headers() -> None:
    # What tea-openapi sends on an anonymous call (V1 and V3) is no credential.
    assert not carries_credentials({"Action": "A", "Version": "V", "Timestamp": "t", "SignatureNonce": "n",
                                    "Format": "json"},
                                   {"x-acs-action": "A", "x-acs-date": "t", "x-acs-signature-nonce": "n",
                                    "x-acs-content-sha256": "e3b0", "accept": "application/json"})


@pytest.mark.parametrize("name", CREDENTIAL_PARAMS)
def test_any_signing_parameter_even_empty_is_a_credential(name: str) -> None:
    assert carries_credentials({"Action": "A", name: ""}, {})


@pytest.mark.parametrize("name", CREDENTIAL_HEADERS)
def test_any_credential_header_even_empty_is_a_credential(name: str) -> None:
    assert carries_credentials({"Action": "A"}, {name: ""})


@pytest.mark.parametrize(("address", "scope"), [
    ("203.0.113.7", "anon:203.0.113.7"),
    ("::ffff:203.0.113.7", "anon:203.0.113.7"),  # an IPv4 client on a dual-stack socket
    ("2001:db8:1:2:aaaa::1", "anon:2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "anon:2001:db8:1:2::/64"),  # the same /64: one client
    (None, "anon:unknown"),
    ("", "anon:unknown"),
])
def test_the_source_scope_is_the_address_or_its_ipv6_64(address: str | None, scope: str) -> None:
    assert source_scope(address) == scope


def test_a_source_that_is_no_address_is_digested_into_a_valid_hash_tag() -> None:
    scope = source_scope("weird{peer}")
    assert scope.startswith("anon:") and "{" not in scope and "}" not in scope
    assert scope != source_scope("other{peer}")


# --- parse ---------------------------------------------------------------------------------------


def test_no_credentials_on_an_anonymous_api_is_an_anonymous_call(anon_policy: Policy) -> None:
    call = _parse(anon_policy, NOTICE + b"&Timestamp=2020-01-01T00:00:00Z&SignatureNonce=n1")
    assert call.anonymous and call.key is None and call.api is anon_policy.api("2014-05-26", "GetPublicNotice")
    # Nothing signed: the nonce and Timestamp are not read (the service still finds them in params).
    assert (call.nonce, call.timestamp, call.access_key_id, call.signature, call.v3) == (None,) * 5
    assert call.params["SignatureNonce"] == "n1"
    assert call.identity == {"Anonymous": True, "RequestId": "R-1"}


def test_tea_openapis_v3_anonymous_call_names_the_api_in_headers_and_answers_json(anon_policy: Policy) -> None:
    call = _parse(anon_policy, b"", {"x-acs-action": "GetPublicNotice", "x-acs-version": "2014-05-26",
                                     "x-acs-date": "2020-01-01T00:00:00Z", "x-acs-signature-nonce": "n"})
    assert call.anonymous and (call.action, call.version, call.format) == ("GetPublicNotice", "2014-05-26", "JSON")
    xml = _parse(anon_policy, b"", {"x-acs-action": "GetPublicNotice", "x-acs-version": "2014-05-26",
                                    "accept": "application/xml"})
    assert xml.format == "XML"


@pytest.mark.parametrize("credential", [b"&AccessKeyId=LTAIalice", b"&Signature=abc", b"&SignatureMethod=HMAC-SHA1",
                                        b"&SignatureVersion=1.0", b"&SecurityToken=t", b"&Signature="])
def test_a_credential_makes_it_a_signed_call_even_to_an_anonymous_api(anon_policy: Policy, credential: bytes) -> None:
    assert not _parse(anon_policy, NOTICE + credential).anonymous


def test_an_authorization_header_of_any_kind_makes_it_signed(anon_policy: Policy) -> None:
    assert not _parse(anon_policy, NOTICE, {"authorization": "Basic Zm9vOmJhcg=="}).anonymous


def test_no_credentials_on_a_signed_api_is_parsed_as_today(anon_policy: Policy) -> None:
    call = _parse(anon_policy, b"Action=DescribeRegions&Version=2014-05-26")
    assert not call.anonymous and call.identity is None
    # The API named by header alone is only read for an anonymous API: a signed one keeps its
    # MissingParameter (Action) row.
    headers_only = _parse(anon_policy, b"", {"x-acs-action": "DescribeRegions", "x-acs-version": "2014-05-26"})
    assert not headers_only.anonymous and headers_only.action is None


def test_the_parameter_and_the_header_must_name_the_same_api(anon_policy: Policy) -> None:
    with pytest.raises(GatewayError) as caught:
        _parse(anon_policy, NOTICE, {"x-acs-action": "DescribeRegions"})
    assert caught.value.err is Err.INVALID_PARAMETER


# --- the chain -----------------------------------------------------------------------------------


def _names(checks: tuple[object, ...]) -> list[str]:
    return [getattr(check, "__name__", type(check).__name__) for check in checks]


def test_an_anonymous_call_runs_only_the_checks_that_need_no_key(anon_policy: Policy) -> None:
    chain = build_chain(Settings(), anon_policy, MemoryStore(), PolicyResolver(anon_policy))
    assert _names(chain.anonymous_checks) == ["KnownApi", "Params", "owner"]
    hosts = build_chain(Settings(hosts=("api.example",)), anon_policy, MemoryStore(), PolicyResolver(anon_policy))
    assert _names(hosts.anonymous_checks) == ["Host", "KnownApi", "Params", "owner"]
    # The same objects as in the signed order, in the same order.
    assert [check for check in chain.checks if check in chain.anonymous_checks] == list(chain.anonymous_checks)


def test_declared_parameters_are_checked_on_an_anonymous_call(anon_policy: Policy) -> None:
    chain = build_chain(Settings(), anon_policy, MemoryStore(), PolicyResolver(anon_policy))
    call = _parse(anon_policy, NOTICE + b"&Lang=xx")
    with pytest.raises(GatewayError) as caught:
        for check in chain.anonymous_checks:
            check(call)
    assert caught.value.err is Err.INVALID_PARAMETER
    with pytest.raises(GatewayError) as undeclared:
        for check in chain.anonymous_checks:
            check(_parse(anon_policy, NOTICE + b"&InstanceId=i-1"))
    assert undeclared.value.err is Err.UNSUPPORTED_PARAMETER


@pytest.mark.parametrize(("param", "err"), [(b"&OwnerId=1111", Err.INVALID_OWNER_ID),
                                            (b"&OwnerAccount=alice@example.com", Err.INVALID_OWNER_ACCOUNT)])
def test_owner_parameters_name_no_account_of_an_anonymous_caller(anon_policy: Policy, param: bytes, err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        owner(_parse(anon_policy, NOTICE + param))
    assert caught.value.err is err
    owner(_parse(anon_policy, NOTICE + b"&OwnerId="))  # empty: no owner named, as for any call


# --- admission -----------------------------------------------------------------------------------




def _admit(admission: Admission, call: Call, source: str | None) -> None:
    asyncio.run(admission(call, an_exchange(), source))


def test_an_anonymous_ticket_has_no_nonce_and_the_quota_of_its_source(anon_policy: Policy) -> None:
    store = Recording()
    admission = Admission(store, anon_policy, skew=900, lease_seconds=30, answer_ttl=60)
    call = _parse(anon_policy, b"Action=GetPublicQuota&Version=2014-05-26&SignatureNonce=n&Timestamp=t")
    _admit(admission, call, "198.51.100.1")
    (ticket,) = store.tickets
    assert (ticket.scope, ticket.nonce, ticket.idempotency) == ("anon:198.51.100.1", None, None)
    assert [(take.kind, take.key) for take in ticket.takes] == [("quota", "quota:anonymous:2014-05-26:GetPublicQuota")]
    _admit(admission, call, "198.51.100.1")  # the same nonce twice: none is claimed
    with pytest.raises(GatewayError) as caught:
        _admit(admission, call, "198.51.100.1")  # quota 2/10000d
    assert caught.value.err is Err.QUOTA_EXHAUSTED
    assert caught.value.headers is not None and int(caught.value.headers["x-acs-retry-after"]) > 0
    _admit(admission, call, "198.51.100.2")  # another address: its own quota


def test_flow_control_counts_every_anonymous_caller_together(anon_policy: Policy) -> None:
    admission = Admission(Recording(), anon_policy, skew=900, lease_seconds=30, answer_ttl=60)
    call = _parse(anon_policy, b"Action=GetPublicFlow&Version=2014-05-26")
    _admit(admission, call, "198.51.100.1")
    _admit(admission, call, "198.51.100.2")
    with pytest.raises(GatewayError) as caught:
        _admit(admission, call, "198.51.100.3")
    assert caught.value.err is Err.FLOW_CONTROLLED


def test_an_anonymous_client_token_is_kept_per_source(anon_policy: Policy) -> None:
    store = Recording()
    admission = Admission(store, anon_policy, skew=900, lease_seconds=30, answer_ttl=60)
    call = _parse(anon_policy, b"Action=SubmitFeedback&Version=2014-05-26&Text=hi&ClientToken=tok-1")
    admitted = asyncio.run(admission(call, an_exchange(), "198.51.100.1"))
    assert admitted.holds_token and store.tickets[0].scope == "anon:198.51.100.1"
    # The first call is still running: a retry from that address is told so; another address's token
    # of the same name is another token.
    with pytest.raises(GatewayError) as caught:
        _admit(admission, call, "198.51.100.1")
    assert caught.value.err is Err.LAST_TOKEN_PROCESSING
    _admit(admission, call, "198.51.100.2")
    asyncio.run(admitted.settle())


def test_a_call_without_a_key_that_is_not_anonymous_is_never_admitted(anon_policy: Policy) -> None:
    admission = Admission(Recording(), anon_policy, skew=900, lease_seconds=30, answer_ttl=60)
    call = _parse(anon_policy, NOTICE)._replace(anonymous=False)
    with pytest.raises(GatewayError) as caught:
        _admit(admission, call, "198.51.100.1")
    assert caught.value.err is Err.INTERNAL_ERROR


# --- identity ------------------------------------------------------------------------------------


def test_the_service_is_told_the_caller_is_anonymous_and_nothing_else(anon_policy: Policy) -> None:
    headers = dict(downstream_headers(_parse(anon_policy, NOTICE), [], []))
    assert headers[b"x-gateway-anonymous"] == b"true"
    assert not [name for name in headers if name.startswith(b"x-gateway-") and name != b"x-gateway-anonymous"]


def test_a_signed_call_is_not_told_anonymous(policy: Policy) -> None:
    exchange = _exchange(b"Action=DescribeRegions&Version=2014-05-26&AccessKeyId=LTAIalice&Signature=s")
    call = Parser(policy, max_body_bytes=100)(exchange)
    assert isinstance(call, Call) and not call.anonymous
    assert b"x-gateway-anonymous" not in dict(downstream_headers(call, [], []))


# --- the policy ----------------------------------------------------------------------------------


def _load(tmp_path: Path, api: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text('[apis."2014-05-26".Open]\n' + api)
    return load_policy(path)


def test_auth_defaults_to_signed(tmp_path: Path) -> None:
    assert _load(tmp_path, "").api("2014-05-26", "Open").anonymous is False  # type: ignore[union-attr]
    assert _load(tmp_path, 'auth = "signed"\n').api("2014-05-26", "Open").anonymous is False  # type: ignore[union-attr]
    assert _load(tmp_path, 'auth = "anonymous"\n').api("2014-05-26", "Open").anonymous is True  # type: ignore[union-attr]


@pytest.mark.parametrize(("api", "problem"), [
    ('auth = "public"\n', "auth must be one of signed, anonymous (got 'public')"),
    ("auth = true\n", "auth has the wrong type (bool)"),
    ('auth = "Anonymous"\n', "auth must be one of signed, anonymous (got 'Anonymous')"),
    ('auth = "anonymous"\nowner_required = true\n', "cannot be combined with owner_required"),
    ('auth = "anonymous"\nreal_name_required = true\n', "cannot be combined with real_name_required"),
    ('auth = "anonymous"\nmin_balance = 5\n', "cannot be combined with min_balance"),
    ('auth = "anonymous"\norder = true\n', "cannot be combined with order"),
])
def test_a_bad_auth_is_a_policy_error_with_its_line(tmp_path: Path, api: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(tmp_path, api)
    assert str(caught.value).startswith(f"{tmp_path / 'policy.toml'}:1: apis.2014-05-26.Open: ")
    assert problem in str(caught.value)
