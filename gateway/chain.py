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
from gateway.parse import Parser
from gateway.policy import Policy
from gateway.resources import ResourceResolver
from gateway.settings import Settings
from gateway.stores import Store
from gateway.sts.keys import STS_PARAMETERS, TemporaryKeys


@dataclass(frozen=True, slots=True)
class Chain:
    parse: Parser
    checks: tuple[Check, ...]
    admit: Admission


def build_chain(settings: Settings, policy: Policy, store: Store, resolver: ResourceResolver) -> Chain:
    return Chain(
        # UnsupportedHTTPMethod (before the body is read), then InvalidParameter (bad input)
        Parser(policy, max_body_bytes=settings.max_body_bytes,
               temporary=TemporaryKeys(policy, policy.sts) if policy.sts is not None else None),
        (
            *((Host(settings.hosts),) if settings.hosts else ()),   # InvalidParameter (GATEWAY_HOSTS)
            required,                                               # MissingParameter
            SignatureProtocol(v1_methods=settings.signature_methods),  # InvalidParamater
            KnownApi(policy.apis),                                  # InvalidParameter (Action or Version)
            known_key,  # InvalidAccessKeyId.NotFound, Disabled; MissingSecurityToken, InvalidSecurityToken.*
            signature,                                              # IncompleteSignature
            # Declared parameters only once a key is proven: patterns and numbers are work (#16 item 18).
            Params(max_repeated=settings.max_repeated,              # UnsupportedParameter, InvalidParameter
                   common=COMMON_PARAMETERS | STS_PARAMETERS if policy.sts is not None else COMMON_PARAMETERS),
            Timestamp(skew=settings.timestamp_skew),                # IllegalTimestamp
            nonce_shape,                                            # InvalidParameter (claimed in admit)
            owner,                                                  # InvalidOwner*, MissingParameter (403)
            Access(resolver),                                       # InvalidAction, Forbidden.*
            account_state,                                          # RealNameAuthenticationError, InsufficientBalance
        ),
        # SignatureNonceUsed, Throttling, ClientToken rows
        Admission(store, policy, skew=settings.timestamp_skew, lease_seconds=settings.idempotency_lease,
                  answer_ttl=settings.idempotency_ttl, fail_open=settings.fail_open),
    )
