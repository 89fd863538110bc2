"""``gateway assume-role``: call AssumeRole on a gateway and print the temporary credentials.

Signed (version 1.0) with the long-term key from ``--access-key-id``/``--secret`` or the
``GATEWAY_SIGN_*`` variables, like ``gateway sign``. Prints the Credentials as JSON, or with ``--env``
as ``export`` lines that make the next ``gateway sign`` use them (its ``--security-token`` default).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import urllib.error
import urllib.request
from typing import Any

from gateway.signing import percent_encode, sign_request_v1

STS_VERSION = "2015-04-01"


class AssumeRoleFailed(Exception):
    pass


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--access-key-id", dest="access_key_id")
    sub.add_argument("--secret")
    sub.add_argument("--endpoint")
    sub.add_argument("--role-arn", dest="role_arn", required=True, help="acs:ram::<account id>:role/<role name>")
    sub.add_argument("--role-session-name", dest="role_session_name", required=True)
    sub.add_argument("--duration-seconds", dest="duration_seconds", type=int)
    sub.add_argument("--policy", help="a session policy (JSON) narrowing the role")
    sub.add_argument("--env", action="store_true", help="print export lines for GATEWAY_SIGN_* instead of JSON")


def request_credentials(endpoint: str, access_key_id: str, secret: str, params: dict[str, str],
                        timeout: float = 10.0) -> dict[str, Any]:
    """The Credentials object AssumeRole answers; `AssumeRoleFailed` with the gateway's code otherwise."""
    signed = sign_request_v1({"Action": "AssumeRole", "Version": STS_VERSION, "Format": "JSON", **params},
                             access_key_id=access_key_id, secret=secret)
    url = endpoint + "?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in signed.items())
    try:
        # The endpoint's scheme (http or https) is checked by gateway.cli.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
        except ValueError:
            error = None
        if not isinstance(error, dict):
            raise AssumeRoleFailed(f"HTTP {exc.code}") from None
        raise AssumeRoleFailed(f"{error.get('Code')}: {error.get('Message')}") from None
    except (OSError, ValueError) as exc:
        raise AssumeRoleFailed(f"{endpoint}: {exc}") from None
    credentials = body.get("Credentials") if isinstance(body, dict) else None
    if not isinstance(credentials, dict):
        raise AssumeRoleFailed("the answer carries no Credentials")
    return credentials


def assume_role(args: argparse.Namespace, access_key_id: str, secret: str, endpoint: str) -> int:
    params = {"RoleArn": args.role_arn, "RoleSessionName": args.role_session_name}
    if args.duration_seconds is not None:
        params["DurationSeconds"] = str(args.duration_seconds)
    if args.policy is not None:
        params["Policy"] = args.policy
    credentials = request_credentials(endpoint, access_key_id, secret, params)
    if args.env:
        for env, field in (("GATEWAY_SIGN_ACCESS_KEY_ID", "AccessKeyId"), ("GATEWAY_SIGN_SECRET", "AccessKeySecret"),
                           ("GATEWAY_SIGN_SECURITY_TOKEN", "SecurityToken")):
            print(f"export {env}={shlex.quote(str(credentials.get(field, '')))}")
        print(f"# expires {credentials.get('Expiration')}")
    else:
        print(json.dumps(credentials, indent=2))
    return 0


def security_token(args: argparse.Namespace) -> str | None:
    """``gateway sign``'s token: ``--security-token``, else ``GATEWAY_SIGN_SECURITY_TOKEN``."""
    return getattr(args, "security_token", None) or os.environ.get("GATEWAY_SIGN_SECURITY_TOKEN") or None
