"""The layers, in their fixed order: the one place that order is written down (CONTRACT §2, §4).

Stateless checks come first, cheapest and least privileged first; every change of shared state
(nonce, flow control, quota, ClientToken) is made at the end in one store round trip, so a request
that any check refuses has consumed nothing.
"""

from __future__ import annotations

from gateway.layers import Layer
from gateway.layers.access import AccessLayer
from gateway.layers.access_key import AccessKeyLayer
from gateway.layers.account import AccountStateLayer
from gateway.layers.admit import AdmitLayer
from gateway.layers.api import ApiLayer
from gateway.layers.host import HostLayer
from gateway.layers.idempotency import IdempotencyLayer
from gateway.layers.method import MethodLayer
from gateway.layers.nonce import NonceLayer
from gateway.layers.owner import OwnerLayer
from gateway.layers.params import ParamsLayer
from gateway.layers.parse import ParseLayer
from gateway.layers.protocol import ProtocolLayer
from gateway.layers.quota import QuotaLayer
from gateway.layers.required import RequiredLayer
from gateway.layers.signature import SignatureLayer
from gateway.layers.timestamp import TimestampLayer
from gateway.policy import Policy
from gateway.resources import ResourceResolver
from gateway.settings import Settings
from gateway.stores import Store


def build_chain(settings: Settings, policy: Policy, store: Store, resolver: ResourceResolver) -> tuple[Layer, ...]:
    return (
        MethodLayer(),                                               # UnsupportedHTTPMethod
        ParseLayer(max_body_bytes=settings.max_body_bytes),          # InvalidParameter (bad input)
        *((HostLayer(settings.hosts),) if settings.hosts else ()),   # InvalidParameter (GATEWAY_HOSTS)
        RequiredLayer(),                                             # MissingParameter
        ProtocolLayer(v1_methods=settings.signature_methods),        # InvalidParamater
        ApiLayer(policy),                                            # InvalidParameter (Action or Version)
        AccessKeyLayer(policy),                                      # InvalidAccessKeyId.NotFound, Disabled
        SignatureLayer(),                                            # IncompleteSignature
        # Declared parameters only once a key is proven: patterns and numbers are work (#16 item 18).
        ParamsLayer(max_repeated=settings.max_repeated),             # UnsupportedParameter, InvalidParameter
        TimestampLayer(skew=settings.timestamp_skew),                # IllegalTimestamp
        NonceLayer(),                                                # (nonce shape; claimed in AdmitLayer)
        OwnerLayer(),                                                # InvalidOwner*, MissingParameter (403)
        AccessLayer(resolver),                                       # InvalidAction, Forbidden.*
        AccountStateLayer(),                                         # RealNameAuthenticationError, InsufficientBalance
        QuotaLayer(policy),                                          # (takes; made in AdmitLayer)
        IdempotencyLayer(lease_seconds=settings.idempotency_lease),  # (claim; made in AdmitLayer)
        AdmitLayer(store, fail_open=settings.fail_open),             # SignatureNonceUsed, Throttling, tokens
    )
