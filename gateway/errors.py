"""Every exception of the gateway, in one tree (the refusals carry a row of `gateway.catalog`).

::

    GatewayError            a refusal: one Err member, template values, extra response headers;
    │                       the middleware's error boundary renders it, nothing else does
    ├── ApiError            raised by a wrapped app to answer with any catalogued code
    └── BadInput            input the gateway refuses to interpret (the generic InvalidParameter row)
    ClientDisconnected      the client left before its body arrived: nobody to answer
    StoreUnavailable        the store could not decide; wrapped once, at the store boundary
    NotJson (ValueError)    a service's answer labelled JSON that is not JSON
    PolicyError (ValueError)    the policy file is wrong (at start-up)
    SettingsError (ValueError)  a bad GATEWAY_* value (at start-up)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.catalog import BY_CODE, Err

__all__ = ["ApiError", "BadInput", "ClientDisconnected", "Err", "GatewayError", "NotJson", "PolicyError",
           "SettingsError", "StoreUnavailable"]


class GatewayError(Exception):
    """A refusal carrying one catalog entry; the outermost layer renders it, nothing else does."""

    def __init__(
        self,
        err: Err,
        /,
        *,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        **params: str,
    ) -> None:
        self.err = err
        # Plain attributes, not properties: an error is built once and read by the boundary, the log and tests.
        self.code, self.status = err.code, err.status
        self.params = params
        self.headers = dict(headers or {})
        self._message = message
        super().__init__(err.code)

    @property
    def message(self) -> str:
        if self._message is not None:
            return self._message
        return self.err.value.message(self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.err.name}, {self.message!r})"


class ApiError(GatewayError):
    """Raised by a wrapped app to answer with a catalogued code, in the caller's format.

    ``ApiError(Err.INSTANCE_NOT_FOUND)`` or ``ApiError("Forbidden.InstanceNotFound")``; a
    ``message`` overrides the table's text (the code and status always come from the table).
    """

    def __init__(
        self,
        err: Err | str,
        /,
        *,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        **params: Any,
    ) -> None:
        if isinstance(err, str):
            try:
                err = BY_CODE[err]
            except KeyError:
                raise ValueError(f"{err!r} is not a catalogued error code") from None
        super().__init__(err, headers=headers, message=message, **{k: str(v) for k, v in params.items()})


class BadInput(GatewayError):
    """Input the gateway refuses to interpret; rendered as the generic InvalidParameter row."""

    def __init__(self, reason: str) -> None:
        super().__init__(Err.INVALID_PARAMETER)
        self.reason = reason


class ClientDisconnected(Exception):
    """The client went away before its body arrived: there is nobody to answer."""


class StoreUnavailable(Exception):
    """The store could not decide: connection refused, timeout, cluster down, a script error.

    Every backend failure is wrapped into this once, at the store boundary; the gateway answers
    ``ServiceUnavailable`` and admits nothing.
    """


class NotJson(ValueError):
    """A body labelled JSON that is not JSON (or is nested deeper than the parser goes)."""


class PolicyError(ValueError):
    """The policy file is wrong; the message is one line naming the file, line, entry and problem."""


class SettingsError(ValueError):
    """A bad ``GATEWAY_*`` value; its message names the variable and says what is wrong."""


class UsageError(Exception):
    """A command line `gateway` cannot act on; printed as one line, exit status 2."""
