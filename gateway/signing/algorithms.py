"""The V3 signature algorithms, as a table: one row per ``Authorization`` algorithm the gateway knows.

A row says which hash digests the payload and the canonical request, which headers may carry the
payload hash (the Java, Go and Node SDKs send SM3's in ``x-acs-content-sm3``, tea-openapi for Python
in ``x-acs-content-sha256``) and what keys the signature: HMAC under a shared secret, or an RSA key
pair (PKCS#1 v1.5 over SHA-256, the gateway holding only the public key). Everything else (canonical
request, signed-header rules, nonce, errors) is common to all rows: `gateway.signing.v3`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol, cast

from gateway.signing._mac import HashConstructor

if TYPE_CHECKING:
    from _hashlib import HASH

ALGORITHM_V3: Final = "ACS3-HMAC-SHA256"
ALGORITHM_SM3: Final = "ACS3-HMAC-SM3"
ALGORITHM_RSA: Final = "ACS3-RSA-SHA256"

#: Headers every V3 signature must cover whatever its algorithm, besides the payload hash it uses:
#: without the nonce or the date a signature could be replayed, without the action reused for another API.
BASE_SIGNED_HEADERS: Final = ("host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-version")
SHA256_HEADER: Final = "x-acs-content-sha256"
SM3_HEADER: Final = "x-acs-content-sm3"
#: An RSA signature's hex digits, at most: a 4096-bit key's (the largest `gateway.signing.rsa` loads).
MAX_RSA_HEX: Final = 1024


class PublicKey(Protocol):
    """A verifying key (`gateway.signing.rsa.RsaPublicKey`): answers False, never raises, on garbage."""

    def verify(self, message: bytes, signature: bytes) -> bool: ...


def _openssl_sm3(data: bytes = b"") -> HASH:
    return hashlib.new("sm3", data)


def _sm3() -> HashConstructor:
    # OpenSSL builds without SM3 exist (some distributions disable it); cryptography's wheels bundle an
    # OpenSSL that has it, at about twice the cost of hashlib's (README, "Decided by measurement").
    if "sm3" in hashlib.algorithms_available:
        return _openssl_sm3
    from gateway.signing._sm3 import Sm3

    return cast("HashConstructor", Sm3)


sm3: Final = _sm3()


@dataclass(frozen=True, slots=True)
class V3Algorithm:
    name: str
    digest: HashConstructor  # of the payload and of the canonical request
    payload_header: str  # where the payload hash travels...
    alternative_header: str | None  # ...or here instead (never both: which would the service trust?)
    mac: HashConstructor | None  # HMAC's hash; None: an RSA signature, checked with the key's public keys

    @property
    def payload_headers(self) -> tuple[str, ...]:
        return (self.payload_header,) if self.alternative_header is None else (self.payload_header,
                                                                              self.alternative_header)


V3_ALGORITHMS: Final[Mapping[str, V3Algorithm]] = MappingProxyType({
    ALGORITHM_V3: V3Algorithm(ALGORITHM_V3, hashlib.sha256, SHA256_HEADER, None, hashlib.sha256),
    ALGORITHM_SM3: V3Algorithm(ALGORITHM_SM3, sm3, SM3_HEADER, SHA256_HEADER, sm3),
    ALGORITHM_RSA: V3Algorithm(ALGORITHM_RSA, hashlib.sha256, SHA256_HEADER, None, None),
})
#: The names, in the table's order (the default of GATEWAY_V3_SIGNATURE_METHODS).
V3_SIGNATURE_METHODS: Final = tuple(V3_ALGORITHMS)

#: The headers a signature must cover, by the payload-hash header the request uses.
REQUIRED_SIGNED_HEADERS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
    header: frozenset((*BASE_SIGNED_HEADERS, header)) for header in (SHA256_HEADER, SM3_HEADER)
})
