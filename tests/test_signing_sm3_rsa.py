"""Units of ACS3-HMAC-SM3 and ACS3-RSA-SHA256 (`gateway.signing.algorithms`, `.v3`, `.rsa`, `._sm3`).

Known answers: SM3 of the GB/T 32905-2016 examples, and requests signed by tea-openapi's own signer
(tests/data/signing_vectors_v3_algorithms.json, made by tests/support/vectors_v3_algorithms.py):
our canonical request, string to sign, signature and verifier must agree with it byte for byte.
Then the policy's ``public_keys``: loaded once, validated with file:line, kept out of ``repr``.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.catalog import Err
from gateway.checks.request import SignatureProtocol
from gateway.errors import GatewayError, PolicyError, SettingsError
from gateway.policy.loader import parse_policy
from gateway.settings import Settings
from gateway.signing import (
    ALGORITHM_RSA,
    ALGORITHM_SM3,
    ALGORITHM_V3,
    V3_ALGORITHMS,
    V3_SIGNATURE_METHODS,
    canonical_request_v3,
    hash_payload,
    parse_v3_authorization,
    sign_request_v3,
    sign_v3,
    string_to_sign_v3,
    verify_v3,
    verify_v3_body,
)
from gateway.signing._mac import hmac_digest
from gateway.signing._sm3 import Sm3
from gateway.signing.algorithms import sm3
from gateway.signing.rsa import load_public_key
from tests.support.calls import a_call

DATA = json.loads((Path(__file__).parent / "data" / "signing_vectors_v3_algorithms.json").read_text())
VECTORS: list[dict[str, Any]] = DATA["vectors"]
PUBLIC = load_public_key(DATA["rsa_public_key"])
PRIVATE: str = DATA["rsa_private_key"]

#: GB/T 32905-2016, appendix A.
SM3_KNOWN = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
]


# --- SM3 itself --------------------------------------------------------------------------------


@pytest.mark.parametrize("constructor", [sm3, Sm3], ids=["hashlib", "cryptography-fallback"])
@pytest.mark.parametrize(("message", "digest"), SM3_KNOWN)
def test_sm3_known_answers(constructor: Any, message: bytes, digest: str) -> None:
    assert constructor(message).hexdigest() == digest
    state = constructor()
    state.update(message[:1])
    copy = state.copy()
    copy.update(message[1:])
    assert copy.hexdigest() == digest
    assert state.digest() == constructor(message[:1]).digest()  # a copy leaves its origin as it was


@pytest.mark.parametrize("constructor", [sm3, Sm3], ids=["hashlib", "cryptography-fallback"])
@pytest.mark.parametrize("key", [b"k", b"x" * 64, b"y" * 200])
def test_hmac_sm3_matches_the_standard_library(constructor: Any, key: bytes) -> None:
    """The keyed-state cache computes RFC 2104 HMAC with SM3 too (keys shorter, equal, longer than a block)."""
    message = b"ACS3-HMAC-SM3\n" + b"ab" * 32
    expected = hmac.new(key, message, lambda data=b"": Sm3(data)).digest()
    assert hmac_digest(key, message, constructor) == expected
    assert hmac_digest(key, message, constructor) == expected  # from the cached states


def test_hash_payload_per_algorithm() -> None:
    assert hash_payload(b"abc", ALGORITHM_SM3) == SM3_KNOWN[0][1]
    assert hash_payload(b"abc", ALGORITHM_RSA) == hash_payload(b"abc") == hash_payload(b"abc", ALGORITHM_V3)
    with pytest.raises(ValueError):
        hash_payload(b"abc", "ACS3-HMAC-MD5")


# --- the SDK's vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_canonical_request_and_string_to_sign(vector: dict[str, Any]) -> None:
    auth = parse_v3_authorization(vector["authorization"])
    payload = hash_payload(vector["body"].encode(), vector["algorithm"])
    assert payload == vector["headers"][vector["hash_header"]]
    canonical = canonical_request_v3(vector["method"], "/", vector["query"], vector["headers"], auth.signed_headers,
                                     payload)
    assert canonical == vector["canonical_request"]
    assert string_to_sign_v3(canonical, vector["algorithm"]) == vector["string_to_sign"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_signature_is_the_sdks(vector: dict[str, Any]) -> None:
    """HMAC-SM3 and RSA PKCS#1 v1.5 are deterministic: our signer gives the SDK's exact signature."""
    secret = vector["secret"] or PRIVATE
    assert sign_v3(secret, vector["string_to_sign"], vector["algorithm"]) == \
        parse_v3_authorization(vector["authorization"]).signature
    sent = vector["headers"]
    headers = sign_request_v3(method=vector["method"], host=sent["host"], query=vector["query"],
                              body=vector["body"].encode(), action="DescribeRegions", version="2014-05-26",
                              access_key_id=DATA["key_id"], secret=secret, nonce=sent["x-acs-signature-nonce"],
                              date=sent["x-acs-date"], algorithm=vector["algorithm"], hash_header=vector["hash_header"])
    if "content_type" not in vector:  # we sign host and x-acs-* only; the SDK signs content-type too
        assert headers["authorization"] == vector["authorization"]


def _verify(vector: dict[str, Any], *, headers: dict[str, str] | None = None, body: str | None = None,
            authorization: str | None = None, secrets: tuple[str, ...] | None = None,
            public_keys: tuple[Any, ...] = (PUBLIC,)) -> bool:
    auth = parse_v3_authorization(authorization or vector["authorization"])
    return verify_v3_body(
        (vector["secret"],) if secrets is None and vector["secret"] else secrets or (),
        vector["method"], "/", vector["query"], vector["headers"] if headers is None else headers, auth,
        (vector["body"] if body is None else body).encode(), public_keys,
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_verifies(vector: dict[str, Any]) -> None:
    assert _verify(vector)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_tampered_copies_fail(vector: dict[str, Any]) -> None:
    headers, auth = vector["headers"], parse_v3_authorization(vector["authorization"])
    assert not _verify(vector, body=vector["body"] + "&x=1")
    assert not _verify(vector, headers={**headers, "x-acs-date": "2024-05-01T12:00:01Z"})
    assert not _verify(vector, headers={**headers, "x-acs-signature-nonce": "0" * 32})
    flipped = ("0" if auth.signature[0] != "0" else "1") + auth.signature[1:]
    assert not _verify(vector, authorization=vector["authorization"].replace(auth.signature, flipped))
    for other in V3_SIGNATURE_METHODS:  # the same signature claimed under another algorithm
        if other != vector["algorithm"]:
            assert not _verify(vector, authorization=vector["authorization"].replace(vector["algorithm"], other),
                               secrets=(vector["secret"] or "x",))
    # Another key: another secret, or another public key.
    other_key = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert not _verify(vector, secrets=("other",), public_keys=(load_public_key(other_key),))


def _sm3_vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


def test_sm3_hash_header_must_be_one_of_the_two_and_alone() -> None:
    vector = _sm3_vector("sm3-get-tea-python-header")
    headers = dict(vector["headers"])
    payload = headers["x-acs-content-sha256"]
    # Both hash headers sent: refused, even though the signature covers one of them and both are right.
    assert not _verify(vector, headers={**headers, "x-acs-content-sm3": payload})
    # A SHA-256 in the header SM3 reads: refused (the body's SM3 is what must be there).
    assert not _verify(vector, headers={**headers, "x-acs-content-sha256": hash_payload(b"")})


def test_sm3_requires_its_hash_header_signed() -> None:
    """The payload hash header in use must be signed (the rest of the required set too)."""
    headers = sign_request_v3(method="GET", host="h", query={}, action="A", version="V", access_key_id="K",
                              secret="s", algorithm=ALGORITHM_SM3)
    assert "x-acs-content-sm3" in headers and "x-acs-content-sha256" not in headers
    auth = parse_v3_authorization(headers.pop("authorization"))
    payload = hash_payload(b"", ALGORITHM_SM3)
    assert verify_v3(["s"], "GET", "/", {}, headers, auth, payload)
    unsigned = auth.__class__(auth.algorithm, auth.access_key_id,
                              tuple(h for h in auth.signed_headers if h != "x-acs-content-sm3"), auth.signature)
    assert not verify_v3(["s"], "GET", "/", {}, headers, unsigned, payload)


def test_rsa_signature_garbage_is_false_never_an_exception() -> None:
    vector = _sm3_vector("rsa-get")
    auth = parse_v3_authorization(vector["authorization"])
    for garbage in ("", "00", "zz" * 256, "0" * 513, "0" * 2048, "ff" * 256, auth.signature[:-2]):
        assert not _verify(vector, authorization=vector["authorization"].replace(auth.signature, garbage or "0"))
    assert not PUBLIC.verify(b"m", b"\x00" * 256)
    assert not PUBLIC.verify(b"m", b"")


def test_rsa_rotation_and_key_kinds() -> None:
    """Two public keys (a rotation): either verifies; an RSA key never verifies an HMAC claim and back."""
    vector = _sm3_vector("rsa-get")
    other = load_public_key(_public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    assert _verify(vector, public_keys=(other, PUBLIC))
    assert not _verify(vector, public_keys=())
    hmac_vector = _sm3_vector("sm3-get-tea-python-header")
    assert not _verify(hmac_vector, secrets=(), public_keys=(PUBLIC,))


def test_the_sdk_and_the_bare_pkcs8_body_are_accepted_as_a_private_key() -> None:
    bare = "".join(line for line in PRIVATE.strip().splitlines() if not line.startswith("-----"))
    assert sign_v3(bare, "x", ALGORITHM_RSA) == sign_v3(PRIVATE, "x", ALGORITHM_RSA)


def test_the_table_has_the_three_algorithms() -> None:
    assert V3_SIGNATURE_METHODS == (ALGORITHM_V3, ALGORITHM_SM3, ALGORITHM_RSA)
    assert V3_ALGORITHMS[ALGORITHM_SM3].payload_headers == ("x-acs-content-sm3", "x-acs-content-sha256")
    assert V3_ALGORITHMS[ALGORITHM_RSA].mac is None


# --- GATEWAY_V3_SIGNATURE_METHODS --------------------------------------------------------------


def test_v3_signature_methods_setting() -> None:
    assert Settings.from_env({}).v3_signature_methods == V3_SIGNATURE_METHODS
    assert Settings().v3_signature_methods == V3_SIGNATURE_METHODS
    only = Settings.from_env({"GATEWAY_V3_SIGNATURE_METHODS": " ACS3-HMAC-SHA256 , ACS3-HMAC-SM3"})
    assert only.v3_signature_methods == (ALGORITHM_V3, ALGORITHM_SM3)
    with pytest.raises(SettingsError, match=r"^GATEWAY_V3_SIGNATURE_METHODS=.*unknown ACS3-HMAC-MD5"):
        Settings.from_env({"GATEWAY_V3_SIGNATURE_METHODS": "ACS3-HMAC-SHA256,ACS3-HMAC-MD5"})
    with pytest.raises(SettingsError, match=r"^GATEWAY_V3_SIGNATURE_METHODS="):
        Settings.from_env({"GATEWAY_V3_SIGNATURE_METHODS": "acs3-hmac-sha256"})  # case matters, as sent


# --- public keys in the policy -----------------------------------------------------------------


def _public_pem(key: Any) -> str:
    return str(key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode())


HEAD = '[[accounts]]\nid = 1\nname = "a"\n\n'


# A policy must declare an API (#15); after the entry, so that the entry's line numbers stay.
API = '\n[apis."2014-05-26".DescribeRegions]\n'


def _policy(entry: str, environ: dict[str, str] | None = None) -> Any:
    return parse_policy(HEAD + "[[access_keys]]\n" + entry + API, "p.toml", environ or {})


def test_public_keys_inline_and_by_environment() -> None:
    pem = DATA["rsa_public_key"]
    inline = _policy(f'id = "K"\naccount = 1\npublic_keys = ["""{pem}"""]\n').access_keys["K"]
    assert inline.secrets == () and [k.fingerprint for k in inline.public_keys] == [PUBLIC.fingerprint]
    other = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=3072))
    by_env = _policy('id = "K"\naccount = 1\npublic_keys_env = ["A", "B"]\n', {"A": pem, "B": other})
    assert [k.bits for k in by_env.access_keys["K"].public_keys] == [2048, 3072]
    one_env = _policy('id = "K"\naccount = 1\npublic_keys_env = "A"\n', {"A": pem})
    assert len(one_env.access_keys["K"].public_keys) == 1


def test_repr_of_an_rsa_key_names_no_key_material() -> None:
    key = _policy(f'id = "K"\naccount = 1\npublic_keys = ["""{DATA["rsa_public_key"]}"""]\n').access_keys["K"]
    body = "".join(DATA["rsa_public_key"].splitlines()[1:-1])
    assert body[:40] not in repr(key) and body[:40] not in repr(key.public_keys)
    assert repr(key.public_keys[0]) == f"RsaPublicKey(2048 bits, sha256:{PUBLIC.fingerprint[:16]})"


@pytest.mark.parametrize(("entry", "environ", "problem"), [
    ('public_keys = ["PEM"]\nsecrets = ["s"]', {}, "has both secrets and public_keys"),
    ('public_keys_env = ["A"]\nsecret_env = ["A"]', {"A": "x"}, "has both secrets and public_keys"),
    ('public_keys = ["not a key"]', {}, "public key 1 is not a PEM public key"),
    ('public_keys_env = ["MISSING"]', {}, "public_keys_env 'MISSING' is not set"),
    ('public_keys = "PEM"', {}, "public_keys and public_keys_env must be lists"),
    ('public_keys = ["PEM", "PEM", "PEM"]', {}, "needs one or two PEM public keys"),
    ('public_keys = [""]', {}, "needs one or two PEM public keys"),
    ('public_keys_env = ["SMALL"]', "small", "public key 1 is 1024 bits: 2048 to 4096 are accepted"),
    ('public_keys_env = ["EC"]', "ec", "public key 1 is a"),
])
def test_bad_public_keys_stop_start_up_with_file_and_line(entry: str, environ: Any, problem: str) -> None:
    if environ == "small":
        environ = {"SMALL": _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}
    elif environ == "ec":
        environ = {"EC": _public_pem(ec.generate_private_key(ec.SECP256R1()))}
    entry = entry.replace('"PEM"', '"""' + DATA["rsa_public_key"] + '"""')
    with pytest.raises(PolicyError) as caught:
        _policy(f'id = "K"\naccount = 1\n{entry}\n', environ)
    assert str(caught.value).startswith("p.toml:5: access_keys[0] (K): ")
    assert problem in str(caught.value)


@pytest.mark.parametrize("algorithm", [*V3_SIGNATURE_METHODS, "ACS3-HMAC-MD5", "acs3-hmac-sm3"])
def test_signature_protocol_takes_the_configured_v3_methods(algorithm: str) -> None:
    auth = parse_v3_authorization(f"{algorithm} Credential=K,SignedHeaders=host,Signature=00")
    call = a_call(v3=auth, signature_method=algorithm, signature_version="3")
    known = algorithm in V3_SIGNATURE_METHODS
    for methods, accepted in ((V3_SIGNATURE_METHODS, known), ((ALGORITHM_V3,), algorithm == ALGORITHM_V3)):
        check = SignatureProtocol(v1_methods=("HMAC-SHA1",), v3_methods=methods)
        if accepted:
            check(call)
        else:
            with pytest.raises(GatewayError) as caught:
                check(call)
            assert caught.value.err is Err.INVALID_SIGNATURE_METHOD
    if known:  # the class's default is the setting's: every algorithm of the table
        SignatureProtocol(v1_methods=())(call)
