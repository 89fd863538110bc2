"""`gateway serve` as an operator runs it: a subprocess, ready once ``/_gateway/ready`` answers 200.

Only what is passed configures it (every ``GATEWAY_*`` variable of the test's environment is dropped);
its stdout and stderr go to one file the test can read; `stop` sends SIGTERM and waits for the exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

import gateway
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "/_gateway/ready"
#: True when this process imports `gateway` from the checkout; False for an installed package (the
#: compiled wheel of `make test-compiled`), which child processes must import as well.
FROM_CHECKOUT = Path(gateway.__file__).resolve().parents[1] == ROOT


def import_env(base: Mapping[str, str]) -> dict[str, str]:
    """The variables a child ``python`` (cwd: ROOT) needs to import the same `gateway` as this process.

    From the checkout: ROOT first on PYTHONPATH. Installed: PYTHONSAFEPATH, so that neither the cwd of
    ``python -m`` / ``-c`` nor anything else puts the checkout's sources in front of the package.
    """
    if FROM_CHECKOUT:
        return {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))}
    return {"PYTHONSAFEPATH": "1"}


def serve_env(**variables: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**base, **import_env(base), **variables}


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
        self.process, self.url, self._log = process, url, log

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait: uvicorn finishes in-flight requests and runs the lifespan shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def children(self) -> list[int]:
        """PIDs of this process's children, from /proc (uvicorn's workers, with --workers N)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            # Field 4 of /proc/PID/stat is the parent PID; the name before it may hold spaces.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return found


@contextmanager
def gateway_serve(env: Mapping[str, str], args: Sequence[str] = (), *,
                  timeout: float = 20.0) -> Iterator[Served]:
    """``python -m gateway serve --port P [args]``, ready on entry, stopped (SIGTERM) on exit."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gateway-serve-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port), *args],
                               cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(served, timeout)
        yield served
    finally:
        if process.poll() is None:
            served.stop()
        log.close()


def _wait_ready(served: Served, timeout: float) -> None:
    with httpx.Client(timeout=1.0) as client:
        if not until_ready(client, served.process, served.url, time.monotonic() + timeout, served.output):
            raise RuntimeError(f"gateway serve exited with {served.process.returncode}:\n{served.output()}")


def until_ready(client: httpx.Client, process: subprocess.Popen[bytes], url: str, deadline: float,
                output: Callable[[], str]) -> bool:
    """Poll ``url``'s readiness while ``process`` lives: True once ready, False if it exited first."""
    while process.poll() is None:
        try:
            if client.get(url + READY).status_code == 200:
                return True
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway {url} not ready: {output()}")
        time.sleep(0.01)
    return False
