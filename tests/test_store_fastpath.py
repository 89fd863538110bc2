"""The Redis store's own connection for script calls (gateway/stores/wire.py, #14).

The framing on its own, over a recording transport: replies split across reads, several in one read,
error replies as redis-py's exceptions, and a stream that cannot be parsed. Then the store over a
real redis-server on every transport redis-py opens for it: ``unix://``, AUTH, and TLS (``rediss://``
with the server's CA), since the connection is redis-py's until its handshake is done.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gateway.rates import Rate
from gateway.stores import Outcome, RedisStore, StoreUnavailable, Take, Ticket, open_store
from gateway.stores.keys import Keys
from gateway.stores.redis import admit_call
from gateway.stores.wire import Wire
from tests.support.redis import RedisServer
from tests.support.servers import free_port


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def wired() -> tuple[Wire[str], Recording, list[tuple[str, Any]], list[tuple[list[str], Exception]]]:
    replies: list[tuple[str, Any]] = []
    lost: list[tuple[list[str], Exception]] = []
    wire: Wire[str] = Wire(lambda item, reply: replies.append((item, reply)),
                           lambda items, exc: lost.append((items, exc)))
    transport = Recording()
    wire.connection_made(transport)
    return wire, transport, replies, lost


def test_replies_reach_their_items_in_order_however_the_bytes_are_cut(wired: Any) -> None:
    wire, transport, replies, lost = wired
    wire.write(b"<three commands>", ["a", "b", "c"])
    assert transport.written == [b"<three commands>"]
    stream = b"*4\r\n:0\r\n:0\r\n:-1\r\n$0\r\n\r\n" + b"$5\r\nhello\r\n" + b":42\r\n"
    for cut in (3, 17, 30):  # a reply split across reads, and two in one read
        wire.data_received(stream[:cut])
        stream = stream[cut:]
    wire.data_received(stream)
    assert replies == [("a", [0, 0, -1, b""]), ("b", b"hello"), ("c", 42)]
    assert not wire.sent and not lost and wire.is_open


def test_error_replies_become_redis_py_exceptions(wired: Any) -> None:
    wire, _, replies, _ = wired
    wire.write(b"", ["noscript", "wrongtype"])
    wire.data_received(b"-NOSCRIPT No matching script.\r\n-WRONGTYPE Operation against a key\r\n")
    (_, first), (_, second) = replies
    assert isinstance(first, NoScriptError)
    assert type(second) is ResponseError and "WRONGTYPE" in str(second)


def test_an_unparsable_stream_closes_the_connection_and_fails_the_rest(wired: Any) -> None:
    wire, transport, replies, lost = wired
    wire.write(b"", ["answered", "x", "y"])
    wire.data_received(b":1\r\n?garbage\r\n")
    assert replies == [("answered", 1)]
    [(items, exc)] = lost
    assert items == ["x", "y"] and isinstance(exc, RedisConnectionError)
    assert transport.closed and not wire.is_open
    with pytest.raises(RedisConnectionError):
        wire.write(b"more", ["z"])


def test_a_reply_nobody_asked_for_closes_the_connection(wired: Any) -> None:
    wire, transport, replies, lost = wired
    wire.data_received(b"+OK\r\n")
    assert not replies and not lost and transport.closed


def test_a_closed_connection_fails_what_awaits_a_reply_once(wired: Any) -> None:
    wire, transport, _, lost = wired
    wire.write(b"", ["p", "q"])
    wire.connection_lost(None)
    wire.connection_lost(None)
    assert [items for items, _ in lost] == [["p", "q"]]
    assert isinstance(lost[0][1], RedisConnectionError) and transport.closed


def test_admit_call_lays_out_keys_and_args_as_admit_lua_reads_them() -> None:
    from gateway.stores import IdempotencyClaim

    flow, quota = Take("flow", "flow:*", Rate(10, 1_000)), Take("quota", "quota:AK", Rate(5, 60_000))
    claim = IdempotencyClaim("tok", "owner", "fp", 30_000, lease="L")
    ticket = Ticket("7", "AK:n1", 60_000, (flow, quota), claim, timestamp_ms=123)
    keys, args, pair = admit_call(Keys("gw"), ticket, [flow], [quota], scoped=True, run_id="run")
    assert keys == ["gw:{7}:n:AK:n1", "gw:{7}:h", "gw:{f:flow:*}", "gw:{7}:q:quota:AK", "gw:{7}:i:tok", "gw:{7}:c:L"]
    assert args == [1, 60_000, 123, "run", 5_000, 2_000, 7 * 86_400_000, 1, 1, 1, 10, 1_000, 5, 60_000,
                    "owner", "fp", 30_000, "L"]
    assert pair == keys[-2:]
    keys, args, pair = admit_call(Keys("gw"), ticket, [flow], [], scoped=False, run_id="")
    assert (keys, args[:4], args[7:], pair) == (["gw:{f:flow:*}"], [0, 60_000, 123, ""], [1, 0, 0, 10, 1_000], [])


# --- the store over each transport redis-py opens ---


def ticket(nonce: str | None = None) -> Ticket:
    takes = (Take("quota", "q", Rate(1_000, 3_600_000)),)
    return Ticket("1001", nonce or f"AK:{uuid.uuid4().hex}", 60_000, takes, timestamp_ms=time.time_ns() // 10**6)


async def admits_once(url: str) -> None:
    """Admitted through the pipeline's own connection, a replay refused, and closed cleanly."""
    store = open_store(url, timeout=2.0)
    assert isinstance(store, RedisStore)
    try:
        results = await asyncio.gather(store.admit(ticket("AK:once")), *(store.admit(ticket()) for _ in range(9)))
        assert {r.outcome for r in results} == {Outcome.ADMITTED}
        assert (await store.admit(ticket("AK:once"))).outcome is Outcome.NONCE_USED
    finally:
        await store.aclose()


@pytest.fixture
def unix_socket() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="redis-sock-") as folder:
        path = str(Path(folder) / "redis.sock")
        server = RedisServer(extra=["--unixsocket", path, "--unixsocketperm", "700"])
        server.start()
        try:
            yield path
        finally:
            server.close()


async def test_unix_socket(unix_socket: str) -> None:
    await admits_once(f"unix://{unix_socket}?db=0")


async def test_auth_from_the_url() -> None:
    # A user of its own (the default user stays open for the readiness PING).
    server = RedisServer(extra=["--user", "gw", "on", ">s3cret", "~*", "+@all"])
    server.start()
    try:
        await admits_once(f"redis://gw:s3cret@127.0.0.1:{server.port}/0")
        with pytest.raises(StoreUnavailable):  # a wrong password fails the call, as redis-py's would
            await admits_once(f"redis://gw:wrong@127.0.0.1:{server.port}/0")
    finally:
        server.close()


def _certificates(folder: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")


async def test_tls() -> None:
    with tempfile.TemporaryDirectory(prefix="redis-tls-") as name:
        folder = Path(name)
        _certificates(folder)
        tls_port = free_port()
        server = RedisServer(extra=["--tls-port", str(tls_port), "--tls-cert-file", str(folder / "server.crt"),
                                    "--tls-key-file", str(folder / "server.key"),
                                    "--tls-ca-cert-file", str(folder / "ca.crt"), "--tls-auth-clients", "no"])
        try:
            server.start()
        except RuntimeError:
            pytest.skip("this redis-server was built without TLS")
        try:
            ca = quote(str(folder / "ca.crt"))
            await admits_once(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required")
        finally:
            server.close()
