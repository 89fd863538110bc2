"""A session policy, in Alibaba Cloud's JSON policy grammar, read into the statements RAM checks.

``{"Version": "1", "Statement": [{"Effect": "Allow"|"Deny", "Action": ..., "Resource": ...}]}``;
Action and Resource are a string or a non-empty list of strings.

- An action may carry a product prefix (``ecs:DescribeRegions``, ``ecs:Describe*``): the gateway fronts
  one product, so the prefix, whatever it names, is dropped and the rest matches the API's Action
  (``sts:AssumeRole`` names AssumeRole). An action without a prefix matches as it is.
- A resource is ``*`` or an ARN ``acs:<product>:<region>:<account>:<kind>/<id>``: the part after the
  fourth colon is matched against ``kind/id`` as the policy file's statements are; an account other
  than ``*`` or the role's own makes the statement match nothing.
- ``Condition`` (and any other key) is refused: a condition the gateway cannot evaluate, ignored, would
  widen the session instead of narrowing it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from gateway.policy import Statement

#: Alibaba Cloud's limit on a session policy's length.
MAX_POLICY_LENGTH = 2048
_KEYS = frozenset({"Effect", "Action", "Resource"})
_NOTHING = re.compile(r"(?!)")


class GrammarError(ValueError):
    """The session policy does not pass the grammar check; the message says where."""


def _strings(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise GrammarError(f"{what} must be a non-empty string or list of strings")
    return items


def _globs(patterns: list[str]) -> re.Pattern[str]:
    if not patterns:
        return _NOTHING
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _action(action: str) -> str:
    return action.split(":", 1)[1] if ":" in action else action


def _resource(resource: str, account: int) -> str | None:
    if resource == "*":
        return "*"
    parts = resource.split(":", 4)
    if len(parts) != 5 or parts[0] != "acs" or not parts[4]:
        raise GrammarError(f"Resource {resource[:64]!r} is not \"*\" or acs:<product>:<region>:<account>:<resource>")
    if not fnmatch.fnmatchcase(str(account), parts[3] or "*"):
        return None  # another account's resource: never this session's
    return parts[4]


def parse_session_policy(text: str, account: int) -> tuple[Statement, ...]:
    """The statements of a session policy for a role of ``account``; `GrammarError` if it is not one."""
    if len(text) > MAX_POLICY_LENGTH:
        raise GrammarError(f"longer than {MAX_POLICY_LENGTH} characters")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise GrammarError("not JSON") from None
    if not isinstance(document, dict) or set(document) - {"Version", "Statement"}:
        raise GrammarError("must be an object of Version and Statement")
    if document.get("Version") != "1":
        raise GrammarError("Version must be \"1\"")
    raw_statements = document.get("Statement")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise GrammarError("Statement must be a non-empty list")
    statements = []
    for index, raw in enumerate(raw_statements):
        if not isinstance(raw, dict):
            raise GrammarError(f"Statement[{index}] must be an object")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise GrammarError(f"Statement[{index}]: {unknown[0][:32]!r} is not supported")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise GrammarError(f"Statement[{index}]: Effect must be \"Allow\" or \"Deny\"")
        actions = [_action(a) for a in _strings(raw.get("Action"), f"Statement[{index}].Action")]
        resources = [_resource(r, account) for r in _strings(raw.get("Resource"), f"Statement[{index}].Resource")]
        statements.append(Statement(effect=effect, actions=_globs(actions),
                                    resources=_globs([r for r in resources if r is not None])))
    return tuple(statements)


def compact(text: str) -> str:
    """The session policy as it is carried in a token: the same JSON, without its whitespace."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=True)
