"""The soak's load: its policy, the mix of requests and what each must get, a keep-alive connection."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from gateway.signing import percent_encode, sign_request_v1, sign_request_v3


@dataclass(frozen=True)
class Plan:
    """How long and how hard (tests/test_soak.py reads it from SOAK_* variables)."""

    minutes: float = 10.0
    rate: float = 400.0  # requests per second, all connections together
    connections: int = 16
    recycle: int = 200  # requests per connection before a new one
    sample: float = 15.0  # seconds between samples
    seed: int | None = None


VERSION = "2014-05-26"
KEYS = {"LTAIsoak": "soak-secret", "LTAIthrottled": "throttled-secret"}
POLICY = """
[[accounts]]
id = 9001
name = "soak@example.com"
real_name_verified = true
balance = 1000.0

[[accounts]]
id = 9002
name = "throttled@example.com"
real_name_verified = true
balance = 1000.0

[[access_keys]]
id = "LTAIsoak"
secrets = ["soak-secret"]
account = 9001

[[access_keys]]
id = "LTAIthrottled"
secrets = ["throttled-secret"]
account = 9002
quota = "20/second"

[apis."2014-05-26".DescribeRegions]
params.AcceptLanguage = { type = "String", enum = ["zh-CN", "en-US"] }

[apis."2014-05-26".DescribeInstances]
params.InstanceId = { type = "String", repeated = true }
params.PageSize = { type = "Integer", min = 1, max = 100 }

[apis."2014-05-26".CreateOrder]
idempotent = true
params.Amount = { type = "Integer", required = true, min = 1 }
"""
MIX = {"valid": 45, "replay": 10, "bad-sig": 10, "throttled": 15, "token-new": 8, "token-retry": 12}
EXPECTED: dict[str, set[tuple[int, str | None]]] = {
    "valid": {(200, None)},
    "replay": {(400, "SignatureNonceUsed")},
    "bad-sig": {(400, "IncompleteSignature")},
    "throttled": {(200, None), (400, "Throttling")},
    "token-new": {(200, None)},
    "token-retry": {(200, None), (403, "LastTokenProcessing")},
}
RSS_LIMIT = 0.10


@dataclass
class Answer:
    status: int
    code: str | None
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reopened = 0

    async def send(self, head: str, body: bytes = b"") -> Answer:
        for attempt in (1, 2):
            if self.writer is None or self.reader is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(head.encode() + body)
                await self.writer.drain()
                raw_head = await self.reader.readuntil(b"\r\n\r\n")
                lines = raw_head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                answer_body = await self.reader.readexactly(int(headers.get("content-length", "0")))
                status = int(lines[0].split(" ", 2)[1])
                code = None
                if status >= 400:
                    marker = answer_body.find(b'"Code":"')
                    code = answer_body[marker + 8:answer_body.index(b'"', marker + 8)].decode() if marker >= 0 else "?"
                if headers.get("connection", "").lower() == "close":
                    self.close()
                return Answer(status, code, answer_body)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                # The server closed a kept-alive connection between two requests: a retry is safe only
                # if nothing was answered, which is the case here (no head was read).
                self.close()
                self.reopened += 1
                if attempt == 2:
                    raise ConnectionError(f"connection failed twice: {exc!r}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Tally:
    by_kind: Counter[tuple[str, int, str | None]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, int, str | None]] = field(default_factory=Counter)
    unexpected_5xx: int = 0
    token_mismatch: int = 0
    connection_errors: int = 0
    latencies: list[float] = field(default_factory=list)  # this window's, in ms
    requests: int = 0


class Mix:
    """Draws and signs the next request of each kind; remembers what replays and retries need."""

    def __init__(self, host: str, rng: random.Random) -> None:
        self.host, self.rng = host, rng
        self.admitted: deque[str] = deque(maxlen=2000)  # heads of admitted V1 GETs, for replays
        self.tokens: deque[tuple[dict[str, str], bytes]] = deque(maxlen=500)  # (params, first answer)
        self.kinds = list(MIX)
        self.weights = list(MIX.values())

    def v1(self, params: dict[str, str], key: str = "LTAIsoak", secret: str | None = None) -> str:
        signed = sign_request_v1({**params, "Version": VERSION, "Format": "JSON"}, access_key_id=key,
                                 secret=secret or KEYS[key])
        query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in signed.items())
        return f"GET /?{query} HTTP/1.1\r\nHost: {self.host}\r\n\r\n"

    def v3(self, action: str) -> str:
        headers = sign_request_v3(method="GET", host=self.host, query={}, action=action, version=VERSION,
                                  access_key_id="LTAIsoak", secret=KEYS["LTAIsoak"])
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"GET / HTTP/1.1\r\n{lines}\r\n"

    def draw(self) -> tuple[str, str, dict[str, str] | None]:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "replay" and not self.admitted:
            kind = "valid"
        if kind == "token-retry" and not self.tokens:
            kind = "token-new"
        action = self.rng.choice(["DescribeRegions", "DescribeRegions", "DescribeInstances"])
        if kind == "valid":
            return kind, (self.v3(action) if self.rng.random() < 0.25 else self.v1({"Action": action})), None
        if kind == "replay":
            return kind, self.rng.choice(self.admitted), None
        if kind == "bad-sig":
            return kind, self.v1({"Action": action}, secret="not-the-secret"), None
        if kind == "throttled":
            return kind, self.v1({"Action": "DescribeRegions"}, key="LTAIthrottled"), None
        if kind == "token-new":
            params = {"Action": "CreateOrder", "Amount": str(self.rng.randint(1, 99)), "ClientToken": uuid.uuid4().hex}
            return kind, self.v1(params), params
        params, _ = self.rng.choice(self.tokens)
        return kind, self.v1(params), params
