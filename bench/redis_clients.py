"""Redis clients side by side on the one call that matters: EVALSHA of admit.lua with its real keys and args.

    python -m bench.redis_clients [--calls 20000] [--rounds 3] [--clients "redis-py;floor"]

The call is the one `RedisStore.admit` sends for a V1 request of the bench policy (a nonce, a flow and
a quota take: `gateway.stores.redis.admit_call`), each with a fresh nonce, against a private
redis-server. Each client runs it ``--calls`` times with 1 and with 32 calls in flight (32 coroutines
awaiting one call each, as 32 concurrent requests do), in a fresh uvloop loop:

* ``redis-py``: the registered script (`AsyncScript`) on the store's pooled client, one call per await;
* ``redis-py batched``: the same client under main's batching (its pooled connection and streams, one
  pipeline per event-loop turn): the store's pipeline before #14;
* ``gateway``: `AutoPipeline` of this checkout, what the store sends now;
* ``coredis`` and ``valkey-glide`` (Rust core, its own thread): EVALSHA through each one's client;
* ``floor``: a minimal asyncio Protocol with `hiredis.Reader`, no timeout and no recovery: what a
  client cannot go below.

Client CPU is the process's CPU time (user + system, every thread: glide's Rust core included) per
call; latency is each await's wall time (p50, p99). Rounds alternate the clients' order; figures are
medians of the rounds. CPU is the figure to compare on a shared machine: wall time includes waiting
for a CPU that another process holds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
import uvloop

from gateway.rates import Rate
from gateway.stores.keys import Keys
from gateway.stores.pipeline import Arg, AutoPipeline
from gateway.stores.redis import admit_call
from gateway.stores.scripts import script_text
from tests.support.redis import running_redis

Send = Callable[[list[str], list[Arg]], Awaitable[Any]]
Opened = tuple[Send, Callable[[], Awaitable[None]]]
IN_FLIGHT = (1, 32)


def _calls(count: int) -> list[tuple[list[str], list[Arg]]]:
    from gateway.stores import Take, Ticket

    takes = (Take("flow", "flow:*", Rate(10**9, 1_000)), Take("quota", "quota:AK", Rate(10**9, 86_400_000)))
    now = int(time.time() * 1000)
    out = []
    for _ in range(count):
        ticket = Ticket("4242", f"AK:{uuid.uuid4().hex}", 60_000, takes, timestamp_ms=now)
        keys, args, _ = admit_call(Keys("bench"), ticket, ticket.takes[:1], ticket.takes[1:], scoped=True, run_id="")
        out.append((keys, args))
    return out


async def _redis_py(url: str) -> Opened:
    from gateway.stores.clients import pooled_client

    client = pooled_client(url, 2.0)
    script = client.register_script(script_text("admit.lua"))

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await script(keys=keys, args=args)

    return send, client.aclose


async def _gateway(url: str) -> Opened:
    from gateway.stores.clients import pooled_client

    client = pooled_client(url, 2.0)
    script = client.register_script(script_text("admit.lua"))
    pipeline = AutoPipeline(client)

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await pipeline.call(script, keys, args)

    async def close() -> None:
        await pipeline.drain()
        await client.aclose()

    return send, close


class _Batched:
    """Main's pipeline before #14, its mechanics only: per event-loop turn, a task that takes a pooled
    connection, writes the batch once and reads the replies through redis-py's streams."""

    def __init__(self, client: Any) -> None:
        self.client, self.queue, self.tasks = client, [], set()

    def call(self, sha: str, keys: list[str], args: list[Arg]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.queue:
            loop.call_soon(self.flush)
        self.queue.append((hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args)), future))  # type: ignore[arg-type]
        return future

    def flush(self) -> None:
        batch, self.queue = self.queue, []
        task = asyncio.ensure_future(self.send(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(b"".join(command for command, _ in batch))
            async with asyncio.timeout(conn.socket_timeout):
                for _, future in batch:
                    future.set_result(await conn.read_response(timeout=math.inf, disconnect_on_error=False))
        finally:
            await pool.release(conn)


async def _redis_py_pipeline(url: str) -> Opened:
    from gateway.stores.clients import pooled_client

    client = pooled_client(url, 2.0)
    script = client.register_script(script_text("admit.lua"))
    await script(keys=[], args=[0, 1, 0, "", 0, 0, 1, 0, 0, 0])  # loaded
    batched = _Batched(client)

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await batched.call(script.sha, keys, args)

    return send, client.aclose


async def _coredis(url: str) -> Opened:
    import coredis

    client: Any = coredis.Redis.from_url(url, decode_responses=False)
    await client.__aenter__()
    sha = await client.script_load(script_text("admit.lua"))

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await client.evalsha(sha, keys, args)

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return send, close


async def _glide(url: str) -> Opened:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    host, port = _address(url)
    client = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)], request_timeout=2000))
    sha = await client.custom_command(["SCRIPT", "LOAD", script_text("admit.lua")])
    text_sha = sha.decode() if isinstance(sha, bytes) else str(sha)

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await client.custom_command(["EVALSHA", text_sha, str(len(keys)), *keys, *map(str, args)])

    return send, client.close


class _Floor(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: list[asyncio.Future[Any]] = []
        self.queue: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting, reply, done = self.waiting, self.reader.gets(), 0
        while reply is not False:
            waiting[done].set_result(reply)
            done += 1
            reply = self.reader.gets()
        del waiting[:done]

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if not self.queue:
            asyncio.get_running_loop().call_soon(self.flush)
        self.queue.append(command)
        self.waiting.append(future)
        return future

    def flush(self) -> None:
        self.transport.write(b"".join(self.queue))
        self.queue = []


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.split("://")[1].split("/")[0].rpartition(":")
    return host, int(port)


async def _floor(url: str) -> Opened:
    host, port = _address(url)
    _, floor = await asyncio.get_running_loop().create_connection(_Floor, host, port)
    sha = await floor.send(hiredis.pack_command(("SCRIPT", "LOAD", script_text("admit.lua"))))

    async def send(keys: list[str], args: list[Arg]) -> Any:
        return await floor.send(hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args)))  # type: ignore[arg-type]

    async def close() -> None:
        floor.transport.close()

    return send, close


CLIENTS: dict[str, Callable[[str], Awaitable[Opened]]] = {
    "redis-py": _redis_py,
    "redis-py batched": _redis_py_pipeline,
    "gateway": _gateway,
    "coredis": _coredis,
    "valkey-glide": _glide,
    "floor": _floor,
}


async def _measure(opener: Callable[[str], Awaitable[Opened]], url: str, in_flight: int,
                   calls: Sequence[tuple[list[str], list[Arg]]]) -> tuple[float, list[float]]:
    send, close = await opener(url)
    for keys, args in calls[:50]:  # warm: connections open, script loaded
        await send(keys, args)
    todo = iter(calls[50:])
    latencies: list[float] = []

    async def worker() -> None:
        for keys, args in todo:
            started = time.perf_counter()
            reply = await send(keys, args)
            latencies.append(time.perf_counter() - started)
            if int(reply[0]) != 0:
                raise AssertionError(f"not admitted: {reply!r}")

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    cpu = time.process_time() - cpu
    await close()
    return cpu / len(latencies) * 1e6, latencies


def measure(names: list[str], calls: int, rounds: int) -> dict[tuple[str, int], dict[str, float]]:
    runs: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
    with running_redis() as redis:
        for round_no in range(rounds):
            for name in names if round_no % 2 == 0 else names[::-1]:
                for in_flight in IN_FLIGHT:
                    try:
                        result = uvloop.run(_measure(CLIENTS[name], redis.url, in_flight, _calls(calls + 50)))
                    except Exception as exc:  # a client that does not run here is reported, not fatal
                        print(f"  {name} x{in_flight}: failed: {type(exc).__name__}: {exc}", flush=True)
                        continue
                    runs.setdefault((name, in_flight), []).append(result)
                    print(f"  round {round_no + 1} {name:<18} x{in_flight:<2} {result[0]:7.1f} µs CPU/call",
                          flush=True)
    out = {}
    for key, results in runs.items():
        p50s = [statistics.median(lat) * 1e6 for _, lat in results]
        p99s = [statistics.quantiles(lat, n=100)[98] * 1e6 for _, lat in results]
        out[key] = {"cpu": statistics.median(c for c, _ in results), "p50": statistics.median(p50s),
                    "p99": statistics.median(p99s)}
    return out


def table(results: dict[tuple[str, int], dict[str, float]], names: list[str]) -> str:
    lines = ["| client | CPU µs/call, 1 in flight | p50 µs | p99 µs | CPU µs/call, 32 in flight | p50 µs | p99 µs |",
             "|---|--:|--:|--:|--:|--:|--:|"]
    for name in names:
        cells = []
        for in_flight in IN_FLIGHT:
            got = results.get((name, in_flight))
            cells += [f"{got['cpu']:.1f}", f"{got['p50']:.0f}", f"{got['p99']:.0f}"] if got else ["–"] * 3
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=";".join(CLIENTS))
    args = parser.parse_args()
    names = [name for name in CLIENTS if name in args.clients.split(";")]
    print(table(measure(names, args.calls, args.rounds), names))


if __name__ == "__main__":
    main()
