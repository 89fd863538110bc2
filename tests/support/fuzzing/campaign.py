"""The full HTTP fuzz run's machinery (tests/test_fuzz_campaign.py, ``make fuzz``): live gateways in
uvicorn processes, campaigns of random inputs, a tally of every answer judged, and its report.

The gateway runs in its own uvicorn process (uvloop, and the HTTP protocol ``gateway serve`` runs:
gateway/serving/'s head bound, header timeout and connection cap), so the fuzzing client and the
server each have a core: in front of the echo service of the tests (middleware mode), and, for a share
of the inputs, as the reverse proxy in front of the tests' upstream. The servers are configured by
`servers` alone (the caller drops the GATEWAY_* variables of its environment), the head bound set to
the ``MAX_HEAD`` the inputs are padded around and the answers judged by.

The inputs and the judging are those of tests/test_fuzz.py, but drawn at random (hypothesis, generate
phase only, in rounds of ``ROUND`` with fresh seeds) and never stopping at a violation: every answer
is judged, violations are counted by kind, and a few examples of each are kept. The campaigns:

* ``raw``        hostile requests from scratch (methods, paths, queries with bad escapes, invalid
                 UTF-8, NUL, up to 10,000 parameters and 1 MiB values, repeated names, garbage
                 Authorization, huge x-acs-* headers, bodies, content types, odd framing);
* ``signed``     correctly signed requests asking for anything (every key, API, parameter, owner,
                 ClientToken, skewed clock, reused nonce), V1 and V3;
* ``flip-v1``    a correctly signed V1 request with one byte replaced anywhere;
* ``flip-v3``    the same for V3;
* ``proxy-*``    the signed and flip campaigns again through the reverse proxy.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.support.fuzzing.meaning import check_echo
from tests.support.fuzzing.oracle import ANY, MAX_HEAD, REFUSE, judge
from tests.support.fuzzing.signed import mutations, signed_semantics
from tests.support.fuzzing.strategies import raw_requests
from tests.support.fuzzing.wire import RawRequest, address_of, exchange
from tests.support.redis import running_redis
from tests.support.servers import GATEWAY_HTTP, ROOT, uvicorn_process

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
    here = __name__
    with ExitStack() as stack:
        env = {"GATEWAY_CONFIG": str(POLICY), "GATEWAY_ACCESS_LOG": "false",
               "GATEWAY_MAX_HEADER_BYTES": str(MAX_HEAD), "PYTHONPATH": str(ROOT)}
        if use_redis:
            env["GATEWAY_REDIS_URL"] = stack.enter_context(running_redis()).url
        upstream = stack.enter_context(uvicorn_process(f"{here}:upstream_app", env, log=logs / "upstream.log"))
        gateway = partial(uvicorn_process, ready_path="/_gateway/health", http=GATEWAY_HTTP)
        echo = stack.enter_context(gateway(f"{here}:echo_app", env, log=logs / "echo.log"))
        proxy = stack.enter_context(gateway(f"{here}:proxy_app", {**env, "GATEWAY_UPSTREAM_URL": upstream},
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
