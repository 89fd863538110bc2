"""What a call may name twice, as a parameter and as a header, must be one thing wherever it is read.

A signature version reads one of the two places and a service behind the gateway may read the other
(sdk-core and tea-openapi "v2" send both). The API: V1 reads the parameters ``Action``/``Version`` and
leaves the ``x-acs-action``/``x-acs-version`` headers unsigned; V3 reads the headers and signs the
parameters along with the query. The security token: V1 verifies the ``SecurityToken`` parameter, V3
the ``x-acs-security-token`` header.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import BadInput

_API_NAMED_TWICE = (("Action", "x-acs-action"), ("Version", "x-acs-version"))
TOKEN_PARAM, TOKEN_HEADER = "SecurityToken", "x-acs-security-token"


def one_api(params: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """The checks authorize one of the two names; where both are sent they must agree."""
    for name, header in _API_NAMED_TWICE:
        param, sent = params.get(name), headers.get(header)
        if param is not None and sent is not None and param != sent:
            raise BadInput(f"{name} {param!r} and {header} {sent!r} name different APIs")


def one_token(params: Mapping[str, str], headers: Mapping[str, str], v3: bool) -> None:
    """With ``[sts]``: a token in the place the version does not read must be the verified one (an SDK
    sends one token, in its version's place)."""
    param, header = params.get(TOKEN_PARAM), headers.get(TOKEN_HEADER)
    unread, verified = (param, header) if v3 else (header, param)
    if unread is not None and unread != verified:
        raise BadInput("a SecurityToken parameter and x-acs-security-token header must be one token, sent where "
                       "the signature version reads it")
