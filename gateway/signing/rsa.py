"""``ACS3-RSA-SHA256``: RSA PKCS#1 v1.5 signatures over SHA-256 of the string to sign, hex-encoded.

The client signs with its private key (tea-openapi takes the PEM as its access key secret); the policy
holds the public key(s). Public keys are loaded once, at start (`gateway.policy.loader`); verification
answers False, never raises, whatever the signature bytes.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: Smaller keys are within reach of forgery; larger ones make every verification an attacker's lever
#: (a whole 4096-bit check costs twice a 2048-bit one: 164 against 81 µs, README "V3 algorithms").
MIN_BITS: Final = 2048
MAX_BITS: Final = 4096

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class RsaPublicKey:
    """One public key of an access key; ``repr`` shows its size and fingerprint, nothing to sign with."""

    __slots__ = ("_key", "bits", "fingerprint", "size")

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self._key = key
        self.bits = key.key_size
        self.size = (key.key_size + 7) // 8  # bytes of a signature
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.fingerprint = hashlib.sha256(der).hexdigest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != self.size:
            return False
        try:
            self._key.verify(signature, message, _PKCS1V15, _SHA256)
        except Exception:  # InvalidSignature, or anything cryptography says of garbage: never raise
            return False
        return True

    def __repr__(self) -> str:
        return f"RsaPublicKey({self.bits} bits, sha256:{self.fingerprint[:16]})"


def load_public_key(pem: str) -> RsaPublicKey:
    """An RSA public key from PEM (``BEGIN PUBLIC KEY`` or ``BEGIN RSA PUBLIC KEY``); ValueError says why not."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not a PEM public key ({exc.__class__.__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"is a {type(key).__name__.lstrip('_')}, not an RSA key")
    if not MIN_BITS <= key.key_size <= MAX_BITS:
        raise ValueError(f"is {key.key_size} bits: {MIN_BITS} to {MAX_BITS} are accepted")
    return RsaPublicKey(key)


def _private_pem(secret: str) -> bytes:
    # What tea-openapi accepts as the secret: a PEM, or the bare base64 of a PKCS#8 key.
    data = secret.strip().encode()
    if not data.startswith(b"-----BEGIN"):
        data = b"-----BEGIN PRIVATE KEY-----\n" + data + b"\n-----END PRIVATE KEY-----"
    return data


def sign_rsa(private_key: str, message: bytes) -> bytes:
    """The signature of ``message`` by ``private_key`` (PEM, PKCS#1 or PKCS#8, unencrypted)."""
    key = serialization.load_pem_private_key(_private_pem(private_key), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("ACS3-RSA-SHA256 needs an RSA private key")
    return key.sign(message, _PKCS1V15, _SHA256)
