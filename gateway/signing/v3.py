"""Signature version 3: ``ACS3-HMAC-SHA256`` (what ``alibabacloud-tea-openapi`` sends by default),
``ACS3-HMAC-SM3`` and ``ACS3-RSA-SHA256`` (their differences: the table of `gateway.signing.algorithms`).

canonical request = method, path, canonical query, canonical headers, signed-header names, body hash,
one per line; string to sign = algorithm + hex hash of the canonical request; signature = hex HMAC keyed
with the bare secret (or hex RSA signature by the private key), carried in ``Authorization``.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.signing._encoding import encoded_pairs, percent_encode, utc_timestamp
from gateway.signing._mac import HashConstructor, hmac_digest
from gateway.signing.algorithms import (
    ALGORITHM_V3,
    MAX_RSA_HEX,
    REQUIRED_SIGNED_HEADERS,
    SHA256_HEADER,
    V3_ALGORITHMS,
    PublicKey,
    V3Algorithm,
)

# What an ACS3-HMAC-SHA256 signature must cover (other algorithms: REQUIRED_SIGNED_HEADERS).
V3_REQUIRED_SIGNED_HEADERS: Final = tuple(sorted(REQUIRED_SIGNED_HEADERS[SHA256_HEADER]))

_FIELDS: Final = frozenset({"Credential", "SignedHeaders", "Signature"})
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class V3Authorization:
    """A parsed ``Authorization`` header; ``signed_headers`` are lowercase, in the order sent."""

    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_v3_authorization(value: str) -> V3Authorization:
    """Parse ``ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=h1;h2,Signature=hex``.

    Spaces after the commas are tolerated. Raises ``ValueError`` when a field is missing, empty,
    repeated or unknown. The algorithm is returned as sent, not checked: that is the caller's call.
    """
    head, _, rest = value.strip().partition(" ")
    if not head or not rest.strip():
        raise ValueError("Authorization needs an algorithm, then its fields")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, field_value = part.strip().partition("=")
        if not equals or name not in _FIELDS or name in fields or not field_value:
            raise ValueError(f"Authorization field {part.strip()!r} is malformed, unknown or repeated")
        fields[name] = field_value
    # Not `_FIELDS - fields.keys()`: that is dict_keys.__rsub__, a set where mypy expects a frozenset,
    # which the mypyc-compiled build (setup.py) rejects with a TypeError.
    missing = _FIELDS.difference(fields)
    if missing:
        raise ValueError(f"Authorization lacks {', '.join(sorted(missing))}")
    signed_headers = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";"))
    if "" in signed_headers or len(set(signed_headers)) != len(signed_headers):
        raise ValueError("SignedHeaders has an empty or repeated name")
    return V3Authorization(head, fields["Credential"], signed_headers, fields["Signature"])


def _algorithm(name: str) -> V3Algorithm:
    algorithm = V3_ALGORITHMS.get(name)
    if algorithm is None:
        raise ValueError(f"{name!r} is not a V3 signature algorithm")
    return algorithm


def hash_payload(body: bytes, algorithm: str = ALGORITHM_V3) -> str:
    """Lowercase hex hash of the body (SHA-256, or SM3 for ``ACS3-HMAC-SM3``), as its header carries it."""
    return _algorithm(algorithm).digest(body).hexdigest()


def canonical_request_v3(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    hashed_payload: str,
) -> str:
    """The canonical request, from decoded parts.

    ``path`` and ``query`` are decoded and encoded again here (``/`` kept in the path). ``headers``
    maps lowercase names to values; each signed header becomes ``name:trimmed value`` plus a newline,
    so an empty line separates them from the signed-header list. Raises ``ValueError`` when a signed
    header is absent from ``headers``.
    """
    names = sorted(name.lower() for name in signed_headers)
    missing = [name for name in names if name not in headers]
    if missing:
        raise ValueError(f"signed headers {', '.join(missing)} are not in the request")
    canonical_path = "/".join([percent_encode(segment) for segment in (path or "/").split("/")])
    canonical_headers = "".join([f"{name}:{headers[name].strip()}\n" for name in names])
    return "\n".join((method, canonical_path, encoded_pairs(query), canonical_headers, ";".join(names),
                      hashed_payload))


def string_to_sign_v3(canonical_request: str, algorithm: str = ALGORITHM_V3) -> str:
    """The algorithm, a newline, and the hex hash (SHA-256, or SM3) of the canonical request."""
    return f"{algorithm}\n{_algorithm(algorithm).digest(canonical_request.encode()).hexdigest()}"


def _mac_hex(secret: str, string_to_sign: str, mac: HashConstructor) -> str:
    return hmac_digest(secret.encode(), string_to_sign.encode(), mac).hex()


def sign_v3(secret: str, string_to_sign: str, algorithm: str = ALGORITHM_V3) -> str:
    """Hex HMAC of ``string_to_sign`` keyed with the bare secret (no ``&``, unlike V1); for
    ``ACS3-RSA-SHA256`` the secret is the private key's PEM and the signature RSA's, in hex."""
    mac = _algorithm(algorithm).mac
    if mac is None:
        from gateway.signing.rsa import sign_rsa  # cryptography, only where RSA is used

        return sign_rsa(secret, string_to_sign.encode()).hex()
    return _mac_hex(secret, string_to_sign, mac)


def verify_v3(
    secrets: Sequence[str],
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    auth: V3Authorization,
    payload: str | bytes,
    public_keys: Sequence[PublicKey] = (),
) -> bool:
    """Whether ``auth`` signs this request under any of ``secrets`` (HMAC algorithms) or of
    ``public_keys`` (``ACS3-RSA-SHA256``).

    ``payload`` is the body actually received (bytes), or its hash already made (`hash_payload` with
    the algorithm of ``auth``, hex str): the one payload-hash header the algorithm reads must be sent,
    equal to that hash, and signed with every header of ``REQUIRED_SIGNED_HEADERS``. Constant-time comparison; garbage
    (an unknown algorithm, a signature that is not hex, a signed header that was not sent, both SM3
    hash headers) gives False, never an exception.
    """
    algorithm = V3_ALGORITHMS.get(auth.algorithm)
    if algorithm is None:
        return False
    hashed_payload = payload if isinstance(payload, str) else algorithm.digest(payload).hexdigest()
    header, alternative = algorithm.payload_header, algorithm.alternative_header
    if alternative is not None and alternative in headers:
        if header in headers:
            return False  # two hashes of one body: which one would the service trust?
        header = alternative
    claimed = auth.signature.lower()
    size = len(claimed)
    mac = algorithm.mac
    if (
        headers.get(header) != hashed_payload
        # HMAC: as long as the hash (32 bytes, both); RSA: whole bytes, at most a 4096-bit key's.
        or not (size == 64 if mac is not None else 0 < size <= MAX_RSA_HEX and size % 2 == 0)
        or not _HEX_DIGITS.issuperset(claimed)
        or not REQUIRED_SIGNED_HEADERS[header].issubset(auth.signed_headers)
    ):
        return False
    try:
        request = canonical_request_v3(method, path, query, headers, auth.signed_headers, hashed_payload)
        string_to_sign = f"{algorithm.name}\n{algorithm.digest(request.encode()).hexdigest()}"
        if mac is None:
            signature = bytes.fromhex(claimed)
            message = string_to_sign.encode()
            return any([key.verify(message, signature) for key in public_keys])  # every key: no early exit
        claimed_bytes = claimed.encode("ascii")
        for secret in secrets:
            if hmac.compare_digest(_mac_hex(secret, string_to_sign, mac).encode("ascii"), claimed_bytes):
                return True
    except (ValueError, TypeError):
        return False
    return False


#: The name the checks call it by (`gateway.checks.caller`), from when the body had a function of its own.
verify_v3_body: Final = verify_v3


def sign_request_v3(
    *,
    method: str,
    host: str,
    path: str = "/",
    query: Mapping[str, str],
    body: bytes = b"",
    action: str,
    version: str,
    access_key_id: str,
    secret: str,
    nonce: str | None = None,
    date: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    algorithm: str = ALGORITHM_V3,
    hash_header: str | None = None,
) -> dict[str, str]:
    """The headers a client sends for this request, ``authorization`` last.

    ``host`` is signed as given, so it carries the port when the URL does. Signed: ``host`` and every
    ``x-acs-*`` header, extra ones included; other extra headers are sent unsigned. The nonce
    defaults to a fresh UUID4 in hex, the date to now. ``algorithm`` is any of ``V3_ALGORITHMS``
    (``secret``: the private key's PEM for RSA); the payload hash goes in ``hash_header``, by
    default the algorithm's first (``x-acs-content-sm3`` for SM3, as the Java, Go and Node SDKs send it).
    """
    row = _algorithm(algorithm)
    hash_header = hash_header or row.payload_headers[0]
    if hash_header not in row.payload_headers:
        raise ValueError(f"{algorithm} carries its payload hash in {' or '.join(row.payload_headers)}")
    hashed = row.digest(body).hexdigest()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": utc_timestamp() if date is None else date,
        "x-acs-signature-nonce": uuid.uuid4().hex if nonce is None else nonce,
        hash_header: hashed,
    }
    for name, value in (extra_headers or {}).items():
        headers[name.lower()] = value
    signed = sorted(name for name in headers if name == "host" or name.startswith("x-acs-"))
    request = canonical_request_v3(method, path, query, headers, signed, hashed)
    signature = sign_v3(secret, string_to_sign_v3(request, algorithm), algorithm)
    headers["authorization"] = (
        f"{algorithm} Credential={access_key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers
