"""Secrets at rest: AES-GCM under ``GATEWAY_SECRET_KEY``, each ciphertext naming the key that sealed it.

A sealed secret reads ``v1.<key id>.<base64(nonce ‖ ciphertext ‖ tag)>``. The key id is the first 8 hex
digits of the key's SHA-256: it names the key without revealing it, so a ciphertext records its key
version with no numbering for the operator to keep. While the encryption key rotates, the new key is
``GATEWAY_SECRET_KEY`` (it seals) and the old one ``GATEWAY_SECRET_KEY_PREVIOUS`` (it still opens);
``gateway keys reencrypt`` reseals every secret under the new one, after which the old may go.

The access key id is the associated data: a ciphertext copied onto another key's entry does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = "v1"
_NONCE_BYTES = 12


class SecretKey(bytes):
    """32 bytes that never print: settings and tracebacks show only the key id."""

    def __repr__(self) -> str:
        return f"SecretKey(id={key_id(self)})"

    __str__ = __repr__


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_secret_key(raw: str) -> SecretKey | None:
    """``openssl rand -base64 32``: 32 bytes in standard base64 (empty: none). ValueError otherwise."""
    if not raw.strip():
        return None
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not standard base64 (make one with `openssl rand -base64 32`)") from None
    if len(key) != 32:
        raise ValueError(f"must be 32 bytes once decoded, not {len(key)} (`openssl rand -base64 32`)")
    return SecretKey(key)


class SealError(ValueError):
    """A sealed secret that no configured key opens (wrong key, unknown key id, altered text)."""


class Codec:
    """Seals with the current key; opens with the current or the previous one."""

    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        self.current_id = key_id(current)
        self._seal = AESGCM(current)
        keys = {self.current_id: self._seal}
        if previous is not None and key_id(previous) != self.current_id:
            keys[key_id(previous)] = AESGCM(previous)
        self._open: Mapping[str, AESGCM] = MappingProxyType(keys)

    def seal(self, secret: str, access_key_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._seal.encrypt(nonce, secret.encode(), access_key_id.encode())
        return f"{FORMAT}.{self.current_id}.{base64.b64encode(nonce + sealed).decode()}"

    def open(self, text: str, access_key_id: str) -> str:
        fmt, _, rest = text.partition(".")
        kid, _, payload = rest.partition(".")
        if fmt != FORMAT or not payload:
            raise SealError("a stored secret is not in the sealed format")
        aead = self._open.get(kid)
        if aead is None:
            raise SealError(f"a stored secret is sealed with key {kid}, which is neither GATEWAY_SECRET_KEY "
                            "nor GATEWAY_SECRET_KEY_PREVIOUS")
        try:
            raw = base64.b64decode(payload, validate=True)
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], access_key_id.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError(f"a stored secret of {access_key_id} does not open with key {kid}") from None

    def is_current(self, text: str) -> bool:
        return text.startswith(f"{FORMAT}.{self.current_id}.")
