"""Signature version 1.0: what Alibaba Cloud's RPC SDKs (``aliyun-python-sdk-core``) send.

String to sign = ``METHOD&%2F&`` + percent_encode(canonical query); signature = Base64 of the HMAC of
that string, keyed with ``secret + "&"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from gateway.signing._encoding import canonical_query, encode_canonical, utc_timestamp
from gateway.signing._mac import HashConstructor, hmac_digest

V1_SIGNATURE_METHODS: Final[Mapping[str, HashConstructor]] = MappingProxyType(
    {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
)
SIGNATURE_VERSION_V1: Final = "1.0"


def string_to_sign_v1(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` + percent_encode(canonical_query(params)); ``Signature`` itself is left out."""
    return f"{method}&%2F&{encode_canonical(canonical_query(params))}"


def _digest_v1(secret: str, message: bytes, hash_constructor: HashConstructor) -> bytes:
    return hmac_digest(f"{secret}&".encode(), message, hash_constructor)


def sign_v1(secret: str, string_to_sign: str, signature_method: str = "HMAC-SHA1") -> str:
    """Base64 HMAC of ``string_to_sign`` keyed with ``secret + "&"``.

    Raises ``ValueError`` for a signature method not in ``V1_SIGNATURE_METHODS``.
    """
    hash_constructor = V1_SIGNATURE_METHODS.get(signature_method)
    if hash_constructor is None:
        raise ValueError(f"unsupported SignatureMethod {signature_method!r}")
    digest = _digest_v1(secret, string_to_sign.encode(), hash_constructor)
    return base64.b64encode(digest).decode("ascii")


def verify_v1(
    secrets: Sequence[str],
    method: str,
    params: Mapping[str, str],
    signature: str,
    signature_method: str,
) -> bool:
    """Whether ``signature`` signs ``params`` under any of ``secrets``.

    ``params`` are the decoded request parameters (``Signature`` among them or not: it is never
    signed). A key holds two secrets while it is being rotated, hence the sequence. The comparison is
    constant-time; garbage (an unknown method, a signature that is not Base64, a value with no UTF-8
    form) gives False, never an exception.
    """
    hash_constructor = V1_SIGNATURE_METHODS.get(signature_method)
    if hash_constructor is None or not signature or not signature.isascii():
        return False
    try:
        message = string_to_sign_v1(method, params).encode()
        claimed = signature.encode("ascii")
        for secret in secrets:
            expected = base64.b64encode(_digest_v1(secret, message, hash_constructor))
            if hmac.compare_digest(expected, claimed):
                return True
    except (ValueError, TypeError):
        return False
    return False


def sign_request_v1(
    params: Mapping[str, str],
    *,
    access_key_id: str,
    secret: str,
    method: str = "GET",
    signature_method: str = "HMAC-SHA1",
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """``params`` plus the common signing parameters and ``Signature``, ready to send.

    ``Format`` is left to the caller. The nonce defaults to a fresh UUID4 in hex, the timestamp to now.
    """
    signed = {name: value for name, value in params.items() if name != "Signature"}
    signed.update(
        AccessKeyId=access_key_id,
        SignatureMethod=signature_method,
        SignatureVersion=SIGNATURE_VERSION_V1,
        SignatureNonce=uuid.uuid4().hex if nonce is None else nonce,
        Timestamp=utc_timestamp() if timestamp is None else timestamp,
    )
    signed["Signature"] = sign_v1(secret, string_to_sign_v1(method, signed), signature_method)
    return signed
