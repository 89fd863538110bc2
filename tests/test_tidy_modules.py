"""#13 module split (branch tidy): what moved still answers at its old import path, the settings
table's defaults and the Settings dataclass's cannot drift apart, and verify_v3 reads a body or its hash alike."""

from __future__ import annotations

from dataclasses import fields

import pytest

from gateway import catalog, echo, entry, settings, settings_parsers
from gateway.errors import UsageError
from gateway.settings import VARIABLES, Settings
from gateway.signing import hash_payload, parse_v3_authorization, sign_request_v3, verify_v3, verify_v3_body


def test_moved_names_keep_their_old_import_paths() -> None:
    assert settings.http_url is settings_parsers.http_url
    assert catalog.echo is echo.echo and catalog.ECHO_LIMIT == echo.ECHO_LIMIT == 64
    assert catalog.Entry is entry.Entry
    assert type(catalog.Err.INVALID_PARAMETER.value) is entry.Entry
    from gateway import cli

    assert cli.UsageError is UsageError


def test_every_settings_default_is_what_its_row_parses_to() -> None:
    # The default is written twice (the row's text, for the README and the environment; the field's, for
    # Settings() built directly): a change to one alone would give two different defaults.
    defaults = {f.name: f.default for f in fields(Settings)}
    for var in VARIABLES:
        assert var.parse(var.default) == defaults[var.field], var.env
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "ACS3-HMAC-SM3"])
def test_verify_v3_takes_the_body_or_its_hash(algorithm: str) -> None:
    body = b"Description=x+y"
    headers = sign_request_v3(method="POST", host="127.0.0.1:8080", path="/", query={"A": "b"}, body=body,
                              action="DescribeRegions", version="2014-05-26", access_key_id="ak", secret="s3cret",
                              algorithm=algorithm)
    auth = parse_v3_authorization(headers.pop("authorization"))
    args = (["s3cret"], "POST", "/", {"A": "b"}, headers, auth)
    assert verify_v3(*args, hash_payload(body, algorithm)) and verify_v3(*args, body)
    assert verify_v3_body is verify_v3
    assert not verify_v3(*args, body + b"x") and not verify_v3(*args, hash_payload(body + b"x", algorithm))
