"""What the request itself must carry, before any key is looked at: the common parameters, a signature
method and version this gateway verifies, a nonce it can remember."""

from __future__ import annotations

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.signing import V3_SIGNATURE_METHODS

# The table's rows first, in the table's order; then the signature parameters it has no row for,
# which take the MissingParameter row with their own name.
REQUIRED: tuple[tuple[str, Err, str | None], ...] = (
    ("action", Err.MISSING_PARAMETER, None),
    ("access_key_id", Err.MISSING_ACCESS_KEY_ID, None),
    ("signature", Err.MISSING_SIGNATURE, None),
    ("timestamp", Err.MISSING_TIMESTAMP, None),
    ("version", Err.MISSING_VERSION, None),
    ("signature_method", Err.MISSING_PARAMETER, "SignatureMethod"),
    ("signature_version", Err.MISSING_PARAMETER, "SignatureVersion"),
    ("nonce", Err.MISSING_PARAMETER, "SignatureNonce"),
)
# Nonces are opaque (UUIDs, 32 hex characters, ...), but each is remembered for up to twice the
# skew: a bound keeps one request from parking an arbitrarily large key in the store.
MAX_NONCE_LENGTH = 128


def required(call: Call) -> None:
    """Every common parameter present and non-empty, whichever signature version carried it."""
    for attr, err, name in REQUIRED:
        if not getattr(call, attr):
            raise GatewayError(err) if name is None else GatewayError(err, name=name)


class SignatureProtocol:
    """SignatureMethod and SignatureVersion name something this gateway verifies (the V3 algorithm:
    one of ``v3_methods``, GATEWAY_V3_SIGNATURE_METHODS)."""

    def __init__(self, *, v1_methods: tuple[str, ...], v3_methods: tuple[str, ...] = V3_SIGNATURE_METHODS) -> None:
        self.v1_methods = frozenset(v1_methods)
        self.v3_methods = frozenset(v3_methods)

    def __call__(self, call: Call) -> None:
        if call.v3 is not None:
            if call.signature_method not in self.v3_methods:
                raise GatewayError(Err.INVALID_SIGNATURE_METHOD)
            return
        if call.signature_method not in self.v1_methods:
            raise GatewayError(Err.INVALID_SIGNATURE_METHOD)
        if call.signature_version != "1.0":
            raise GatewayError(Err.INVALID_SIGNATURE_VERSION)


def nonce_shape(call: Call) -> None:
    """A nonce short enough to remember; it is claimed with the rest of the state in `gateway.admit`."""
    if len(call.nonce or "") > MAX_NONCE_LENGTH:
        raise GatewayError(Err.INVALID_PARAMETER)
