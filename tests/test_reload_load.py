"""Must show (#15 §1): reloads under load. ``gateway serve --workers 2`` (Redis) under wrk and a signing
client while its policy file is rewritten 100 times, valid and invalid in turn, each followed by SIGHUP:
no 5xx, no connection error, every valid version in force within 2 s, every invalid one ignored,
descriptors and RSS flat, quota counts unchanged. The numbers are printed (``-s``)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.client import query, signed_params
from tests.support.procfs import rss_bytes
from tests.support.redis import command
from tests.support.serve import gateway_serve
from tests.support.servers import free_port, wait_until
from tests.test_reload import BASE, INVALID, QUOTA, redis_clients
from tests.test_reload_serve import answers, env_for, reloads

REWRITES = 100
BOB = 'id = "LTAIbob"\nsecrets = ["bob-secret"]\naccount = 2222\n'
# A window of 10,000 days (it ends in 2052): with "5/day", a run that crossed midnight UTC found its
# quota key expired and the counts "changed".
QUOTA_5 = QUOTA.replace("1/10000d", "5/10000d")
BOB_ON = BASE.replace(QUOTA, QUOTA_5)
BOB_OFF = BOB_ON.replace(BOB, BOB + "enabled = false\n")
# Invalid in two ways: a bad value (file:line), and a file cut short (a TOML syntax error).
BROKEN = (INVALID, BOB_ON[: len(BOB_ON) // 3] + '\n[[access_keys]\nid = "cut')
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) server_errors = 0 end
function response(status, headers, body) if status >= 500 then server_errors = server_errors + 1 end end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("server_errors") end
  io.write(string.format("server_errors %d\\n", n))
end
"""


class Signer(threading.Thread):
    """Freshly signed calls on one keep-alive connection, as fast as they come back."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.seen, self.errors = url, threading.Event(), Counter[int](), 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    self.seen[client.get(f"{self.url}/?{query(signed_params('DescribeRegions'))}").status_code] += 1
                except httpx.TransportError:
                    self.errors += 1


def _quota_counts(port: int, prefix: str) -> dict[str, str]:
    keys = command(port, "KEYS", f"{prefix}:*:q:*").decode().split()
    # (raw RESP replies: the value is the line after its length)
    return {key: command(port, "GET", key).split(b"\r\n")[1].decode() for key in keys if key.startswith(prefix)}


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_a_hundred_rewrites_under_load(redis_server: object, redis_url: str, tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(BOB_ON)
    prefix = f"l{free_port()}"
    # A Redis timeout of 1 s, not 0.25: on a 2-core machine shared with other jobs (load ~10), a worker
    # sharing its CPU with a reload's parse had 1 to 4 of ~100,000 calls time out on Redis in 3 of 7
    # runs at 0.25 s (ServiceUnavailable); the same load without reloads, none (README, "Changing
    # policy live"). What this test shows is that a reload drops, refuses and leaks nothing.
    env = env_for(file, tmp_path, GATEWAY_REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=prefix,
                  GATEWAY_LOG_LEVEL="warning", GATEWAY_REDIS_TIMEOUT="1")
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with gateway_serve(env, ["--workers", "2"]) as gw:
        wait_until(lambda: len(gw.children()) == 2, what="two workers")
        workers = sorted(gw.children())
        for _ in range(3):
            assert answers(gw, "LTAIquota", 1) == {"OK"}
        quotas = _quota_counts(port, prefix)
        assert quotas, "no quota key in Redis"

        script = tmp_path / "count.lua"
        script.write_text(WRK_SCRIPT)
        # One signed URL: after its first call every call is refused SignatureNonceUsed, through every
        # check and the store's round trip: the whole chain, under the reloads.
        url = f"{gw.url}/?{query(signed_params('DescribeRegions'))}"
        wrk = subprocess.Popen(["wrk", "-t1", "-c4", "-d120s", "-s", str(script), url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        signer = Signer(gw.url)
        signer.start()
        in_force: list[float] = []
        ignored: list[float] = []
        samples: dict[str, tuple[list[int], list[int], int]] = {}
        expected = {"OK"}
        ok = error = 0.0
        try:
            for step in range(REWRITES):
                valid = step % 2 == 0
                if valid:
                    text, expected = (BOB_OFF, {"Forbidden.AccessKeyDisabled"}) if step % 4 == 0 else (BOB_ON, {"OK"})
                else:
                    text = BROKEN[(step // 2) % 2]
                file.write_text(text)
                start = time.monotonic()
                gw.process.send_signal(signal.SIGHUP)
                if valid:
                    ok += 2
                    # Counted after the swap: once both workers count it, both answer with it.
                    # Every 20 ms: a scrape aggregates every worker's metrics files, and the gateway is busy enough.
                    wait_until(lambda n=ok: reloads(gw, "ok") == n, 2.0, f"version {step} in force", every=0.02)
                    in_force.append(time.monotonic() - start)
                    assert answers(gw, "LTAIbob", 4) == expected, f"valid version {step} not in force"
                else:
                    error += 2
                    wait_until(lambda n=error: reloads(gw, "error") == n, 5.0, f"version {step} refused", every=0.02)
                    assert answers(gw, "LTAIbob", 4) == expected, f"invalid version {step} changed the policy"
                    ignored.append(time.monotonic() - start)
                if step in (9, REWRITES - 1):
                    samples[str(step)] = ([_fds(pid) for pid in workers], [rss_bytes(pid) for pid in workers],
                                          redis_clients(port))
        finally:
            signer.stop.set()
            wrk.send_signal(signal.SIGINT)
            wrk_out, _ = wrk.communicate(timeout=30)
            signer.join(15)
        assert sorted(gw.children()) == workers, "a worker was restarted"
        assert reloads(gw, "unchanged") == 0
        after = _quota_counts(port, prefix)
        assert after == quotas, (quotas, after)
        assert [answers(gw, "LTAIquota", 1) for _ in range(3)] == [{"OK"}, {"OK"}, {"Throttling"}]
        # What the gateway logged besides the refused files (a 5xx is logged with its cause).
        logged = [line for line in gw.output().splitlines()
                  if ("ERROR" in line or "Traceback" in line) and "policy reload" not in line]

    requests = re.search(r"(\d+) requests in", wrk_out)
    server_errors = re.search(r"server_errors (\d+)", wrk_out)
    socket_errors = re.search(r"Socket errors: (.*)", wrk_out)
    (fds_10, rss_10, redis_10), (fds_100, rss_100, redis_100) = samples["9"], samples[str(REWRITES - 1)]
    print(f"\n{REWRITES} rewrites ({REWRITES // 2} valid, {REWRITES // 2} invalid) under load, 2 workers:\n"
          f"  wrk: {requests and requests[1]} requests, {server_errors and server_errors[1]} 5xx, "
          f"socket errors: {socket_errors[1] if socket_errors else 'none'}\n"
          f"  signing client: {dict(signer.seen)} , {signer.errors} connection errors\n"
          f"  valid in force after SIGHUP: max {max(in_force):.3f} s, "
          f"median {sorted(in_force)[len(in_force) // 2]:.3f} s\n"
          f"  invalid refused after SIGHUP: max {max(ignored):.3f} s, "
          f"median {sorted(ignored)[len(ignored) // 2]:.3f} s\n"
          f"  fds per worker after 10 / {REWRITES} rewrites: {fds_10} / {fds_100}\n"
          f"  Redis clients (CLIENT LIST) after 10 / {REWRITES} rewrites: {redis_10} / {redis_100}\n"
          f"  RSS MiB per worker after 10 / {REWRITES}: {[round(r / 2**20, 1) for r in rss_10]} / "
          f"{[round(r / 2**20, 1) for r in rss_100]}\n"
          f"  quota counts before / after: {quotas} / {after}")
    assert requests is not None and int(requests[1]) > 0, wrk_out
    assert server_errors is not None and server_errors[1] == "0", (wrk_out, logged[:20])
    assert not logged, logged[:20]
    assert socket_errors is None, wrk_out
    assert set(signer.seen) == {200} and signer.errors == 0, (signer.seen, signer.errors)
    assert max(in_force) < 2.0
    # Flat: a descriptor kept per reload would add 50 or 100; the callers' connections move a few.
    assert sum(fds_100) - sum(fds_10) <= 4, (fds_10, fds_100)
    assert redis_100 - redis_10 <= 4, (redis_10, redis_100)  # a pool per reload would add 50 or more
    assert all(late - early < 8 * 2**20 for early, late in zip(rss_10, rss_100, strict=True)), (rss_10, rss_100)
