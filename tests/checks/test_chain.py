"""The one table: the chain's order, as CONTRACT §2 and §4 fix it."""

from __future__ import annotations

from gateway.chain import build_chain
from gateway.policy import Policy
from gateway.resources import PolicyResolver
from gateway.settings import Settings
from gateway.stores import MemoryStore


def _names(settings: Settings, policy: Policy) -> list[str]:
    chain = build_chain(settings, policy, MemoryStore(), PolicyResolver(policy))
    return [getattr(check, "__name__", type(check).__name__) for check in chain.checks]


def test_the_order_of_the_checks(policy: Policy) -> None:
    assert _names(Settings(), policy) == [
        "required", "SignatureProtocol", "KnownApi", "known_key", "signature", "Params", "Timestamp",
        "nonce_shape", "owner", "Access", "account_state",
    ]


def test_the_host_check_exists_only_with_gateway_hosts(policy: Policy) -> None:
    assert _names(Settings(hosts=("api.example",)), policy)[0] == "Host"
