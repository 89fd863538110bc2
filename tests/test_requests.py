"""Request parsing and answer rendering over HTTP: bad input is catalogued, answers take the caller's format."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from gateway.call import new_request_id
from gateway.errors import Err
from tests.conftest import LiveGateway
from tests.support.client import Answer, call, call_v3, get, post, query, signed_params
from tests.test_error_rows import check_refusal


def raw_get(gw: LiveGateway, raw_query: str) -> Answer:
    response = httpx.get(f"{gw.url}/?{raw_query}")
    return Answer(response.status_code, response.headers, response.content)


@pytest.mark.parametrize(
    "raw",
    [
        "Action=Describe%zzRegions&Format=JSON",   # a bad escape
        "Action=%ff%fe&Format=JSON",               # bytes that are not UTF-8
        "Action=A&Action=B&Format=JSON",           # a name given twice
        "=value&Format=JSON",                      # a pair without a name
    ],
    ids=["bad-escape", "not-utf8", "twice", "nameless"],
)
def test_bad_query_is_invalid_parameter(memory_gateway: LiveGateway, raw: str) -> None:
    answer = raw_get(memory_gateway, raw)
    check_refusal(answer, Err.INVALID_PARAMETER, "JSON")


@pytest.mark.parametrize("value", ["None", "YAML", ""])
def test_unknown_format_gets_the_default(memory_gateway: LiveGateway, value: str) -> None:
    # aliyun-python-sdk-core sends Format=None when its caller chose no format.
    answer = call(memory_gateway.url, "DescribeRegions", {"Format": value}, fmt=None)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "text/xml;charset=utf-8"


def test_parameter_in_query_and_body_is_refused(memory_gateway: LiveGateway) -> None:
    params = signed_params("DescribeRegions", method="POST")
    answer = post(memory_gateway.url, params, in_query={"Action": "DescribeRegions", "Format": "JSON"})
    check_refusal(answer, Err.INVALID_PARAMETER, "JSON")


def test_oversized_body_is_refused_before_and_while_reading(memory_gateway: LiveGateway) -> None:
    big = b"Text=" + b"x" * (1_048_576 + 10)
    declared = httpx.post(f"{memory_gateway.url}/?Format=JSON", content=big,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert (declared.status_code, declared.json()["Code"]) == (400, "InvalidParameter")
    chunked = httpx.post(f"{memory_gateway.url}/?Format=JSON", content=iter([big[:600_000], big[600_000:]]),
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert (chunked.status_code, chunked.json()["Code"]) == (400, "InvalidParameter")


def test_non_form_post_body_is_refused(memory_gateway: LiveGateway) -> None:
    response = httpx.post(f"{memory_gateway.url}/?Format=JSON", content=b'{"Action": "X"}',
                          headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["Code"]) == (400, "InvalidParameter")


def test_post_form_body_is_verified_and_replayed_untouched(memory_gateway: LiveGateway) -> None:
    params = signed_params("DescribeRegions", {"AcceptLanguage": "en-US"}, method="POST")
    answer = post(memory_gateway.url, params)
    assert answer.status == 200, answer.body
    echo = answer.json["Echo"]
    assert echo["Params"]["AcceptLanguage"] == "en-US"
    assert echo["BodyLength"] == len(query(params))


def test_success_in_xml_has_action_root_and_aliyun_lists(memory_gateway: LiveGateway) -> None:
    answer = call(memory_gateway.url, "DescribeRegions", fmt="XML")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/xml;charset=utf-8"
    assert answer.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><DescribeRegionsResponse>')
    assert b"\n" not in answer.body
    root = answer.xml
    assert root.findtext("RequestId") == answer.headers["x-acs-request-id"]
    assert [r.findtext("RegionId") for r in root.find("Regions").findall("Region")] == ["cn-hangzhou", "cn-beijing"]


def test_success_in_json_gains_request_id_and_no_code(memory_gateway: LiveGateway) -> None:
    answer = call(memory_gateway.url, "DescribeRegions", fmt="json")
    assert answer.headers["content-type"] == "application/json;charset=utf-8"
    body = answer.json
    assert body["RequestId"] == answer.headers["x-acs-request-id"]
    assert "Code" not in body
    assert body["Regions"]["Region"][0]["RegionId"] == "cn-hangzhou"


def test_xml_is_the_default_format(memory_gateway: LiveGateway) -> None:
    answer = call(memory_gateway.url, "DescribeRegions", fmt=None)
    assert answer.headers["content-type"] == "text/xml;charset=utf-8"


def test_api_error_from_the_service_is_rendered(memory_gateway: LiveGateway) -> None:
    answer = call(memory_gateway.url, "DescribeImages", {"ImageId": "m-gone"}, fmt="XML")
    check_refusal(answer, Err.IMAGE_NOT_FOUND, "XML")


def test_identity_reaches_the_service_and_spoofed_headers_do_not(memory_gateway: LiveGateway) -> None:
    params = signed_params("DescribeRegions", key="LTAIops")
    answer = get(memory_gateway.url, params, headers={
        "x-gateway-account-id": "2222", "x-gateway-sub-user": "root", "x-acs-request-id": "forged",
        "X-Gateway-Access-Key-Id": "LTAIalice", "x-evil": "kept"})
    assert answer.status == 200, answer.body
    echo = answer.json["Echo"]
    assert echo["Caller"] == {"AccountId": 1111, "AccountName": "alice@example.com", "SubUser": "ops",
                              "AccessKeyId": "LTAIops", "RequestId": answer.headers["x-acs-request-id"]}
    assert echo["Headers"] == {
        "x-gateway-account-id": "1111", "x-gateway-account-name": "alice@example.com",
        "x-gateway-sub-user": "ops", "x-gateway-access-key-id": "LTAIops",
        "x-acs-request-id": answer.headers["x-acs-request-id"], "x-evil": "kept",
    }


def test_second_secret_verifies_during_rotation(memory_gateway: LiveGateway) -> None:
    assert call(memory_gateway.url, "DescribeRegions", secret="alice-old-secret").status == 200


def test_hmac_sha256_is_accepted(memory_gateway: LiveGateway) -> None:
    assert call(memory_gateway.url, "DescribeRegions", signature_method="HMAC-SHA256").status == 200


def test_v3_request_is_accepted_and_answered_in_json(memory_gateway: LiveGateway) -> None:
    answer = call_v3(memory_gateway.url, "DescribeRegions", {"AcceptLanguage": "zh-CN"})
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json;charset=utf-8"
    xml = call_v3(memory_gateway.url, "DescribeRegions", accept="application/xml")
    assert xml.headers["content-type"] == "text/xml;charset=utf-8"


def test_v3_and_v1_share_one_nonce_namespace(memory_gateway: LiveGateway) -> None:
    params = signed_params("DescribeRegions")
    assert get(memory_gateway.url, params).status == 200
    from gateway.signing import sign_request_v3
    from tests.support.keys import SECRETS

    host = memory_gateway.url.split("://")[1]
    headers = sign_request_v3(method="GET", host=host, path="/", query={}, action="DescribeRegions",
                              version="2014-05-26", access_key_id="LTAIalice", secret=SECRETS["LTAIalice"],
                              nonce=params["SignatureNonce"])
    response = httpx.get(f"{memory_gateway.url}/", headers=headers)
    assert response.json()["Code"] == "SignatureNonceUsed"


def test_a_refused_request_burns_no_nonce(memory_gateway: LiveGateway) -> None:
    params = signed_params("DescribeRegions", {"OwnerId": "2222"})
    assert get(memory_gateway.url, params).code() == "InvalidOwnerId"
    assert get(memory_gateway.url, params).code() == "InvalidOwnerId"  # not SignatureNonceUsed


def test_client_token_replays_the_first_answer(memory_gateway: LiveGateway) -> None:
    before = memory_gateway.service.executed["CreateOrder"]
    first = call(memory_gateway.url, "CreateOrder", {"Amount": "3", "ClientToken": "tok-replay-1"})
    second = call(memory_gateway.url, "CreateOrder", {"Amount": "3", "ClientToken": "tok-replay-1"})
    assert first.status == second.status == 200
    assert first.body == second.body
    assert memory_gateway.service.executed["CreateOrder"] == before + 1


def test_ops_paths_never_reach_the_service(memory_gateway: LiveGateway) -> None:
    before = sum(memory_gateway.service.executed.values())
    assert httpx.get(f"{memory_gateway.url}/_gateway/health?Action=DescribeRegions").text == "ok\n"
    assert httpx.get(f"{memory_gateway.url}/_gateway/ready").status_code == 200
    assert sum(memory_gateway.service.executed.values()) == before


def test_an_empty_owner_counts_as_none(memory_gateway: LiveGateway) -> None:
    assert call(memory_gateway.url, "DescribeRegions", {"OwnerId": ""}).status == 200
    assert call(memory_gateway.url, "DescribeOwnedThings", {"OwnerAccount": ""}).code() == "MissingParameter"


def test_request_ids_are_unique_uuid4s_even_across_a_fork() -> None:
    first = [new_request_id() for _ in range(1000)]  # leaves part of a batch unused in this process
    for value in first[:300]:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed).upper()) == (4, uuid.RFC_4122, value)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its next ids; it must not reuse the parent's unused batch
        os.write(write, ",".join(new_request_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [new_request_id() for _ in range(50)]
    assert len({*first, *child, *parent}) == 1100
