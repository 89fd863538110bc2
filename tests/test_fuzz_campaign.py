"""The full HTTP fuzz run (``make fuzz``): 100,000 random inputs against live gateways. Marked slow, and
skipped unless GATEWAY_FUZZ_INPUTS gives its size (``make fuzz`` does): ``make test`` runs the tests
marked slow (concurrency, faults), not this one.

    GATEWAY_FUZZ_INPUTS=100000 [GATEWAY_FUZZ_REDIS=1] [GATEWAY_FUZZ_SEED=N] [GATEWAY_FUZZ_JSON=PATH] \\
        .venv/bin/pytest -s tests/test_fuzz_campaign.py

tests/support/fuzzing/campaign.py tells the servers and the campaigns; tests/test_fuzz.py runs a small
derandomized sample of the same strategies in every ``make test``. Every answer is judged and the
report printed (``-s`` shows it); the test fails when any violation was found or a gateway's log holds
a traceback (known bugs, pinned by strict xfail tests, are counted apart and do not fail it).
GATEWAY_FUZZ_REDIS=1 keeps the gateways' state in a private redis-server.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from tests.support.fuzzing.campaign import SHARES, Tally, report, run, server_errors, servers

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("GATEWAY_FUZZ_INPUTS"),
                                                   reason="the full fuzz run: make fuzz (GATEWAY_FUZZ_INPUTS)")]

INPUTS = int(os.environ.get("GATEWAY_FUZZ_INPUTS") or "100000")
USE_REDIS = os.environ.get("GATEWAY_FUZZ_REDIS") == "1"
SEED = int(os.environ["GATEWAY_FUZZ_SEED"]) if os.environ.get("GATEWAY_FUZZ_SEED") else None
JSON_OUT = os.environ.get("GATEWAY_FUZZ_JSON")


def test_random_inputs_get_judged_answers_and_no_violation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [name for name in os.environ if name.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)  # the servers inherit this environment: only `servers` configures them
    logging.getLogger("hypothesis").setLevel(logging.ERROR)
    rng = random.Random(SEED)
    tallies: dict[str, Tally] = {}
    with servers(USE_REDIS, tmp_path) as urls:
        print(f"fuzzing {INPUTS:,} inputs: echo {urls['echo']}, proxy {urls['proxy']}, "
              f"store {'redis' if USE_REDIS else 'memory'}", flush=True)
        for name, share in SHARES.items():
            url = urls["proxy" if name.startswith("proxy") else "echo"]
            tallies[name] = run(name, url, max(1, round(INPUTS * share)), rng)
    print(report(tallies))
    errors = server_errors(tmp_path)
    print(f"server logs ({tmp_path}): {errors}")
    if JSON_OUT:
        Path(JSON_OUT).write_text(json.dumps({name: {"inputs": t.inputs, "seconds": round(t.seconds, 1),
                                                     "outcomes": t.outcomes, "known": t.known,
                                                     "violations": t.violations, "examples": t.examples}
                                              for name, t in tallies.items()}, indent=1))
    assert sum(errors.values()) == 0, errors
    assert not any(t.violations for t in tallies.values()), {name: dict(t.violations) for name, t in tallies.items()}
