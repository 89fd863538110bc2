"""``gateway serve | sign | check-config`` (CONTRACT §1)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence

from gateway import cli_sts
from gateway.cli_keys import ADMIN_COMMANDS, add_arguments, check_shadowing
from gateway.cli_sign import assume_role, query, sign
from gateway.errors import SettingsError, UsageError
from gateway.policy import Policy, PolicyError, load_policy
from gateway.policy.diff import diff_policies
from gateway.settings import LOG_LEVELS, Settings
from gateway.signing import V1_SIGNATURE_METHODS, V3_SIGNATURE_METHODS, sign_request_v1

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
DEMO_KEY = ("LTAIdemoAccessKey", "demo-secret-do-not-use")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {name: value for name in ("host", "port", "workers", "log_level")
                 if (value := getattr(args, name, None)) is not None}
    return Settings.from_env(**overrides)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.live import hold_hangups
    from gateway.serving import Limits, protocol
    from gateway.serving.supervisor import run
    from gateway.serving.tls import tls_options

    # Before any thread or worker exists, so that all inherit it: SIGHUP reloads, never ends a process.
    hold_hangups()
    settings = _settings(args)
    policy = load_policy(settings.config)  # a bad file stops start-up here, with one line
    tls = tls_options(settings)  # so do TLS files that are missing or do not load
    if settings.workers > 1 and not settings.redis_url:
        raise UsageError(
            f"--workers {settings.workers} needs GATEWAY_REDIS_URL: with the in-memory store each worker "
            "would keep its own nonces and quotas, so replays and over-quota calls would pass"
        )
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("gateway").info("%s", policy.summary())
    if (unchecked := check_shadowing(settings, policy)) is not None:  # an id in file and keystore: stops here
        logging.getLogger("gateway").warning("%s", unchecked)
    limits = Limits.from_settings(settings)
    logging.getLogger("gateway").info(
        "connections: request heads within %g s and %d bytes; at most %s open per worker",
        limits.header_timeout, limits.max_header_bytes, limits.max_connections or "unbounded")
    logging.getLogger("gateway").info("%s", _tls_summary(tls))
    if not settings.upstream_url:
        _print_demo_hint(settings)
    # Workers re-read the environment in their own process: pass the command-line overrides on.
    os.environ.update({"GATEWAY_HOST": settings.host, "GATEWAY_PORT": str(settings.port),
                       "GATEWAY_WORKERS": str(settings.workers), "GATEWAY_LOG_LEVEL": settings.log_level})
    run(uvicorn.Config(
        "gateway.app:create_app",
        factory=True,
        http=protocol(limits),  # httptools, with the header timeout, head bound and connection cap
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # uvicorn's line prints the query, Signature included; ours replaces it
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 and rewrite the client: the gateway
        # applies GATEWAY_TRUSTED_PROXIES itself (gateway.forwarded), one rule in both modes.
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        **tls,  # uvicorn's own TLS: the scope's scheme is then https (X-Forwarded-Proto, Forwarded proto)
    ))
    return 0


def _tls_summary(tls: dict[str, object]) -> str:
    if not tls:
        return "tls: off (plain HTTP)"
    clients = "client certificates required" if "ssl_ca_certs" in tls else "no client certificate asked for"
    return f"tls: on ({clients})"


def _print_demo_hint(settings: Settings) -> None:
    if settings.config is not None:
        return
    endpoint = f"{'https' if settings.tls_cert_file else 'http'}://{settings.host}:{settings.port}/"
    params = sign_request_v1({"Action": "DescribeRegions", "Version": "2014-05-26", "Format": "JSON"},
                             access_key_id=DEMO_KEY[0], secret=DEMO_KEY[1], timestamp=None)
    print(f"demo access key: {DEMO_KEY[0]}  secret: {DEMO_KEY[1]}", flush=True)
    print("try (valid for one call, the nonce is single-use; `gateway sign` makes more):", flush=True)
    print(f"  curl -s {shlex.quote(endpoint + '?' + query(params))}", flush=True)


def check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    policy = load_policy(settings.config)
    if args.diff is not None:
        return _diff(policy, load_policy(args.diff))
    from gateway.serving.tls import tls_options

    tls = tls_options(settings)
    print(policy.summary())
    print(f"state: {'redis ' + settings.redis_url if settings.redis_url else 'in-memory (one process)'}; "
          f"upstream: {settings.upstream_url or 'bundled demo service'}; {_tls_summary(tls)}")
    in_redis = settings.keystore == "redis"
    print(f"keys: the policy file{f' and the Redis keystore (prefix {settings.redis_prefix})' if in_redis else ''}")
    if (unchecked := check_shadowing(settings, policy)) is not None:
        print(f"warning: {unchecked}")
    return 0


def _diff(running: Policy, candidate: Policy) -> int:
    """What reloading ``candidate`` in place of ``running`` would change (both already validated)."""
    diff = diff_policies(running, candidate)
    print(f"candidate {candidate.summary()}")
    print(f"against {running.source} (GATEWAY_CONFIG)")
    if candidate.text_sha256 == running.text_sha256:
        print("same text: a reload would be \"unchanged\"")
        return 0
    for line in diff.lines():
        print(line)
    print(f"a reload would change: {diff.summary()}")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "serve": (serve, "run the gateway (in front of GATEWAY_UPSTREAM_URL, or the bundled demo service)"),
    "sign": (sign, "print a signed request URL (or curl line) for Name=Value parameters"),
    "check-config": (check_config, "validate the settings and the policy file, print a summary"),
    "assume-role": (assume_role, "call AssumeRole on the gateway, print the temporary credentials"),
    **ADMIN_COMMANDS,  # keys, accounts, sub-users (gateway.cli_keys)
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name in ("serve", "check-config"):
            sub.add_argument("--host")
            sub.add_argument("--port", type=int)
            sub.add_argument("--workers", type=int)
            sub.add_argument("--log-level", dest="log_level", choices=LOG_LEVELS)
        if name == "check-config":
            sub.add_argument("--diff", metavar="CANDIDATE.toml",
                             help="validate a candidate policy file and print what reloading it in place of "
                                  "GATEWAY_CONFIG would change (keys, APIs, limits)")
        if name == "sign":
            sub.add_argument("--access-key-id", dest="access_key_id")
            sub.add_argument("--secret")
            sub.add_argument("--endpoint")
            sub.add_argument("--method", choices=("GET", "POST"), default="GET")
            sub.add_argument("--signature-method", dest="signature_method", default="HMAC-SHA1",
                             choices=(*V1_SIGNATURE_METHODS, *V3_SIGNATURE_METHODS),
                             help="HMAC-SHA1/HMAC-SHA256: version 1.0 in the query; ACS3-*: V3 headers")
            sub.add_argument("--private-key-file", dest="private_key_file",
                             help="ACS3-RSA-SHA256: the PEM private key (instead of --secret)")
            sub.add_argument("--curl", action="store_true", help="print a curl command line")
            sub.add_argument("--security-token", dest="security_token",
                             help="sign with temporary credentials (default GATEWAY_SIGN_SECURITY_TOKEN)")
            sub.add_argument("params", nargs="*", metavar="Name=Value")
        if name == "assume-role":
            cli_sts.add_arguments(sub)
        add_arguments(name, sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command][0](args)
    except (SettingsError, PolicyError, UsageError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2


__all__ = ["main"]
