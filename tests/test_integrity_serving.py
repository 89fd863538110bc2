"""Request integrity (#16), the serving side: items 14 (lingering close), 19 (body timeout, the cap
sheds stuck bodies) and 20 (repeated headers folded once, a head bound in middleware mode).

Each behaviour runs over HTTP behind the protocol `gateway serve` runs (`gateway.serving.protocol`,
in a thread), in middleware mode (GatewayMiddleware around the echo service) and proxy mode
(GatewayMiddleware around ProxyApp, in front of the tests' upstream), with short bounds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway import GatewayMiddleware, Settings
from gateway.call import Exchange
from gateway.call import folded as _folded
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.serving import Limits, protocol
from gateway.stores import open_store
from tests.conftest import DATA
from tests.support.apps import EchoService
from tests.support.client import query, signed_params
from tests.support.fuzzing.wire import RawAnswer, parse_answer
from tests.support.servers import serve_in_thread, wait_until
from tests.support.sockets import is_open, seconds_until_closed
from tests.support.upstream import Upstream

MODES = ("middleware", "proxy")
BODY_TIMEOUT = 0.5
SLACK = 2.0  # what a loaded machine may add to a timeout
MAX_BODY = 1_048_576  # the default GATEWAY_MAX_BODY_BYTES
FORM = b"application/x-www-form-urlencoded"


def _settings(**overrides: Any) -> Settings:
    return Settings(config=str(DATA / "policy.toml"), host_id="gateway.test", access_log=False,
                    body_timeout=BODY_TIMEOUT, **overrides)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(Upstream()) as url:
        yield url


class Gateway:
    def __init__(self, url: str, service: EchoService | None) -> None:
        self.url, self.service = url, service
        self.address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))


@contextmanager
def _serve(policy: Policy, mode: str, upstream_url: str, limits: Limits | None = None,
           **overrides: Any) -> Iterator[Gateway]:
    service = EchoService() if mode == "middleware" else None
    config = _settings(**overrides, **({} if service else {"upstream_url": upstream_url}))
    app = GatewayMiddleware(service or ProxyApp(config), settings=config, policy=policy, store=open_store(None))
    http = protocol(limits or Limits.from_settings(config))
    with serve_in_thread(app, http=http) as url:
        yield Gateway(url, service)


@pytest.fixture(scope="module", params=MODES)
def gw(request: pytest.FixtureRequest, policy: Policy, upstream: str) -> Iterator[Gateway]:
    """`gateway serve`'s protocol with a 0.5 s body timeout, in each mode."""
    with _serve(policy, request.param, upstream) as served:
        yield served


def post_head(length: int, *, extra: bytes = b"", method: bytes = b"POST", version: bytes = b"1.1") -> bytes:
    return (b"%s / HTTP/%s\r\nhost: gw\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n"
            % (method, version, FORM, length, extra))


def signed_body() -> bytes:
    return query(signed_params("DescribeRegions", method="POST")).encode()


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sends, and how the connection ended: "eof" or "reset"."""
    raw = b""
    while True:
        try:
            chunk = sock.recv(262_144)
        except ConnectionResetError:
            return raw, "reset"
        if not chunk:
            return raw, "eof"
        raw += chunk


# --- item 14: the answer to a body that is not read whole arrives whole ------------------------------


@pytest.mark.parametrize("size", [1536 * 1024, 3 * 1024 * 1024])
@pytest.mark.parametrize("ending", ["connection: close", "HTTP/1.0"])
def test_an_oversized_body_gets_its_whole_answer_then_a_clean_close(gw: Gateway, size: int, ending: str) -> None:
    # The answer is decided from Content-Length, before a byte of the body is read; the client writes
    # it all, then reads. Closing with the body unread in the receive buffer sends a TCP reset, which
    # makes the client's kernel drop the answer it had not read yet.
    head = post_head(size, extra=b"connection: close\r\n" if ending.startswith("connection") else b"",
                     version=b"1.0" if ending == "HTTP/1.0" else b"1.1")
    body = b"a=" + b"x" * (size - 2)
    for attempt in range(20):
        with socket.create_connection(gw.address, timeout=10) as sock:
            sock.sendall(head + body)
            raw, ending_seen = read_to_end(sock)
        answer = parse_answer(raw)
        assert answer is not None and not answer.truncated, (attempt, ending_seen, raw[:200])
        assert answer.status == 400 and b"InvalidParameter" in answer.body, answer
        assert ending_seen == "eof", (attempt, ending_seen)


def test_an_answer_sent_before_the_body_was_read_arrives_whole(gw: Gateway) -> None:
    # A PUT is refused (UnsupportedHTTPMethod) before its body is read, whatever its size.
    size = 1536 * 1024
    head = post_head(size, method=b"PUT", extra=b"connection: close\r\n")
    for attempt in range(20):
        with socket.create_connection(gw.address, timeout=10) as sock:
            sock.sendall(head + b"x" * size)
            raw, ending_seen = read_to_end(sock)
        answer = parse_answer(raw)
        assert answer is not None and not answer.truncated, (attempt, ending_seen, raw[:200])
        assert answer.status == 403 and b"UnsupportedHTTPMethod" in answer.body, answer
        assert ending_seen == "eof", (attempt, ending_seen)


def answered_then_eof(sock: socket.socket) -> RawAnswer:
    raw, ending_seen = read_to_end(sock)
    answer = parse_answer(raw)
    assert answer is not None and not answer.truncated and ending_seen == "eof", (ending_seen, raw[:200])
    return answer


def seconds_until_reset(sock: socket.socket, began: float, *, every: float = 0.1, limit: float = 6.0) -> float:
    """Seconds from ``began`` until a byte sent every ``every`` seconds is refused by a closed peer."""
    while time.monotonic() - began < limit:
        try:
            sock.send(b"x")
        except OSError:
            return time.monotonic() - began
        time.sleep(every)
    return float("inf")


def test_a_client_that_keeps_sending_after_the_answer_is_closed_after_the_linger_time(
        policy: Policy, upstream: str) -> None:
    limits = Limits(10.0, 65_536, None, body_timeout=30.0, linger_time=1.0, linger_timeout=0.5)
    with _serve(policy, "middleware", upstream, limits) as gw:
        with socket.create_connection(gw.address, timeout=10) as sock:
            sock.sendall(post_head(10 * MAX_BODY, extra=b"connection: close\r\n"))
            began = time.monotonic()
            assert answered_then_eof(sock).status == 400
            # A byte every 0.1 s never leaves a 0.5 s gap: the linger time (1 s in all) ends it, and the
            # body is read meanwhile (closed at once, the second byte would already be refused).
            seconds = seconds_until_reset(sock, began)
        assert 0.9 <= seconds <= 1.0 + SLACK, seconds


def test_a_silent_client_after_the_answer_is_closed_after_the_linger_timeout(policy: Policy, upstream: str) -> None:
    limits = Limits(10.0, 65_536, None, body_timeout=30.0, linger_time=30.0, linger_timeout=0.5)
    with _serve(policy, "middleware", upstream, limits) as gw, socket.create_connection(gw.address, timeout=10) as sock:
        sock.sendall(post_head(10 * MAX_BODY, extra=b"connection: close\r\n"))
        assert answered_then_eof(sock).status == 400
        time.sleep(1.0)  # the behaviour under test is a time: twice the linger timeout, silent
        assert seconds_until_reset(sock, time.monotonic(), every=0.05) <= SLACK


def test_what_is_discarded_while_lingering_is_bounded(policy: Policy, upstream: str) -> None:
    limits = Limits(10.0, 65_536, None, body_timeout=30.0, linger_bytes=256 * 1024)
    with _serve(policy, "middleware", upstream, limits) as gw:
        with socket.create_connection(gw.address, timeout=10) as sock:
            sock.sendall(post_head(100 * MAX_BODY, extra=b"connection: close\r\n"))
            sent = 0
            with pytest.raises(OSError):  # closed by the server once it discarded 256 KiB
                while sent < 64 * MAX_BODY:
                    sock.sendall(b"x" * 65_536)
                    sent += 65_536
        assert sent < 16 * MAX_BODY, sent


# --- item 19: bodies that never finish ---------------------------------------------------------------


@pytest.mark.parametrize("trickle", [False, True])
def test_a_body_that_never_finishes_is_closed_after_the_body_timeout(gw: Gateway, trickle: bool) -> None:
    body = signed_body()
    with socket.create_connection(gw.address, timeout=10) as sock:
        sock.sendall(post_head(1000) + body[:7])
        began = time.monotonic()
        # Trickled, a byte every 0.1 s: the timeout bounds the whole body, not the gap between bytes.
        seconds, _ = seconds_until_closed(sock, began, trickle=body[7:] if trickle else b"", every=0.1)
    assert BODY_TIMEOUT * 0.9 <= seconds <= BODY_TIMEOUT + SLACK, seconds
    if gw.service is not None:
        assert sum(gw.service.executed.values()) == 0  # the service never saw it


def test_a_body_sent_in_time_is_served(gw: Gateway) -> None:
    body = signed_body()
    with socket.create_connection(gw.address, timeout=10) as sock:
        sock.sendall(post_head(len(body), extra=b"connection: close\r\n") + body[:7])
        time.sleep(BODY_TIMEOUT / 3)  # the behaviour under test is a time: a body that arrives within it
        sock.sendall(body[7:])
        raw, _ = read_to_end(sock)
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 200, answer


@pytest.mark.parametrize("mode", MODES)
def test_a_caps_worth_of_unfinished_bodies_does_not_stop_a_signed_call(policy: Policy, upstream: str,
                                                                      mode: str) -> None:
    cap = 8
    limits = Limits(10.0, 65_536, cap, body_timeout=30.0)
    with _serve(policy, mode, upstream, limits) as gw:
        stuck = []
        try:
            for _ in range(cap):
                sock = socket.create_connection(gw.address, timeout=10)
                sock.sendall(post_head(1000) + b"RegionI")
                stuck.append(sock)
            body = signed_body()
            with socket.create_connection(gw.address, timeout=5) as sock:
                sock.sendall(post_head(len(body), extra=b"connection: close\r\n") + body)
                raw, _ = read_to_end(sock)
            answer = parse_answer(raw)
            assert answer is not None and answer.status == 200, (answer, raw[:200])
            # The longest stuck in its body made room; the others stay.
            wait_until(lambda: not is_open(stuck[0]), timeout=5, what="the oldest stuck body closed")
            assert [is_open(s) for s in stuck[1:]] == [True] * (cap - 1)
        finally:
            for sock in stuck:
                sock.close()


class _AnswersEarly:
    """Starts its answer at once, then waits for its caller to leave: an answer being produced."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"o", "more_body": True})
        # Until the test closes the socket: then the server can stop without waiting for this answer.
        while (await receive())["type"] != "http.disconnect":
            pass


def test_the_cap_never_sheds_a_connection_whose_answer_is_being_produced() -> None:
    cap = 4
    app = _AnswersEarly()
    with serve_in_thread(app, http=protocol(Limits(10.0, 65_536, cap, body_timeout=30.0))) as url:
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        busy = []
        try:
            for _ in range(cap):  # in their bodies, but answered in part already
                sock = socket.create_connection(address, timeout=10)
                sock.sendall(post_head(1000) + b"RegionI")
                wait_until(lambda s=sock: not is_open(s), timeout=5, what="the answer started")
                busy.append(sock)
            with socket.create_connection(address) as newcomer:
                seconds, _ = seconds_until_closed(newcomer, time.monotonic(), limit=3)
            assert seconds < 1.0  # the newcomer itself was closed
            assert all(s.recv(65_536).startswith(b"HTTP/1.1 200") for s in busy)
        finally:
            for sock in busy:
                sock.close()


def test_limits_carry_the_body_timeout() -> None:
    limits = Limits.from_settings(Settings(body_timeout=7.5, max_connections=5))
    assert limits.body_timeout == 7.5 and limits.max_connections == 5


# --- item 20: repeated headers -----------------------------------------------------------------------


def _fold_seconds(copies: int) -> float:
    raw = [(b"x-pad", b"a")] * copies
    best = float("inf")
    # This thread's CPU time, best of 5: what other processes of a busy machine do does not count.
    for _ in range(5):
        began = time.thread_time()
        folded = _folded(raw)
        best = min(best, time.thread_time() - began)
    assert folded == {"x-pad": ",".join(["a"] * copies)}
    return best


def test_repeated_headers_are_folded_in_linear_time() -> None:
    # Joined by repeated concatenation, 52,000 copies cost > 60 ms and 5x the copies cost ~25x the time.
    assert _fold_seconds(52_000) < 0.02
    assert _fold_seconds(50_000) / _fold_seconds(10_000) < 12


def test_folding_keeps_order_and_case() -> None:
    raw = [(b"X-A", b"1"), (b"x-b", b"2"), (b"x-a", b"3")]
    assert _folded(raw) == {"x-a": "1,3", "x-b": "2"}


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "headers": headers,
            "query_string": query(signed_params("DescribeRegions")).encode(), "http_version": "1.1",
            "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": ""}


def test_a_head_over_the_bound_is_refused_before_it_is_folded() -> None:
    raw = [(b"host", b"gw")] + [(b"x-pad", b"a")] * 52_000
    ctx = Exchange.start(_scope(raw), _no_body, "XML", None, max_header_bytes=65_536)
    assert ctx.head_too_large and ctx.headers == {}
    small = Exchange.start(_scope(raw[:100]), _no_body, "XML", None, max_header_bytes=65_536)
    assert not small.head_too_large and small.headers["x-pad"] == ",".join(["a"] * 99)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize("mode", MODES)
async def test_52000_copies_of_a_header_are_refused_at_once_through_asgi(policy: Policy, upstream: str,
                                                                       mode: str) -> None:
    config = _settings(**({"upstream_url": upstream} if mode == "proxy" else {}))
    service, proxy = EchoService(), ProxyApp(config) if mode == "proxy" else None
    app = GatewayMiddleware(proxy or service, settings=config, policy=policy, store=open_store(None))
    headers = [(b"host", b"gw")] + [(b"x-pad", b"a")] * 52_000
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    began = time.perf_counter()
    try:
        await app(_scope(headers), _no_body, send)
    finally:
        if proxy is not None:
            await proxy.aclose()
    seconds = time.perf_counter() - began
    assert sent[0]["status"] == 400 and b"InvalidParameter" in sent[1]["body"], sent
    assert seconds < 0.05, seconds
    assert sum(service.executed.values()) == 0


@pytest.fixture(scope="module", params=MODES)
def plain(request: pytest.FixtureRequest, policy: Policy, upstream: str) -> Iterator[str]:
    """GatewayMiddleware served by plain uvicorn (no `gateway serve` protocol): no head bound but ours."""
    config = _settings(**({"upstream_url": upstream} if request.param == "proxy" else {}))
    inner = EchoService() if request.param == "middleware" else ProxyApp(config)
    with serve_in_thread(GatewayMiddleware(inner, settings=config, policy=policy, store=open_store(None))) as url:
        yield url


def test_a_signed_call_with_a_head_over_the_bound_is_refused_over_http(plain: str) -> None:
    headers = [("x-pad", "a")] * 20_000  # 20,000 x 9 bytes: past the 64 KiB bound
    target = f"{plain}/?{query(signed_params('DescribeRegions', {'Format': 'JSON'}))}"
    answer = httpx.get(target, headers=headers, timeout=30)
    assert (answer.status_code, answer.json()["Code"]) == (400, "InvalidParameter"), answer.text


def test_a_signed_call_with_many_small_headers_within_the_bound_is_served(plain: str) -> None:
    headers = [("x-pad", "a")] * 1000
    target = f"{plain}/?{query(signed_params('DescribeRegions', {'Format': 'JSON'}))}"
    answer = httpx.get(target, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
