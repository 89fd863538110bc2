"""A `Call` built directly, for the unit tests of the checks and of admission: no server, no parse."""

from __future__ import annotations

from typing import Any

from gateway.call import Call, Exchange
from gateway.policy import Policy


def a_call(policy: Policy | None = None, **fields: Any) -> Call:
    """A plain signed-looking V1 GET of DescribeRegions by LTAIalice; ``fields`` override any field.

    With ``policy``, ``api`` and ``key`` are the entries the call's Version/Action and AccessKeyId name
    (as `gateway.parse` looks them up), unless given.
    """
    params = fields.pop("params", None) or {
        "Action": "DescribeRegions", "Version": "2014-05-26", "AccessKeyId": "LTAIalice", "Signature": "c2ln",
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": "n-1",
        "Timestamp": "2024-01-01T00:00:00Z", "Format": "JSON",
    }
    call = Call(
        request_id="R-1", method="GET", path="/", headers={"host": "gateway.test"}, host_id="gateway.test",
        format="JSON", query=params, params=params, body=b"", signature_version=params.get("SignatureVersion"),
        action=params.get("Action"), version=params.get("Version"), access_key_id=params.get("AccessKeyId"),
        signature=params.get("Signature"), signature_method=params.get("SignatureMethod"),
        nonce=params.get("SignatureNonce"), timestamp=params.get("Timestamp"), v3=None, api=None, key=None,
    )
    call = call._replace(**fields)
    if policy is not None:
        learned = {"api": policy.api(call.version or "", call.action or ""),
                   "key": policy.access_keys.get(call.access_key_id or "")}
        call = call._replace(**{name: value for name, value in learned.items() if name not in fields})
    return call


def an_exchange(fmt: str = "JSON", method: str = "GET") -> Exchange:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return Exchange.start({"type": "http", "method": method, "headers": []}, receive, fmt, "gateway.test")
