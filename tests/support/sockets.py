"""Raw sockets against the gateway's server: how long until it closes one, and whether it has yet."""

from __future__ import annotations

import select
import socket
import time


def seconds_until_closed(sock: socket.socket, began: float, *, trickle: bytes = b"", every: float = 0.05,
                         limit: float = 8.0) -> tuple[float, int]:
    """Seconds from ``began`` until the server closes ``sock`` (EOF or reset), sending ``trickle`` a
    byte every ``every`` seconds meanwhile; and how many bytes were sent. Nothing may come back."""
    sent = 0
    while time.monotonic() - began < limit:
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent:sent + 1])
            except OSError:
                return time.monotonic() - began, sent
            sent += 1
        if select.select([sock], [], [], every)[0]:
            try:
                data = sock.recv(65_536)
            except ConnectionResetError:
                data = b""
            assert data == b"", f"an answer to an unfinished head: {data[:200]!r}"
            return time.monotonic() - began, sent
    return float("inf"), sent


def is_open(sock: socket.socket) -> bool:
    """Nothing to read yet (not closed by the server), without waiting."""
    return not select.select([sock], [], [], 0)[0]
