"""The chain, in its fixed order: the one place that order is written down (CONTRACT §2, §4).

parse → the checks → admit. Stateless checks come first, cheapest and least privileged first; every
change of shared state (nonce, flow control, quota, ClientToken) is made at the end in one store round
trip (`gateway.admit`), so a request that any check refuses has consumed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admit import Admission
from gateway.checks import Check
from gateway.checks.access import Access
from gateway.checks.caller import KnownApi, Timestamp, known_key, signature
from gateway.checks.host import Host
from gateway.checks.owner import account_state, owner
from gateway.checks.params import COMMON_PARAMETERS, Params
from gateway.checks.request import SignatureProtocol, nonce_shape, required
from gateway.parse import Keystore, Parser
from gateway.policy import Policy
from gateway.resources import ResourceResolver
from gateway.settings import Settings
from gateway.stores import Store
from gateway.sts.assume import AssumeRole
from gateway.sts.keys import STS_PARAMETERS, TemporaryKeys
from gateway.sts.reads import SessionKeystore


@dataclass(frozen=True, slots=True)
class Chain:
    parse: Parser
    checks: tuple[Check, ...]
    admit: Admission
    # The rows of `checks` marked for anonymous calls too, in the same order (`gateway.anonymous`).
    anonymous_checks: tuple[Check, ...] = ()
    # With [sts]: what answers AssumeRole instead of the service. Built from the same policy as the
    # parser that names a call's API, so a reload that adds, changes or drops [sts] swaps both at once.
    assume: AssumeRole | None = None


# Second column: does the check run on an anonymous call? Those that read credentials (the common
# parameters, the key, the signature, the Timestamp, the nonce) or the key's account (its grants, its
# state) do not; the rest judge the request itself and run for everyone.
ALL, SIGNED = True, False


def _sessions(policy: Policy, keystore: Keystore | None) -> tuple[TemporaryKeys | None, Keystore | None]:
    """With [sts]: the temporary keys, and the keystore the parser uses. A session's assuming key is found
    in the policy file, then the keystore's cache, then read from Redis like any missed key
    (`gateway.sts.reads`)."""
    if policy.sts is None:
        return None, keystore
    if keystore is None:
        return TemporaryKeys(policy, policy.sts), None
    file_keys, cached = policy.access_keys, keystore.entries
    temporary = TemporaryKeys(policy, policy.sts, missing=keystore.missing,
                              lookup=lambda key_id: file_keys.get(key_id) or cached.get(key_id))
    return temporary, SessionKeystore(keystore, temporary)


def build_chain(settings: Settings, policy: Policy, store: Store, resolver: ResourceResolver,
                keystore: Keystore | None = None) -> Chain:
    temporary, parser_keystore = _sessions(policy, keystore)
    rows: tuple[tuple[Check, bool], ...] = (
        *(((Host(settings.hosts), ALL),) if settings.hosts else ()),  # InvalidParameter (GATEWAY_HOSTS)
        (required, SIGNED),                                     # MissingParameter
        (SignatureProtocol(v1_methods=settings.signature_methods,           # InvalidParamater
                           v3_methods=settings.v3_signature_methods), SIGNED),
        (KnownApi(policy.apis), ALL),                           # InvalidParameter (Action or Version)
        (known_key, SIGNED),  # InvalidAccessKeyId.NotFound, Disabled; MissingSecurityToken, InvalidSecurityToken.*
        (signature, SIGNED),                                    # IncompleteSignature
        # Declared parameters only once a key is proven: patterns and numbers are work (#16 item 18);
        # an anonymous API offers that work to anyone, as its policy chose.
        (Params(max_repeated=settings.max_repeated,             # UnsupportedParameter, InvalidParameter
                common=COMMON_PARAMETERS | STS_PARAMETERS if policy.sts is not None else COMMON_PARAMETERS), ALL),
        (Timestamp(skew=settings.timestamp_skew), SIGNED),      # IllegalTimestamp
        (nonce_shape, SIGNED),                                  # InvalidParameter (claimed in admit)
        # Anonymous: OwnerId / OwnerAccount name no account of the caller's, so they are refused.
        (owner, ALL),                                           # InvalidOwner*, MissingParameter (403)
        (Access(resolver), SIGNED),                             # InvalidAction, Forbidden.*
        (account_state, SIGNED),                                # RealNameAuthenticationError, InsufficientBalance
    )
    return Chain(
        # UnsupportedHTTPMethod (before the body is read), then InvalidParameter (bad input); ServiceUnavailable
        # when a key is in neither the file nor the keystore's cache and Redis cannot be read
        Parser(policy, max_body_bytes=settings.max_body_bytes, keystore=parser_keystore, temporary=temporary),
        tuple(check for check, _ in rows),
        # SignatureNonceUsed, Throttling, ClientToken rows
        Admission(store, policy, skew=settings.timestamp_skew, lease_seconds=settings.idempotency_lease,
                  answer_ttl=settings.idempotency_ttl, fail_open=settings.fail_open),
        tuple(check for check, anonymous_too in rows if anonymous_too),
        None if policy.sts is None else AssumeRole(policy),
    )
