"""alibabacloud-credentials' RAM-role-ARN provider with the gateway as its STS endpoint, over TLS (#17).

The provider calls AssumeRole itself (https only: uvicorn serves TLS with a certificate this test makes,
its CA trusted through SSL_CERT_FILE, which the ssl context Tea builds honours) and refreshes the
credentials by itself when they come within 15 minutes of their Expiration. Its clock is moved forward
(the provider module's own ``time``, not the process's) instead of waiting: the refresh must happen,
and the calls before and after it must be made with two different temporary keys, both accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider import RamRoleArnCredentialsProvider, refreshable
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient

from gateway import GatewayMiddleware, Settings
from gateway.stores import open_store
from gateway.sts import token as tokens
from tests.support.apps import EchoService
from tests.support.sdk import TIMEOUT_S, error_code, tea_call
from tests.support.sts import POLICY, SECRETS, arn, sts_policy
from tests.support.sts_tls import Certificates, make_certificates, serve_tls_in_thread


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def endpoint(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))
    config = Settings(config=str(POLICY), host_id="gateway.test")
    app = GatewayMiddleware(EchoService(), settings=config, policy=sts_policy(), store=open_store(None))
    with serve_tls_in_thread(app, certificates) as host:
        yield host


class Clock:
    """The real clock plus an offset the test moves, for the provider (its module's ``time``) and the gateway
    (the clock it mints and checks expiry with). Request Timestamps stay real: they are checked against
    the process clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = SimpleNamespace(mktime=lambda t: time.mktime(t) + self.offset, localtime=time.localtime,
                               time=lambda: time.time() + self.offset)
        monkeypatch.setattr(refreshable, "time", fake)
        monkeypatch.setattr(tokens, "clock", lambda: time.time() + self.offset)


def _client(endpoint: str, role: str = "Reader", key: str = "LTAIroot", **kw: Any) -> tuple[TeaClient, Any]:
    provider = RamRoleArnCredentialsProvider(access_key_id=key, access_key_secret=SECRETS[key], role_arn=arn(role),
                                             role_session_name="credentials-test", sts_endpoint=endpoint, **kw)
    config = open_api_models.Config(credential=CredentialClient(provider=provider), endpoint=endpoint,
                                    protocol="https", read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)
    return TeaClient(config), provider


def _static_client(endpoint: str, credentials: Any) -> TeaClient:
    return TeaClient(open_api_models.Config(access_key_id=credentials.get_access_key_id(),
                                            access_key_secret=credentials.get_access_key_secret(),
                                            security_token=credentials.get_security_token(),
                                            endpoint=endpoint, protocol="https", read_timeout=TIMEOUT_S * 1000,
                                            connect_timeout=TIMEOUT_S * 1000))


def _caller(client: TeaClient, action: str = "DescribeRegions") -> dict[str, Any]:
    answer: dict[str, Any] = tea_call(client, action, "POST", {})["body"]["Echo"]["Caller"]
    return answer


def test_the_provider_assumes_the_role_and_refreshes_by_itself(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    clock.install(monkeypatch)
    client, provider = _client(endpoint)
    first = _caller(client)
    first_credentials = provider.get_credentials()
    assert first_credentials.get_access_key_id() == first["AccessKeyId"]
    assert first["AccessKeyId"].startswith("STS.") and first["RoleArn"] == arn("Reader")
    assert first["AssumedBy"] == "LTAIroot" and first["RoleSessionName"] == "credentials-test"
    assert _caller(client)["AccessKeyId"] == first["AccessKeyId"]  # cached: no AssumeRole per call
    clock.offset = 44 * 60  # 16 minutes before the hour's Expiration: still fresh
    assert _caller(client)["AccessKeyId"] == first["AccessKeyId"]
    clock.offset = 46 * 60  # 14 minutes before: stale, the provider calls AssumeRole again
    second = _caller(client)
    assert second["AccessKeyId"].startswith("STS.") and second["AccessKeyId"] != first["AccessKeyId"]
    assert _caller(client)["AccessKeyId"] == second["AccessKeyId"]  # fresh again: kept
    assert provider.get_credentials().get_access_key_id() == second["AccessKeyId"]
    clock.offset = 3601  # the gateway's clock too: the first key has expired, the second has not
    with pytest.raises(Exception) as expired:
        tea_call(_static_client(endpoint, first_credentials), "DescribeRegions", "POST", {})
    assert error_code(expired.value) == "InvalidSecurityToken.Expired"
    assert _caller(client)["AccessKeyId"] == second["AccessKeyId"]


def test_the_provider_with_a_session_policy_and_duration(endpoint: str) -> None:
    policy = '{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:DescribeDisks","Resource":"*"}]}'
    client, provider = _client(endpoint, "quota-role", policy=policy, duration_seconds=900)
    assert _caller(client, "DescribeDisks")["RoleArn"] == arn("quota-role")
    with pytest.raises(Exception) as refused:
        _caller(client, "DescribeRegions")
    assert error_code(refused.value) == "Forbidden.RAM"
    expiration = provider.get_credentials().get_expiration()
    assert 880 < expiration - time.time() <= 900


def test_a_refused_assume_role_reaches_the_caller(endpoint: str) -> None:
    client, _ = _client(endpoint, "disks-only", key="LTAIdev")
    with pytest.raises(Exception, match="NoPermission"):
        _caller(client)


def test_the_sts_endpoint_is_reached_over_tls(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the test CA trusted, the provider cannot reach its endpoint: the call above really was https.
    monkeypatch.delenv("SSL_CERT_FILE")
    provider = RamRoleArnCredentialsProvider(access_key_id="LTAIroot", access_key_secret=SECRETS["LTAIroot"],
                                             role_arn=arn("Reader"), role_session_name="no-ca",
                                             sts_endpoint=endpoint)
    with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
        provider.get_credentials()


def test_credentials_static_providers_get_each_token_code(endpoint: str) -> None:
    """alibabacloud-credentials' static STS provider (what a CLI profile in StsToken mode builds) with the
    credentials the RAM-role-ARN provider got: accepted; tampered, expired, another key's token, and an
    STS key without one (its static AK provider) each refused with its code."""
    from alibabacloud_credentials.provider import StaticAKCredentialsProvider, StaticSTSCredentialsProvider

    from tests.support.sts import Creds, minted, tampered

    def creds_of(provider: Any) -> Creds:
        got = provider.get_credentials()
        return Creds(got.get_access_key_id(), got.get_access_key_secret(), got.get_security_token(), "")

    mine = creds_of(_client(endpoint)[1])
    theirs = creds_of(_client(endpoint)[1])

    def code(provider: Any, action: str = "DescribeRegions") -> str | None:
        config = open_api_models.Config(credential=CredentialClient(provider=provider), endpoint=endpoint,
                                        protocol="https", read_timeout=TIMEOUT_S * 1000,
                                        connect_timeout=TIMEOUT_S * 1000)
        try:
            tea_call(TeaClient(config), action, "POST", {})
        except Exception as exc:
            return error_code(exc)
        return None

    def static(token: str) -> StaticSTSCredentialsProvider:
        return StaticSTSCredentialsProvider(access_key_id=mine.access_key_id, access_key_secret=mine.secret,
                                            security_token=token)

    assert code(static(mine.token)) is None
    assert code(static(mine.token), "CreateThing") == "Forbidden.RAM"
    assert code(static(tampered(mine.token))) == "InvalidSecurityToken.Malformed"
    assert code(static(minted(mine, expires=1_000_000_000))) == "InvalidSecurityToken.Expired"
    assert code(static(theirs.token)) == "InvalidSecurityToken.MismatchWithAccessKey"
    missing = StaticAKCredentialsProvider(access_key_id=mine.access_key_id, access_key_secret=mine.secret)
    assert code(missing) == "MissingSecurityToken"
