"""What one request costs in Redis: commands and round trips per request, measured on a real server.

    .venv/bin/python bench/redis_commands.py [--requests N] [--idempotent M]

Starts its own redis-server (free port, no persistence) and one ``gateway serve`` in front of the
demo service with tests/data/concurrency_policy.toml, warms both up, then sends requests one after
another, phase by phase:

* ``nonce``: DescribeRegions, a key without quota (nonce claim only), N requests;
* ``nonce+flow+quota``: DescribeInstances (API flow control) with a key that has a quota, N requests;
* ``token, first call``: CreateOrder with a fresh ClientToken each, M requests;
* ``token, replay``: the same M calls again (new nonces): the stored answers replayed;
* ``nonce replayed``: N/4 requests re-sent verbatim, refused with SignatureNonceUsed.

For each phase it reads ``INFO commandstats`` before and after (every command Redis ran, those run
inside a script included), and counts the round trips from ``MONITOR`` (commands a client sent, as
opposed to ``[0 lua]`` lines, which a script ran). Target: one round trip per admitted
non-idempotent request, two per idempotent first call (the admit, then storing the answer).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the same redis-server and gateway helpers as the tests

import httpx  # noqa: E402

from gateway.signing import percent_encode, sign_request_v1  # noqa: E402
from tests.support.processes import gateway_processes  # noqa: E402
from tests.support.redis import REDIS_CLI, RedisServer, command, wait_until  # noqa: E402

POLICY = ROOT / "tests" / "data" / "concurrency_policy.toml"
KEYS = {"load": ("LTAIload", "load-secret"), "bench": ("LTAIbench", "bench-secret")}
MARKER = "bench:phase"
# Our own measuring traffic, never counted.
OWN_COMMANDS = frozenset({"info", "echo", "monitor"})
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
_STAT = re.compile(r"^cmdstat_(?P<name>[^:]+):calls=(?P<calls>\d+)", re.MULTILINE)
_MONITOR = re.compile(r'^\d+\.\d+ \[\d+ (?P<source>[^\]]+)\] "(?P<name>[^"]+)"(?: "(?P<arg>[^"]*)")?')


@dataclass
class Phase:
    name: str
    requests: list[str]  # query strings, sent in order
    answers: Counter[str]
    commands: Counter[str]  # from INFO commandstats
    round_trips: Counter[str]  # from MONITOR: commands sent by a client
    in_scripts: int  # from MONITOR: commands a script ran


def signed(action: str, key: str, **params: str) -> str:
    access_key_id, secret = KEYS[key]
    values = sign_request_v1({"Action": action, "Version": "2014-05-26", "Format": "JSON", **params},
                             access_key_id=access_key_id, secret=secret)
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in values.items())


def commandstats(port: int) -> Counter[str]:
    text = command(port, "INFO", "commandstats").decode()
    return Counter({m["name"]: int(m["calls"]) for m in _STAT.finditer(text)})


def outcome(response: httpx.Response) -> str:
    if response.status_code < 400:
        return str(response.status_code)
    return f"{response.status_code} {response.json().get('Code')}"


class Monitor:
    """``redis-cli monitor`` into a file; `phases` splits it at our ``ECHO`` markers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.file = tempfile.NamedTemporaryFile(prefix="monitor-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen([REDIS_CLI or "redis-cli", "-p", str(port), "monitor"],
                                        stdout=self.file, stderr=subprocess.DEVNULL)
        # A monitoring client is listed with flag O: only then does it see what follows.
        wait_until(lambda: b" flags=O " in command(port, "CLIENT", "LIST"), timeout=10, what="MONITOR")
        self.mark("start")

    def mark(self, name: str) -> None:
        command(self.port, "ECHO", f"{MARKER}:{name}")
        wait_until(lambda: f"{MARKER}:{name}".encode() in Path(self.file.name).read_bytes(),
                   timeout=10, what=f"MONITOR line {name}")

    def phases(self) -> dict[str, tuple[Counter[str], int]]:
        """Per marker: the client commands before it (since the previous marker), and script commands."""
        found: dict[str, tuple[Counter[str], int]] = {}
        client: Counter[str] = Counter()
        scripted = 0
        for line in Path(self.file.name).read_text(errors="replace").splitlines():
            match = _MONITOR.match(line)
            if match is None:
                continue
            name = match["name"].lower()
            if name == "echo" and (match["arg"] or "").startswith(MARKER + ":"):
                found[match["arg"][len(MARKER) + 1:]] = (client, scripted)
                client, scripted = Counter(), 0
            elif match["source"] == "lua":
                scripted += 1
            elif name not in OWN_COMMANDS:
                client[name] += 1
        return found

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        self.file.close()


def run_phase(http: httpx.Client, port: int, monitor: Monitor, name: str, requests: list[str]) -> Phase:
    before = commandstats(port)
    answers = Counter(outcome(http.get("/?" + query)) for query in requests)
    after = commandstats(port)
    monitor.mark(name)
    commands = Counter({k: after[k] - before[k] for k in after
                        if k not in OWN_COMMANDS and after[k] > before[k]})
    return Phase(name, requests, answers, commands, Counter(), 0)


def measure(n: int, m: int) -> list[Phase]:
    redis = RedisServer()
    redis.start()
    try:
        with gateway_processes(1, config=POLICY, redis_url=redis.url, prefix="bench") as gateway, \
                httpx.Client(base_url=gateway.urls[0], timeout=10) as http:
            # Warm-up: scripts loaded (EVALSHA, NOSCRIPT, SCRIPT LOAD happen once), the connection open.
            for query in [signed("DescribeRegions", "load") for _ in range(20)]:
                http.get("/?" + query)
            for _ in range(5):
                http.get("/?" + signed("CreateOrder", "load", Amount="1", ClientToken=uuid.uuid4().hex))
            http.get("/?" + signed("DescribeInstances", "bench"))

            monitor = Monitor(redis.port)
            try:
                calls = [{"Amount": "3", "ClientToken": uuid.uuid4().hex} for _ in range(m)]
                plans: list[tuple[str, Callable[[], list[str]]]] = [
                    ("nonce", lambda: [signed("DescribeRegions", "load") for _ in range(n)]),
                    ("nonce+flow+quota", lambda: [signed("DescribeInstances", "bench") for _ in range(n)]),
                    ("token, first call", lambda: [signed("CreateOrder", "load", **c) for c in calls]),
                    ("token, replay", lambda: [signed("CreateOrder", "load", **c) for c in calls]),
                    ("nonce replayed", lambda: phases[0].requests[: max(1, n // 4)]),
                ]
                phases: list[Phase] = []
                for name, make in plans:
                    phases.append(run_phase(http, redis.port, monitor, name, make()))
                seen = monitor.phases()
            finally:
                monitor.close()
    finally:
        redis.close()
    for phase in phases:
        phase.round_trips, phase.in_scripts = seen[phase.name]
    return phases


def per(count: int, requests: int) -> str:
    return f"{count / requests:.2f}"


def report(phases: list[Phase]) -> None:
    print(f"{'phase':<20} {'requests':>8}  {'answers':<28} {'round trips':>11} {'scripts':>8} "
          f"{'commands':>8}   (per request)")
    for p in phases:
        total = len(p.requests)
        answers = ", ".join(f"{k} x{v}" for k, v in p.answers.most_common())
        scripts = sum(v for k, v in p.commands.items() if k in SCRIPT_COMMANDS)
        print(f"{p.name:<20} {total:>8}  {answers:<28} {per(sum(p.round_trips.values()), total):>11} "
              f"{per(scripts, total):>8} {per(sum(p.commands.values()), total):>8}")
    print("\nround trips: commands a client sent (MONITOR, not [0 lua]); scripts: eval*/evalsha*/fcall*;")
    print("commands: every command Redis ran (INFO commandstats), those run inside scripts included.\n")
    for p in phases:
        sent = ", ".join(f"{k} {per(v, len(p.requests))}" for k, v in sorted(p.round_trips.items()))
        ran = ", ".join(f"{k} {per(v, len(p.requests))}" for k, v in sorted(p.commands.items()))
        print(f"{p.name:<20} sent: {sent or '-'}\n{'':<20} ran:  {ran or '-'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per non-idempotent phase")
    parser.add_argument("--idempotent", type=int, default=200, help="ClientToken calls (and replays)")
    args = parser.parse_args()
    if REDIS_CLI is None:
        print("bench: redis-cli is needed for MONITOR", file=sys.stderr)
        return 2
    began = time.monotonic()
    report(measure(args.requests, args.idempotent))
    print(f"\n({time.monotonic() - began:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
