"""ACS3-HMAC-SM3 and ACS3-RSA-SHA256 from the official client, end to end (#17 §2).

tea-openapi (``Config(signature_algorithm=...)``) calls a live gateway (uvicorn; memory store, then a
real redis-server): SM3 under an ordinary key's secret, RSA with a key pair made here (the private key
as the SDK's secret, the public keys in the policy, one inline and two by environment variable for a
rotation). What the SDK sent (`Wire`) is then replayed altered, each copy refused; the SM3 hash header
the Java, Go and Node SDKs use (``x-acs-content-sm3``) is signed by tea-openapi's own signer. A key of
one kind never verifies a signature of the other; the algorithms share one nonce namespace; and
GATEWAY_V3_SIGNATURE_METHODS refuses what it leaves out with the SignatureMethod row, XML and JSON.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.client import Client as TeaClient
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway import GatewayMiddleware, Settings
from gateway.catalog import Err
from gateway.cli import main
from gateway.policy import Policy
from gateway.policy.loader import parse_policy
from gateway.signing import ALGORITHM_RSA, ALGORITHM_SM3, ALGORITHM_V3, hash_payload, sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA, LiveGateway
from tests.support.apps import EchoService
from tests.support.keys import SECRETS
from tests.support.sdk import TIMEOUT_S, Sent, Wire, core_request, error_code, fix_nonce, host_of, tea_call
from tests.support.servers import free_port, serve_in_thread

ACTION = "DescribeEcho"
VERSION = "2014-05-26"
ALICE = "LTAIalice"
QUERY = {"PageSize": "10", "Tag": ["p q", "r*s/t:u~v"]}
BODY = {"Text": "a b*c~d/e+f:g &x=y 100% — 你好", "Note": "Ünïcödé ☃"}


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


#: Three key pairs: LTAIrsa holds the first two (a rotation, from the environment), LTAIrsa1 the third inline.
PAIRS = [_pem(_private_key()) for _ in range(3)]
RSA_KEYS = {"LTAIrsa": PAIRS[0][0], "LTAIrsa-rotated": PAIRS[1][0], "LTAIrsa1": PAIRS[2][0]}


def _key_id(name: str) -> str:
    return name.removesuffix("-rotated")


@pytest.fixture(scope="module")
def rsa_policy() -> Policy:
    text = (DATA / "policy.toml").read_text() + f'''
[[access_keys]]
id = "LTAIrsa"
account = 1111
public_keys_env = ["GW_TEST_RSA_PUBLIC", "GW_TEST_RSA_PUBLIC_NEXT"]

[[access_keys]]
id = "LTAIrsa1"
account = 1111
public_keys = ["""{PAIRS[2][1]}"""]
'''
    environ = {"GW_TEST_RSA_PUBLIC": PAIRS[0][1], "GW_TEST_RSA_PUBLIC_NEXT": PAIRS[1][1]}
    return parse_policy(text, str(Path(DATA / "policy.toml")), environ)


def _live(policy: Policy, redis_url: str | None, **settings: Any) -> Iterator[LiveGateway]:
    service = EchoService()
    config = Settings(config=str(DATA / "policy.toml"), redis_url=redis_url, host_id="gateway.test", **settings)
    store = open_store(redis_url, prefix=f"t{free_port()}", timeout=0.25)
    with serve_in_thread(GatewayMiddleware(service, settings=config, policy=policy, store=store)) as url:
        yield LiveGateway(url, service)


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest, rsa_policy: Policy) -> Iterator[LiveGateway]:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    yield from _live(rsa_policy, redis_url)


@pytest.fixture(scope="module")
def sha256_only_gateway(rsa_policy: Policy) -> Iterator[LiveGateway]:
    yield from _live(rsa_policy, None, v3_signature_methods=(ALGORITHM_V3,))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    yield Wire(monkeypatch)


def _client(url: str, algorithm: str, key_id: str, secret: str) -> TeaClient:
    return TeaClient(open_api_models.Config(
        access_key_id=key_id, access_key_secret=secret, endpoint=host_of(url), protocol="http",
        signature_algorithm=algorithm, read_timeout=TIMEOUT_S * 1000, connect_timeout=TIMEOUT_S * 1000,
    ))


def _call(url: str, algorithm: str, key_id: str, secret: str, method: str = "POST") -> dict[str, Any]:
    body = BODY if method == "POST" else None
    query = QUERY if method == "POST" else {**QUERY, **BODY}
    answer: dict[str, Any] = tea_call(_client(url, algorithm, key_id, secret), ACTION, method, query, body)["body"]
    return answer


def _code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("text/xml"):
        return ElementTree.fromstring(response.content).findtext("Code")
    code = response.json().get("Code")
    return code if isinstance(code, str) else None


#: (algorithm, key id, secret): SM3 under alice's secret, RSA under each private key.
SIGNERS = [
    pytest.param(ALGORITHM_SM3, ALICE, SECRETS[ALICE], id="sm3"),
    *[pytest.param(ALGORITHM_RSA, _key_id(name), pem, id=f"rsa-{name}") for name, pem in RSA_KEYS.items()],
]


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("algorithm", "key_id", "secret"), SIGNERS)
def test_tea_openapi_call_is_accepted(gateway: LiveGateway, wire: Wire, algorithm: str, key_id: str, secret: str,
                                      method: str) -> None:
    answer = _call(gateway.url, algorithm, key_id, secret, method)
    sent = wire.last
    assert sent.status == 200 and sent.method == method
    assert (sent.header("Authorization") or "").startswith(f"{algorithm} Credential={key_id},SignedHeaders=")
    # tea-openapi for Python puts the SM3 of the body in x-acs-content-sha256, and no x-acs-content-sm3.
    assert sent.header("x-acs-content-sha256") == hash_payload(sent.body, algorithm)
    assert sent.header("x-acs-content-sm3") is None
    assert answer["Echo"]["Caller"]["AccessKeyId"] == key_id
    assert answer["Echo"]["Params"]["Text"] == BODY["Text"] and answer["Echo"]["Params"]["Tag.2"] == "r*s/t:u~v"


def _resigned_by_the_sdk(sent: Sent, algorithm: str, key_id: str, secret: str,
                         hash_headers: tuple[str, ...]) -> httpx.Response:
    """``sent`` with a fresh nonce, its body hash in ``hash_headers``, signed again by tea-openapi's
    own signer (`Utils.get_authorization`, which signs every header it is given)."""
    payload = hash_payload(sent.body, algorithm)
    headers = {k.lower(): v for k, v in sent.headers.items()
               if k.lower() not in ("authorization", "x-acs-content-sha256", "content-length", "connection")}
    headers["x-acs-signature-nonce"] = uuid.uuid4().hex
    headers.update(dict.fromkeys(hash_headers, payload))
    query = dict(parse_qsl(urlsplit(sent.url).query, keep_blank_values=True))
    request = SimpleNamespace(method=sent.method, pathname="/", query=query, headers=headers)
    headers["authorization"] = TeaUtils.get_authorization(request, algorithm, payload, key_id, secret)
    return httpx.request(sent.method, sent.url, headers=headers, content=sent.body, timeout=TIMEOUT_S)


def test_sm3_hash_in_the_header_java_go_and_node_send(gateway: LiveGateway, wire: Wire) -> None:
    _call(gateway.url, ALGORITHM_SM3, ALICE, SECRETS[ALICE])
    sm3_header = _resigned_by_the_sdk(wire.last, ALGORITHM_SM3, ALICE, SECRETS[ALICE], ("x-acs-content-sm3",))
    assert sm3_header.status_code == 200, sm3_header.text
    assert sm3_header.json()["Echo"]["Params"]["Note"] == BODY["Note"]
    # Both hash headers, both right and signed: refused, one body has one hash.
    both = _resigned_by_the_sdk(wire.last, ALGORITHM_SM3, ALICE, SECRETS[ALICE],
                                ("x-acs-content-sm3", "x-acs-content-sha256"))
    assert (both.status_code, _code(both)) == (400, "IncompleteSignature"), both.text
    # Our own signer (gateway sign, the tests' clients) puts it there by default.
    headers = sign_request_v3(method="GET", host=host_of(gateway.url), query={"PageSize": "5"}, action=ACTION,
                              version=VERSION, access_key_id=ALICE, secret=SECRETS[ALICE], algorithm=ALGORITHM_SM3)
    assert "x-acs-content-sm3" in headers
    ours = httpx.get(f"{gateway.url}/?PageSize=5", headers=headers, timeout=TIMEOUT_S)
    assert ours.status_code == 200, ours.text


# --- tampered copies ----------------------------------------------------------------------------


def _with_headers(sent: Sent, body: bytes | None = None, **changes: str) -> httpx.Response:
    """``sent`` again with headers changed (``x_acs_date`` is ``x-acs-date``), and its body if given."""
    headers = {k: v for k, v in sent.headers.items() if k.lower() not in ("content-length", "connection")}
    for name, value in changes.items():
        name = name.replace("_", "-")
        headers = {k: v for k, v in headers.items() if k.lower() != name}
        headers[name] = value
    return httpx.request(sent.method, sent.url, headers=headers, content=sent.body if body is None else body,
                         timeout=TIMEOUT_S)


@pytest.mark.parametrize(("algorithm", "key_id", "secret"), SIGNERS)
def test_tampered_copies_are_refused(gateway: LiveGateway, wire: Wire, algorithm: str, key_id: str,
                                     secret: str) -> None:
    _call(gateway.url, algorithm, key_id, secret)
    sent = wire.last
    authorization = sent.header("Authorization") or ""
    signature = authorization.rsplit("Signature=", 1)[1]
    flipped = ("1" if signature[-1] == "0" else "0")
    other = ALGORITHM_V3 if algorithm == ALGORITHM_SM3 else ALGORITHM_SM3
    copies = {
        "form body": sent.tampered("Text", "tampered"),
        "query": sent.tampered("PageSize", "11"),
        # The body changed with a matching hash: the signature covers the hash header.
        "body and its hash": _with_headers(sent, body=b"Text=x",
                                           x_acs_content_sha256=hash_payload(b"Text=x", algorithm)),
        "date": _with_headers(sent, x_acs_date="2030-01-01T00:00:00Z"),
        "nonce": _with_headers(sent, x_acs_signature_nonce=uuid.uuid4().hex),
        "signature": _with_headers(sent, authorization=authorization[:-1] + flipped),
        "algorithm": _with_headers(sent, authorization=authorization.replace(algorithm, other, 1)),
        "key id": _with_headers(sent, authorization=authorization.replace(
            f"Credential={key_id}", f"Credential={'LTAIrsa1' if key_id == 'LTAIrsa' else 'LTAIrsa'}", 1)),
        # The SHA-256 of the body where SM3's is expected (or the other way round).
        "hash of another algorithm": _with_headers(sent, x_acs_content_sha256=hash_payload(
            sent.body, ALGORITHM_V3 if algorithm == ALGORITHM_SM3 else ALGORITHM_SM3)),
    }
    for what, refused in copies.items():
        assert (refused.status_code, _code(refused)) == (400, "IncompleteSignature"), (what, refused.text)
    replayed = sent.replay()
    assert (replayed.status_code, _code(replayed)) == (400, "SignatureNonceUsed"), replayed.text


# --- a key verifies its own kind of signature only ------------------------------------------------


@pytest.mark.parametrize(("algorithm", "key_id", "secret"), [
    pytest.param(ALGORITHM_V3, "LTAIrsa", PAIRS[0][0], id="hmac-sha256-for-an-rsa-key"),
    pytest.param(ALGORITHM_SM3, "LTAIrsa", PAIRS[0][0], id="hmac-sm3-for-an-rsa-key"),
    pytest.param(ALGORITHM_RSA, ALICE, PAIRS[0][0], id="rsa-for-a-secret-key"),
    pytest.param(ALGORITHM_RSA, "LTAIrsa1", PAIRS[0][0], id="rsa-by-another-keys-private-key"),
])
def test_a_signature_of_the_other_kind_is_refused(gateway: LiveGateway, algorithm: str, key_id: str,
                                                  secret: str) -> None:
    with pytest.raises(Exception) as raised:
        _call(gateway.url, algorithm, key_id, secret)
    assert error_code(raised.value) == "IncompleteSignature"
    assert getattr(raised.value, "status_code", None) == 400


@pytest.mark.parametrize("secret", ["any-secret", PAIRS[0][0]], ids=["a-secret", "the-private-pem"])
def test_v1_signature_for_an_rsa_key_is_refused(gateway: LiveGateway, secret: str) -> None:
    """Signature 1.0 is HMAC: an RSA key, which has no secret, verifies none, whatever the client tries."""
    with pytest.raises(Exception) as raised:
        tea_call(_client(gateway.url, "v2", "LTAIrsa", secret), ACTION, "GET", {"PageSize": "1"})
    assert (getattr(raised.value, "status_code", None), error_code(raised.value)) == (400, "IncompleteSignature")
    request = core_request(gateway.url, ACTION, "GET", {"PageSize": "1"})
    client = AcsClient("LTAIrsa", secret, "cn-hangzhou", auto_retry=False, max_retry_time=0,
                       timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S)
    with pytest.raises(ServerException) as refused:
        client.do_action_with_exception(request)
    assert (refused.value.get_http_status(), refused.value.get_error_code()) == (400, "IncompleteSignature")


# --- one nonce namespace --------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "then"), [
    ((ALGORITHM_SM3, ALICE, SECRETS[ALICE]), (ALGORITHM_V3, ALICE, SECRETS[ALICE])),
    ((ALGORITHM_V3, ALICE, SECRETS[ALICE]), (ALGORITHM_SM3, ALICE, SECRETS[ALICE])),
    ((ALGORITHM_RSA, "LTAIrsa", PAIRS[0][0]), (ALGORITHM_RSA, "LTAIrsa", PAIRS[1][0])),
])
def test_the_algorithms_share_the_nonce_namespace(gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch,
                                                  first: tuple[str, str, str], then: tuple[str, str, str]) -> None:
    fix_nonce(monkeypatch, uuid.uuid4().hex)
    _call(gateway.url, *first)
    with pytest.raises(Exception) as raised:
        _call(gateway.url, *then)
    assert error_code(raised.value) == "SignatureNonceUsed"


# --- GATEWAY_V3_SIGNATURE_METHODS -----------------------------------------------------------------

ROW = Err.INVALID_SIGNATURE_METHOD.value


@pytest.mark.parametrize(("algorithm", "key_id", "secret"), SIGNERS[:2])
def test_an_algorithm_left_out_is_the_signature_method_row(sha256_only_gateway: LiveGateway, algorithm: str,
                                                           key_id: str, secret: str) -> None:
    url = sha256_only_gateway.url
    # JSON, as the SDK reads it.
    with pytest.raises(Exception) as raised:
        _call(url, algorithm, key_id, secret)
    exc = raised.value
    assert (getattr(exc, "status_code", None), error_code(exc)) == (ROW.status, ROW.code) == (400, "InvalidParamater")
    assert ROW.message() in str(getattr(exc, "message", ""))
    # XML, asked for with Accept (V3 carries no Format).
    headers = sign_request_v3(method="GET", host=host_of(url), query={}, action=ACTION, version=VERSION,
                              access_key_id=key_id, secret=secret, algorithm=algorithm,
                              extra_headers={"Accept": "application/xml"})
    answer = httpx.get(f"{url}/", headers=headers, timeout=TIMEOUT_S)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(answer.content)
    assert (root.findtext("Code"), root.findtext("Message")) == (ROW.code, ROW.message())
    # What the deployment accepts still passes.
    assert _call(url, ALGORITHM_V3, ALICE, SECRETS[ALICE])["Echo"]["Caller"]["AccessKeyId"] == ALICE


# --- gateway sign -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("algorithm", "key_id", "secret"), [
    pytest.param(ALGORITHM_V3, ALICE, SECRETS[ALICE], id="sha256"), SIGNERS[0], SIGNERS[1],
])
def test_gateway_sign_prints_a_curl_line_the_gateway_accepts(
    gateway: LiveGateway, capsys: pytest.CaptureFixture[str], tmp_path: Path, algorithm: str, key_id: str,
    secret: str, method: str,
) -> None:
    credentials = ["--access-key-id", key_id]
    if algorithm == ALGORITHM_RSA:
        (tmp_path / "key.pem").write_text(secret)
        credentials += ["--private-key-file", str(tmp_path / "key.pem")]
    else:
        credentials += ["--secret", secret]
    assert main(["sign", *credentials, "--endpoint", gateway.url + "/", "--signature-method", algorithm,
                 "--method", method, "--curl", f"Action={ACTION}", f"Version={VERSION}", "Text=a b&c=é"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"authorization: {algorithm} Credential={key_id}," in line
    done = subprocess.run([*shlex.split(line), "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", body
    assert json.loads(body)["Echo"]["Params"]["Text"] == "a b&c=é"


def test_gateway_sign_v3_needs_action_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "--access-key-id", "K", "--secret", "s", "--signature-method", ALGORITHM_SM3,
                 "Text=x"]) == 2
    assert "needs Action=... and Version=..." in capsys.readouterr().err
