"""What reloads the policy of a running `gateway serve` process: SIGHUP, and the file watcher.

SIGHUP's default action ends a process. `gateway serve` therefore blocks it (`hold_hangups`) before
anything else, and every worker inherits the blocked mask from the supervisor; a SIGHUP arriving
while a process starts waits, pending, until the process's reload handler is installed on its event
loop at lifespan start-up, and SIGHUP is unblocked (`release_hangups`): then it is delivered and
reloads. At shutdown it is blocked again before the handler goes, so at no time after start does a
SIGHUP end a process. `gateway.serving.supervisor` forwards the supervisor's SIGHUP to its workers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.types import Message, Send

from gateway.watch import watch_policy

log = logging.getLogger("gateway.reload")

#: Seconds a stopping watcher gets to let go of its thread.
STOP_TIMEOUT = 2.0

ReloadCall = Callable[..., Coroutine[Any, Any, object]]


def hold_hangups() -> None:
    """Block SIGHUP in this thread (and in every thread and process it starts from now on)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})


def release_hangups() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})


class LiveReload:
    """Reloads on SIGHUP and, with ``watch``, on changes of ``path``, from lifespan start-up to shutdown."""

    def __init__(self, reload: ReloadCall, path: Callable[[], Path], *, watch: bool) -> None:
        self._reload, self._path, self._watch = reload, path, watch
        self._tasks: set[asyncio.Task[object]] = set()
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._hangups = False

    def lifespan(self, send: Send) -> Send:
        """The app's lifespan ``send``: starts the triggers once started, stops them before shutdown ends."""
        async def on_lifespan(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.start()
            elif message["type"] == "lifespan.shutdown.complete":
                await self.stop()
            await send(message)

        return on_lifespan

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
            self._hangups = True
            release_hangups()  # a SIGHUP that arrived while starting is delivered now
        else:
            log.warning("not in the main thread: SIGHUP does not reload the policy")
        if self._watch:
            self._stop.clear()
            self._watcher = asyncio.create_task(self._watching())
            log.info("watching %s for changes (GATEWAY_CONFIG_WATCH)", self._path())

    async def stop(self) -> None:
        if self._hangups:
            hold_hangups()  # first: removing the handler restores the default action, which ends the process
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._hangups = False
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                await asyncio.wait_for(watcher, STOP_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("the policy watcher did not stop in time")
        for task in list(self._tasks):
            task.cancel()

    def _hangup(self) -> None:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(self._reload(trigger="SIGHUP"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watching(self) -> None:
        try:
            await watch_policy(self._path(), lambda: self._reload(trigger="watch"), self._stop)
        except Exception:
            log.exception("the policy watcher stopped; SIGHUP still reloads")
