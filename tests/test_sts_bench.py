"""bench/sts.py runs (every request it drives must be admitted: `bench.inprocess.drive` stops otherwise)."""

from __future__ import annotations

from bench import sts


def test_the_sts_bench_driver_runs_and_admits_every_request() -> None:
    results = sts.measure(requests=100, rounds=1)
    assert set(results) == {"plain", "plain, [sts] configured", "STS-signed", "first verification of a token",
                            "STS-signed / plain", "[sts] configured / plain"}
    assert all(us > 0 for us in results.values())
    assert any("+10 %" in line for line in sts.lines(results))
