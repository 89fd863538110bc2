"""The API's declared parameters: nothing undeclared, every value within its type and rules, the required
ones present (run once a key is proven: patterns and numbers are work)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from gateway.call import Call
from gateway.catalog import Err
from gateway.errors import GatewayError
from gateway.policy import ParamSpec

#: Parameters every API accepts (CONTRACT §2); ``SignatureType`` is sent, empty, by aliyun-python-sdk-core.
COMMON_PARAMETERS = frozenset({
    "Action", "Version", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
    "SignatureNonce", "Timestamp", "Format", "OwnerId", "OwnerAccount", "ClientToken", "RegionId",
    "SignatureType",
})

# ASCII only ([0-9], not \d, which takes any script's digits) and short: int() and float() of a
# 10,000-digit string costs time, and no value of these types needs more characters.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_DECIMAL = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?(?:[eE][+-]?[0-9]{1,4})?")
_REPEATED = re.compile(r"(.+)\.([1-9][0-9]{0,9})")


def _bounded(low: int, high: int) -> Callable[[str], float | None]:
    def parse(value: str) -> float | None:
        if _INTEGER.fullmatch(value) is None:
            return None
        number = int(value)
        return number if low <= number <= high else None

    return parse


def _float(value: str) -> float | None:
    # Python's float() also takes "1_000", " 2.5\n", "inf" and other scripts' digits; a service's
    # parser need not, so the value must be what every language reads as a decimal literal.
    if _DECIMAL.fullmatch(value) is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _boolean(value: str) -> float | None:
    return 0 if value in ("true", "false") else None


#: Type name -> parser giving a number to range-check (or 0 when there is no range), None if invalid.
TYPES: MappingProxyType[str, Callable[[str], float | None]] = MappingProxyType({
    "Integer": _bounded(-(2**31), 2**31 - 1),
    "Long": _bounded(-(2**63), 2**63 - 1),
    "Float": _float,
    "Boolean": _boolean,
})


def valid(spec: ParamSpec, value: str) -> bool:
    parse = TYPES.get(spec.type)
    if parse is not None:
        number = parse(value)
        if number is None:
            return False
        if spec.min is not None and number < spec.min:
            return False
        if spec.max is not None and number > spec.max:
            return False
    if spec.enum is not None and value not in spec.enum:
        return False
    if spec.max_length is not None and len(value) > spec.max_length:
        return False
    return spec.pattern is None or spec.pattern.fullmatch(value) is not None


class Params:
    """Undeclared parameters are UnsupportedParameter; declared ones obey their type and rules.

    Runs after the signature is verified: a pattern, and the parsing of a number, are work that a
    caller who has proven no key must not be able to ask for.
    """

    def __init__(self, *, max_repeated: int, common: frozenset[str] = COMMON_PARAMETERS) -> None:
        self.max_repeated = max_repeated
        self.common = common  # with [sts], SecurityToken too

    def __call__(self, call: Call) -> None:
        api = call.api
        if api is None:
            return
        declared, common = api.params, self.common
        for name, value in call.params.items():
            if name in common:
                continue
            spec = declared.get(name)
            if spec is None or spec.repeated:
                spec = self._repeated(api.repeated, declared, name)
            if not valid(spec, value):
                raise GatewayError(Err.INVALID_PARAMETER)
        for name in api.required:
            if name not in call.params and not (name in api.repeated and f"{name}.1" in call.params):
                raise GatewayError(Err.MISSING_PARAMETER, name=name)

    def _repeated(self, repeated: frozenset[str], declared: Mapping[str, ParamSpec], name: str) -> ParamSpec:
        # A repeated list parameter is declared once and sent as Name.1, Name.2, ... (never bare).
        match = _REPEATED.fullmatch(name)
        if match is None or match[1] not in repeated:
            raise GatewayError(Err.UNSUPPORTED_PARAMETER, name=name)
        # Each index is one name, so bounding the index bounds how many values the list carries
        # (and how many resources a RAM check has to resolve).
        if int(match[2]) > self.max_repeated:
            raise GatewayError(Err.INVALID_PARAMETER)
        return declared[match[1]]
