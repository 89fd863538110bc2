from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError

# The table's rows first, in the table's order; then the signature parameters it has no row for,
# which take the generic MissingParameter wording with their own name.
REQUIRED: tuple[tuple[str, Err, str | None], ...] = (
    ("action", Err.MISSING_ACTION, None),
    ("access_key_id", Err.MISSING_ACCESS_KEY_ID, None),
    ("signature", Err.MISSING_SIGNATURE, None),
    ("timestamp", Err.MISSING_TIMESTAMP, None),
    ("version", Err.MISSING_VERSION, None),
    ("signature_method", Err.MISSING_ACTION, "SignatureMethod"),
    ("signature_version", Err.MISSING_ACTION, "SignatureVersion"),
    ("nonce", Err.MISSING_ACTION, "SignatureNonce"),
)


class RequiredLayer:
    """Every common parameter present and non-empty, whichever signature version carried it."""

    def check(self, ctx: RequestContext) -> None:
        for attr, err, name in REQUIRED:
            if not getattr(ctx, attr):
                raise GatewayError(err) if name is None else GatewayError(err, name=name)
