"""Request signatures, versions 1.0 and 3 (HMAC-SHA256, HMAC-SM3, RSA-SHA256): the one implementation
behind both the verifier and ``gateway sign``.

Everything here takes parameters already decoded from the wire and encodes them again canonically.
Verifiers accept several secrets (a key holds two while it is rotated), compare in constant time and
answer False, never raise, on garbage.
"""

from __future__ import annotations

from gateway.signing._encoding import TIMESTAMP_FORMAT, canonical_query, percent_encode
from gateway.signing.algorithms import (
    ALGORITHM_RSA,
    ALGORITHM_SM3,
    ALGORITHM_V3,
    REQUIRED_SIGNED_HEADERS,
    V3_ALGORITHMS,
    V3_SIGNATURE_METHODS,
    PublicKey,
)
from gateway.signing.v1 import (
    SIGNATURE_VERSION_V1,
    V1_SIGNATURE_METHODS,
    sign_request_v1,
    sign_v1,
    string_to_sign_v1,
    verify_v1,
)
from gateway.signing.v3 import (
    V3_REQUIRED_SIGNED_HEADERS,
    V3Authorization,
    canonical_request_v3,
    hash_payload,
    parse_v3_authorization,
    sign_request_v3,
    sign_v3,
    string_to_sign_v3,
    verify_v3,
    verify_v3_body,
)

__all__ = [
    "ALGORITHM_RSA",
    "ALGORITHM_SM3",
    "ALGORITHM_V3",
    "REQUIRED_SIGNED_HEADERS",
    "SIGNATURE_VERSION_V1",
    "TIMESTAMP_FORMAT",
    "V1_SIGNATURE_METHODS",
    "V3_ALGORITHMS",
    "V3_REQUIRED_SIGNED_HEADERS",
    "V3_SIGNATURE_METHODS",
    "PublicKey",
    "V3Authorization",
    "canonical_query",
    "canonical_request_v3",
    "hash_payload",
    "parse_v3_authorization",
    "percent_encode",
    "sign_request_v1",
    "sign_request_v3",
    "sign_v1",
    "sign_v3",
    "string_to_sign_v1",
    "string_to_sign_v3",
    "verify_v1",
    "verify_v3",
    "verify_v3_body",
]
