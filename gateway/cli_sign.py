"""``gateway sign`` and ``gateway assume-role``: the gateway's command line acting as a client that signs."""

from __future__ import annotations

import argparse
import os
import shlex
from urllib.parse import urlsplit

from gateway import cli_sts
from gateway.errors import UsageError
from gateway.signing import V3_SIGNATURE_METHODS, percent_encode, sign_request_v1

SIGN_ENV = {
    "access_key_id": "GATEWAY_SIGN_ACCESS_KEY_ID",
    "secret": "GATEWAY_SIGN_SECRET",
    "endpoint": "GATEWAY_SIGN_ENDPOINT",
}


def query(params: dict[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())


def _credentials(args: argparse.Namespace, command: str) -> tuple[str, str, str]:
    """Access key id, secret and endpoint from the options, else ``GATEWAY_SIGN_*``."""
    values = {field: getattr(args, field) or os.environ.get(env) for field, env in SIGN_ENV.items()}
    # ACS3-RSA-SHA256 (sign only): the private key's PEM is the secret, as in tea-openapi.
    if getattr(args, "private_key_file", None):
        values["secret"] = _read(args.private_key_file)
    key_id, secret = values["access_key_id"], values["secret"]
    if not key_id or not secret:
        raise UsageError(f"{command} needs --access-key-id and --secret (or GATEWAY_SIGN_ACCESS_KEY_ID/_SECRET)")
    endpoint = values["endpoint"] or "http://127.0.0.1:8080/"
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise UsageError(f"endpoint {endpoint!r} is not an http(s) URL")
    return key_id, secret, endpoint


def sign(args: argparse.Namespace) -> int:
    key_id, secret, endpoint = _credentials(args, "sign")
    params = {}
    token = cli_sts.security_token(args)
    if token:
        params["SecurityToken"] = token  # temporary credentials (STS): signed like every parameter
    for item in args.params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"parameter {item!r} is not Name=Value")
        params[name] = value
    if args.signature_method in V3_SIGNATURE_METHODS:
        from gateway.cli_v3 import sign_v3_lines

        try:
            print("\n".join(sign_v3_lines(endpoint, args.method, params, algorithm=args.signature_method,
                                          access_key_id=key_id, secret=secret, curl=args.curl)))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return 0
    signed = sign_request_v1(params, access_key_id=key_id, secret=secret, method=args.method,
                             signature_method=args.signature_method)
    if args.method == "GET":
        url = f"{endpoint}?{query(signed)}"
        print(f"curl -s {shlex.quote(url)}" if args.curl else url)
    else:
        body = query(signed)
        print(f"curl -s -X POST -H 'Content-Type: application/x-www-form-urlencoded' "
              f"--data {shlex.quote(body)} {shlex.quote(endpoint)}" if args.curl else f"{endpoint}\n{body}")
    return 0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def assume_role(args: argparse.Namespace) -> int:
    key_id, secret, endpoint = _credentials(args, "assume-role")
    try:
        return cli_sts.assume_role(args, key_id, secret, endpoint)
    except cli_sts.AssumeRoleFailed as exc:
        raise UsageError(f"AssumeRole failed: {exc}") from None
