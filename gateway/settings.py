"""One frozen, typed settings object built from ``GATEWAY_*`` variables.

The variables are a table (`VARIABLES`): name, default, parser and one line of documentation. The
README's configuration reference is generated from the same rows, so the two cannot drift.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from gateway.errors import SettingsError
from gateway.keystore.codec import SecretKey, parse_secret_key
from gateway.settings_parsers import (
    boolean,
    choice,
    csv_list,
    host_names,
    int_min,
    networks,
    opt_http_url,
    opt_int_min,
    opt_text,
    path_prefix,
    positive_float,
    text,
)
from gateway.settings_parsers import http_url as http_url  # its home before the parsers moved (gateway.proxy)
from gateway.signing.algorithms import V3_SIGNATURE_METHODS

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("XML", "JSON")
#: The kinds of store take (`gateway.admit`) an operator may let fail open; no check is skipped.
FAIL_OPEN_KINDS = ("quota", "flow")
KEYSTORES = ("file", "redis")


@dataclass(frozen=True, slots=True)
class Variable:
    env: str
    field: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False  # its value is never repeated in an error


VARIABLES: tuple[Variable, ...] = (
    Variable("GATEWAY_CONFIG", "config", "", opt_text,
             "Path of the policy file (TOML). Unset: the bundled demo policy, with a warning."),
    Variable("GATEWAY_CONFIG_WATCH", "config_watch", "false", boolean,
             "`gateway serve` reloads the policy file when it changes (also a Kubernetes ConfigMap update); "
             "SIGHUP reloads it in any case."),
    Variable("GATEWAY_HOST", "host", "127.0.0.1", text, "Address `gateway serve` listens on."),
    Variable("GATEWAY_PORT", "port", "8080", int_min(0), "Port `gateway serve` listens on."),
    Variable("GATEWAY_WORKERS", "workers", "1", int_min(1),
             "Worker processes for `gateway serve`; more than one requires GATEWAY_REDIS_URL."),
    Variable("GATEWAY_LOG_LEVEL", "log_level", "info", choice(LOG_LEVELS), "Log level."),
    Variable("GATEWAY_ACCESS_LOG", "access_log", "true", boolean,
             "One JSON line per request on the `gateway.access` logger (never a secret or signature)."),
    Variable("GATEWAY_HOST_ID", "host_id", "", opt_text,
             "HostId in error bodies. Unset: the host the request addressed (its Host header)."),
    Variable("GATEWAY_DEFAULT_FORMAT", "default_format", "XML", choice(FORMATS, upper=True),
             "Answer format when the caller gives no Format (and, for V3, no Accept)."),
    Variable("GATEWAY_MAX_BODY_BYTES", "max_body_bytes", "1048576", int_min(0),
             "Largest request body read; a longer one is refused with InvalidParameter."),
    Variable("GATEWAY_MAX_ANSWER_BYTES", "max_answer_bytes", "8388608", int_min(1024),
             "Largest JSON answer of the service held to be rendered in the caller's format; a larger one "
             "is refused with InternalError rather than buffered without bound."),
    Variable("GATEWAY_MAX_REPEATED", "max_repeated", "100", int_min(1),
             "Most values one repeated parameter (Name.1, Name.2, ...) may carry; more is InvalidParameter."),
    Variable("GATEWAY_HOSTS", "hosts", "", host_names,
             "Host names this deployment answers for (name, or name:port), comma-separated. Set: a request "
             "whose Host, or a V3 request whose signed host, is not one of them is refused. Unset: any host."),
    Variable("GATEWAY_TRUSTED_PROXIES", "trusted_proxies", "", networks,
             "Addresses or networks (CIDR) of proxies in front of the gateway whose X-Forwarded-For is "
             "believed. Unset: none; the client address is the connection's peer."),
    Variable("GATEWAY_TIMESTAMP_SKEW", "timestamp_skew", "3600", int_min(1),
             "Seconds a Timestamp may differ from the server clock (IllegalTimestamp beyond)."),
    Variable("GATEWAY_SIGNATURE_METHODS", "signature_methods", "HMAC-SHA1,HMAC-SHA256",
             csv_list(("HMAC-SHA1", "HMAC-SHA256")), "Accepted SignatureMethod values for version 1.0."),
    Variable("GATEWAY_V3_SIGNATURE_METHODS", "v3_signature_methods", ",".join(V3_SIGNATURE_METHODS),
             csv_list(V3_SIGNATURE_METHODS),
             "Accepted V3 `Authorization` algorithms (ACS3-RSA-SHA256 only for keys with `public_keys`, "
             "which accept nothing else); another is InvalidParameter, like an unsupported SignatureMethod."),
    Variable("GATEWAY_REDIS_URL", "redis_url", "", opt_text,
             "Shared state in Redis (redis://, rediss://, unix://, or a cluster). Unset: in-memory."),
    Variable("GATEWAY_REDIS_PREFIX", "redis_prefix", "gw", text, "Prefix of every Redis key."),
    Variable("GATEWAY_REDIS_TIMEOUT", "redis_timeout", "0.25", positive_float,
             "Seconds to wait for Redis (connect and each command) before ServiceUnavailable."),
    Variable("GATEWAY_FAIL_OPEN", "fail_open", "", csv_list(FAIL_OPEN_KINDS),
             "Takes (quota, flow) skipped when only they fail in Redis; off by default, logged and counted."),
    Variable("GATEWAY_IDEMPOTENCY_TTL", "idempotency_ttl", "86400", int_min(1),
             "Seconds a ClientToken's stored answer is replayed."),
    Variable("GATEWAY_IDEMPOTENCY_LEASE", "idempotency_lease", "60", int_min(1),
             "Seconds a ClientToken stays 'processing' if its gateway dies mid-request."),
    Variable("GATEWAY_UPSTREAM_URL", "upstream_url", "", opt_http_url,
             "Reverse-proxy target of `gateway serve`. Unset: the bundled demo service."),
    Variable("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", "upstream_connect_timeout", "2", positive_float,
             "Seconds to connect to the upstream (ServiceUnavailable beyond)."),
    Variable("GATEWAY_UPSTREAM_READ_TIMEOUT", "upstream_read_timeout", "30", positive_float,
             "Seconds to wait for the upstream's answer (ServiceUnavailable beyond)."),
    Variable("GATEWAY_SHUTDOWN_TIMEOUT", "shutdown_timeout", "30", positive_float,
             "Seconds `gateway serve` lets in-flight requests finish after SIGTERM."),
    Variable("GATEWAY_HEADER_TIMEOUT", "header_timeout", "10", positive_float,
             "Seconds `gateway serve` gives a connection to send a whole request head, from its opening "
             "or its previous answer; then it is closed."),
    Variable("GATEWAY_BODY_TIMEOUT", "body_timeout", "30", positive_float,
             "Seconds `gateway serve` gives a request to send its whole body once its head is read; then "
             "the connection is closed."),
    Variable("GATEWAY_MAX_HEADER_BYTES", "max_header_bytes", "65536", int_min(1024),
             "Largest request head (request line and headers) `gateway serve` reads; a longer one gets 431."),
    Variable("GATEWAY_MAX_CONNECTIONS", "max_connections", "", opt_int_min(1),
             "Open connections per worker; past it one is closed: the one waiting longest for a request head "
             "(or lingering after its answer), else the one stalled longest in its body, never one being answered. "
             "Unset: the descriptor limit (`ulimit -n`) less 128 (less a quarter, under 512)."),
    Variable("GATEWAY_GC_FREEZE", "gc_freeze", "true", boolean,
             "After start-up, exempt what is then alive (the policy, the code) from the garbage collector's "
             "full passes (gc.freeze): each would walk every policy entry while no request moves."),
    Variable("GATEWAY_TLS_CERT_FILE", "tls_cert_file", "", opt_text,
             "PEM certificate (chain) `gateway serve` terminates TLS with; needs GATEWAY_TLS_KEY_FILE. Unset: plain "
             "HTTP."),
    Variable("GATEWAY_TLS_KEY_FILE", "tls_key_file", "", opt_text,
             "PEM private key of GATEWAY_TLS_CERT_FILE (unencrypted); set both or neither."),
    Variable("GATEWAY_TLS_CA_FILE", "tls_ca_file", "", opt_text,
             "PEM CA certificates: with TLS on, every client must present a certificate they issued (mutual TLS). "
             "Unset: no client certificate is asked for."),
    Variable("GATEWAY_OPS_PREFIX", "ops_prefix", "/_gateway", path_prefix,
             "Path prefix of the health and metrics endpoints (never served as API calls)."),
    Variable("GATEWAY_KEYSTORE", "keystore", "file", choice(KEYSTORES),
             "Where accounts, access keys and sub-users live: `file` (the policy file only) or `redis` "
             "(GATEWAY_REDIS_URL, shared by every gateway, managed with `gateway keys`; the file may add "
             "static ones)."),
    Variable("GATEWAY_SECRET_KEY", "secret_key", "", parse_secret_key,
             "32 random bytes, standard base64 (`openssl rand -base64 32`): seals the keystore's secrets (AES-GCM). "
             "Required with GATEWAY_KEYSTORE=redis.", secret=True),
    Variable("GATEWAY_SECRET_KEY_PREVIOUS", "secret_key_previous", "", parse_secret_key,
             "While GATEWAY_SECRET_KEY rotates: the old key, which still opens secrets sealed with it "
             "(`gateway keys reencrypt` reseals them all with the new one).", secret=True),
    Variable("GATEWAY_KEYSTORE_TTL", "keystore_ttl", "60", positive_float,
             "Seconds a keystore entry is cached before it is read again: the backstop for a lost change message."),
    Variable("GATEWAY_KEYSTORE_GRACE", "keystore_grace", "300", positive_float,
             "Seconds, past their TTL, cached keystore entries keep working while Redis is unreachable; an "
             "uncached key is ServiceUnavailable."),
)


@dataclass(frozen=True, slots=True)
class Settings:
    config: str | None = None
    config_watch: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"
    access_log: bool = True
    host_id: str | None = None
    default_format: str = "XML"
    max_body_bytes: int = 1_048_576
    max_answer_bytes: int = 8_388_608
    max_repeated: int = 100
    hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    timestamp_skew: int = 3600
    signature_methods: tuple[str, ...] = ("HMAC-SHA1", "HMAC-SHA256")
    v3_signature_methods: tuple[str, ...] = V3_SIGNATURE_METHODS
    redis_url: str | None = None
    redis_prefix: str = "gw"
    redis_timeout: float = 0.25
    fail_open: tuple[str, ...] = ()
    idempotency_ttl: int = 86400
    idempotency_lease: int = 60
    upstream_url: str | None = None
    upstream_connect_timeout: float = 2.0
    upstream_read_timeout: float = 30.0
    shutdown_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 65_536
    max_connections: int | None = None
    gc_freeze: bool = True
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    ops_prefix: str = "/_gateway"
    keystore: str = "file"
    secret_key: SecretKey | None = None
    secret_key_previous: SecretKey | None = None
    keystore_ttl: float = 60.0
    keystore_grace: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every ``GATEWAY_*`` variable; ``overrides`` (already typed) win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var in VARIABLES:
            raw = env.get(var.env, var.default)
            try:
                values[var.field] = var.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{var.env}={'(hidden)' if var.secret else repr(raw)}: {exc}") from None
        values.update(overrides)
        return cls(**values)


def _check_table() -> None:
    # A row without a field (or a field without a row) would silently never be configurable.
    names = {f.name for f in fields(Settings)}
    rows = {var.field for var in VARIABLES}
    if names != rows:
        raise RuntimeError(f"settings table and Settings differ: {sorted(names ^ rows)}")


_check_table()
