"""An API gateway enforcing Alibaba Cloud-style RPC common-parameter rules.

Use ``GatewayMiddleware`` around any ASGI app, or run ``gateway serve`` as a reverse proxy; the wrapped app
finds the checked `Call` in ``scope["gateway"]``.
"""

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import ApiError, GatewayError, SettingsError
from gateway.middleware import GatewayMiddleware
from gateway.policy import Policy, PolicyError, Resource, load_policy
from gateway.resources import PolicyResolver, ResourceResolver
from gateway.settings import Settings

__all__ = [
    "ApiError",
    "Call",
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
