"""The soak (``make soak``): minutes of mixed load against ``gateway serve --workers 2`` on Redis.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 400] [--connections 16] [--sample 15]

Starts a private redis-server and ``gateway serve --workers 2`` in front of the bundled demo service,
with a policy of its own (written to a temporary file): a key without limits, a throttled key
(quota 20/second), and the demo's three APIs, CreateOrder idempotent. Then, over keep-alive
connections renewed every ``--recycle`` requests (so that both workers get some), at a steady rate,
a mix of:

    valid       fresh signed calls, V1 and V3 (DescribeRegions, DescribeInstances)    -> 200
    replay      a call admitted before, sent again verbatim                           -> SignatureNonceUsed
    bad-sig     signed with the wrong secret                                          -> IncompleteSignature
    throttled   the throttled key, faster than its quota                              -> 200 or Throttling
    token-new   CreateOrder with a fresh ClientToken                                  -> 200
    token-retry CreateOrder again with a token answered before (new nonce)            -> the first answer,
                                                                                         or LastTokenProcessing

Every ``--sample`` seconds it reads each worker's RSS, CPU time and open descriptors (/proc: its own,
its Redis connections, its callers' connections), Redis's memory and key count, and the window's rate
and latencies; the sample line prints descriptors as (own, redis, callers) per worker. The first
minute (or tenth of the run, whichever is shorter) is warm-up; growth is measured from its end to the
last sample. Pass: no unexpected 5xx, no unexpected answer, no worker restarted, each worker's RSS
grown by less than 10 %, no growth of a worker's own descriptors (callers' connections move between
workers, the Redis pool follows the peak concurrency up to its bound). Exit status 1 otherwise.
Not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the same redis-server and gateway serve helpers as the tests

from gateway.signing import percent_encode, sign_request_v1, sign_request_v3  # noqa: E402
from tests.support.redis import RedisServer, command  # noqa: E402
from tests.support.serve import Served, gateway_serve, serve_env  # noqa: E402

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


def worker_pids(served: Served) -> list[int]:
    return sorted(served.children())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Descriptors:
    """A worker's open descriptors, by what they are."""

    total: int
    redis: int  # connections to Redis: the store's pool, which follows the peak concurrency (bound 64)
    clients: int  # callers' connections: they move between workers as the load generator renews them

    @property
    def own(self) -> int:
        """Everything else (the listening socket, the event loop, files, the proxy's pool): must not grow."""
        return self.total - self.redis - self.clients


def descriptors(pid: int, redis_port: int, gateway_port: int) -> Descriptors:
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(fd.readlink().name)
        except OSError:
            continue  # closed meanwhile
    sockets = {link[8:-1] for link in links if link.startswith("socket:[")}
    redis = clients = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in sockets:
                continue
            local, remote, state = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            if remote == redis_port:
                redis += 1
            elif local == gateway_port and state != "0A":  # 0A: LISTEN
                clients += 1
    return Descriptors(len(links), redis, clients)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def redis_info(port: int) -> tuple[int, int]:
    memory = command(port, "INFO", "memory").decode()
    used = next(int(line.split(":")[1]) for line in memory.splitlines() if line.startswith("used_memory:"))
    keys = int(command(port, "DBSIZE").decode().strip().lstrip(":"))
    return used, keys


@dataclass
class Sample:
    at: float
    rps: float
    p50: float
    p99: float
    rss: dict[int, int]
    fds: dict[int, Descriptors]
    cpu: dict[int, float]
    parent_rss: int
    redis_memory: int
    redis_keys: int


async def load(served: Served, args: argparse.Namespace, redis: RedisServer) -> tuple[Tally, list[Sample], list[int]]:
    host, port = "127.0.0.1", int(served.url.rsplit(":", 1)[1])
    mix = Mix(f"{host}:{port}", random.Random(args.seed))
    tally = Tally()
    first_answers: dict[str, bytes] = {}
    deadline = time.monotonic() + args.minutes * 60
    interval = args.connections / args.rate  # each connection's pace

    async def connection_loop() -> None:
        conn = Connection(host, port)
        next_at = time.monotonic() + random.random() * interval
        sent = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            sent += 1
            if sent % args.recycle == 0:
                # A client pool renews its connections now and then; each new one is accepted by
                # whichever worker wakes first, which spreads the load over both (16 connections
                # opened at once tend to land on one worker and stay there).
                conn.close()
            kind, head, params = mix.draw()
            began = time.perf_counter()
            try:
                answer = await conn.send(head)
            except (OSError, ConnectionError):
                tally.connection_errors += 1
                conn.close()
                continue
            tally.latencies.append((time.perf_counter() - began) * 1000)
            tally.requests += 1
            outcome = (kind, answer.status, answer.code)
            tally.by_kind[outcome] += 1
            if (answer.status, answer.code) not in EXPECTED[kind]:
                tally.unexpected[outcome] += 1
                if answer.status >= 500:
                    tally.unexpected_5xx += 1
            if answer.status != 200:
                continue
            if kind == "valid" and head.startswith("GET /?"):
                mix.admitted.append(head)
            elif kind == "token-new" and params is not None:
                first_answers[params["ClientToken"]] = answer.body
                mix.tokens.append((params, answer.body))
            elif kind == "token-retry" and params is not None and answer.body != first_answers[params["ClientToken"]]:
                tally.token_mismatch += 1  # a retry ran the service again, or answered something else
        conn.close()

    samples: list[Sample] = []
    first_pids = worker_pids(served)

    async def sampler() -> None:
        last = (time.monotonic(), 0)
        while time.monotonic() < deadline:
            await asyncio.sleep(min(args.sample, max(0.1, deadline - time.monotonic())))
            now = time.monotonic()
            latencies, tally.latencies = tally.latencies, []
            pids = worker_pids(served)
            memory, keys = redis_info(redis.port)
            quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
            sample = Sample(now, (tally.requests - last[1]) / (now - last[0]), quantiles[49], quantiles[98],
                            {pid: rss_kib(pid) for pid in pids},
                            {pid: descriptors(pid, redis.port, port) for pid in pids},
                            {pid: cpu_seconds(pid) for pid in pids}, rss_kib(served.process.pid), memory, keys)
            last = (now, tally.requests)
            samples.append(sample)
            print(f"  {now - start:6.0f} s  {sample.rps:6.0f} req/s  p50 {sample.p50:5.1f} ms  "
                  f"p99 {sample.p99:6.1f} ms  RSS {sorted(sample.rss.values())} KiB  "
                  f"fds {[(d.own, d.redis, d.clients) for _, d in sorted(sample.fds.items())]}  "
                  f"redis {memory / 1e6:.1f} MB {keys} keys  unexpected {sum(tally.unexpected.values())}", flush=True)

    start = time.monotonic()
    await asyncio.gather(sampler(), *(connection_loop() for _ in range(args.connections)))
    return tally, samples, first_pids


def report(tally: Tally, samples: list[Sample], first_pids: list[int], last_pids: list[int], args: argparse.Namespace,
           log: str) -> bool:
    warm = min(60.0, args.minutes * 6)  # the first minute, or a tenth of the run
    start = samples[0].at - args.sample
    baseline = next((s for s in samples if s.at - start >= warm), samples[0])
    final = samples[-1]
    print(f"\n{tally.requests:,} requests in {args.minutes:g} min over {args.connections} keep-alive connections "
          f"(target {args.rate}/s, mean {tally.requests / (args.minutes * 60):,.0f}/s)")
    print("| kind | status | code | count |\n|---|---|---|---|")
    for (kind, status, code), count in sorted(tally.by_kind.items()):
        print(f"| {kind} | {status} | {code or ''} | {count:,} |")
    growth = {pid: (final.rss.get(pid, 0) - baseline.rss.get(pid, 0)) / max(baseline.rss.get(pid, 1), 1)
              for pid in baseline.rss}
    fd_growth = {pid: final.fds[pid].own - baseline.fds[pid].own for pid in baseline.fds if pid in final.fds}
    restarted = first_pids != last_pids
    tracebacks = log.count("Traceback")
    print(f"\nafter warm-up ({baseline.at - start:.0f} s) -> end ({final.at - start:.0f} s):")
    for pid in baseline.rss:
        peak = max(s.rss.get(pid, 0) for s in samples)
        print(f"  worker {pid}: RSS {baseline.rss[pid]:,} -> {final.rss.get(pid, 0):,} KiB ({growth[pid]:+.1%}), "
              f"max {peak:,} KiB; own fds {baseline.fds[pid].own} -> {final.fds[pid].own}, Redis connections "
              f"{baseline.fds[pid].redis} -> {final.fds[pid].redis} (pool bound 64), callers' connections "
              f"{baseline.fds[pid].clients} -> {final.fds[pid].clients}; CPU {final.cpu.get(pid, 0):.0f} s")
    print(f"  parent: RSS {baseline.parent_rss:,} -> {final.parent_rss:,} KiB")
    print(f"  redis: {baseline.redis_memory / 1e6:.1f} -> {final.redis_memory / 1e6:.1f} MB, "
          f"{baseline.redis_keys:,} -> {final.redis_keys:,} keys (nonces live until their Timestamp leaves the skew)")
    print(f"  latency p50/p99 over the samples: {statistics.median(s.p50 for s in samples):.1f} / "
          f"{max(s.p99 for s in samples):.1f} ms (worst window)")
    print(f"  unexpected answers: {dict(tally.unexpected)}; unexpected 5xx: {tally.unexpected_5xx}; "
          f"token retries answered differently: {tally.token_mismatch}; connection errors: {tally.connection_errors}")
    print(f"  workers {first_pids} -> {last_pids}{' (RESTARTED)' if restarted else ''}; tracebacks in the log: "
          f"{tracebacks}")
    checks = {
        "no unexpected 5xx": tally.unexpected_5xx == 0,
        "no unexpected answer": not tally.unexpected and tally.token_mismatch == 0,
        "no connection error": tally.connection_errors == 0,
        "no worker restarted": not restarted,
        f"RSS growth under {RSS_LIMIT:.0%}": all(g < RSS_LIMIT for g in growth.values()),
        "no fd growth (the Redis pool within its bound)": all(g <= 0 for g in fd_growth.values())
        and all(d.redis <= 64 for d in final.fds.values()),
        "no traceback": tracebacks == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second, all connections together")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--recycle", type=int, default=200, help="requests per connection before a new one")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    redis = RedisServer()
    redis.start()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
            policy = Path(workdir) / "policy.toml"
            policy.write_text(POLICY)
            env = serve_env(GATEWAY_CONFIG=str(policy), GATEWAY_REDIS_URL=redis.url, GATEWAY_ACCESS_LOG="false",
                            GATEWAY_REDIS_PREFIX="soak")
            with gateway_serve(env, ["--workers", "2", "--log-level", "warning"]) as served:
                deadline = time.monotonic() + 20
                while len(worker_pids(served)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                print(f"soak: {args.minutes:g} min at {args.rate:g} req/s against {served.url} "
                      f"(workers {worker_pids(served)}, redis :{redis.port})", flush=True)
                tally, samples, first_pids = asyncio.run(load(served, args, redis))
                last_pids = worker_pids(served)
                log = served.output()
    finally:
        redis.close()
    return 0 if report(tally, samples, first_pids, last_pids, args, log) else 1


if __name__ == "__main__":
    sys.exit(main())
