"""Units of `gateway.checks.request`: the common parameters, the signature protocol, the nonce's shape."""

from __future__ import annotations

import pytest

from gateway.catalog import Err
from gateway.checks.request import MAX_NONCE_LENGTH, SignatureProtocol, nonce_shape, required
from gateway.errors import GatewayError
from tests.support.calls import a_call

PROTOCOL = SignatureProtocol(v1_methods=("HMAC-SHA1", "HMAC-SHA256"))


def test_a_complete_call_passes() -> None:
    call = a_call()
    required(call)
    PROTOCOL(call)
    nonce_shape(call)


@pytest.mark.parametrize(("field", "code", "message_names"), [
    ("action", "MissingParameter", "Action"),
    ("access_key_id", "MissingParameter", "AccessKeyId"),
    ("signature", "MissingParameter", "Signature"),
    ("timestamp", "MissingParameter", "TimeStamp"),
    ("version", "MissingParameter", "Version"),
    ("signature_method", "MissingParameter", "SignatureMethod"),
    ("signature_version", "MissingParameter", "SignatureVersion"),
    ("nonce", "MissingParameter", "SignatureNonce"),
])
@pytest.mark.parametrize("absent", [None, ""])
def test_each_missing_common_parameter_is_named(field: str, code: str, message_names: str, absent: str | None) -> None:
    with pytest.raises(GatewayError) as caught:
        required(a_call(**{field: absent}))
    assert (caught.value.code, caught.value.status) == (code, 400)
    assert message_names in caught.value.message


def test_the_first_missing_parameter_in_table_order_is_reported() -> None:
    with pytest.raises(GatewayError) as caught:
        required(a_call(nonce=None, version=None))
    assert caught.value.err is Err.MISSING_VERSION


@pytest.mark.parametrize(("fields", "err"), [
    ({"signature_method": "HMAC-MD5"}, Err.INVALID_SIGNATURE_METHOD),
    ({"signature_version": "2.0"}, Err.INVALID_SIGNATURE_VERSION),
    ({"signature_method": "HMAC-SHA1", "signature_version": "1"}, Err.INVALID_SIGNATURE_VERSION),
])
def test_a_v1_protocol_other_than_configured_is_refused(fields: dict[str, str], err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        PROTOCOL(a_call(**fields))
    assert caught.value.err is err


def test_v1_methods_are_the_configured_ones() -> None:
    with pytest.raises(GatewayError):
        SignatureProtocol(v1_methods=("HMAC-SHA256",))(a_call())
    SignatureProtocol(v1_methods=("HMAC-SHA256",))(a_call(signature_method="HMAC-SHA256"))


def test_nonce_up_to_the_bound_passes_and_past_it_is_refused() -> None:
    nonce_shape(a_call(nonce="n" * MAX_NONCE_LENGTH))
    with pytest.raises(GatewayError) as caught:
        nonce_shape(a_call(nonce="n" * (MAX_NONCE_LENGTH + 1)))
    assert caught.value.err is Err.INVALID_PARAMETER
