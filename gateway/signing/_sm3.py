"""SM3 where this Python's OpenSSL has none: cryptography's own OpenSSL, behind hashlib's interface.

Only what `gateway.signing._mac` and the payload hash use: ``update``, ``copy``, ``digest``,
``hexdigest``, ``block_size``. Imported only when ``hashlib`` lacks ``sm3``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes


class Sm3:
    """A hashlib-like SM3 (GB/T 32905-2016) state."""

    __slots__ = ("_state",)
    name = "sm3"
    block_size = 64
    digest_size = 32

    def __init__(self, data: bytes = b"", *, _state: hashes.Hash | None = None) -> None:
        self._state = hashes.Hash(hashes.SM3()) if _state is None else _state
        if data:
            self._state.update(data)

    def update(self, data: bytes) -> None:
        self._state.update(data)

    def copy(self) -> Sm3:
        return Sm3(_state=self._state.copy())

    def digest(self) -> bytes:
        # finalize() ends a state: hashlib's digest() does not.
        return self._state.copy().finalize()

    def hexdigest(self) -> str:
        return self.digest().hex()
