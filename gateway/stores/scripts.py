"""The Redis store's Lua scripts: their registry, how a failure of one becomes `StoreUnavailable`, and
what `admit.lua`'s reply means."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from gateway.errors import StoreUnavailable
from gateway.stores.base import Outcome, StoredAnswer, Verdict

# admit.lua's reply codes, by value.
_OUTCOMES = (
    Outcome.ADMITTED,
    Outcome.NONCE_USED,
    Outcome.FLOW_LIMITED,
    Outcome.QUOTA_EXHAUSTED,
    Outcome.TOKEN_PROCESSING,
    Outcome.TOKEN_PARAMS_MISMATCH,
    Outcome.TOKEN_CALLER_MISMATCH,
    Outcome.REPLAY,
    Outcome.NONCE_UNPROVEN,
    Outcome.HISTORY_STARTING,
    Outcome.TOKEN_CANCELLED,
)
BACKEND_ERRORS = (RedisError, RedisClusterException, OSError)


def script_text(name: str) -> str:
    return resources.files("gateway.stores").joinpath("lua", name).read_text(encoding="utf-8")


def unavailable(operation: str, exc: BaseException) -> StoreUnavailable:
    """The one place a backend failure (one of `BACKEND_ERRORS`) becomes `StoreUnavailable`."""
    return StoreUnavailable(f"redis {operation} failed: {type(exc).__name__}: {exc}")


@contextmanager
def wrapped(operation: str) -> Iterator[None]:
    """`unavailable` around a block."""
    try:
        yield
    except BACKEND_ERRORS as exc:
        raise unavailable(operation, exc) from exc


class Scripts:
    """The scripts, registered on one client. register_script runs EVALSHA and loads the script itself on
    NOSCRIPT (a restarted server); the pipeline uses the same objects (their text and SHA) and does its
    own NOSCRIPT reload."""

    __slots__ = ("admit", "refund", "release", "renew", "store_answer")

    def __init__(self, client: Redis | RedisCluster) -> None:
        self.admit = client.register_script(script_text("admit.lua"))
        self.refund = client.register_script(script_text("refund_flow.lua"))
        self.store_answer = client.register_script(script_text("store_answer.lua"))
        self.release = client.register_script(script_text("release.lua"))
        self.renew = client.register_script(script_text("renew.lua"))


def admitted(result: Verdict | BaseException) -> bool:
    return isinstance(result, Verdict) and result.outcome is Outcome.ADMITTED


def read_verdict(reply: list[Any]) -> Verdict:
    outcome = _OUTCOMES[int(reply[0])]
    if outcome is Outcome.REPLAY:
        status, content_type, body = reply[4:7]
        return Verdict(outcome, answer=StoredAnswer(int(status), bytes(content_type).decode(), bytes(body)))
    remaining = int(reply[2])
    return Verdict(outcome, int(reply[1]), None if remaining < 0 else remaining)
