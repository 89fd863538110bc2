"""Known-answer vectors for ACS3-HMAC-SM3 and ACS3-RSA-SHA256, computed by tea-openapi's own signer.

`Utils.get_authorization` of ``alibabacloud_tea_openapi`` (with its pure-Python SM3 and its RSA signer
on ``cryptography``) signs fixed requests with a fixed nonce and date; the canonical request, string to
sign and Authorization it produces are the data in tests/data/signing_vectors_v3_algorithms.json, which
tests/test_signing_sm3_rsa.py checks the gateway's implementation against. Regenerate (only if a case
is added) with ``python -m tests.support.vectors_v3_algorithms``; the RSA key below is a test key.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alibabacloud_tea_openapi.utils import Utils, get_canonical_query_string, get_canonicalized_headers

OUT = Path(__file__).resolve().parent.parent / "data" / "signing_vectors_v3_algorithms.json"
KEY_ID = "LTAIvector"
SECRET = "vector-secret"
DATE = "2024-05-01T12:00:00Z"
NONCE = "3b1f9a2c0d4e5f60718293a4b5c6d7e8"

#: Each case: the request as the SDK would send it; ``hash_header`` is where the payload hash goes
#: (tea-openapi for Python writes SM3's into x-acs-content-sha256; the Java, Go and Node SDKs into
#: x-acs-content-sm3).
CASES: list[dict[str, Any]] = [
    {"name": "sm3-get-tea-python-header", "algorithm": "ACS3-HMAC-SM3", "hash_header": "x-acs-content-sha256",
     "method": "GET", "query": {"RegionId": "cn-hangzhou"}, "body": ""},
    {"name": "sm3-post-form-java-go-node-header", "algorithm": "ACS3-HMAC-SM3", "hash_header": "x-acs-content-sm3",
     "method": "POST", "query": {"PageSize": "10"}, "body": "Description=a%20b&Name=x",
     "content_type": "application/x-www-form-urlencoded"},
    {"name": "sm3-long-secret", "algorithm": "ACS3-HMAC-SM3", "hash_header": "x-acs-content-sha256",
     "method": "GET", "query": {"Text": "é ~*"}, "body": "", "secret": "s" * 100},
    {"name": "rsa-get", "algorithm": "ACS3-RSA-SHA256", "hash_header": "x-acs-content-sha256",
     "method": "GET", "query": {"RegionId": "cn-hangzhou"}, "body": ""},
    {"name": "rsa-post-form", "algorithm": "ACS3-RSA-SHA256", "hash_header": "x-acs-content-sha256",
     "method": "POST", "query": {}, "body": "Description=x%2By",
     "content_type": "application/x-www-form-urlencoded"},
]


def _private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_key(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def vector(case: dict[str, Any], private_pem: str) -> dict[str, Any]:
    """The SDK's canonical request, string to sign and Authorization for ``case``."""
    algorithm = case["algorithm"]
    secret = private_pem if algorithm == "ACS3-RSA-SHA256" else case.get("secret", SECRET)
    body = case["body"].encode()
    payload = Utils.hash(body, algorithm).hex()
    headers = {
        "host": "ecs.example.test",
        "x-acs-action": "DescribeRegions",
        "x-acs-version": "2014-05-26",
        "x-acs-date": DATE,
        "x-acs-signature-nonce": NONCE,
        case["hash_header"]: payload,
    }
    if "content_type" in case:
        headers["content-type"] = case["content_type"]
    request = SimpleNamespace(method=case["method"], pathname="/", query=case["query"], headers=headers)
    canonical_headers, signed = get_canonicalized_headers(headers)
    canonical = "\n".join((case["method"], "/", get_canonical_query_string(case["query"]), canonical_headers,
                           signed, payload))
    string_to_sign = f"{algorithm}\n{Utils.hash(canonical.encode(), algorithm).hex()}"
    authorization = Utils.get_authorization(request, algorithm, payload, KEY_ID, secret)
    return {**case, "secret": None if algorithm == "ACS3-RSA-SHA256" else secret, "headers": headers,
            "canonical_request": canonical, "string_to_sign": string_to_sign, "authorization": authorization}


def main() -> None:
    private_pem = _private_key()
    data = {
        "_comment": "Computed by alibabacloud_tea_openapi.utils.Utils.get_authorization (tea-openapi 0.4.6) "
                    "with a fixed nonce and date: tests/support/vectors_v3_algorithms.py. The RSA key pair "
                    "is a test key.",
        "key_id": KEY_ID,
        "rsa_private_key": private_pem,
        "rsa_public_key": _public_key(private_pem),
        "vectors": [vector(case, private_pem) for case in CASES],
    }
    OUT.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
