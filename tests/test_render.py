"""Rendering of the wrapped service's answers, through httpx's ASGI transport (no server needed)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from gateway import GatewayMiddleware, Settings
from gateway.policy import Policy
from gateway.render import success_body, xml_name
from gateway.stores import MemoryStore, open_store
from tests.support.client import query, signed_params


def answering(body: bytes, status: int = 200, content_type: bytes = b"application/json") -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})

    return app


async def fetch(policy: Policy, app: object, fmt: str) -> httpx.Response:
    gateway = GatewayMiddleware(app, settings=Settings(access_log=False), policy=policy,  # type: ignore[arg-type]
                                store=open_store(None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        return await client.get(f"/?{query(signed_params('DescribeRegions', fmt=fmt))}")


@pytest.mark.parametrize(("body", "expected"), [
    (b'{}', {}),
    (b'{"A":1,"B":[1,2]}', {"A": 1, "B": [1, 2]}),
    (b'{"A": {"RequestId": "nested"}}', {"A": {"RequestId": "nested"}}),
    (b'{"Code": "Oops", "A": 1}', {"A": 1}),
    (b'{\n  "A": 1\n}', {"A": 1}),
])
async def test_json_success_gains_request_id_first_and_loses_code(policy: Policy, body: bytes,
                                                                  expected: dict[str, object]) -> None:
    response = await fetch(policy, answering(body), "JSON")
    assert response.status_code == 200
    data = json.loads(response.content)
    assert next(iter(data)) == "RequestId" and data.pop("RequestId") == response.headers["x-acs-request-id"]
    assert data == expected
    assert b"\n" not in response.content


async def test_a_service_request_id_is_kept(policy: Policy) -> None:
    response = await fetch(policy, answering(b'{"RequestId":"svc-1","A":1}'), "JSON")
    assert response.json() == {"RequestId": "svc-1", "A": 1}


async def test_service_error_json_becomes_the_error_body(policy: Policy) -> None:
    response = await fetch(policy, answering(b'{"Code":"InvalidInstanceId.NotFound","Message":"no such"}', 404),
                           "XML")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/xml;charset=utf-8"
    assert b"<Code>InvalidInstanceId.NotFound</Code><Message>no such</Message>" in response.content


async def test_non_json_streams_through_with_request_id(policy: Policy) -> None:
    response = await fetch(policy, answering(b"plain text", content_type=b"text/plain"), "XML")
    assert response.content == b"plain text"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["x-acs-request-id"]


async def test_invalid_json_is_internal_error_in_the_callers_format(policy: Policy) -> None:
    # Passed through raw, it was JSON-looking text to a caller who asked for XML (#16 item 10).
    response = await fetch(policy, answering(b"[1, 2"), "XML")
    assert response.status_code == 500
    assert ElementTree.fromstring(response.content).findtext("Code") == "InternalError"


async def test_a_failure_after_a_held_json_start_is_still_answered(policy: Policy) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        raise RuntimeError("half-way")

    response = await fetch(policy, app, "JSON")
    assert (response.status_code, response.json()["Code"]) == (500, "InternalError")
    assert response.json()["RequestId"] == response.headers["x-acs-request-id"]


async def test_a_failing_observer_does_not_break_the_answer(policy: Policy) -> None:
    def broken(ctx: object) -> None:
        raise ValueError("observer bug")

    gateway = GatewayMiddleware(answering(b'{"A":1}'), settings=Settings(access_log=False), policy=policy,  # type: ignore[arg-type]
                                store=open_store(None), observers=(broken,))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.get(f"/?{query(signed_params('DescribeRegions'))}")
    assert response.status_code == 200


async def test_a_client_token_answer_is_stored_before_its_last_byte_is_sent(policy: Policy) -> None:
    events: list[str] = []
    bodies: list[bytes] = []

    class Recording(MemoryStore):
        async def store_answer(self, *args: Any, **kwargs: Any) -> None:
            events.append("stored")
            await super().store_answer(*args, **kwargs)

    gateway = GatewayMiddleware(answering(b'{"OrderId":"o-1"}'), settings=Settings(access_log=False),  # type: ignore[arg-type]
                                policy=policy, store=Recording())

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            events.append("body")
            bodies.append(message["body"])

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    params = signed_params("CreateOrder", {"Amount": "1", "ClientToken": "tok-order-before-send"})
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query(params).encode(),
             "headers": [(b"host", b"gw")]}
    await gateway(scope, receive, send)
    assert events == ["stored", "body"], bodies


@pytest.mark.parametrize(("key", "name"), [
    ("InstanceId", "InstanceId"), ("1x", "_1x"), ("a b", "a_b"), ("env:prod", "env_prod"), ("@id", "_id"),
    ("#text", "_text"), ("", "_"), ("-x", "_-x"), ("名前", "__"), ("x.y-z_1", "x.y-z_1"),
])
def test_keys_become_xml_names(key: str, name: str) -> None:
    assert xml_name(key) == name


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8)), max_size=6))
def test_any_service_keys_give_parseable_xml_and_lose_no_member(data: dict[str, Any]) -> None:
    root = ElementTree.fromstring(success_body("XML", "Describe", data))
    assert len(root) == len(data)
    assert [child.text or "" for child in root] == [_expected_text(value) for value in data.values()]


def _expected_text(value: int | str) -> str:
    text = str(value)
    # XML cannot carry control characters (they are dropped), and a parser reads \r as \n.
    return "".join(c for c in text if c in "\t\n\r" or c >= " ").replace("\r\n", "\n").replace("\r", "\n")
