"""Anonymous calls (#17 §3): what "no credentials" means, and whose quota an anonymous call takes.

An API declared ``auth = "anonymous"`` may be called with no credentials at all. A request carries
credentials when it sends any of `CREDENTIAL_PARAMS` (query or form body) or `CREDENTIAL_HEADERS`,
whatever their values, even empty: such a request is judged exactly as a signed call to any API
(a bad signature is IncompleteSignature, a missing AccessKeyId is MissingParameter), never quietly
served as anonymous. ``Timestamp`` and ``SignatureNonce`` (and V3's ``x-acs-date``,
``x-acs-signature-nonce`` and ``x-acs-content-sha256``) are not credentials: tea-openapi sends them
on its anonymous calls; they prove nothing without a signature, so they are neither checked nor
claimed, and reach the service as sent.

An anonymous call has no account to hold its state, so its source address stands for one: the
client address as `gateway.forwarded.ClientAddress` establishes it (GATEWAY_TRUSTED_PROXIES-aware),
an IPv6 client by its /64 (one host is given a whole /64 and could otherwise rotate through it).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Mapping

#: Parameters that make a request a signed one, present with any value.
CREDENTIAL_PARAMS = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SecurityToken",
                     "BearerToken")
#: Headers that make a request a signed one (lower-case), present with any value.
CREDENTIAL_HEADERS = ("authorization", "x-acs-security-token", "x-acs-accesskey-id", "x-acs-bearer-token")
#: The store scope of anonymous callers whose address the server did not give (a unix socket).
UNKNOWN_SOURCE = "anon:unknown"
IPV6_PREFIX = 64


def carries_credentials(params: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """True when the request sends anything that belongs to a signed call."""
    return any(name in params for name in CREDENTIAL_PARAMS) or any(name in headers for name in CREDENTIAL_HEADERS)


@functools.lru_cache(maxsize=4096)
def source_scope(address: str | None) -> str:
    """The store scope (`gateway.stores.Ticket.scope`) of anonymous calls from ``address``.

    ``anon:`` cannot begin an account id (an integer), so anonymous state never meets an account's.
    """
    if not address:
        return UNKNOWN_SOURCE
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # Not an IP (a server's placeholder): digested, as it may hold what a Redis hash tag cannot.
        return "anon:" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:32]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"anon:{ip.ipv4_mapped}"  # an IPv4 client on a dual-stack socket: the same client
        return f"anon:{ipaddress.ip_network(f'{ip}/{IPV6_PREFIX}', strict=False)}"
    return f"anon:{ip}"
