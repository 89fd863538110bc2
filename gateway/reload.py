"""Reloading the policy of a running gateway: validate the whole file, rebuild, swap one reference.

`Reloader.reload` is the one entry point: SIGHUP and the file watcher of `gateway serve`
(`gateway.live`) call it, and so may an application (``await middleware.reload()``). It

1. reads and validates the whole file off the event loop (`load_policy`: the same checks as at start,
   errors as ``file:line: entry: what``); a file whose text is the policy in force is ``unchanged``;
2. builds everything made from the policy (`Gateway.rebuilt`: the parser, the checks, the admission)
   while the old chain keeps serving;
3. swaps one reference (the middleware's chain). A request reads it once, when it starts, so a request
   in flight finishes with the policy it started with.

Any failure before the swap changes nothing: the old policy stays in force, the error is logged and
counted (``gateway_policy_reloads_total{result="error"}``), and readiness is untouched. Reloads are
serialised: two never interleave. What is not built from the policy is reused, never reopened: the
settings, the store and its connections, the observers; so is every state in the store (nonces,
quota counts, flow state, ClientTokens), which is named by key id and API, not by policy object.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from redis.exceptions import RedisError

from gateway import metrics
from gateway.build import Gateway
from gateway.errors import PolicyError, StoreUnavailable
from gateway.keystore.files import shadow_message, shadowed_keys
from gateway.policy import Policy, load_policy
from gateway.policy.diff import PolicyDiff, diff_policies

log = logging.getLogger("gateway.reload")

Result = Literal["ok", "error", "unchanged"]


@dataclass(frozen=True, slots=True)
class Reload:
    """What one reload did: ``ok`` (swapped; ``diff`` says what changed), ``unchanged`` (the file's
    text is the policy in force) or ``error`` (nothing changed; ``error`` says why, with file:line)."""

    result: Result
    source: str
    diff: PolicyDiff | None = None
    error: str | None = None


class Reloader:
    """Reloads the policy of one gateway and hands the rebuilt gateway to ``swap``."""

    def __init__(self, gateway: Gateway, swap: Callable[[Gateway], None]) -> None:
        self._gateway, self._swap = gateway, swap
        self._lock = asyncio.Lock()
        # The file the policy in force came from (GATEWAY_CONFIG, or the bundled demo policy).
        self.path: Path = Path(gateway.settings.config or gateway.policy.source)

    @property
    def gateway(self) -> Gateway:
        """The gateway in force."""
        return self._gateway

    async def reload(self, path: str | os.PathLike[str] | None = None, *, trigger: str = "call") -> Reload:
        """Reload the policy from ``path`` (default: the file in force), which becomes the file in force
        if valid; ``trigger`` only names the cause in the log. Never raises for a bad file."""
        async with self._lock:
            done = await self._reload(Path(path) if path is not None else self.path)
        metrics.count_reload(done.result)
        if done.result == "error":
            log.error("policy reload (%s) refused, the policy in force stays: %s", trigger, done.error)
        elif done.result == "unchanged":
            log.info("policy reload (%s): %s is unchanged", trigger, done.source)
        else:
            diff = done.diff
            log.info("policy reloaded (%s) from %s: %s%s", trigger, done.source,
                     diff.summary() if diff else "", "".join(f"\n  {line}" for line in diff.lines()) if diff else "")
        return done

    async def _reload(self, path: Path) -> Reload:
        current = self._gateway
        try:
            # Off the loop: a large file takes a while to parse and compare, and requests keep being answered.
            policy, diff = await asyncio.to_thread(_load, path, current.policy)
            if diff is None:
                self.path = path
                return Reload("unchanged", str(path))
            await _refuse_shadowed(current, policy)
            rebuilt = current.rebuilt(policy)
        except PolicyError as exc:
            return Reload("error", str(path), error=str(exc))
        except Exception as exc:  # a bug in building, not in the file: the old policy stays all the same
            log.exception("policy reload from %s failed", path)
            return Reload("error", str(path), error=f"{path}: {exc!r}")
        self._gateway, self.path = rebuilt, path
        self._swap(rebuilt)  # the swap: from here new requests see the new chain
        if gc.get_freeze_count():  # frozen at start-up (GATEWAY_GC_FREEZE): the new policy is long-lived too
            _refreeze()
        return Reload("ok", str(path), diff=diff)


async def _refuse_shadowed(current: Gateway, policy: Policy) -> None:
    """A key id both in the new file and in the Redis keystore refuses the reload, as it stops a start."""
    if current.keystore is None:
        return
    try:
        both = await shadowed_keys(policy, current.keystore)
    except (StoreUnavailable, RedisError, OSError) as exc:
        # As at start: an unreachable keystore cannot tell, and must not keep a revocation in the file out.
        log.warning("policy reload: the keystore could not be reached to check for key ids also in the file "
                    "(%s)", type(exc).__name__)
        return
    if both:
        raise PolicyError(shadow_message(both, policy.source))


def _load(path: Path, current: Policy) -> tuple[Policy, PolicyDiff | None]:
    """The policy at ``path`` and what it changes; no diff when its text is the policy in force."""
    policy = load_policy(path)
    return policy, None if policy.text_sha256 == current.text_sha256 else diff_policies(current, policy)


def _refreeze() -> None:
    # The new policy lives as long as the old one did: frozen like it (gateway.build.freeze_startup_objects),
    # or every full collection would walk it again. The old one needs no collection to go: the policy
    # and what is built from it hold no reference cycle, so it is freed as the last request using it ends,
    # frozen or not (tests/test_reload.py counts the chains alive). Not a full collection either: it stops
    # every request for as long as it walks the heap (25-45 ms for the test policy on an idle machine,
    # ~280 ms with 1,000,000 keys), and a request waiting on Redis then times out (ServiceUnavailable).
    # The young generations hold what this reload left; collected first, so that its garbage is not frozen.
    gc.collect(1)
    gc.freeze()
