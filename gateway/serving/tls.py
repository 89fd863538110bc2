"""TLS on `gateway serve` (#17 §4): GATEWAY_TLS_* checked at start, then handed to uvicorn's own options.

uvicorn builds the TLS context in each worker itself (``ssl_certfile``, ``ssl_keyfile``,
``ssl_ca_certs``, ``ssl_cert_reqs``); here the files are loaded once beforehand into a throw-away
context, so that a missing file, a key that does not match its certificate or a CA file that is no PEM
stops start-up with one line naming the variable, instead of a traceback from every worker.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from gateway.errors import SettingsError
from gateway.settings import Settings

CERT, KEY, CA = "GATEWAY_TLS_CERT_FILE", "GATEWAY_TLS_KEY_FILE", "GATEWAY_TLS_CA_FILE"


def tls_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn keywords serving TLS as the settings ask (none without a certificate); or `SettingsError`."""
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file
    if cert is None and key is None:
        if ca is not None:
            raise SettingsError(f"{CA} needs {CERT} and {KEY}: client certificates are only asked for over TLS")
        return {}
    if cert is None or key is None:
        given, missing = (KEY, CERT) if cert is None else (CERT, KEY)
        raise SettingsError(f"{given} is set but {missing} is not: TLS needs both")
    for env, path in ((CERT, cert), (KEY, key), (CA, ca)):
        if path is not None and not os.path.isfile(path):
            raise SettingsError(f"{env}={path!r}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"{CERT}={cert!r}, {KEY}={key!r}: cannot be loaded as a certificate and its "
                            f"private key ({_reason(exc)})") from None
    options: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(f"{CA}={ca!r}: cannot be loaded as PEM CA certificates ({_reason(exc)})") from None
        options.update(ssl_ca_certs=ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
