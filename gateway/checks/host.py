"""GATEWAY_HOSTS: the Host a request addresses must be one this deployment answers for.

V3 signs ``host``, so this binds a V3 signature to this deployment: a request signed for another
gateway sharing the keys (with a nonce store of its own) is refused here. Version 1.0 signs no host,
so for it this only refuses a request addressed elsewhere; a V1 request captured on its way to
another deployment can still be replayed here with a Host rewritten to this one.
"""

from __future__ import annotations

from gateway.call import Call
from gateway.errors import BadInput


def split_host(host: str) -> tuple[str, str | None]:
    """``name`` and ``port`` (None when none is given) of a Host value or a GATEWAY_HOSTS entry, lower-cased.

    An IPv6 address keeps its brackets (``[::1]:8080`` is ``[::1]``, ``8080``); a bare one, as an
    entry may spell it, gets them. A port that is not digits makes the whole value the name, which
    then matches no entry.
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return (name + "]", port) if rest in ("", f":{port}") else (host, None)
    if host.count(":") > 1:
        return f"[{host}]", None
    name, colon, port = host.partition(":")
    if not colon:
        return name, None
    return (name, port) if port.isascii() and port.isdigit() else (host, None)


class Host:
    """Refuses a request whose Host is not in GATEWAY_HOSTS (only built when that is set)."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        names, exact = set(), set()
        for entry in hosts:
            name, port = split_host(entry)
            if port is None:
                names.add(name)  # a name alone matches it on any port
            else:
                exact.add((name, port))
        self.names, self.exact = frozenset(names), frozenset(exact)

    def __call__(self, call: Call) -> None:
        # Repeated Host headers arrive folded ("a,b") and so match nothing.
        name, port = split_host(call.headers.get("host", ""))
        if name not in self.names and (port is None or (name, port) not in self.exact):
            raise BadInput("the Host is not one of GATEWAY_HOSTS")
