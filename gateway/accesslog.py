"""One structured line per request on the ``gateway.access`` logger.

It replaces uvicorn's access log, which prints the query string and with it the Signature; this
line names the request, never its secrets.
"""

from __future__ import annotations

import json
import logging
import re
import time

from gateway.call import Exchange

log = logging.getLogger("gateway.access")


# json.dumps given any option builds a new encoder for every call: a third of this line's cost.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
# Printable ASCII without '"' or '\\' is its own JSON string (json escapes everything else, ASCII only):
# RequestIds, key ids, Actions, Codes, methods and paths nearly always are.
_PLAIN = re.compile(r'[ !#-\[\]-~]*').fullmatch


def _string(value: str | None) -> str:
    if value is None:
        return "null"
    return f'"{value}"' if _PLAIN(value) else _ENCODE(value)


def access_line(ctx: Exchange, now: float) -> str:
    """The request's line: the JSON ``json.dumps(..., separators=(",", ":"))`` writes, built directly.

    ASCII only: JSON escapes C0 controls anyway, but U+0085, U+2028 and U+2029 from a path would
    otherwise split one record for readers that split on Unicode line breaks (str.splitlines does),
    and a lone surrogate would fail the handler's UTF-8 encoding.
    """
    status = ctx.status
    # repr is what json writes for an int and for a finite float (a duration always is).
    return (f'{{"RequestId":{_string(ctx.request_id)},"AccessKeyId":{_string(ctx.access_key_id)},'
            f'"Action":{_string(ctx.action)},"Code":{_string(ctx.code)},'
            f'"status":{int.__repr__(status) if type(status) is int else _ENCODE(status)},'
            f'"method":{_string(ctx.method)},"path":{_string(ctx.path)},'
            f'"duration_ms":{float.__repr__(round((now - ctx.started) * 1000, 3))}}}')


def log_request(ctx: Exchange) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(access_line(ctx, time.perf_counter()))


_SIGNATURE_VALUE = re.compile(r"(?<=[?&]Signature=)[^&\s]*")


class RedactSignature(logging.Filter):
    """Blanks the Signature in uvicorn's access lines, which print the path with its query string.

    uvicorn logs them whenever the ``uvicorn.access`` logger has a handler (its default when it
    serves an app with the gateway as middleware); the filter keeps CONTRACT §5 true there too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "Signature=" in a for a in args):
            record.args = tuple(_SIGNATURE_VALUE.sub("***", a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str) and "Signature=" in record.msg:
            record.msg = _SIGNATURE_VALUE.sub("***", record.msg)
        return True


def redact_uvicorn_access_log() -> None:
    """Install `RedactSignature` on ``uvicorn.access`` once per process."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignature) for f in logger.filters):
        logger.addFilter(RedactSignature())
