"""The policy file: accounts, access keys, sub-users, resources, APIs and limits."""

from gateway.errors import PolicyError
from gateway.policy.loader import DEMO_POLICY, load_policy, parse_policy
from gateway.policy.model import (
    RESOURCE_KINDS,
    AccessKey,
    Account,
    ApiSpec,
    ParamSpec,
    Policy,
    Resource,
    Statement,
    SubUser,
)

__all__ = [
    "DEMO_POLICY",
    "RESOURCE_KINDS",
    "AccessKey",
    "Account",
    "ApiSpec",
    "ParamSpec",
    "Policy",
    "PolicyError",
    "Resource",
    "Statement",
    "SubUser",
    "load_policy",
    "parse_policy",
]
