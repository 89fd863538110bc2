from __future__ import annotations

from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.signing import hash_payload, verify_v1, verify_v3

# A V3 signature only protects what it lists: these must be among the signed headers, or a
# relayed request could be re-aimed (host) or replayed with a fresh nonce or date.
V3_MUST_SIGN = frozenset({
    "host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256",
})


class SignatureLayer:
    """The signature verifies with one of the key's secrets (version 1.0 or V3)."""

    def check(self, ctx: RequestContext) -> None:
        key = ctx.key
        if key is None:
            raise GatewayError(Err.INCOMPLETE_SIGNATURE)
        auth = ctx.v3
        if auth is None:
            ok = verify_v1(key.secrets, ctx.method, ctx.params, ctx.signature or "", ctx.signature_method or "")
        else:
            ok = (
                V3_MUST_SIGN.issubset(auth.signed_headers)
                and ctx.headers.get("x-acs-content-sha256") == hash_payload(ctx.body)
                and verify_v3(key.secrets, ctx.method, ctx.path, ctx.query, ctx.headers, auth,
                              ctx.headers["x-acs-content-sha256"])
            )
        if not ok:
            raise GatewayError(Err.INCOMPLETE_SIGNATURE)
