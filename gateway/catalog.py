"""The common error table, as data: every refusal the gateway answers is one `Err` member.

The wire code, the HTTP status and the message come together from this table, never from strings
scattered through the checks. Rows that share a wire code but mean different things (six
``MissingParameter``, two ``Throttling``, three ``InvalidParameter``, two ``UnsupportedParameter``)
are distinct members named for their meaning. Messages that name a parameter are templates; their
defaults render the table's own text. The exceptions that carry a member are in `gateway.errors`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from gateway.echo import ECHO_LIMIT as ECHO_LIMIT  # its home before it moved
from gateway.echo import echo as echo
from gateway.entry import Entry as Entry
from gateway.entry import beyond as _beyond
from gateway.entry import entry as _entry

_MISSING = "The input parameter “{name}” that is mandatory for processing this request is not supplied"
_ACTION_OR_VERSION = "The specified parameter “Action or Version” is not valid."
_UNSUPPORTED = "The parameter ”{name}” is not supported."
_THROTTLED = "Request was denied due to request throttling."
_RAM_NOT_FOUND = (
    "The specified {kind} is not found, so we cann’t get enough information to check permission in RAM."
)


class Err(enum.Enum):
    """The catalog: one member per row of the common error table, in the table's order."""

    # The table's row names Action; the same row, with another ``name``, reports any other mandatory
    # parameter it has no row of its own for (SignatureMethod, SignatureNonce, an API's required ones).
    MISSING_PARAMETER = _entry("MissingParameter", 400, _MISSING, "a mandatory parameter is missing", name="Action")
    MISSING_ACTION = MISSING_PARAMETER  # the row's first name, kept for services raising ApiError with it
    MISSING_ACCESS_KEY_ID = _entry("MissingParameter", 400, _MISSING, "AccessKeyId is missing", name="AccessKeyId")
    MISSING_SIGNATURE = _entry(
        "MissingParameter",
        400,
        "An input parameter “Signature” that is mandatory for processing the request is not supplied.",
        "Signature is missing",
    )
    MISSING_TIMESTAMP = _entry("MissingParameter", 400, _MISSING, "Timestamp is missing", name="TimeStamp")
    MISSING_VERSION = _entry("MissingParameter", 400, _MISSING, "Version is missing", name="Version")
    INVALID_ACTION_NAME = _entry(
        "InvalidParameter", 400, _ACTION_OR_VERSION, "the Action does not exist in this Version"
    )
    ACCESS_KEY_NOT_FOUND = _entry(
        "InvalidAccessKeyId.NotFound",
        400,
        "The Access Key ID provided does not exist in our records.",
        "the access key does not exist",
    )
    ACCESS_KEY_DISABLED = _entry(
        "Forbidden.AccessKeyDisabled", 403, "The Access Key is disabled.", "the access key is disabled"
    )
    INCOMPLETE_SIGNATURE = _entry(
        "IncompleteSignature",
        400,
        "The request signature does not conform to Aliyun standards.",
        "the signature does not verify",
    )
    INVALID_SIGNATURE_METHOD = _entry(
        "InvalidParamater",
        400,
        "The specified parameter “SignatureMethod” is not valid.",
        "SignatureMethod is not supported",
    )
    INVALID_SIGNATURE_VERSION = _entry(
        "InvalidParamater",
        400,
        "The specified parameter “SignatureVersion” is not valid.",
        "SignatureVersion is not supported",
    )
    ILLEGAL_TIMESTAMP = _entry(
        "IllegalTimestamp",
        400,
        "The input parameter “Timestamp” that is mandatory for processing this request is not supplied.",
        "Timestamp is malformed or farther than the allowed skew from the server clock",
    )
    SIGNATURE_NONCE_USED = _entry(
        "SignatureNonceUsed", 400, "The request signature nonce has been used.", "the nonce was used before"
    )
    INVALID_VERSION = _entry("InvalidParameter", 400, _ACTION_OR_VERSION, "the Version does not exist")
    INVALID_OWNER_ID = _entry(
        "InvalidOwnerId", 400, "The specified OwnerId is not valid.", "OwnerId is not the caller's account"
    )
    INVALID_OWNER_ACCOUNT = _entry(
        "InvalidOwnerAccount",
        400,
        "The specified OwnerAccount is not valid.",
        "OwnerAccount is not the caller's account",
    )
    INVALID_OWNER = _entry(
        "InvalidOwner",
        400,
        "OwnerId and OwnerAccount can’t be used at one API access.",
        "OwnerId and OwnerAccount were both given",
    )
    FLOW_CONTROLLED = _entry("Throttling", 400, _THROTTLED, "system flow control")
    QUOTA_EXHAUSTED = _entry("Throttling", 400, _THROTTLED, "the key's quota is used up")
    INVALID_ACTION = _entry("InvalidAction", 403, "Specified action is not valid.", "the key may not call this API")
    UNSUPPORTED_HTTP_METHOD = _entry(
        "UnsupportedHTTPMethod", 403, "This http method is not supported.", "only GET and POST are served"
    )
    SERVICE_UNAVAILABLE = _entry(
        "ServiceUnavailable",
        500,
        "The request has failed due to a temporary failure of the server.",
        "the service (or the shared state) cannot be reached",
    )
    UNSUPPORTED_PARAMETER = _entry(
        "UnsupportedParameter", 400, _UNSUPPORTED, "the API does not declare this parameter", name=""
    )
    INTERNAL_ERROR = _entry(
        "InternalError",
        500,
        "The request processing has failed due to some unknown error, exception or failure.",
        "anything else",
    )
    MISSING_OWNER = _entry(
        "MissingParameter",
        403,
        "The input parameter OwnerId,OwnerAccount that is mandatory for processing this request"
        " is not supplied.",
        "the API requires OwnerId or OwnerAccount",
    )
    FORBIDDEN_SUB_USER = _entry(
        "Forbidden.SubUser",
        403,
        "The specified action is not available for you。",
        "a sub-user called an order-class API",
    )
    PARAMETER_NOT_PERMITTED = _entry(
        "UnsupportedParameter", 400, _UNSUPPORTED, "the key may not use this parameter", name=""
    )
    INSTANCE_NOT_FOUND = _entry(
        "Forbidden.InstanceNotFound", 404, _RAM_NOT_FOUND, "RAM check on a missing Instance", kind="Instance"
    )
    DISK_NOT_FOUND = _entry("Forbidden.DiskNotFound", 404, _RAM_NOT_FOUND, "RAM check on a missing Disk", kind="Disk")
    SECURITY_GROUP_NOT_FOUND = _entry(
        "Forbidden.SecurityGroupNotFound",
        404,
        _RAM_NOT_FOUND,
        "RAM check on a missing SecurityGroup",
        kind="SecurityGroup",
    )
    SNAPSHOT_NOT_FOUND = _entry(
        "Forbidden.SnapshotNotFound", 404, _RAM_NOT_FOUND, "RAM check on a missing Snapshot", kind="Snapshot"
    )
    IMAGE_NOT_FOUND = _entry(
        "Forbidden.ImageNotFound", 404, _RAM_NOT_FOUND, "RAM check on a missing Image", kind="Image"
    )
    FORBIDDEN_RAM = _entry(
        "Forbidden.RAM",
        403,
        "User not authorized to operate the specified resource, or this API doesn’t support RAM.",
        "the sub-user's policy does not allow this",
    )
    FORBIDDEN_NOT_SUPPORT_RAM = _entry(
        "Forbidden.NotSupportRAM",
        403,
        "This action does not support accessed by RAM mode.",
        "the API is closed to sub-users",
    )
    INSUFFICIENT_BALANCE = _entry(
        "InsufficientBalance", 400, "Your account does not have enough balance.", "balance below the minimum"
    )
    IDEMPOTENT_PARAMETER_MISMATCH = _entry(
        "IdempotentParameterMismatch",
        400,
        "Request uses a client token in a previous request but is not identical to that request.",
        "same ClientToken, other parameters",
    )
    REAL_NAME_REQUIRED = _entry(
        "RealNameAuthenticationError",
        403,
        "Your account has not passed the real-name authentication yet.",
        "the account is not real-name verified",
    )
    IDEMPOTENCE_CALLER_MISMATCH = _entry(
        "InvalidIdempotenceParameter.Mismatch",
        403,
        "The specified parameters are different from before",
        "same ClientToken, other action or caller",
    )
    LAST_TOKEN_PROCESSING = _entry(
        "LastTokenProcessing",
        403,
        "The last token request is processing",
        "the first request with this ClientToken is still running",
    )
    INVALID_PARAMETER = _entry(
        "InvalidParameter", 400, "The specified parameter is not valid", "a parameter breaks its rule"
    )

    # -- Beyond the seed table: temporary credentials (STS), issue #17 ----------------------------
    MISSING_SECURITY_TOKEN = _beyond(
        "MissingSecurityToken", 400, "SecurityToken is missing.", "a temporary (STS.) key sent without its token"
    )
    TOKEN_MALFORMED = _beyond(
        "InvalidSecurityToken.Malformed", 400, "Specified SecurityToken is malformed.",
        "the token is tampered, truncated or not one this deployment issued",
    )
    TOKEN_EXPIRED = _beyond(
        "InvalidSecurityToken.Expired", 400, "Specified SecurityToken is expired.", "the token's Expiration has passed"
    )
    TOKEN_MISMATCH = _beyond(
        "InvalidSecurityToken.MismatchWithAccessKey", 400, "Specified SecurityToken mismatch with the AccessKey.",
        "the token belongs to another key",
    )
    ROLE_NOT_FOUND = _beyond(
        "EntityNotExist.Role", 404, "The specified Role not exists.", "AssumeRole: no such role in the caller's account"
    )
    NO_PERMISSION = _beyond(
        "NoPermission", 403, "You are not authorized to do this action. You should be authorized by RAM.",
        "AssumeRole: the caller is not trusted by the role",
    )
    INVALID_DURATION = _beyond(
        "InvalidParameter.DurationSeconds", 400,
        "The Min/Max value of DurationSeconds is 900 seconds/the role's maximum session duration.",
        "AssumeRole: DurationSeconds out of range",
    )
    INVALID_ROLE_SESSION_NAME = _beyond(
        "InvalidParameter.RoleSessionName", 400,
        "The parameter RoleSessionName is wrong: 2 to 64 letters, digits, '.', '@', '-' or '_'.",
        "AssumeRole: RoleSessionName breaks its rule",
    )
    INVALID_POLICY_GRAMMAR = _beyond(
        "InvalidParameter.PolicyGrammar", 400, "The parameter Policy has not passed grammar check.",
        "AssumeRole: the session policy is not Alibaba Cloud policy grammar",
    )

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def status(self) -> int:
        return self.value.status


#: The rows of the common error table, in its order (`Err` adds rows of its own after them).
SEED: tuple[Err, ...] = tuple(member for member in Err if member.value.seed)

#: Wire code -> the member a wrapped service's ``{"Code": ...}`` answer maps to (first row wins).
BY_CODE: Mapping[str, Err] = MappingProxyType(
    {member.code: member for member in reversed(list(Err))}
)
