"""Signature version 3 (``ACS3-HMAC-SHA256``): what ``alibabacloud-tea-openapi`` sends by default.

canonical request = method, path, canonical query, canonical headers, signed-header names, body hash,
one per line; string to sign = algorithm + hex SHA-256 of the canonical request; signature = hex
HMAC-SHA256 keyed with the bare secret, carried in ``Authorization``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.signing._encoding import encoded_pairs, percent_encode, utc_timestamp
from gateway.signing._mac import hmac_digest

ALGORITHM_V3: Final = "ACS3-HMAC-SHA256"

# What a V3 signature must cover to be worth anything to the gateway: without the nonce or the date a
# signature could be replayed, without the action reused for another API.
V3_REQUIRED_SIGNED_HEADERS: Final = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)

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


def hash_payload(body: bytes) -> str:
    """Lowercase hex SHA-256 of the body, as ``x-acs-content-sha256`` carries it."""
    return hashlib.sha256(body).hexdigest()


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
    return "\n".join(
        (
            method,
            canonical_path,
            encoded_pairs(query),
            canonical_headers,
            ";".join(names),
            hashed_payload,
        )
    )


def string_to_sign_v3(canonical_request: str) -> str:
    """The algorithm, a newline, and the hex SHA-256 of the canonical request."""
    return f"{ALGORITHM_V3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def sign_v3(secret: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of ``string_to_sign``, keyed with the bare secret (no ``&``, unlike V1)."""
    return hmac_digest(secret.encode(), string_to_sign.encode(), hashlib.sha256).hex()


def verify_v3(
    secrets: Sequence[str],
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    auth: V3Authorization,
    hashed_payload: str,
) -> bool:
    """Whether ``auth`` signs this request under any of ``secrets``.

    ``hashed_payload`` is the hash of the body actually received, so a body that does not match its
    ``x-acs-content-sha256`` fails. A signature that does not cover every header in
    ``V3_REQUIRED_SIGNED_HEADERS`` fails too. Constant-time comparison; garbage (another algorithm,
    a signature that is not hex, a signed header that was not sent) gives False, never an exception.
    """
    claimed = auth.signature.lower()
    if (
        auth.algorithm != ALGORITHM_V3
        or len(claimed) != 64
        or not _HEX_DIGITS.issuperset(claimed)
        or not set(V3_REQUIRED_SIGNED_HEADERS).issubset(auth.signed_headers)
    ):
        return False
    try:
        request = canonical_request_v3(method, path, query, headers, auth.signed_headers, hashed_payload)
        string_to_sign = string_to_sign_v3(request)
        claimed_bytes = claimed.encode("ascii")
        for secret in secrets:
            if hmac.compare_digest(sign_v3(secret, string_to_sign).encode("ascii"), claimed_bytes):
                return True
    except (ValueError, TypeError):
        return False
    return False


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
) -> dict[str, str]:
    """The headers a client sends for this request, ``authorization`` last.

    ``host`` is signed as given, so it carries the port when the URL does. Signed: ``host`` and every
    ``x-acs-*`` header, extra ones included; other extra headers are sent unsigned. The nonce
    defaults to a fresh UUID4 in hex, the date to now.
    """
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": utc_timestamp() if date is None else date,
        "x-acs-signature-nonce": uuid.uuid4().hex if nonce is None else nonce,
        "x-acs-content-sha256": hash_payload(body),
    }
    for name, value in (extra_headers or {}).items():
        headers[name.lower()] = value
    signed = sorted(name for name in headers if name == "host" or name.startswith("x-acs-"))
    request = canonical_request_v3(method, path, query, headers, signed, headers["x-acs-content-sha256"])
    signature = sign_v3(secret, string_to_sign_v3(request))
    headers["authorization"] = (
        f"{ALGORITHM_V3} Credential={access_key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers
