"""The soak's run: the load at a steady rate over keep-alive connections, and the samples taken meanwhile
(each worker's RSS, CPU and descriptors, Redis's memory and keys, the window's rate and latencies)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.procfs import cpu_seconds, rss_bytes
from tests.support.redis import RedisServer, command
from tests.support.serve import Served
from tests.support.soak.mix import EXPECTED, Connection, Mix, Plan, Tally


def rss_kib(pid: int) -> int:
    return rss_bytes(pid) // 1024


def worker_pids(served: Served) -> list[int]:
    return sorted(served.children())




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


async def load(served: Served, args: Plan, redis: RedisServer) -> tuple[Tally, list[Sample], list[int]]:
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
