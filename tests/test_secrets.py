"""Secrets never reach a log line, and signatures are compared in constant time (CONTRACT §5).

Every logger is turned up to DEBUG (the root, ``gateway.*``, ``uvicorn.*``, and whatever the
libraries registered: redis, aiohttp, asyncio, ...) with a handler that keeps each formatted line,
tracebacks included. Then signed traffic of every kind goes through live gateways: a success and
every refusal of the error table in XML and JSON (tests/test_error_rows.py's `PROVOKE`), V1 GET and
POST, V3 GET and POST with good and bad signatures, replays, an InternalError inside the gateway
itself, a Redis store that is down, and the reverse proxy with its upstream answering, refusing and
gone. No line may hold an access-key secret or any signature sent (in any of its wire spellings).

(The echo service of the tests puts a secret in its own crash message, to prove the gateway keeps it
out of the body; the gateway logs a wrapped service's exception as raised, so that service is
replaced here by one that crashes without it. SECURITY.md says so.)

Constant time is checked by reading gateway/signing: a timing test would be flaky on shared CI.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import gateway
from gateway import GatewayMiddleware, Settings
from gateway.catalog import SEED
from gateway.errors import Err
from gateway.policy import Policy
from gateway.proxy import ProxyApp
from gateway.signing import percent_encode, sign_request_v3
from gateway.stores import open_store
from tests.conftest import DATA, LiveGateway
from tests.support.apps import EchoService
from tests.support.client import VERSION, Answer, get, post, query, signed_params, timestamp
from tests.support.fuzzing.wire import RawRequest, address_of, exchange
from tests.support.keys import SECRETS
from tests.support.redis import RedisServer
from tests.support.servers import free_port, serve_in_thread, wait_until
from tests.support.upstream import Upstream
from tests.test_error_rows import FORMATS, PROVOKE

GATEWAY_SOURCE = Path(gateway.__file__).parent
ALL_SECRETS = sorted(set(SECRETS.values()) | {"alice-old-secret"})


class QuietCrash(EchoService):
    """The tests' echo service, crashing without a secret in its message."""

    async def act(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        if action == "Crash":
            raise RuntimeError("boom")
        return await super().act(action, params)


#: The test's own HTTP client logs the URLs it requests, Signature included: that is the caller's log,
#: not the gateway's (whose proxy client is aiohttp, captured).
CALLER_LOGGERS = ("httpx", "httpcore")


class Capture(logging.Handler):
    """Keeps every line logged anywhere in the process but by the caller's HTTP client, formatted with
    its arguments and any traceback. `turn_up` sets DEBUG on every logger and attaches itself where
    records end up: the root, and each logger that does not propagate but has handlers of its own.
    A logger silenced by having no handler at all stays so: that is how uvicorn turns its access log
    off (``uvicorn.access`` with no handler and no propagation; attaching one turns it back on, which
    `test_uvicorn_access_lines_never_carry_a_signature` is about). Call it again after a uvicorn server
    starts, since uvicorn's dictConfig resets its own loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.saved: dict[str, tuple[int, bool, bool]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in CALLER_LOGGERS:
            self.lines.append(self.format(record))

    def _loggers(self) -> dict[str, logging.Logger]:
        names = ["", "gateway", "gateway.access", "gateway.proxy", "gateway.store", "gateway.stores", "uvicorn",
                 "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncio", "aiohttp", "redis",
                 *logging.root.manager.loggerDict]
        return {name: logging.getLogger(name) for name in names}

    def turn_up(self) -> None:
        logging.disable(logging.NOTSET)
        for name, logger in self._loggers().items():
            self.saved.setdefault(name, (logger.level, logger.disabled, logger.propagate))
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            active = logger is logging.root or (not logger.propagate and logger.handlers)
            if active and self not in logger.handlers:
                logger.addHandler(self)

    def restore(self) -> None:
        for name, logger in self._loggers().items():
            logger.removeHandler(self)
            if name in self.saved:
                logger.setLevel(self.saved[name][0])
                logger.disabled = self.saved[name][1]


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    handler.turn_up()
    try:
        yield handler
    finally:
        handler.restore()


class Traffic:
    """Sends requests and remembers every signature it sent, in every spelling a log could hold."""

    def __init__(self) -> None:
        self.signatures: set[str] = set()
        self.answers: list[Answer] = []

    def note(self, params: dict[str, str]) -> dict[str, str]:
        signature = params.get("Signature")
        if signature:
            self.signatures |= {signature, percent_encode(signature), signature.replace("+", " ")}
        return params

    def v3(self, url: str, *, method: str = "GET", body: bytes = b"", secret: str = SECRETS["LTAIalice"],
           params: dict[str, str] | None = None) -> Answer:
        host = url.split("://", 1)[1]
        headers = sign_request_v3(method=method, host=host, query=params or {}, body=body, action="DescribeRegions",
                                  version=VERSION, access_key_id="LTAIalice", secret=secret)
        self.signatures.add(headers["authorization"].rsplit("Signature=", 1)[1])
        if body:
            headers["content-type"] = "application/x-www-form-urlencoded"
        response = httpx.request(method, f"{url}/" + (f"?{query(params)}" if params else ""), headers=headers,
                                 content=body)
        answer = Answer(response.status_code, response.headers, response.content)
        self.answers.append(answer)
        return answer


@pytest.fixture(autouse=True)
def _record_signatures(monkeypatch: pytest.MonkeyPatch, traffic: Traffic) -> None:
    """Every request PROVOKE signs goes through tests.support.client: note its signature there."""
    import tests.support.client as client
    import tests.test_error_rows as rows

    signer = client.signed_params

    def noting(*args: Any, **kwargs: Any) -> dict[str, str]:
        return traffic.note(signer(*args, **kwargs))

    monkeypatch.setattr(client, "signed_params", noting)
    monkeypatch.setattr(rows, "signed_params", noting)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


def _echo_gateway(policy: Policy, store_url: str | None) -> GatewayMiddleware:
    config = Settings(config=str(DATA / "policy.toml"), redis_url=store_url, access_log=True)
    return GatewayMiddleware(QuietCrash(), settings=config, policy=policy,
                             store=open_store(store_url, prefix=f"s{free_port()}", timeout=0.25))


def _every_kind(url: str, service: EchoService, traffic: Traffic) -> None:
    live = LiveGateway(url, service)
    for err, provoke in PROVOKE.items():
        if err is Err.SERVICE_UNAVAILABLE:
            continue  # the dead store below
        for fmt in FORMATS:
            traffic.answers.append(provoke(live, fmt))
    params = traffic.note(signed_params("DescribeRegions", method="POST"))
    traffic.answers += [post(url, params), post(url, params)]  # admitted, then replayed
    traffic.v3(url)
    traffic.v3(url, method="POST", body=b"AcceptLanguage=en-US")
    traffic.v3(url, secret="not-the-secret")
    stale = traffic.note(signed_params("DescribeRegions", timestamp=timestamp(-7200)))
    traffic.answers.append(get(url, stale))
    # An InternalError raised inside the gateway itself (tests/test_fuzz.py pins the bug): logged
    # with its traceback, which must hold nothing secret either.
    signed = traffic.note(signed_params("DescribeRegions", method="POST"))
    exchange(address_of(url), RawRequest(b"POST", f"/?{query(signed)}".encode(), ((b"host", b"gw"),), b"a",
                                         length=b"0" * 5000 + b"1"))


def test_no_secret_or_signature_in_any_log_line(policy: Policy, redis_server: RedisServer, capture: Capture,
                                                traffic: Traffic) -> None:
    redis_server.start()
    for store_url in (None, redis_server.url):
        app = _echo_gateway(policy, store_url)
        with serve_in_thread(app) as url:
            capture.turn_up()
            _every_kind(url, app.app, traffic)  # type: ignore[arg-type]
    dead = _echo_gateway(policy, f"redis://127.0.0.1:{free_port()}/0")
    with serve_in_thread(dead) as url:
        capture.turn_up()
        traffic.answers.append(get(url, traffic.note(signed_params("DescribeRegions"))))
        traffic.v3(url)
    upstream = Upstream(delay=0.5)
    with serve_in_thread(upstream) as upstream_url:
        capture.turn_up()
        config = Settings(config=str(DATA / "policy.toml"), upstream_url=upstream_url, access_log=True,
                          upstream_read_timeout=0.2)
        proxy = GatewayMiddleware(ProxyApp(config), settings=config, policy=policy, store=open_store(None))
        with serve_in_thread(proxy) as url:
            capture.turn_up()
            for path in ("", "/echo", "/missing", "/slow", "/truncated"):
                traffic.answers.append(get(url + path, traffic.note(signed_params("DescribeRegions"))))
            traffic.v3(url)
    config = Settings(config=str(DATA / "policy.toml"), upstream_url=f"http://127.0.0.1:{free_port()}",
                      access_log=True)
    gone = GatewayMiddleware(ProxyApp(config), settings=config, policy=policy, store=open_store(None))
    with serve_in_thread(gone) as url:
        capture.turn_up()
        traffic.answers.append(get(url, traffic.note(signed_params("DescribeRegions"))))

    codes = {answer.code() for answer in traffic.answers}
    assert {err.code for err in SEED} <= codes | {None}, "every row of the table was provoked"
    assert "ServiceUnavailable" in codes and "InternalError" in codes
    text = "\n".join(capture.lines)
    assert any(line.startswith("gateway.access") for line in capture.lines)
    assert any(line.startswith("gateway.store ") for line in capture.lines), "the dead store was logged"
    assert "Traceback" in text, "the InternalErrors were logged with their tracebacks"
    assert any(line.startswith("uvicorn.error ") for line in capture.lines), "uvicorn's own lines were captured"
    assert all(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in ("gateway", "uvicorn.error", ""))
    leaked = [s for s in ALL_SECRETS if s in text]
    assert not leaked, f"secrets in the log: {leaked}"
    signed = [s for s in traffic.signatures if s in text]
    assert not signed, f"{len(signed)} of {len(traffic.signatures)} signatures in the log, e.g. {signed[:3]}"
    assert "Signature=" not in text
    print(f"\n{len(capture.lines)} log lines from {len(traffic.answers)} requests ({len(traffic.signatures)} "
          f"signature spellings): no secret, no signature")


def test_uvicorn_access_lines_never_carry_a_signature(policy: Policy, traffic: Traffic) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    app = _echo_gateway(policy, None)
    uvicorn_loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in uvicorn_loggers]
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="info")  # access log on: the default
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    access = logging.getLogger("uvicorn.access")
    keep = Keep()
    access.addHandler(keep)
    try:
        wait_until(lambda: server.started, what="uvicorn")
        answer = get(f"http://127.0.0.1:{config.port}", traffic.note(signed_params("DescribeRegions")))
        assert answer.status == 200
        wait_until(lambda: bool(lines), what="uvicorn's access line")
    finally:
        server.should_exit = True
        thread.join(10)
        for logger, (handlers, level, propagate) in zip(uvicorn_loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate  # as the session's other servers left them
            logger.setLevel(level)
    leaked = [line for line in lines if any(s in line for s in traffic.signatures)]
    assert not leaked, leaked


# --- constant-time comparison, by reading the source --------------------------------------------------

#: Names that hold a signature, or the MAC it is checked against, in gateway/signing and the layers.
SIGNATURE_NAMES = frozenset({"signature", "claimed", "claimed_bytes", "expected", "digest", "mac"})


def _tainted(node: ast.AST) -> bool:
    """Whether ``node`` reads a signature value (its length, public anyway, does not count)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return False
    if isinstance(node, ast.Name) and node.id in SIGNATURE_NAMES:
        return True
    if isinstance(node, ast.Attribute) and node.attr in SIGNATURE_NAMES:
        return True
    return any(_tainted(child) for child in ast.iter_child_nodes(node))


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("module, function", [("v1.py", "verify_v1"), ("v3.py", "verify_v3")])
def test_signatures_are_compared_with_hmac_compare_digest(module: str, function: str) -> None:
    verify = _functions(GATEWAY_SOURCE / "signing" / module)[function]
    calls = [node for node in ast.walk(verify) if isinstance(node, ast.Call)]
    compare_digest = [c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "compare_digest"
                      and isinstance(c.func.value, ast.Name) and c.func.value.id == "hmac"]
    assert compare_digest, f"{function} does not call hmac.compare_digest"
    for call in compare_digest:  # and what it compares is the claimed signature against the MAC
        assert any(_tainted(arg) for arg in call.args), ast.unparse(call)


def test_no_signature_is_compared_with_an_operator_anywhere() -> None:
    """Across the whole package: ==, !=, <, in, ... never touch a signature (only its length may)."""
    found = []
    for path in sorted(GATEWAY_SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Compare) and any(_tainted(side) for side in (node.left, *node.comparators))
                    and not all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)):  # `is None`: no comparison
                found.append(f"{path.relative_to(GATEWAY_SOURCE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_the_taint_check_would_see_a_plain_comparison() -> None:
    leaky = ast.parse("def verify(claimed, expected):\n    return expected == claimed\n")
    compares = [n for n in ast.walk(leaky) if isinstance(n, ast.Compare)]
    assert compares and _tainted(compares[0].left)
