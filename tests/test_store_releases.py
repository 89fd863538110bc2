"""`PendingReleases`: retried until made or the lease is over, bounded, stopped by aclose.

The release it retries is a stand-in here: what is under test is the scheduling. The real release,
against a stalled redis-server: ``test_a_client_token_admit_lost_to_a_stalled_redis_leaves_no_lease``
in `tests/test_store_redis.py`.
"""

from __future__ import annotations

import asyncio
import time

from gateway.stores import IdempotencyClaim, StoreUnavailable
from gateway.stores.releases import PendingReleases


class Release:
    """Fails ``failures`` times per lease, then succeeds; records every attempt."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts: list[tuple[str, str, float]] = []

    async def __call__(self, scope: str, claim: IdempotencyClaim) -> None:
        self.attempts.append((scope, claim.lease, time.monotonic()))
        if sum(1 for _, lease, _ in self.attempts if lease == claim.lease) <= self.failures:
            raise StoreUnavailable("redis release failed: TimeoutError")


def claim(lease_ms: int = 60_000) -> IdempotencyClaim:
    return IdempotencyClaim("token", "owner", "fp", lease_ms)


async def settled(pending: PendingReleases, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while len(pending):
        assert time.monotonic() < deadline, f"{len(pending)} releases still pending"
        await asyncio.sleep(0.005)


async def test_a_release_is_retried_with_backoff_until_it_is_made() -> None:
    release = Release(failures=3)
    pending = PendingReleases(release, first_delay=0.02, max_delay=0.08)
    made = claim()
    pending.add("1001", made)
    await settled(pending)
    assert [(scope, lease) for scope, lease, _ in release.attempts] == [("1001", made.lease)] * 4
    gaps = [b - a for (_, _, a), (_, _, b) in zip(release.attempts, release.attempts[1:], strict=False)]
    assert gaps[0] < gaps[1] and gaps[0] < gaps[2]  # backing off,
    assert max(gaps) < 0.08 + 0.2  # up to the cap (and a loaded machine's lag)
    await pending.aclose()


async def test_retries_stop_when_the_lease_would_have_ended_anyway() -> None:
    release = Release(failures=10**6)  # Redis never comes back
    pending = PendingReleases(release, first_delay=0.01, max_delay=0.02)
    pending.add("1001", claim(lease_ms=150))
    await settled(pending, within=1.0)
    assert 3 <= len(release.attempts) <= 15
    await pending.aclose()


async def test_pending_releases_are_bounded_and_one_per_lease() -> None:
    release = Release(failures=10**6)
    pending = PendingReleases(release, limit=3, first_delay=0.01)
    same = claim()
    for _ in range(3):
        pending.add("1001", same)
    assert len(pending) == 1
    for _ in range(10):
        pending.add("1001", claim())
    assert len(pending) == 3
    await pending.aclose()


async def test_close_stops_the_retries() -> None:
    release = Release(failures=10**6)
    pending = PendingReleases(release, first_delay=0.005, max_delay=0.005)
    pending.add("1001", claim())
    while len(release.attempts) < 2:  # retrying (polled: the delays are 5 ms)
        await asyncio.sleep(0.005)
    await pending.aclose()
    assert len(pending) == 0
    attempts = len(release.attempts)
    await asyncio.sleep(0.05)  # ten retry delays: a retry that outlived aclose would show here
    assert len(release.attempts) == attempts
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "gateway-pending-releases"]


async def test_a_release_added_during_a_long_wait_is_tried_at_its_own_time() -> None:
    slow = Release(failures=10**6)
    waiting = PendingReleases(slow, first_delay=0.01, max_delay=5.0)
    waiting.add("1001", claim())
    await asyncio.sleep(0.5)  # its backoff has grown: the task now sleeps for over half a second
    added_at = time.monotonic()
    late = claim()
    waiting.add("1001", late)
    while not any(lease == late.lease for _, lease, _ in slow.attempts):
        assert time.monotonic() - added_at < 0.3, "the new release waited for the old one's backoff"
        await asyncio.sleep(0.005)
    await waiting.aclose()
