"""One structured line per request on the ``gateway.access`` logger.

It replaces uvicorn's access log, which prints the query string and with it the Signature; this
line names the request, never its secrets.
"""

from __future__ import annotations

import json
import logging
import time

from gateway.context import RequestContext

log = logging.getLogger("gateway.access")


def log_request(ctx: RequestContext) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(json.dumps({
        "RequestId": ctx.request_id,
        "AccessKeyId": ctx.access_key_id,
        "Action": ctx.action,
        "Code": ctx.code,
        "status": ctx.status,
        "method": ctx.method,
        "path": ctx.path,
        "duration_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
    }, ensure_ascii=False, separators=(",", ":")))
