"""The owner and RAM rows of the error table (CONTRACT §4), provoked through aliyun-python-sdk-core.

Every request here is built by the real SDK (``AcsClient`` + ``CommonRequest``, signature 1.0, retries
off) and sent to the live gateway (memory store, then a real redis-server), in both formats:

- ``JSON``: ``do_action_with_exception`` parses the error itself; the ``ServerException`` it raises
  must carry the row's status, code, exact catalog message and the RequestId of the
  ``x-acs-request-id`` header.
- ``XML``: sdk-core's exception parser reads JSON only, so the raw answer ``get_response`` hands back
  is checked instead: the same four facts, read off the XML body.

Then the accepted side of the same rules: an owner naming its own account, a sub-user on a resource
its statements allow (the service is told who called), and the owner of the account, who is not
subject to RAM at all. Lastly, another account's resource named by a sub-user is missing, never
``Forbidden.RAM``: the sub-user learns nothing of it.

Only keys of tests/data/policy.toml are used (``LTAIalice``, ``LTAIreadonly``, ``LTAIbob`` and the
sub-user key ``LTAIops``); the "no Allow for the action" case is ``ops`` calling an API its
``Describe*`` statement does not cover.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from gateway.errors import Err
from tests.conftest import LiveGateway
from tests.support.keys import SECRETS
from tests.support.sdk import TIMEOUT_S, Wire, core_request

FORMATS = ("XML", "JSON")
CONTENT_TYPES = {"XML": "text/xml;charset=utf-8", "JSON": "application/json;charset=utf-8"}
ERROR_FIELDS = ["RequestId", "HostId", "Code", "Message"]

pytestmark = pytest.mark.filterwarnings("ignore:implementation_of_do_action:DeprecationWarning")


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    yield Wire(monkeypatch)


def _client(key: str) -> AcsClient:
    return AcsClient(key, SECRETS[key], "cn-hangzhou", auto_retry=False, max_retry_time=0,
                     timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S)


def _request(gw: LiveGateway, action: str, params: dict[str, str], fmt: str, method: str = "GET",
             body: dict[str, str] | None = None) -> CommonRequest:
    request = core_request(gw.url, action, method, params, body)
    request.set_accept_format(fmt)
    return request


@dataclass(frozen=True)
class Case:
    """One refusal: who calls which API with what, and the row (and template values) it must get."""

    err: Err
    key: str
    action: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] | None = None  # sent as a POST form body
    named: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # --- owners (any key) ---
    "owner-id-and-account": Case(Err.INVALID_OWNER, "LTAIalice", "DescribeRegions",
                                 {"OwnerId": "1111", "OwnerAccount": "alice@example.com"}),
    "owner-id-of-another-account": Case(Err.INVALID_OWNER_ID, "LTAIalice", "DescribeRegions", {"OwnerId": "2222"}),
    "owner-id-not-numeric": Case(Err.INVALID_OWNER_ID, "LTAIalice", "DescribeRegions", {"OwnerId": "alice"}),
    "sub-user-owner-id-of-another-account": Case(Err.INVALID_OWNER_ID, "LTAIops", "DescribeRegions",
                                                 {"OwnerId": "2222"}),
    "owner-account-of-another-account": Case(Err.INVALID_OWNER_ACCOUNT, "LTAIalice", "DescribeRegions",
                                             {"OwnerAccount": "bob@example.com"}),
    "owner-required-got-neither": Case(Err.MISSING_OWNER, "LTAIalice", "DescribeOwnedThings"),
    # --- the key's grants ---
    "key-not-allowed-the-api": Case(Err.INVALID_ACTION, "LTAIreadonly", "DeleteInstance", {"InstanceId": "i-web-1"}),
    "key-denied-param": Case(Err.PARAMETER_NOT_PERMITTED, "LTAIreadonly", "DescribeInstances", {"PageSize": "10"},
                             named={"name": "PageSize"}),
    "key-denied-param-in-form-body": Case(Err.PARAMETER_NOT_PERMITTED, "LTAIreadonly", "DescribeInstances",
                                          body={"PageSize": "10"}, named={"name": "PageSize"}),
    # --- RAM: the sub-user ops (Allow Describe* on *, Deny Describe* on instance/i-secret-*) ---
    "sub-user-order-api": Case(Err.FORBIDDEN_SUB_USER, "LTAIops", "CreateOrder", {"Amount": "1"}),
    "sub-user-api-closed-to-ram": Case(Err.FORBIDDEN_NOT_SUPPORT_RAM, "LTAIops", "DescribeClosedToRam"),
    "ram-deny-statement": Case(Err.FORBIDDEN_RAM, "LTAIops", "DescribeInstances", {"InstanceId.1": "i-secret-1"}),
    "ram-deny-one-of-two": Case(Err.FORBIDDEN_RAM, "LTAIops", "DescribeInstances",
                                {"InstanceId.1": "i-web-1", "InstanceId.2": "i-secret-1"}),
    "ram-no-allow-for-the-action": Case(Err.FORBIDDEN_RAM, "LTAIops", "CreateVerifiedThing"),
    "ram-no-allow-on-a-resource": Case(Err.FORBIDDEN_RAM, "LTAIops", "DeleteInstance", {"InstanceId": "i-web-1"}),
    "instance-not-found": Case(Err.INSTANCE_NOT_FOUND, "LTAIops", "DescribeInstances", {"InstanceId.1": "i-nope"}),
    "disk-not-found": Case(Err.DISK_NOT_FOUND, "LTAIops", "DescribeDisks", {"DiskId": "d-nope"}),
    "security-group-not-found": Case(Err.SECURITY_GROUP_NOT_FOUND, "LTAIops", "DescribeSecurityGroups",
                                     {"SecurityGroupId": "sg-nope"}),
    "snapshot-not-found": Case(Err.SNAPSHOT_NOT_FOUND, "LTAIops", "DescribeSnapshots", {"SnapshotId": "s-nope"}),
    "image-not-found": Case(Err.IMAGE_NOT_FOUND, "LTAIops", "DescribeImages", {"ImageId": "m-nope"}),
    # Another account's instance is missing for a sub-user, whatever its statements would say of it.
    "another-accounts-instance": Case(Err.INSTANCE_NOT_FOUND, "LTAIops", "DescribeInstances",
                                      {"InstanceId.1": "i-bob-1"}),
    "another-accounts-instance-beside-a-denied-one": Case(
        Err.INSTANCE_NOT_FOUND, "LTAIops", "DescribeInstances",
        {"InstanceId.1": "i-secret-1", "InstanceId.2": "i-bob-1"}),
    "another-accounts-instance-no-allow": Case(Err.INSTANCE_NOT_FOUND, "LTAIops", "DeleteInstance",
                                               {"InstanceId": "i-bob-1"}),
    # --- account state (bob: not real-name verified, balance 0.5) ---
    "real-name-required": Case(Err.REAL_NAME_REQUIRED, "LTAIbob", "CreateVerifiedThing"),
    "insufficient-balance": Case(Err.INSUFFICIENT_BALANCE, "LTAIbob", "CreateOrder", {"Amount": "1"}),
}

#: Every owner, access and RAM row of the table is provoked above.
ROWS = {
    Err.INVALID_OWNER, Err.INVALID_OWNER_ID, Err.INVALID_OWNER_ACCOUNT, Err.MISSING_OWNER, Err.INVALID_ACTION,
    Err.PARAMETER_NOT_PERMITTED, Err.FORBIDDEN_SUB_USER, Err.FORBIDDEN_NOT_SUPPORT_RAM, Err.FORBIDDEN_RAM,
    Err.INSTANCE_NOT_FOUND, Err.DISK_NOT_FOUND, Err.SECURITY_GROUP_NOT_FOUND, Err.SNAPSHOT_NOT_FOUND,
    Err.IMAGE_NOT_FOUND, Err.REAL_NAME_REQUIRED, Err.INSUFFICIENT_BALANCE,
}


def test_every_authorization_row_is_provoked() -> None:
    assert {case.err for case in CASES.values()} == ROWS


def _sent_as_asked(wire: Wire, fmt: str, case: Case) -> None:
    """One request on the wire (no retry), in the format asked for, by the key and method given."""
    assert len(wire.sent) == 1
    sent = wire.last
    pairs = sent.raw_query.split("&")
    assert f"Format={fmt}" in pairs and f"AccessKeyId={case.key}" in pairs
    assert sent.method == ("POST" if case.body else "GET")


def _xml_fields(body: bytes) -> dict[str, str | None]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    assert [child.tag for child in root] == ERROR_FIELDS
    return {child.tag: child.text for child in root}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", CASES)
def test_row_through_sdk_core(gateway: LiveGateway, wire: Wire, name: str, fmt: str) -> None:
    case = CASES[name]
    err = case.err
    message = err.value.message(case.named)
    request = _request(gateway, case.action, case.params, fmt, "POST" if case.body else "GET", case.body)
    executed = sum(gateway.service.executed.values())
    client = _client(case.key)
    if fmt == "JSON":
        with pytest.raises(ServerException) as raised:
            client.do_action_with_exception(request)
        exc = raised.value
        status, headers, body = wire.last.status, wire.last.response_headers, wire.last.response_body
        assert (exc.get_http_status(), exc.get_error_code(), exc.get_error_msg()) == (
            err.status, err.code, message), body
        assert exc.get_request_id() == headers["x-acs-request-id"]
        fields = json.loads(body)
        assert list(fields) == ERROR_FIELDS
    else:
        status, headers, body = client.get_response(request)
        fields = _xml_fields(body)
        assert (status, fields["Code"], fields["Message"]) == (err.status, err.code, message), body
    _sent_as_asked(wire, fmt, case)
    assert status == err.status
    assert headers["content-type"] == CONTENT_TYPES[fmt]
    assert fields["RequestId"] == headers["x-acs-request-id"]
    assert fields["HostId"] == "gateway.test"
    uuid.UUID(headers["x-acs-request-id"])
    # A refusal never reaches the service.
    assert sum(gateway.service.executed.values()) == executed


# --- accepted: what the same rules let through ----------------------------------------------------


def _accepted(gw: LiveGateway, wire: Wire, key: str, action: str, params: dict[str, str],
              fmt: str) -> dict[str, Any]:
    """Call through sdk-core; the 200 answer's Echo (what the service received) as a dict."""
    request = _request(gw, action, params, fmt)
    client = _client(key)
    if fmt == "JSON":
        answer: dict[str, Any] = json.loads(client.do_action_with_exception(request))
        headers = wire.last.response_headers
        assert wire.last.status == 200
    else:
        status, headers, body = client.get_response(request)
        assert status == 200, body
        root = ElementTree.fromstring(body)
        assert root.tag == f"{action}Response"
        answer = {"RequestId": root.findtext("RequestId"),
                  "Echo": {part: {child.tag: child.text for child in root.iterfind(f"Echo/{part}/*")}
                           for part in ("Caller", "Params", "Headers")}}
    assert headers["content-type"] == CONTENT_TYPES[fmt]
    assert f"Format={fmt}" in wire.last.raw_query.split("&")
    assert answer["RequestId"] == headers["x-acs-request-id"]
    assert "Code" not in answer
    echo: dict[str, Any] = answer["Echo"]
    # The caller the service is told of is the one the gateway verified, for this very request.
    caller = echo["Caller"]
    assert str(caller["AccessKeyId"]) == key
    assert caller["RequestId"] == headers["x-acs-request-id"]
    assert {k: echo["Params"].get(k) for k in params} == params
    return echo


SUB_USER_ALLOWED = {
    "instance": ("DescribeInstances", {"InstanceId.1": "i-web-1"}),
    "disk": ("DescribeDisks", {"DiskId": "d-1"}),
    "security_group": ("DescribeSecurityGroups", {"SecurityGroupId": "sg-1"}),
    "snapshot": ("DescribeSnapshots", {"SnapshotId": "s-1"}),
    "image": ("DescribeImages", {"ImageId": "m-1"}),
    "no-resource-named": ("DescribeRegions", {}),
    "own-account-as-owner-id": ("DescribeRegions", {"OwnerId": "1111"}),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", SUB_USER_ALLOWED)
def test_sub_user_allowed_reaches_the_service_as_itself(gateway: LiveGateway, wire: Wire, case: str,
                                                        fmt: str) -> None:
    action, params = SUB_USER_ALLOWED[case]
    executed = gateway.service.executed[action]
    echo = _accepted(gateway, wire, "LTAIops", action, params, fmt)
    caller = echo["Caller"]
    assert caller["SubUser"] == "ops"
    assert (str(caller["AccountId"]), caller["AccountName"]) == ("1111", "alice@example.com")
    assert echo["Headers"]["x-gateway-sub-user"] == "ops"
    assert gateway.service.executed[action] == executed + 1


OWNER_ACCEPTED = {
    "owner-id-of-the-caller": ("DescribeRegions", {"OwnerId": "1111"}),
    "owner-account-of-the-caller": ("DescribeRegions", {"OwnerAccount": "alice@example.com"}),
    "owner-required-and-given": ("DescribeOwnedThings", {"OwnerId": "1111"}),
    "owner-required-given-by-account": ("DescribeOwnedThings", {"OwnerAccount": "alice@example.com"}),
    # The account's own key is not subject to RAM: what ops is denied, alice may do.
    "owner-on-a-ram-denied-instance": ("DescribeInstances", {"InstanceId.1": "i-secret-1"}),
    "owner-on-an-api-closed-to-ram": ("DescribeClosedToRam", {}),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", OWNER_ACCEPTED)
def test_owner_of_the_caller_is_accepted(gateway: LiveGateway, wire: Wire, case: str, fmt: str) -> None:
    action, params = OWNER_ACCEPTED[case]
    echo = _accepted(gateway, wire, "LTAIalice", action, params, fmt)
    assert echo["Caller"]["SubUser"] is None
    assert str(echo["Caller"]["AccountId"]) == "1111"
    assert "x-gateway-sub-user" not in echo["Headers"]


def test_another_accounts_instance_and_a_missing_one_answer_alike(gateway: LiveGateway, wire: Wire) -> None:
    # Byte for byte, but for the RequestId: nothing tells i-bob-1 (account 2222) from no instance.
    bodies = []
    for instance in ("i-bob-1", "i-nope"):
        request = _request(gateway, "DescribeInstances", {"InstanceId.1": instance}, "JSON")
        with pytest.raises(ServerException) as raised:
            _client("LTAIops").do_action_with_exception(request)
        assert raised.value.get_error_code() == "Forbidden.InstanceNotFound"
        request_id = wire.last.response_headers["x-acs-request-id"]
        bodies.append((wire.last.status, wire.last.response_body.replace(request_id.encode(), b"")))
    assert bodies[0] == bodies[1]
