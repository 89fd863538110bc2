"""`gateway serve` runs uvicorn's server or, with ``--workers N``, its supervisor, except for SIGHUP.

uvicorn's `Multiprocess` answers SIGHUP by starting new workers and stopping the old ones. Here SIGHUP
reloads the policy inside every running worker instead (`gateway.live`): `Supervisor` forwards it to
its workers, whose PIDs, connections and in-process state stay. Every other signal is uvicorn's
(SIGTERM/SIGINT: graceful shutdown; SIGTTIN/SIGTTOU: one worker more or less).

SIGHUP stays blocked in the supervisor (`gateway.live.hold_hangups`; its workers inherit the mask
and unblock it once they can reload): a thread of its own takes it with ``sigwait`` and forwards it at
once, rather than a handler run on the next turn of uvicorn's supervision loop (every 0.5 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from gateway.live import hold_hangups

logger = logging.getLogger("uvicorn.error")


class Supervisor(Multiprocess):
    """uvicorn's supervisor, with SIGHUP forwarded to the workers rather than restarting them."""

    def run(self) -> None:
        hold_hangups()  # (already, from `gateway serve`): in every thread, so that sigwait has it
        threading.Thread(target=self._take_hangups, name="gateway-sighup", daemon=True).start()
        super().run()

    def _take_hangups(self) -> None:
        while True:
            signal.sigwait({signal.SIGHUP})
            self.handle_hup()

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, reloading the policy in every worker.")
        # A worker still starting keeps it pending until it can reload (it inherited the mask). Only the
        # PIDs are read here: waiting for a child is the supervision loop's, in the main thread.
        for process in list(self.processes):
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # gone: its replacement reads the file anew
                    os.kill(process.pid, signal.SIGHUP)


def run(config: Config) -> None:
    """What `uvicorn.run` does once it has its config, with `Supervisor` for several workers."""
    server = Server(config=config)
    try:
        if config.workers > 1:
            Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
