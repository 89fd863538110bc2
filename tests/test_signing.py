"""gateway.signing: published vectors, the official SDKs' own signers, and round-trip properties."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.signing import (
    ALGORITHM_V3,
    V1_SIGNATURE_METHODS,
    V3_REQUIRED_SIGNED_HEADERS,
    V3Authorization,
    canonical_query,
    canonical_request_v3,
    hash_payload,
    parse_v3_authorization,
    percent_encode,
    sign_request_v1,
    sign_request_v3,
    sign_v1,
    sign_v3,
    string_to_sign_v1,
    string_to_sign_v3,
    verify_v1,
    verify_v3,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "signing_vectors.json").read_text(encoding="utf-8")
)
V1_VECTORS = VECTORS["v1"]
V3_VECTORS = VECTORS["v3"]

RESERVED_SAMPLES = " *~/+:=&%?#@!'()[],;$\"\\é中文😀\t"

# Text that HTTP can carry once decoded: any code point but lone surrogates (no UTF-8 form).
_chars = st.one_of(
    st.characters(exclude_categories=["Cs"]),
    st.sampled_from(RESERVED_SAMPLES),
)
texts = st.text(_chars, max_size=12)
names = st.text(_chars, min_size=1, max_size=12).filter(lambda name: name != "Signature")
param_dicts = st.dictionaries(names, texts, max_size=8)
secrets = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=80)
# Header values as a client can send them: visible ASCII, inner spaces, no line breaks.
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


def _other_char(char: str) -> str:
    return "b" if char == "a" else "a"


def _mutate(text: str, position: int) -> str:
    """``text`` with one character changed, or one appended when it is empty."""
    if not text:
        return "x"
    index = position % len(text)
    return text[:index] + _other_char(text[index]) + text[index + 1 :]


# --- percent encoding and the canonical query -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("", ""),
        ("AZaz09-_.~", "AZaz09-_.~"),
        (" ", "%20"),
        ("*", "%2A"),
        ("/", "%2F"),
        ("+", "%2B"),
        (":", "%3A"),
        ("%", "%25"),
        ("é", "%C3%A9"),
        ("中", "%E4%B8%AD"),
        ("😀", "%F0%9F%98%80"),
        ("2016-02-23T12:46:24Z", "2016-02-23T12%3A46%3A24Z"),
    ],
)
def test_percent_encode_examples(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded
    assert percent_encode(raw) == encoded  # a second call is served from the memo


@given(texts)
def test_percent_encode_matches_rfc3986_quote(value: str) -> None:
    expected = quote(value, safe="~", encoding="utf-8")
    assert percent_encode(value) == expected
    assert percent_encode(value) == expected


def test_percent_encode_refuses_lone_surrogates() -> None:
    with pytest.raises(ValueError):
        percent_encode("\ud800")


def test_canonical_query_keeps_empty_values_and_drops_signature() -> None:
    params = {"b": "", "a": "x y", "Signature": "ignored", "SignatureType": ""}
    assert canonical_query(params) == "SignatureType=&a=x%20y&b="


def test_canonical_query_sorts_by_encoded_name() -> None:
    # Raw order puts "z" before "é"; encoded, "%C3%A9" sorts first.
    assert canonical_query({"z": "1", "é": "2"}) == "%C3%A9=2&z=1"


# --- V1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", V1_VECTORS, ids=[v["name"] for v in V1_VECTORS])
def test_v1_published_vector(vector: dict[str, Any]) -> None:
    params = vector["params"]
    assert canonical_query(params) == vector["canonical_query"]
    string_to_sign = string_to_sign_v1(vector["method"], params)
    assert string_to_sign == vector["string_to_sign"]
    assert sign_v1(vector["secret"], string_to_sign) == vector["signature"]
    assert verify_v1([vector["secret"]], vector["method"], params, vector["signature"], "HMAC-SHA1")


@pytest.mark.parametrize("vector", V1_VECTORS, ids=[v["name"] for v in V1_VECTORS])
def test_sign_request_v1_reproduces_published_vector(vector: dict[str, Any]) -> None:
    params = vector["params"]
    business = {k: v for k, v in params.items() if not k.startswith(("Signature", "AccessKeyId"))}
    business.pop("Timestamp")
    signed = sign_request_v1(
        business,
        access_key_id=vector["access_key_id"],
        secret=vector["secret"],
        method=vector["method"],
        nonce=params["SignatureNonce"],
        timestamp=params["Timestamp"],
    )
    assert signed == {**params, "Signature": vector["signature"]}


def test_sign_request_v1_fills_nonce_and_timestamp() -> None:
    signed = sign_request_v1({"Action": "A"}, access_key_id="ak", secret="s")
    assert len(signed["SignatureNonce"]) == 32
    assert len(signed["Timestamp"]) == 20 and signed["Timestamp"].endswith("Z")
    assert signed["SignatureVersion"] == "1.0" and "Format" not in signed
    assert verify_v1(["s"], "GET", signed, signed["Signature"], "HMAC-SHA1")


@given(secret=secrets, message=st.text(max_size=300), method=st.sampled_from(sorted(V1_SIGNATURE_METHODS)))
def test_sign_v1_is_standard_hmac(secret: str, message: str, method: str) -> None:
    digest = hmac.new(f"{secret}&".encode(), message.encode(), V1_SIGNATURE_METHODS[method]).digest()
    assert sign_v1(secret, message, method) == base64.b64encode(digest).decode()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    params=param_dicts,
    secret=secrets,
    method=st.sampled_from(["GET", "POST"]),
    signature_method=st.sampled_from(sorted(V1_SIGNATURE_METHODS)),
)
def test_v1_round_trip(params: dict[str, str], secret: str, method: str, signature_method: str) -> None:
    signed = sign_request_v1(
        params, access_key_id="ak", secret=secret, method=method, signature_method=signature_method
    )
    assert verify_v1([secret], method, signed, signed["Signature"], signature_method)
    assert verify_v1(["old secret", secret], method, signed, signed["Signature"], signature_method)
    assert not verify_v1(["old secret"], method, signed, signed["Signature"], signature_method)
    other_method = "POST" if method == "GET" else "GET"
    assert not verify_v1([secret], other_method, signed, signed["Signature"], signature_method)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    params=param_dicts,
    secret=secrets,
    pick=st.integers(min_value=0),
    position=st.integers(min_value=0),
    tamper=st.sampled_from(["name", "value", "remove", "add"]),
    extra=names,
)
def test_v1_any_change_fails(
    params: dict[str, str], secret: str, pick: int, position: int, tamper: str, extra: str
) -> None:
    signed = sign_request_v1(params, access_key_id="ak", secret=secret)
    signature = signed.pop("Signature")
    name = sorted(signed)[pick % len(signed)]
    tampered = dict(signed)
    if tamper == "name":
        tampered[_mutate(name, position)] = tampered.pop(name)
    elif tamper == "value":
        tampered[name] = _mutate(tampered[name], position)
    elif tamper == "remove":
        del tampered[name]
    elif extra in tampered:
        tampered[extra] = _mutate(tampered[extra], position)
    else:
        tampered[extra] = ""
    assert not verify_v1([secret], "GET", tampered, signature, "HMAC-SHA1")


@pytest.mark.parametrize(
    ("signature", "signature_method"),
    [
        ("", "HMAC-SHA1"),
        ("not base64 !!!", "HMAC-SHA1"),
        ("OLeaidS1JvxuMvnyHOwuJ+uX5qY", "HMAC-SHA1"),  # padding stripped
        ("OLeaidS1JvxuMvnyHOwuJ+uX5qY= ", "HMAC-SHA1"),
        ("OLéaidS1JvxuMvnyHOwuJ+uX5qY=", "HMAC-SHA1"),
        ("OLeaidS1JvxuMvnyHOwuJ+uX5qY=", "HMAC-MD5"),
        ("OLeaidS1JvxuMvnyHOwuJ+uX5qY=", ""),
        ("OLeaidS1JvxuMvnyHOwuJ+uX5qY=", "hmac-sha1"),
    ],
)
def test_verify_v1_garbage_is_false(signature: str, signature_method: str) -> None:
    vector = V1_VECTORS[0]
    assert not verify_v1([vector["secret"]], "GET", vector["params"], signature, signature_method)


def test_verify_v1_never_raises() -> None:
    vector = V1_VECTORS[0]
    params = {**vector["params"], "Bad": "\ud800"}
    assert not verify_v1([vector["secret"]], "GET", params, vector["signature"], "HMAC-SHA1")
    assert not verify_v1(["\udcff"], "GET", vector["params"], vector["signature"], "HMAC-SHA1")
    assert not verify_v1([], "GET", vector["params"], vector["signature"], "HMAC-SHA1")


def test_sign_v1_refuses_unknown_method() -> None:
    with pytest.raises(ValueError):
        sign_v1("s", "x", "HMAC-MD5")


# --- V1 against aliyun-python-sdk-core's own RPC signer ----------------------------------------

SDK_VALUES = [
    "plain",
    "",
    "with spaces in it",
    "star*tilde~slash/plus+colon:",
    "héllo wörld 中文 😀",
    "a=b&c=d%20e",
    "quote'paren()bang!",
]


def _decode(query: str) -> dict[str, str]:
    """What the gateway does to a query string or form body before verifying it."""
    return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))


def _sdk_signed(method: str, url_params: dict[str, str], body_params: dict[str, str]) -> tuple[str, str]:
    from aliyunsdkcore.auth.composer import rpc_signature_composer

    url, string_to_sign = rpc_signature_composer.get_signed_url(
        dict(url_params), "testid", "testsecret", "JSON", method, dict(body_params)
    )
    return str(url), str(string_to_sign)


@pytest.mark.parametrize("value", SDK_VALUES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verify_v1_accepts_aliyunsdkcore_query(method: str, value: str) -> None:
    url, sdk_string_to_sign = _sdk_signed(method, {"Action": "DescribeRegions", "Name": value}, {})
    received = _decode(urlsplit(url).query)
    signature = received.pop("Signature")
    assert received["Name"] == value and received["SignatureType"] == ""
    assert string_to_sign_v1(method, received) == sdk_string_to_sign
    assert verify_v1(["testsecret"], method, received, signature, "HMAC-SHA1")
    assert not verify_v1(["testsecret"], method, {**received, "Name": value + "x"}, signature, "HMAC-SHA1")


@pytest.mark.parametrize("value", SDK_VALUES)
def test_verify_v1_accepts_aliyunsdkcore_query_and_form_body(value: str) -> None:
    body_params = {"Description": value, "Tag.1.Key": "k v"}
    url, _ = _sdk_signed("POST", {"Action": "CreateThing"}, body_params)
    body = urlencode(body_params)  # how aliyunsdkcore writes a form body: spaces as "+"
    received = {**_decode(urlsplit(url).query), **_decode(body)}
    signature = received.pop("Signature")
    assert verify_v1(["testsecret"], "POST", received, signature, "HMAC-SHA1")


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(
            st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789."), min_size=1
        ),
        texts,
        max_size=6,
    )
)
def test_verify_v1_accepts_aliyunsdkcore_any_values(params: dict[str, str]) -> None:
    # Names stay unreserved here: the SDK sorts raw names, the contract encoded ones; they agree then.
    url, _ = _sdk_signed("GET", params, {})
    received = _decode(urlsplit(url).query)
    signature = received.pop("Signature")
    assert verify_v1(["testsecret"], "GET", received, signature, "HMAC-SHA1")


@given(st.dictionaries(st.text(st.sampled_from("ABCDEFabcdef0123"), min_size=1), texts, max_size=6))
def test_sign_v1_matches_tea_openapi_rpc_signer(params: dict[str, str]) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    expected = Utils.get_rpcsignature(params, "POST", "testsecret")
    assert sign_v1("testsecret", string_to_sign_v1("POST", params)) == expected


# --- V3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", V3_VECTORS, ids=[v["name"] for v in V3_VECTORS])
def test_v3_published_vector(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    assert hash_payload(body) == vector["hashed_payload"]
    request = canonical_request_v3(
        vector["method"],
        vector["path"],
        vector["query"],
        vector["headers"],
        list(vector["headers"]),
        vector["hashed_payload"],
    )
    assert request == vector["canonical_request"]
    string_to_sign = string_to_sign_v3(request)
    assert string_to_sign == vector["string_to_sign"]
    assert sign_v3(vector["secret"], string_to_sign) == vector["signature"]

    headers = sign_request_v3(
        method=vector["method"],
        host=vector["host"],
        path=vector["path"],
        query=vector["query"],
        body=body,
        action=vector["action"],
        version=vector["version"],
        access_key_id=vector["access_key_id"],
        secret=vector["secret"],
        nonce=vector["nonce"],
        date=vector["date"],
    )
    assert headers.pop("authorization") == vector["authorization"]
    assert headers == vector["headers"]
    auth = parse_v3_authorization(vector["authorization"])
    assert verify_v3(
        [vector["secret"]],
        vector["method"],
        vector["path"],
        vector["query"],
        headers,
        auth,
        hash_payload(body),
    )


def test_parse_v3_authorization() -> None:
    auth = parse_v3_authorization(
        "ACS3-HMAC-SHA256 Credential=AK,  SignedHeaders=host;X-Acs-Date, Signature=abcdef"
    )
    assert auth == V3Authorization(ALGORITHM_V3, "AK", ("host", "x-acs-date"), "abcdef")


def test_parse_v3_authorization_returns_any_algorithm() -> None:
    auth = parse_v3_authorization("ACS3-HMAC-SM3 Credential=AK,SignedHeaders=host,Signature=00")
    assert auth.algorithm == "ACS3-HMAC-SM3"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 ",
        "Credential=AK,SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;;x-acs-date,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host,Signature=",
        "ACS3-HMAC-SHA256 Credential=AK,Credential=AK,SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host,Signature=00,Extra=1",
        "ACS3-HMAC-SHA256 Credential=AK SignedHeaders=host Signature=00",
        "ACS3-HMAC-SHA256 Credential=AK,,SignedHeaders=host,Signature=00",
    ],
)
def test_parse_v3_authorization_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_v3_authorization(value)


def _v3_request(**overrides: Any) -> tuple[dict[str, Any], dict[str, str]]:
    request: dict[str, Any] = {
        "method": "POST",
        "host": "127.0.0.1:8080",
        "path": "/",
        "query": {"RegionId": "cn-hangzhou", "Name": "a b*c~/é"},
        "body": b"Description=x+y",
        "action": "DescribeRegions",
        "version": "2014-05-26",
        "access_key_id": "ak",
        "secret": "s3cret",
    }
    request.update(overrides)
    return request, sign_request_v3(**request)


def _verify(request: dict[str, Any], headers: dict[str, str], secrets_: list[str] | None = None) -> bool:
    headers = dict(headers)
    auth = parse_v3_authorization(headers.pop("authorization"))
    return verify_v3(
        secrets_ or [request["secret"]],
        request["method"],
        request["path"],
        request["query"],
        headers,
        auth,
        hash_payload(request["body"]),
    )


def test_v3_signs_host_and_every_acs_header_only() -> None:
    request, headers = _v3_request(extra_headers={"X-Acs-Security-Token": "t", "Content-Type": "text/plain"})
    auth = parse_v3_authorization(headers["authorization"])
    assert auth.signed_headers == (
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-security-token",
        "x-acs-signature-nonce",
        "x-acs-version",
    )
    assert _verify(request, headers)
    assert _verify(request, {**headers, "content-type": "application/json"})  # unsigned: free to change
    assert not _verify(request, {**headers, "x-acs-security-token": "u"})


@pytest.mark.parametrize(
    "change",
    [
        {"body": b"Description=x+z"},
        {"query": {"RegionId": "cn-hangzhou", "Name": "a b*c~/e"}},
        {"query": {"RegionId": "cn-hangzhou"}},
        {"path": "/other"},
        {"method": "GET"},
        {"secret": "other"},
    ],
)
def test_v3_tampering_fails(change: dict[str, Any]) -> None:
    request, headers = _v3_request()
    assert _verify(request, headers)
    assert not _verify({**request, **change}, headers)


@pytest.mark.parametrize("header", ["host", "x-acs-date", "x-acs-signature-nonce", "x-acs-action"])
def test_v3_tampered_signed_header_fails(header: str) -> None:
    request, headers = _v3_request()
    assert not _verify(request, {**headers, header: headers[header] + "0"})
    # Surrounding whitespace is not part of a header value.
    assert _verify(request, {**headers, header: f"  {headers[header]} "})


def test_v3_rotating_secrets() -> None:
    request, headers = _v3_request()
    assert _verify(request, headers, ["retired", "s3cret"])
    assert not _verify(request, headers, ["retired"])


def _replace(auth: V3Authorization, **fields: Any) -> V3Authorization:
    return V3Authorization(
        fields.get("algorithm", auth.algorithm),
        auth.access_key_id,
        fields.get("signed_headers", auth.signed_headers),
        fields.get("signature", auth.signature),
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"algorithm": "ACS3-HMAC-SM3"},
        {"algorithm": "acs3-hmac-sha256"},
        {"signature": "zz" * 32},
        {"signature": "00"},
        {"signature": ""},
        {"signature": "é" * 64},
        {"signed_headers": ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-version")},
        {"signed_headers": (*V3_REQUIRED_SIGNED_HEADERS, "x-not-sent")},
    ],
)
def test_verify_v3_garbage_is_false(fields: dict[str, Any]) -> None:
    request, headers = _v3_request()
    auth = parse_v3_authorization(headers.pop("authorization"))
    body_hash = hash_payload(request["body"])
    assert verify_v3(["s3cret"], "POST", "/", request["query"], headers, auth, body_hash)
    garbage = _replace(auth, **fields)
    assert not verify_v3(["s3cret"], "POST", "/", request["query"], headers, garbage, body_hash)


def test_verify_v3_accepts_uppercase_hex_and_never_raises() -> None:
    request, headers = _v3_request()
    auth = parse_v3_authorization(headers.pop("authorization"))
    body_hash = hash_payload(request["body"])
    upper = _replace(auth, signature=auth.signature.upper())
    assert verify_v3(["s3cret"], "POST", "/", request["query"], headers, upper, body_hash)
    assert not verify_v3(["s3cret"], "POST", "/", {"Bad": "\ud800"}, headers, auth, body_hash)
    assert not verify_v3(["\ud800"], "POST", "/", request["query"], headers, auth, body_hash)
    assert not verify_v3([], "POST", "/", request["query"], headers, auth, body_hash)


_header_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=10)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    query=param_dicts,
    body=st.binary(max_size=64),
    path_segments=st.lists(texts, max_size=3),
    acs_headers=st.dictionaries(_header_names.map(lambda name: f"x-acs-extra-{name}"), header_values),
    secret=secrets,
    method=st.sampled_from(["GET", "POST"]),
    position=st.integers(min_value=0),
)
def test_v3_round_trip_and_tampering(
    query: dict[str, str],
    body: bytes,
    path_segments: list[str],
    acs_headers: dict[str, str],
    secret: str,
    method: str,
    position: int,
) -> None:
    request, headers = _v3_request(
        method=method,
        query=query,
        body=body,
        path="/" + "/".join(path_segments),
        secret=secret,
        extra_headers=acs_headers,
    )
    assert _verify(request, headers)
    assert not _verify({**request, "body": body + b"\0"}, headers)
    assert not _verify({**request, "query": {**query, "Added": "1"}}, headers)
    if query:
        name = sorted(query)[position % len(query)]
        assert not _verify({**request, "query": {**query, name: _mutate(query[name], position)}}, headers)
    if acs_headers:
        name = sorted(acs_headers)[position % len(acs_headers)]
        assert not _verify(request, {**headers, name: _mutate(headers[name], position)})


# --- V3 against alibabacloud-tea-openapi's own client, captured before it reaches the network ---


@pytest.fixture
def tea_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    from alibabacloud_tea_openapi import client as tea_client

    captured: list[Any] = []

    def capture(request: Any, runtime: Any, *args: Any, **kwargs: Any) -> Any:
        captured.append(request)
        raise ConnectionError("captured, not sent")

    monkeypatch.setattr(tea_client.DaraCore, "do_action", staticmethod(capture))
    yield captured


def _tea_call(method: str, query: dict[str, str], body: dict[str, str] | None) -> None:
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    client = Client(
        Config(
            access_key_id="teaid", access_key_secret="teasecret", endpoint="127.0.0.1:8080", protocol="http"
        )
    )
    params = Params(
        action="DescribeRegions",
        version="2014-05-26",
        protocol="HTTP",
        pathname="/",
        method=method,
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    with pytest.raises(Exception, match="captured"):
        client.call_api(params, OpenApiRequest(query=query, body=body), RuntimeOptions())


@pytest.mark.parametrize("value", SDK_VALUES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verify_v3_accepts_tea_openapi(tea_requests: list[Any], method: str, value: str) -> None:
    from darabonba.core import DaraCore

    body = {"Description": value} if method == "POST" else None
    _tea_call(method, {"RegionId": "cn-hangzhou", "Name": value}, body)
    sent = tea_requests[0]
    url = urlsplit(DaraCore.compose_url(sent))
    headers = {name.lower(): value for name, value in sent.headers.items()}
    auth = parse_v3_authorization(headers.pop("authorization"))
    # What tea-openapi signs: the port rides in host, and so do user-agent and accept.
    assert headers["host"] == "127.0.0.1:8080"
    assert {"host", "user-agent", "accept", *V3_REQUIRED_SIGNED_HEADERS} <= set(auth.signed_headers)
    raw_body = (sent.body or "").encode()
    assert headers["x-acs-content-sha256"] == hash_payload(raw_body)
    query = _decode(url.query)
    assert query["Name"] == value
    assert verify_v3(["teasecret"], method, url.path, query, headers, auth, hash_payload(raw_body))
    assert not verify_v3(["teasecret"], method, url.path, query, headers, auth, hash_payload(raw_body + b"&"))
    if method == "GET":
        # A client may add an unsigned header; it must not matter.
        unsigned = {**headers, "content-type": "application/json"}
        assert verify_v3(["teasecret"], method, url.path, query, unsigned, auth, hash_payload(raw_body))


@given(st.dictionaries(st.text(st.sampled_from("ABCDEFabcdef0123"), min_size=1), texts, max_size=6))
def test_canonical_request_v3_matches_tea_openapi_signer(query: dict[str, str]) -> None:
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.request import DaraRequest

    headers = {
        "host": "example.test:8443",
        "x-acs-action": "A",
        "x-acs-version": "2020-01-01",
        "x-acs-date": "2024-01-01T00:00:00Z",
        "x-acs-signature-nonce": "n",
        "x-acs-content-sha256": hash_payload(b""),
        "user-agent": " AlibabaCloud (Linux) ",
    }
    request = DaraRequest()
    request.method, request.pathname, request.query, request.headers = "GET", "/", query, headers
    authorization = Utils.get_authorization(request, ALGORITHM_V3, hash_payload(b""), "ak", "sk")
    auth = parse_v3_authorization(authorization)
    assert verify_v3(["sk"], "GET", "/", query, headers, auth, hash_payload(b""))
    expected = sign_v3(
        "sk",
        string_to_sign_v3(
            canonical_request_v3("GET", "/", query, headers, sorted(headers), hash_payload(b""))
        ),
    )
    assert auth.signature == expected


def test_hash_payload() -> None:
    assert hash_payload(b"") == hashlib.sha256(b"").hexdigest()
    assert hash_payload(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
