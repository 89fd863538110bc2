"""Units of `gateway.checks.host` (GATEWAY_HOSTS); more cases in tests/test_request_shape.py."""

from __future__ import annotations

import pytest

from gateway.checks.host import Host
from gateway.errors import BadInput
from tests.support.calls import a_call

HOST = Host(("api.example", "alt.example:8443"))


@pytest.mark.parametrize("host", ["api.example", "API.example:80", "alt.example:8443"])
def test_a_listed_host_passes(host: str) -> None:
    HOST(a_call(headers={"host": host}))


@pytest.mark.parametrize("host", ["other.example", "alt.example", "alt.example:80", "api.example,api.example"])
def test_any_other_host_is_refused(host: str) -> None:
    with pytest.raises(BadInput):
        HOST(a_call(headers={"host": host}))
