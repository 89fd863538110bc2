"""``GATEWAY_CONFIG_WATCH``: reload the policy when its file changes, once per change, never half-written.

The file's directory is watched (with watchfiles, inotify on Linux), not the file: an editor saves by
renaming a new file over the old one, and a Kubernetes ConfigMap update swaps the ``..data`` symlink
the file points through, neither of which a watch on the file itself would follow. A change is the
file's name or a ``..``-prefixed name (the ConfigMap's ``..data``, ``..data_tmp``, ``..2026_...``
directories) appearing, changing or going in that directory.

Debounced: the reload runs once the directory has been quiet for `QUIET` seconds, so a file written
in place is read once it has stopped changing, and the several events of one ConfigMap swap make
one reload. The reload itself compares the text with the policy in force (``unchanged``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("gateway.reload")

#: Seconds without a change before the file is read.
QUIET = 0.2
#: Milliseconds between two looks of the watcher thread at its events (watchfiles' ``step``).
STEP_MS = 50


async def watch_policy(path: Path, reload: Callable[[], Awaitable[object]], stop: asyncio.Event,
                       quiet: float = QUIET) -> None:
    """Call ``reload`` after each change of ``path`` (debounced) until ``stop`` is set."""
    from watchfiles import Change, awatch  # the watcher is only needed with GATEWAY_CONFIG_WATCH

    directory = path.absolute().parent
    name = path.name

    def relevant(change: Change, changed: str) -> bool:
        base = os.path.basename(changed)
        return base == name or base.startswith("..")

    changed = asyncio.Event()
    debouncer = asyncio.create_task(_debounce(changed, reload, quiet))
    try:
        async for _ in awatch(directory, watch_filter=relevant, stop_event=stop, step=STEP_MS, recursive=False):
            changed.set()
    finally:
        debouncer.cancel()


async def _debounce(changed: asyncio.Event, reload: Callable[[], Awaitable[object]], quiet: float) -> None:
    while True:
        await changed.wait()
        while changed.is_set():  # until `quiet` seconds pass without another change
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), quiet)
            except TimeoutError:
                break
        try:
            await reload()
        except Exception:  # a reload reports its own failures; this one must not end the watching
            log.exception("policy reload after a change failed")
