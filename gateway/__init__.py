"""An API gateway enforcing Alibaba Cloud-style RPC common-parameter rules.

Use ``GatewayMiddleware`` around any ASGI app, or run ``gateway serve`` as a reverse proxy.
"""

from gateway.errors import ApiError, Err, GatewayError
from gateway.middleware import GatewayMiddleware
from gateway.policy import Policy, PolicyError, Resource, load_policy
from gateway.resources import PolicyResolver, ResourceResolver
from gateway.settings import Settings, SettingsError

__all__ = [
    "ApiError",
    "Err",
    "GatewayError",
    "GatewayMiddleware",
    "Policy",
    "PolicyError",
    "PolicyResolver",
    "Resource",
    "ResourceResolver",
    "Settings",
    "SettingsError",
    "load_policy",
]
