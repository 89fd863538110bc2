from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError

# The table's rows first, in the table's order; then the signature parameters it has no row for,
# which take the generic MissingParameter wording with their own name.
REQUIRED: tuple[tuple[str, Err, dict[str, str]], ...] = (
    ("action", Err.MISSING_ACTION, {}),
    ("access_key_id", Err.MISSING_ACCESS_KEY_ID, {}),
    ("signature", Err.MISSING_SIGNATURE, {}),
    ("timestamp", Err.MISSING_TIMESTAMP, {}),
    ("version", Err.MISSING_VERSION, {}),
    ("signature_method", Err.MISSING_ACTION, {"name": "SignatureMethod"}),
    ("signature_version", Err.MISSING_ACTION, {"name": "SignatureVersion"}),
    ("nonce", Err.MISSING_ACTION, {"name": "SignatureNonce"}),
)


class RequiredLayer:
    """Every common parameter present and non-empty, whichever signature version carried it."""

    def check(self, ctx: RequestContext) -> None:
        for attr, err, params in REQUIRED:
            if not getattr(ctx, attr):
                raise GatewayError(err, **params)
