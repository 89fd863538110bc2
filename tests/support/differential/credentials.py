"""Who signs a differential case: the credential kinds a client may present (#17), and the identity the
gateway must establish for each when it admits the call.

``V1`` / ``V3``: a long-term key's secret (``ACS3-HMAC-SHA256``); ``anon``: nothing. ``V1-sts`` /
``V3-sts``: temporary credentials of a role, minted for the case with the gateway's own token code (the
drawn key is the one that assumed the role; its account's role, `policy.ROLES`); V1 sends the token as
the ``SecurityToken`` parameter, V3 as the signed ``x-acs-security-token`` header. ``V3-sm3``:
``ACS3-HMAC-SM3`` with its payload hash in either header SDKs use. ``V3-rsa``: ``ACS3-RSA-SHA256`` by
``LTAIrsa``, whose policy entry holds only the public key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import strategies as st

from gateway.signing import ALGORITHM_RSA, ALGORITHM_SM3, ALGORITHM_V3, canonical_request_v3, string_to_sign_v3
from gateway.signing._encoding import utc_timestamp
from gateway.sts import token as tokens
from tests.support.differential.policy import ROLES, RSA_KEY_ID, RSA_PRIVATE_KEY, TOKEN_KEYS
from tests.support.keys import SECRETS

#: The versions drawn, with their weights: the long-standing ones keep about two thirds of the cases.
VERSIONS = ["V1"] * 6 + ["V3"] * 6 + ["anon"] * 4 + ["V1-sts"] * 2 + ["V3-sts"] * 2 + ["V3-sm3"] * 3 + ["V3-rsa"] * 2
#: The versions #17 added, each of which must be admitted often enough to prove something (test_summary).
NEW_VERSIONS = ("V1-sts", "V3-sts", "V3-sm3", "V3-rsa")
ACCOUNTS = {"LTAIalice": 1111, "LTAIops": 1111, "LTAIbob": 2222, RSA_KEY_ID: 1111}
SUB_USERS = {"LTAIops": "ops"}
#: Session names within AssumeRole's grammar ([A-Za-z0-9_.@-]{2,64}): only AssumeRole mints tokens.
SESSION_NAMES = ["s1", "alice@example.com", "ci-build.42_x", "X" * 64, "-.", "__"]
PAYLOAD_HEADERS = {ALGORITHM_V3: ["x-acs-content-sha256"], ALGORITHM_RSA: ["x-acs-content-sha256"],
                   ALGORITHM_SM3: ["x-acs-content-sm3", "x-acs-content-sha256"]}  # tea-openapi 0.4.6: the latter

#: A valid token of another account's session (bob's role), which no case of the differential signs with.
FOREIGN_TOKEN = TOKEN_KEYS.mint(tokens.Claims("STS.ForeignForeignForeignFore", 2222, ROLES[2222], "foreign",
                                              "LTAIbob", 4_000_000_000, None))


@dataclass(frozen=True)
class Signer:
    version: str
    access_key_id: str | None  # None: anonymous
    secret: str = ""
    token: str | None = None
    algorithm: str = ALGORITHM_V3  # V3 only
    hash_header: str = "x-acs-content-sha256"
    #: The identity headers the gateway must give the service for this signer (folded name -> value).
    claimed: Mapping[str, str | None] = field(default_factory=dict)
    shapes: tuple[str, ...] = ()

    @property
    def v3(self) -> bool:
        return self.version.startswith("V3")


def _claimed(key: str | None, **changes: str | None) -> dict[str, str | None]:
    """A long-term key's identity (none: anonymous), with ``changes`` (a temporary key's)."""
    return {
        "x-gateway-access-key-id": key,
        "x-gateway-account-id": str(ACCOUNTS[key]) if key in ACCOUNTS else None,
        "x-gateway-sub-user": SUB_USERS.get(key or ""),
        "x-gateway-role-arn": None, "x-gateway-role-session-name": None, "x-gateway-assumed-by": None,
        "x-gateway-anonymous": None if key else "true",
        **changes,
    }


@st.composite
def signers(draw: st.DrawFn, version: str, key: str) -> Signer:
    """The credentials of a ``version`` case whose key (for STS: the key that assumed the role) is ``key``."""
    if version == "anon":
        return Signer(version, None, claimed=_claimed(None))
    if version == "V3-rsa":
        return Signer(version, RSA_KEY_ID, RSA_PRIVATE_KEY, algorithm=ALGORITHM_RSA, claimed=_claimed(RSA_KEY_ID))
    if version.endswith("-sts"):
        account = ACCOUNTS[key]
        key_id = tokens.TEMPORARY_PREFIX + draw(st.text(st.sampled_from(tokens._ID_ALPHABET), min_size=25,
                                                        max_size=25))
        session = draw(st.sampled_from(SESSION_NAMES))
        claims = tokens.Claims(key_id, account, ROLES[account], session, key, int(tokens.clock()) + 3600, None)
        algorithm = draw(st.sampled_from([ALGORITHM_V3, ALGORITHM_V3, ALGORITHM_SM3])) if version == "V3-sts" \
            else ALGORITHM_V3
        return Signer(version, key_id, TOKEN_KEYS.secret_of(key_id), TOKEN_KEYS.mint(claims), algorithm,
                      draw(st.sampled_from(PAYLOAD_HEADERS[algorithm])), _claimed(
                          key_id, **{"x-gateway-account-id": str(account), "x-gateway-sub-user": None,
                                     "x-gateway-role-arn": f"acs:ram::{account}:role/{ROLES[account]}",
                                     "x-gateway-role-session-name": session, "x-gateway-assumed-by": key}),
                      (f"sts-{algorithm}",) if version == "V3-sts" else ())
    if version == "V3-sm3":
        header = draw(st.sampled_from(PAYLOAD_HEADERS[ALGORITHM_SM3]))
        return Signer(version, key, SECRETS[key], algorithm=ALGORITHM_SM3, hash_header=header,
                      claimed=_claimed(key), shapes=(f"sm3-in-{header}",))
    return Signer(version, key, SECRETS[key], claimed=_claimed(key))


def v1_common(signer: Signer) -> dict[str, str]:
    """Parameters a V1 signer adds besides the signature's own (the token of temporary credentials)."""
    return {"SecurityToken": signer.token} if signer.token is not None else {}


def v3_extra_headers(signer: Signer) -> dict[str, str] | None:
    """Headers a V3 signer adds and signs (every x-acs-* header is signed): the token of temporary credentials."""
    return {"x-acs-security-token": signer.token} if signer.token is not None else None


# RSA signing loads (and validates) the PEM per call in `gateway.signing.rsa.sign_rsa`: about 34 ms, which
# would dominate the run. The key is loaded once here; the request is canonicalized by the gateway's own
# functions, as `sign_request_v3` does (a mistake here would show as V3-rsa cases refused: test_summary).
_RSA_KEY = serialization.load_pem_private_key(RSA_PRIVATE_KEY.encode(), password=None)
assert isinstance(_RSA_KEY, rsa.RSAPrivateKey)


def sign_rsa_v3(*, method: str, host: str, path: str, query: Mapping[str, str], body: bytes, action: str,
                version: str, access_key_id: str) -> dict[str, str]:
    """`gateway.signing.sign_request_v3` for ACS3-RSA-SHA256, with the key loaded once."""
    import hashlib
    import uuid

    hashed = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-acs-action": action, "x-acs-version": version, "x-acs-date": utc_timestamp(),
               "x-acs-signature-nonce": uuid.uuid4().hex, "x-acs-content-sha256": hashed}
    signed = sorted(headers)
    request = canonical_request_v3(method, path, query, headers, signed, hashed)
    signature = _RSA_KEY.sign(string_to_sign_v3(request, ALGORITHM_RSA).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["authorization"] = (f"{ALGORITHM_RSA} Credential={access_key_id},SignedHeaders={';'.join(signed)},"
                                f"Signature={signature.hex()}")
    return headers
