"""The full HTTP fuzz run (``make fuzz``): at least 100,000 inputs against live gateways. Not in CI.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--redis] [--seed N] [--json PATH]

The gateway runs in its own uvicorn process (uvloop, and the HTTP protocol ``gateway serve`` runs:
gateway/serving.py's head bound, header timeout and connection cap), so the fuzzing client and the
server each have a core: in front of the echo service of the tests (middleware mode), and, for a share
of the inputs, as the reverse proxy in front of the tests' upstream. The servers are configured by
this script alone (GATEWAY_* variables of its environment are dropped), the head bound set to the
``MAX_HEAD`` the inputs are padded around and the answers judged by. With ``--redis`` the gateways
keep their state in a private redis-server.

The inputs and the judging are tests/support/fuzzing/'s, as in tests/test_fuzz.py, but drawn at
random (hypothesis, generate phase only, in rounds of ``ROUND`` with fresh seeds) and never stopping
at a violation: every answer is judged, violations are counted by kind, and a few examples of each
are printed. The campaigns:

* ``raw``        hostile requests from scratch (methods, paths, queries with bad escapes, invalid
                 UTF-8, NUL, up to 10,000 parameters and 1 MiB values, repeated names, garbage
                 Authorization, huge x-acs-* headers, bodies, content types, odd framing);
* ``signed``     correctly signed requests asking for anything (every key, API, parameter, owner,
                 ClientToken, skewed clock, reused nonce), V1 and V3;
* ``flip-v1``    a correctly signed V1 request with one byte replaced anywhere;
* ``flip-v3``    the same for V3;
* ``proxy-*``    the signed and flip campaigns again through the reverse proxy.

Exit status 1 when any violation was found (known bugs, pinned by strict xfail tests, are counted
apart and do not fail the run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the same strategies and oracle as the tests

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bench.common import GATEWAY_HTTP, redis_server, uvicorn_server  # noqa: E402
from tests.support.fuzzing.meaning import check_echo  # noqa: E402
from tests.support.fuzzing.oracle import ANY, MAX_HEAD, REFUSE, judge  # noqa: E402
from tests.support.fuzzing.signed import mutations, signed_semantics  # noqa: E402
from tests.support.fuzzing.strategies import raw_requests  # noqa: E402
from tests.support.fuzzing.wire import RawRequest, address_of, exchange  # noqa: E402

POLICY = ROOT / "tests" / "data" / "policy.toml"
ROUND = 2_000  # examples per hypothesis run: its bookkeeping grows with the examples of one run
EXAMPLES_PER_KIND = 3
#: campaign -> share of the inputs
SHARES = {"raw": 0.30, "signed": 0.20, "flip-v1": 0.18, "flip-v3": 0.18,
          "proxy-signed": 0.04, "proxy-flip-v1": 0.05, "proxy-flip-v3": 0.05}


# --- the served apps (uvicorn --factory imports these in the server process) -----------------------

def echo_app() -> Any:
    """The gateway in front of the tests' echo service; no GATEWAY_HOST_ID, so Host becomes HostId."""
    from gateway import GatewayMiddleware, Settings
    from tests.support.apps import EchoService

    return GatewayMiddleware(EchoService(), settings=Settings.from_env())


def proxy_app() -> Any:
    """The gateway as `gateway serve` builds it in proxy mode (GATEWAY_UPSTREAM_URL set)."""
    from gateway.app import create_app

    return create_app()


def upstream_app() -> Any:
    from tests.support.upstream import Upstream

    return Upstream()


@contextmanager
def servers(use_redis: bool, logs: Path) -> Iterator[dict[str, str]]:
    """The upstream (stock uvicorn: it is not the gateway) and the two gateways, each one's output in
    ``logs``, read at the end for tracebacks (and out of the way of the figures: uvicorn warns at
    each framing refusal, the gateway's protocol at each 431)."""
    with ExitStack() as stack:
        env = {"GATEWAY_CONFIG": str(POLICY), "GATEWAY_ACCESS_LOG": "false",
               "GATEWAY_MAX_HEADER_BYTES": str(MAX_HEAD), "PYTHONPATH": str(ROOT)}
        if use_redis:
            env["GATEWAY_REDIS_URL"] = stack.enter_context(redis_server())
        upstream = stack.enter_context(uvicorn_server("bench.fuzz:upstream_app", env, log=logs / "upstream.log"))
        gateway = partial(uvicorn_server, ready_path="/_gateway/health", http=GATEWAY_HTTP)
        echo = stack.enter_context(gateway("bench.fuzz:echo_app", env, log=logs / "echo.log"))
        proxy = stack.enter_context(gateway("bench.fuzz:proxy_app", {**env, "GATEWAY_UPSTREAM_URL": upstream},
                                            log=logs / "proxy.log"))
        yield {"echo": echo, "proxy": proxy}


def server_errors(logs: Path) -> dict[str, int]:
    """Tracebacks in each gateway's log (none is expected: every one is a violation)."""
    return {name: (logs / f"{name}.log").read_text(errors="replace").count("Traceback") for name in ("echo", "proxy")}


# --- the campaigns ---------------------------------------------------------------------------------

@dataclass
class Tally:
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    expectations: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def record(self, request: RawRequest, expect: str, verdict: Any) -> None:
        self.inputs += 1
        self.outcomes[verdict.outcome] += 1
        self.expectations[expect] += 1
        if verdict.known:
            self.known[verdict.known] += 1
        for violation in verdict.violations:
            kind = violation.split(":", 1)[0][:80]
            self.violations[kind] += 1
            shown = self.examples.setdefault(kind, [])
            if len(shown) < EXAMPLES_PER_KIND:
                shown.append(f"{violation}\n      {request.short(240)}")


Draw = Callable[[st.DataObject], tuple[RawRequest, str, Callable[[dict[str, Any]], list[str]] | None]]


def campaign(name: str, url: str) -> Draw:
    address = address_of(url)
    host = f"{address[0]}:{address[1]}".encode()
    echo = not name.startswith("proxy")
    kind = name.removeprefix("proxy-")

    def draw(data: st.DataObject) -> tuple[RawRequest, str, Any]:
        if kind == "raw":
            return data.draw(raw_requests(MAX_HEAD)), REFUSE, None
        if kind == "signed":
            signed = data.draw(signed_semantics(host))
            return signed.request, ANY, check_echo(signed) if echo else None
        mutation = data.draw(mutations(host, ("V1",) if kind == "flip-v1" else ("V3",), MAX_HEAD))
        return mutation.request, mutation.expect, check_echo(mutation.signed) if echo else None

    return draw


def run(name: str, url: str, count: int, rng: random.Random) -> Tally:
    tally = Tally()
    draw = campaign(name, url)
    address = address_of(url)
    began = time.monotonic()
    while tally.inputs < count:
        examples = min(ROUND, count - tally.inputs)

        @seed(rng.getrandbits(64))
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            request, expect, check = draw(data)
            answer = exchange(address, request)
            tally.record(request, expect, judge(request, answer, expect, check, max_head=MAX_HEAD))

        before = tally.inputs
        one()
        if tally.inputs == before:
            raise RuntimeError(f"{name}: hypothesis generated nothing")
        print(f"  {name}: {tally.inputs:,}/{count:,} inputs, {sum(tally.violations.values())} violations, "
              f"{tally.inputs / (time.monotonic() - began):,.0f}/s", flush=True)
    tally.seconds = time.monotonic() - began
    return tally


def report(tallies: dict[str, Tally]) -> str:
    lines = ["", "| campaign | inputs | seconds | inputs/s | violations | known bugs | top outcomes |",
             "|---|---|---|---|---|---|---|"]
    for name, t in tallies.items():
        top = ", ".join(f"{o} {n:,}" for o, n in t.outcomes.most_common(5))
        lines.append(f"| {name} | {t.inputs:,} | {t.seconds:,.0f} | {t.inputs / max(t.seconds, 1e-9):,.0f} | "
                     f"{sum(t.violations.values())} | {sum(t.known.values())} | {top} |")
    total = sum(t.inputs for t in tallies.values())
    violations = sum(sum(t.violations.values()) for t in tallies.values())
    known = Counter[str]()
    for t in tallies.values():
        known.update(t.known)
    lines.append(f"\ninputs fuzzed: {total:,}; violations: {violations}; known bugs hit: {dict(known)}")
    for name, t in tallies.items():
        expected = ", ".join(f"{k} {n:,}" for k, n in sorted(t.expectations.items()))
        lines.append(f"  {name}: expected {expected}; outcomes {dict(t.outcomes.most_common())}")
        for kind, n in t.violations.most_common():
            lines.append(f"  VIOLATION [{name}] {kind}: {n}")
            lines += [f"    e.g. {example}" for example in t.examples[kind]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--redis", action="store_true", help="state in a private redis-server")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for name in [name for name in os.environ if name.startswith("GATEWAY_")]:
        del os.environ[name]  # the servers inherit this environment: only `servers` configures them
    logging_off()
    tallies: dict[str, Tally] = {}
    logs = Path(tempfile.mkdtemp(prefix="fuzz-logs-"))
    with servers(args.redis, logs) as urls:
        print(f"fuzzing {args.inputs:,} inputs: echo {urls['echo']}, proxy {urls['proxy']}, "
              f"store {'redis' if args.redis else 'memory'}", flush=True)
        for name, share in SHARES.items():
            url = urls["proxy" if name.startswith("proxy") else "echo"]
            tallies[name] = run(name, url, max(1, round(args.inputs * share)), rng)
    print(report(tallies))
    errors = server_errors(logs)
    print(f"server logs ({logs}): {errors}")
    tracebacks = sum(errors.values())
    if args.json is not None:
        args.json.write_text(json.dumps({name: {"inputs": t.inputs, "seconds": round(t.seconds, 1),
                                                "outcomes": t.outcomes, "known": t.known,
                                                "violations": t.violations, "examples": t.examples}
                                         for name, t in tallies.items()}, indent=1))
    return 1 if tracebacks or any(t.violations for t in tallies.values()) else 0


def logging_off() -> None:
    import logging

    logging.getLogger("hypothesis").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
