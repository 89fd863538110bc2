"""The official clients end to end (#17): AssumeRole through alibabacloud-sts20150401 (V3) and
aliyun-python-sdk-sts (V1); the credentials they get used by tea-openapi (``Config(security_token=...)``,
V3 and "v2"), and by aliyun-python-sdk-core (``StsTokenCredential``). Each client: accepted; a role that
does not allow the action is Forbidden.RAM; a tampered token, an expired token (the gateway's own minting
with a past expiry: no waiting), another temporary key's token and a missing token each get their code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient
from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest
from darabonba.runtime import RuntimeOptions

from tests.support.client import VERSION
from tests.support.sdk import TIMEOUT_S, error_code, host_of, tea_call
from tests.support.sts import SECRETS, Creds, LiveSts, arn, live_sts, minted, tampered

RUNTIME = RuntimeOptions(autoretry=False, read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)


@pytest.fixture(scope="module")
def gw() -> Iterator[LiveSts]:
    with live_sts() as live:
        yield live


# --- AssumeRole, by the two STS SDKs ------------------------------------------------------------


def assume_v3(url: str, role: str = "Reader", key: str = "LTAIroot", **kw: Any) -> Creds:
    """alibabacloud-sts20150401: tea-openapi underneath, ACS3-HMAC-SHA256."""
    config = open_api_models.Config(access_key_id=key, access_key_secret=SECRETS[key], endpoint=host_of(url),
                                    protocol="http", read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)
    request = sts_models.AssumeRoleRequest(role_arn=arn(role), role_session_name="sdk-v3", **kw)
    body = StsClient(config).assume_role_with_options(request, RUNTIME).body
    assert body.assumed_role_user.arn == f"{arn(role)}/sdk-v3"
    c = body.credentials
    return Creds(c.access_key_id, c.access_key_secret, c.security_token, c.expiration)


def assume_v1(url: str, role: str = "Reader", key: str = "LTAIroot", **params: str) -> Creds:
    """aliyun-python-sdk-sts: sdk-core underneath, signature version 1.0."""
    request = AssumeRoleRequest()
    request.set_protocol_type("http")
    request.set_endpoint(host_of(url))
    request.set_RoleArn(arn(role))
    request.set_RoleSessionName("sdk-v1")
    for name, value in params.items():
        request.add_query_param(name, value)
    client = AcsClient(key, SECRETS[key], "cn-hangzhou", auto_retry=False, max_retry_time=0, timeout=TIMEOUT_S,
                       connect_timeout=TIMEOUT_S)
    body = json.loads(client.do_action_with_exception(request))
    assert body["AssumedRoleUser"]["Arn"] == f"{arn(role)}/sdk-v1"
    c = body["Credentials"]
    return Creds(c["AccessKeyId"], c["AccessKeySecret"], c["SecurityToken"], c["Expiration"])


ASSUMERS: dict[str, Callable[..., Creds]] = {"sts20150401": assume_v3, "aliyun-python-sdk-sts": assume_v1}


@pytest.mark.parametrize("assumer", list(ASSUMERS))
def test_the_sts_sdks_assume_a_role(gw: LiveSts, assumer: str) -> None:
    credentials = ASSUMERS[assumer](gw.url, duration_seconds=1800) if assumer == "sts20150401" else \
        ASSUMERS[assumer](gw.url, DurationSeconds="1800")
    assert credentials.access_key_id.startswith("STS.") and credentials.expiration.endswith("Z")


@pytest.mark.parametrize("assumer", list(ASSUMERS))
def test_the_sts_sdks_see_the_sts_error_codes(gw: LiveSts, assumer: str) -> None:
    with pytest.raises(Exception) as refused:
        ASSUMERS[assumer](gw.url, "disks-only", key="LTAIdev")
    assert error_code(refused.value) == "NoPermission"
    with pytest.raises(Exception) as missing:
        ASSUMERS[assumer](gw.url, "no-such-role")
    assert error_code(missing.value) == "EntityNotExist.Role"


# --- calls with the temporary credentials, by the two general SDKs ------------------------------


def call_tea(url: str, credentials: Creds, action: str, *, v2: bool, token: str | None) -> dict[str, Any]:
    config = open_api_models.Config(access_key_id=credentials.access_key_id,
                                    access_key_secret=credentials.secret, security_token=token,
                                    endpoint=host_of(url), protocol="http",
                                    signature_algorithm="v2" if v2 else None,
                                    read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000)
    body: dict[str, Any] = tea_call(TeaClient(config), action, "POST", {})["body"]
    return body


def call_core(url: str, credentials: Creds, action: str, *, token: str | None) -> dict[str, Any]:
    credential: Any = (StsTokenCredential(credentials.access_key_id, credentials.secret, token) if token is not None
                       else AccessKeyCredential(credentials.access_key_id, credentials.secret))
    client = AcsClient(region_id="cn-hangzhou", credential=credential, auto_retry=False, max_retry_time=0,
                       timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S)
    request = CommonRequest(domain=host_of(url), version=VERSION, action_name=action)
    request.set_protocol_type("http")
    request.set_method("POST")
    answer: dict[str, Any] = json.loads(client.do_action_with_exception(request))
    return answer


CALLERS: dict[str, Callable[[str, Creds, str, str | None], dict[str, Any]]] = {
    "tea-openapi-v3": lambda url, c, action, token: call_tea(url, c, action, v2=False, token=token),
    "tea-openapi-v2": lambda url, c, action, token: call_tea(url, c, action, v2=True, token=token),
    "sdk-core": lambda url, c, action, token: call_core(url, c, action, token=token),
}


def _code(caller: str, url: str, credentials: Creds, action: str, token: str | None) -> str | None:
    with pytest.raises(Exception) as refused:
        CALLERS[caller](url, credentials, action, token)
    return error_code(refused.value)


@pytest.mark.parametrize("assumer", list(ASSUMERS))
@pytest.mark.parametrize("caller", list(CALLERS))
def test_the_credentials_work_and_each_refusal_has_its_code(gw: LiveSts, assumer: str, caller: str) -> None:
    credentials = ASSUMERS[assumer](gw.url)
    answer = CALLERS[caller](gw.url, credentials, "DescribeRegions", credentials.token)
    assert answer["Echo"]["Caller"]["AccessKeyId"] == credentials.access_key_id
    assert answer["Echo"]["Caller"]["RoleArn"] == arn("Reader")
    # The role (Reader: Describe* only) does not allow CreateThing.
    assert _code(caller, gw.url, credentials, "CreateThing", credentials.token) == "Forbidden.RAM"
    assert _code(caller, gw.url, credentials, "DescribeRegions", tampered(credentials.token)) == \
        "InvalidSecurityToken.Malformed"
    assert _code(caller, gw.url, credentials, "DescribeRegions", minted(credentials, expires=1_000_000_000)) == \
        "InvalidSecurityToken.Expired"
    other = ASSUMERS[assumer](gw.url)
    assert _code(caller, gw.url, credentials, "DescribeRegions", other.token) == \
        "InvalidSecurityToken.MismatchWithAccessKey"
    assert _code(caller, gw.url, credentials, "DescribeRegions", None) == "MissingSecurityToken"
