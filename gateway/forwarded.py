"""Who the client is, told to the service in the gateway's own client-IP headers (#16 item 12).

A client-IP header a caller wrote is a claim nobody checked, so every header of that family is removed
(`gateway.identity` owns the names) and written again here, the same in both modes: ``X-Forwarded-For``,
``X-Real-IP``, ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and RFC 7239 ``Forwarded``. The client is the
connection's peer, unless the peer is one of ``GATEWAY_TRUSTED_PROXIES``: then it is the rightmost
address of the X-Forwarded-For chain that is not itself a trusted proxy (the leftmost when all are);
a chain holding anything but IP addresses is not believed at all. `gateway serve` runs uvicorn with
``proxy_headers=False`` so that this is the only rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers = list[tuple[bytes, bytes]]

#: Client-IP and forwarding headers: never taken from the client, in any spelling.
CLIENT_IP_HEADERS = frozenset({
    b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port",
    b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip", b"x-client-ip", b"true-client-ip",
    b"x-cluster-client-ip", b"cf-connecting-ip", b"fastly-client-ip", b"x-original-forwarded-for",
})
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A handful of callers (peer, scheme, host) make nearly all requests: their headers are built once.
_CACHE: dict[tuple[str, str, bytes | None], Headers] = {}
_CACHE_SIZE = 4096


class ClientAddress:
    """Resolves a request's client address under one ``trusted_proxies`` setting."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self.trusted: tuple[Network, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def of(self, scope: Scope) -> str | None:
        """The client's address, or None when the server did not say who the peer is."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if peer is None or not self.trusted or not self._is_trusted(peer):
            return peer
        chain = [value for name, value in scope["headers"] if name.lower() == b"x-forwarded-for"]
        hops = [hop.strip() for hop in b",".join(chain).decode("latin-1").split(",")] if chain else []
        if not hops:
            return peer
        try:
            addresses = [ipaddress.ip_address(hop) for hop in hops]
        except ValueError:
            return peer  # a chain with anything but addresses in it is nobody's word
        for address in reversed(addresses):
            if not any(address in network for network in self.trusted):
                return str(address)
        return str(addresses[0])

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a unix socket's path, or a server's placeholder
            return False
        return any(address in network for network in self.trusted)


def forwarded_headers(client: str | None, scheme: str, host: bytes | None) -> Headers:
    """The gateway's client-IP headers for ``client`` reached over ``scheme`` at ``host``."""
    key = (client or "", scheme, host)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    headers: Headers = []
    params = []
    if client:
        address = client.encode("latin-1")
        headers += [(b"x-forwarded-for", address), (b"x-real-ip", address)]
        params.append(b"for=" + _node(address))
    headers.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    params.append(b"proto=" + _value(scheme.encode("latin-1")))
    if host is not None:
        headers.append((b"x-forwarded-host", host))
        params.append(b"host=" + _value(host))
    headers.append((b"forwarded", b";".join(params)))
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = headers
    return headers


def _node(address: bytes) -> bytes:
    # RFC 7239 §6: an IPv6 node is bracketed, and then (":" is no token character) quoted.
    return b'"[' + address + b']"' if b":" in address else _value(address)


def _value(value: bytes) -> bytes:
    if value and all(byte in _TOKEN for byte in value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
