"""HMAC (RFC 2104) with the keyed hash states kept per key.

``hmac.new`` derives the inner and outer keyed states on every call, which is half of its cost for a
message the size of a string to sign. A gateway verifies many requests with few keys, so the states
are derived once per key and copied per message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from _hashlib import HASH

# What hashlib.sha1 and hashlib.sha256 are; hmac.new and hashlib accept it as a digestmod.
HashConstructor: TypeAlias = "Callable[..., HASH]"

_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))


# Bounded: states are as secret as the keys, and retired keys should age out.
@functools.lru_cache(maxsize=1024)
def _keyed_states(key: bytes, hash_constructor: HashConstructor) -> tuple[HASH, HASH]:
    block_size = hash_constructor(b"").block_size
    if len(key) > block_size:
        key = hash_constructor(key).digest()
    key = key.ljust(block_size, b"\0")
    return hash_constructor(key.translate(_INNER_PAD)), hash_constructor(key.translate(_OUTER_PAD))


def hmac_digest(key: bytes, message: bytes, hash_constructor: HashConstructor) -> bytes:
    """The HMAC of ``message`` under ``key``, identical to ``hmac.new(key, message, h).digest()``."""
    inner_state, outer_state = _keyed_states(key, hash_constructor)
    inner = inner_state.copy()
    inner.update(message)
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.digest()
