"""Every row of the common error table, provoked over HTTP against a live gateway, in both formats.

`PROVOKE` maps each catalog member to a request that must be refused with it; a test checks the map
covers the whole catalog, so a row without a provocation fails CI.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import httpx
import pytest

from gateway.catalog import SEED
from gateway.errors import Err
from tests.conftest import LiveGateway
from tests.support.client import Answer, call, get, query, signed_params, timestamp

FORMATS = ("XML", "JSON")
Provoke = Callable[[LiveGateway, str], Answer]


def _without(name: str) -> Provoke:
    def provoke(gw: LiveGateway, fmt: str) -> Answer:
        params = signed_params("DescribeRegions", fmt=fmt)
        del params[name]
        return get(gw.url, params)

    return provoke


def _with(name: str, value: str) -> Provoke:
    def provoke(gw: LiveGateway, fmt: str) -> Answer:
        return get(gw.url, {**signed_params("DescribeRegions", fmt=fmt), name: value})

    return provoke


def _call(action: str, params: dict[str, str] | None = None, **kw: str) -> Provoke:
    return lambda gw, fmt: call(gw.url, action, params, fmt=fmt, **kw)


def _after_warm_up(action: str, **kw: str) -> Provoke:
    # The limit is 1 per window (a flow of 1/hour; a quota window no run straddles): the first call of
    # the run may pass, every later one is refused.
    def provoke(gw: LiveGateway, fmt: str) -> Answer:
        call(gw.url, action, fmt=fmt, **kw)
        return call(gw.url, action, fmt=fmt, **kw)

    return provoke


def _replayed(gw: LiveGateway, fmt: str) -> Answer:
    params = signed_params("DescribeRegions", fmt=fmt)
    assert get(gw.url, params).status == 200
    return get(gw.url, params)


def _put(gw: LiveGateway, fmt: str) -> Answer:
    response = httpx.put(f"{gw.url}/?{query(signed_params('DescribeRegions', fmt=fmt))}")
    return Answer(response.status_code, response.headers, response.content)


def _token_params_mismatch(gw: LiveGateway, fmt: str) -> Answer:
    token = str(uuid.uuid4())
    assert call(gw.url, "CreateOrder", {"Amount": "1", "ClientToken": token}, fmt=fmt).status == 200
    return call(gw.url, "CreateOrder", {"Amount": "2", "ClientToken": token}, fmt=fmt)


def _token_caller_mismatch(gw: LiveGateway, fmt: str) -> Answer:
    token = str(uuid.uuid4())
    assert call(gw.url, "CreateOrder", {"Amount": "1", "ClientToken": token}, fmt=fmt).status == 200
    return call(gw.url, "CreateOrder", {"Amount": "1", "ClientToken": token}, fmt=fmt, key="LTAIalice2")


def _token_processing(gw: LiveGateway, fmt: str) -> Answer:
    token = str(uuid.uuid4())
    service = gw.service
    service.slow_started.clear()
    service.slow_release.clear()
    first: list[Answer] = []
    worker = threading.Thread(target=lambda: first.append(
        call(gw.url, "CreateSlowOrder", {"Amount": "1", "ClientToken": token}, fmt=fmt)))
    worker.start()
    try:
        assert service.slow_started.wait(10), "the first call never reached the service"
        second = call(gw.url, "CreateSlowOrder", {"Amount": "1", "ClientToken": token}, fmt=fmt)
    finally:
        service.slow_release.set()
        worker.join(10)
    assert first and first[0].status == 200
    return second


PROVOKE: dict[Err, Provoke] = {
    Err.MISSING_ACTION: _without("Action"),
    Err.MISSING_ACCESS_KEY_ID: _without("AccessKeyId"),
    Err.MISSING_SIGNATURE: _without("Signature"),
    Err.MISSING_TIMESTAMP: _without("Timestamp"),
    Err.MISSING_VERSION: _without("Version"),
    Err.INVALID_ACTION_NAME: _call("DescribeNothing"),
    Err.ACCESS_KEY_NOT_FOUND: _call("DescribeRegions", key="LTAInobody"),
    Err.ACCESS_KEY_DISABLED: _call("DescribeRegions", key="LTAIdisabled"),
    Err.INCOMPLETE_SIGNATURE: _call("DescribeRegions", secret="not-the-secret"),
    Err.INVALID_SIGNATURE_METHOD: _with("SignatureMethod", "HMAC-MD5"),
    Err.INVALID_SIGNATURE_VERSION: _with("SignatureVersion", "2.0"),
    Err.ILLEGAL_TIMESTAMP: _call("DescribeRegions", timestamp=timestamp(-3700)),
    Err.SIGNATURE_NONCE_USED: _replayed,
    Err.INVALID_VERSION: _call("DescribeRegions", version="1999-01-01"),
    Err.INVALID_OWNER_ID: _call("DescribeRegions", {"OwnerId": "2222"}),
    Err.INVALID_OWNER_ACCOUNT: _call("DescribeRegions", {"OwnerAccount": "mallory@example.com"}),
    Err.INVALID_OWNER: _call("DescribeRegions", {"OwnerId": "1111", "OwnerAccount": "alice@example.com"}),
    Err.FLOW_CONTROLLED: _after_warm_up("DescribeFlowLimited"),
    Err.QUOTA_EXHAUSTED: _after_warm_up("DescribeRegions", key="LTAIquota"),
    Err.INVALID_ACTION: _call("DeleteInstance", {"InstanceId": "i-web-1"}, key="LTAIreadonly"),
    Err.UNSUPPORTED_HTTP_METHOD: _put,
    Err.SERVICE_UNAVAILABLE: lambda gw, fmt: pytest.fail("provoked by test_service_unavailable"),
    Err.UNSUPPORTED_PARAMETER: _call("DescribeRegions", {"Foo": "bar"}),
    Err.INTERNAL_ERROR: _call("Crash"),
    Err.MISSING_OWNER: _call("DescribeOwnedThings"),
    Err.FORBIDDEN_SUB_USER: _call("CreateOrder", {"Amount": "1"}, key="LTAIops"),
    Err.PARAMETER_NOT_PERMITTED: _call("DescribeInstances", {"PageSize": "10"}, key="LTAIreadonly"),
    Err.INSTANCE_NOT_FOUND: _call("DescribeInstances", {"InstanceId.1": "i-nope"}, key="LTAIops"),
    Err.DISK_NOT_FOUND: _call("DescribeDisks", {"DiskId": "d-nope"}, key="LTAIops"),
    Err.SECURITY_GROUP_NOT_FOUND: _call("DescribeSecurityGroups", {"SecurityGroupId": "sg-nope"}, key="LTAIops"),
    Err.SNAPSHOT_NOT_FOUND: _call("DescribeSnapshots", {"SnapshotId": "s-nope"}, key="LTAIops"),
    Err.IMAGE_NOT_FOUND: _call("DescribeImages", {"ImageId": "m-nope"}, key="LTAIops"),
    Err.FORBIDDEN_RAM: _call("DescribeInstances", {"InstanceId.1": "i-secret-1"}, key="LTAIops"),
    Err.FORBIDDEN_NOT_SUPPORT_RAM: _call("DescribeClosedToRam", key="LTAIops"),
    Err.INSUFFICIENT_BALANCE: _call("CreateOrder", {"Amount": "1"}, key="LTAIbob"),
    Err.IDEMPOTENT_PARAMETER_MISMATCH: _token_params_mismatch,
    Err.REAL_NAME_REQUIRED: _call("CreateVerifiedThing", key="LTAIbob"),
    Err.IDEMPOTENCE_CALLER_MISMATCH: _token_caller_mismatch,
    Err.LAST_TOKEN_PROCESSING: _token_processing,
    Err.INVALID_PARAMETER: _call("DescribeInstances", {"PageSize": "1000"}),
}


def check_refusal(answer: Answer, err: Err, fmt: str, **params: str) -> None:
    """Status, code, message, field order, exact content type and request id header, in ``fmt``."""
    assert (answer.status, answer.code()) == (err.status, err.code), answer.body
    request_id = answer.headers["x-acs-request-id"]
    if fmt == "XML":
        assert answer.headers["content-type"] == "text/xml;charset=utf-8"
        assert answer.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Error>')
        root = answer.xml
        assert [child.tag for child in root] == ["RequestId", "HostId", "Code", "Message"]
        fields = {child.tag: child.text for child in root}
    else:
        assert answer.headers["content-type"] == "application/json;charset=utf-8"
        fields = answer.json
        assert list(fields) == ["RequestId", "HostId", "Code", "Message"]
    assert b"\n" not in answer.body
    assert fields["RequestId"] == request_id
    assert fields["HostId"] == "gateway.test"
    assert fields["Message"] == err.value.message(params)
    uuid.UUID(request_id)


def test_every_row_has_a_provocation() -> None:
    assert set(PROVOKE) == set(SEED)  # the rows beyond the seed table: tests/test_sts_errors.py


ROWS = [err for err in SEED if err is not Err.SERVICE_UNAVAILABLE]
NAMED = {Err.UNSUPPORTED_PARAMETER: {"name": "Foo"}, Err.PARAMETER_NOT_PERMITTED: {"name": "PageSize"}}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("err", ROWS, ids=lambda err: err.name)
def test_row_over_http(gateway: LiveGateway, err: Err, fmt: str) -> None:
    check_refusal(PROVOKE[err](gateway, fmt), err, fmt, **NAMED.get(err, {}))


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_unavailable_when_the_store_is_down(dead_store_gateway: LiveGateway, fmt: str) -> None:
    answer = call(dead_store_gateway.url, "DescribeRegions", fmt=fmt)
    check_refusal(answer, Err.SERVICE_UNAVAILABLE, fmt)
    assert dead_store_gateway.service.executed["DescribeRegions"] == 0


def test_internal_error_shows_no_traceback(gateway: LiveGateway) -> None:
    answer = call(gateway.url, "Crash")
    assert b"boom" not in answer.body and b"alice-secret" not in answer.body and b"Traceback" not in answer.body


def test_throttling_carries_retry_after(gateway: LiveGateway) -> None:
    answer = _after_warm_up("DescribeFlowLimited")(gateway, "JSON")
    assert answer.code() == "Throttling"
    assert int(answer.headers["x-acs-retry-after"]) > 0
